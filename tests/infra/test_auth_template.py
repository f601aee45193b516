"""The catalog's auth: modes rendered (issue 15): AWS_IAM, a Cognito or a Lambda JWT authorizer on every keyed route,
health, metadata and the playground left open, usage plans kept (the authorizer's key with ApiKeySourceType
AUTHORIZER), gateway responses that name the fix; each template lint-clean (sam validate --lint, cfn-lint) and
checkov-clean beyond the template's own justified exceptions."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys

import pytest
import yaml

from modelfn_infra.catalog import AuthSection, Catalog, dump_template, render_template

from ..conftest import REPO
from .sam import sam_transform
from .test_security import CHECKOV

VENV_BIN = os.path.dirname(sys.executable)
POOL = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf123"
MODES = {
    "iam": AuthSection("iam"),
    "jwt": AuthSection("jwt", issuer="https://auth.example.com/", audience="models"),
    "cognito": AuthSection("jwt", issuer="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123",
                           audience="models", user_pool_arn=POOL, tenant_claim="custom:tenant"),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """mode -> (template path, SAM-transformed CloudFormation), from the repository's catalog plus that auth."""
    directory = tmp_path_factory.mktemp("auth-templates")
    base = Catalog.read(REPO / "infra" / "catalog.yaml")
    out = {}
    for mode, auth in MODES.items():
        path = directory / f"{mode}.yaml"
        path.write_text(dump_template(render_template(Catalog(base.models, base.plans, auth))))
        out[mode] = (path, sam_transform(path))
    return out


def swagger(cloudformation: dict) -> dict:
    return next(r for r in cloudformation["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi")


def method(body: dict, path: str, verb: str) -> dict:
    return body["paths"][path][verb]


def test_model_routes_get_the_modes_authorizer_and_open_routes_stay_open(rendered):
    for mode, (_, cloudformation) in rendered.items():
        api = swagger(cloudformation)
        body = api["Properties"]["Body"]
        expected = {"iam": "AWS_IAM", "jwt": "JwtAuthorizer", "cognito": "CognitoAuthorizer"}[mode]
        for path, verb in (("/v1/models/digits:predict", "post"), ("/v2/models/digits/{proxy+}", "x-amazon-apigateway-any-method"),
                           ("/{proxy+}", "x-amazon-apigateway-any-method")):
            assert method(body, path, verb)["security"] == [{expected: []}, {"api_key": []}], (mode, path)
        for path, verb in (("/v2/health/{proxy+}", "get"), ("/", "x-amazon-apigateway-any-method"), ("/v2", "get")):
            assert method(body, path, verb).get("security") == [], (mode, path)  # health, metadata, playground
        predict = method(body, "/v1/models/digits:predict", "post")["x-amazon-apigateway-integration"]
        assert "credentials" not in predict  # invoked with the function's permission, never the caller's credentials
        assert api["Properties"].get("ApiKeySourceType") == ("AUTHORIZER" if mode == "jwt" else None)


def test_the_jwt_authorizer_is_a_small_function_with_pyjwt_and_the_tenants_keys(rendered):
    path, cloudformation = rendered["jwt"]
    template = yaml.safe_load(path.read_text())
    function = template["Resources"]["AuthorizerFunction"]["Properties"]
    assert function["Handler"] == "modelfn_runtime.authorizer.handler" and function["Layers"] == [{"Ref": "JwtLayer"}]
    assert function["Environment"]["Variables"]["MODELFN_JWT_JWKS_URI"] == "https://auth.example.com/.well-known/jwks.json"
    assert function["Policies"][0]["Statement"][0]["Action"] == "apigateway:GET"
    assert "PyJWT[crypto]==" in (REPO / template["Resources"]["JwtLayer"]["Properties"]["ContentUri"] / "requirements.txt").read_text()
    authorizer = swagger(cloudformation)["Properties"]["Body"]["securityDefinitions"]["JwtAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert (authorizer["type"], authorizer["identitySource"]) == ("request", "method.request.header.Authorization")
    responses = template["Resources"]["ModelApi"]["Properties"]["GatewayResponses"]
    assert responses["UNAUTHORIZED"]["StatusCode"] == "401" and "Bearer" in str(responses["UNAUTHORIZED"])
    assert "$context.authorizer.reason" in str(responses["ACCESS_DENIED"])  # the authorizer says why it denied
    iam = yaml.safe_load(rendered["iam"][0].read_text())
    assert iam["Resources"]["ModelInvokePolicy"]["Type"] == "AWS::IAM::ManagedPolicy"
    assert iam["Resources"]["ModelApi"]["Properties"]["GatewayResponses"]["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "401"
    cognito = yaml.safe_load(rendered["cognito"][0].read_text())
    assert cognito["Globals"]["Function"]["Environment"]["Variables"]["MODELFN_TENANT_CLAIM"] == "custom:tenant"
    assert "AuthorizerFunction" not in cognito["Resources"]


def _env() -> dict:
    return {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}


def test_every_mode_lints_clean(rendered):
    paths = [str(path) for path, _ in rendered.values()]
    result = subprocess.run([os.path.join(VENV_BIN, "cfn-lint"), *paths], capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in paths:
        result = subprocess.run([os.path.join(VENV_BIN, "sam"), "validate", "--lint", "--template-file", path],
                                cwd=REPO, capture_output=True, text=True, env=_env(), timeout=300)
        assert result.returncode == 0 and "is a valid SAM Template" in result.stdout + result.stderr, result.stdout + result.stderr


def test_checkov_finds_nothing_beyond_the_justified_exceptions_in_any_mode(rendered, tmp_path):
    if not CHECKOV.is_file():
        pytest.skip(f"{CHECKOV} is missing: run `make install` (it builds the scanner's own virtual environment)")
    files = []
    for mode, (_, cloudformation) in rendered.items():
        files.append(tmp_path / f"{mode}.json")
        files[-1].write_text(json.dumps(cloudformation))
    exceptions = yaml.safe_load(rendered["jwt"][0].read_text())["Metadata"]["modelfn"]["checkov_exceptions"]
    result = subprocess.run([str(CHECKOV), "-f", *map(str, files), "--framework", "cloudformation", "--skip-download",
                             "--quiet", "--compact", "-o", "json"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    reports = json.loads(result.stdout)
    failed = []
    for report in reports if isinstance(reports, list) else [reports]:
        assert report["summary"]["parsing_errors"] == 0 and report["summary"]["passed"] > 30
        for check in report["results"]["failed_checks"]:
            logical_id = check["resource"].split(".", 1)[1]
            rule = exceptions.get(check["check_id"])
            if rule is None or not any(fnmatch.fnmatchcase(logical_id, pattern) for pattern in rule["resources"]):
                failed.append(f"{check['check_id']} {check['resource']} ({check.get('file_path')}): {check['check_name']}")
    assert failed == [], "\n".join(failed)
