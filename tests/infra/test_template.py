"""template.yaml: rendered from the catalog, lint-clean, one function per model with its own routes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from modelfn_infra.catalog import Catalog, CatalogError, drift, render_template

from ..conftest import REPO
from .sam import sam_transform

CATALOG = REPO / "infra" / "catalog.yaml"
TEMPLATE = REPO / "template.yaml"
VENV_BIN = os.path.dirname(sys.executable)


def load_template() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    return yaml.load(TEMPLATE.read_text(), Loader=Loader)


def test_template_is_what_the_catalog_renders():
    assert drift(CATALOG, TEMPLATE) is None


def test_drift_is_detected_and_named(tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG.read_text().replace("memory_mb: 1024", "memory_mb: 2048"))
    assert "run `modelfn template render`" in drift(catalog, TEMPLATE)
    result = subprocess.run(
        [sys.executable, "-m", "modelfn_infra.cli", "template", "check", "--catalog", str(catalog)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert result.returncode == 1 and "differs" in result.stderr


def test_adding_a_model_is_one_catalog_entry(tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG.read_text() + "  - name: mobile-net\n    version: \"3\"\n    memory_mb: 3008\n    architecture: arm64\n")
    template = tmp_path / "template.yaml"
    subprocess.run([sys.executable, "-m", "modelfn_infra.cli", "template", "render", "--catalog", str(catalog), "--template", str(template)],
                   cwd=REPO, check=True, capture_output=True)
    function = yaml.safe_load(template.read_text())["Resources"]["MobileNetFunction"]["Properties"]
    assert function["MemorySize"] == 3008 and function["Architectures"] == ["arm64"]
    assert function["Environment"]["Variables"]["MODEL_VERSION"] == "3"
    assert {e["Properties"]["Path"] for e in function["Events"].values() if e["Type"] == "Api"} == {
        "/v2/models/mobile-net", "/v2/models/mobile-net/{proxy+}", "/v1/models/mobile-net",
        "/v1/models/mobile-net:predict", "/v1/models/mobile-net/{proxy+}",
    }
    assert drift(catalog, template) is None


@pytest.mark.parametrize(
    "entry,message",
    [
        ("- name: Digits\n    version: '1'", "name must match"),
        ("- name: digits\n    version: 'v1'", "version must be a positive integer"),
        ("- name: digits\n    version: '1'\n    memory_mb: 64", "memory_mb must be between 128 and 10240"),
        ("- name: digits\n    version: '1'\n    architecture: ppc", "architecture must be one of"),
        ("- name: digits\n    version: '1'\n    gpu: true", "unknown key 'gpu'; known keys: name, version, memory_mb"),
        ("- name: digits\n    version: '1'\n  - name: digits\n    version: '2'", "appear twice"),
    ],
)
def test_catalog_errors_name_the_fix(tmp_path, entry, message):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("models:\n  " + entry + "\n")
    with pytest.raises(CatalogError, match=message):
        Catalog.read(catalog)


def test_each_model_has_its_own_function_sized_and_configured():
    template = load_template()
    catalog = Catalog.read(CATALOG)
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.12" and globals_["Handler"] == "app.lambda_handler"
    assert globals_["Environment"]["Variables"]["MODELFN_MODELS"] == ",".join(m.name for m in catalog.models)
    for entry in catalog.models:
        properties = template["Resources"][entry.logical_id]["Properties"]
        assert properties["MemorySize"] == entry.memory_mb and properties["Timeout"] == entry.timeout_s
        assert properties["ReservedConcurrentExecutions"] == entry.reserved_concurrency
        variables = properties["Environment"]["Variables"]
        assert variables["MODEL_NAME"] == entry.name and variables["MODEL_VERSION"] == entry.version
        assert "MODEL_URI" in variables
        assert all(event["Properties"]["RestApiId"] == {"Ref": "ModelApi"} for event in properties["Events"].values() if event["Type"] == "Api")


def test_api_passes_binary_bodies_and_answers_protocol_errors():
    api = load_template()["Resources"]["ModelApi"]["Properties"]
    assert api["BinaryMediaTypes"] == ["*~1*"]
    responses = api["GatewayResponses"]
    assert responses["REQUEST_TOO_LARGE"]["StatusCode"] == "413"
    assert all("$context.error.message" in r["ResponseTemplates"]["application/json"] for r in responses.values())


def _lint_env() -> dict:
    return {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}


def test_sam_validate_lint_is_clean():
    result = subprocess.run([os.path.join(VENV_BIN, "sam"), "validate", "--lint", "--template-file", str(TEMPLATE)],
                            cwd=REPO, capture_output=True, text=True, env=_lint_env(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_cfn_lint_is_clean():
    result = subprocess.run([os.path.join(VENV_BIN, "cfn-lint"), str(TEMPLATE)], cwd=REPO, capture_output=True, text=True,
                            env=_lint_env(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_transform_gives_each_model_route_its_own_function():
    cloudformation = sam_transform()
    resources = cloudformation["Resources"]
    swagger = next(r for r in resources.values() if r["Type"] == "AWS::ApiGateway::RestApi")["Properties"]["Body"]
    predict = swagger["paths"]["/v1/models/digits:predict"]["post"]["x-amazon-apigateway-integration"]["uri"]
    assert "DigitsFunction" in str(predict)
    catch_all = swagger["paths"]["/{proxy+}"]["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]["uri"]
    assert "ServerFunction" in str(catch_all)
    assert swagger["x-amazon-apigateway-binary-media-types"] == ["*/*"]


def test_render_is_deterministic():
    first = render_template(Catalog.read(CATALOG))
    assert first == render_template(Catalog.read(CATALOG))
