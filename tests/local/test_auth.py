"""Authentication beyond API keys, as the local API enforces it (issue 15): SigV4 requests signed by botocore's
``SigV4Auth`` and JWTs from the local issuer pass; tampered, expired, foreign and replayed credentials and revoked or
rotated-out keys are refused (401 for a missing or malformed credential, 403 for a valid one not allowed); the tenant
metered is the authenticated one, whatever key a caller sends.

The gate is checked directly (cheap), then one local API per mode serves a real function end to end."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.server import ThreadedMotoServer
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from modelfn_infra.billing import tenant_index
from modelfn_infra.catalog import AuthSection, Catalog, ModelEntry, UsagePlanEntry, dump_template, render_template
from modelfn_infra.local.apikeys import ApiKeyGate, Refused
from modelfn_infra.local.commands import JwksEndpoint, LocalApp, _admission
from modelfn_infra.local.credentials import CredentialGate, Identity, Incoming
from modelfn_infra.local.issuer import LocalIssuer
from modelfn_infra.local.sam_cli import Refusal
from modelfn_infra.local.sandbox import free_port
from modelfn_infra.tenants import LocalTenants
from modelfn_runtime.triggers.apigw import RestApiTrigger

from ..conftest import REPO
from ..runtime.test_usage import TABLE, create_table
from .test_playground import browser  # noqa: F401  (the headless Chromium fixture)

_spec = importlib.util.spec_from_file_location("secured_call", REPO / "docs" / "examples" / "secured_call.py")
example = importlib.util.module_from_spec(_spec)  # the README's documented client, run here against the local API
_spec.loader.exec_module(example)

ISSUER, AUDIENCE = "https://auth.example.com/", "models"
INFER = ("ToyFunction", "/v2/models/toy/{proxy+}")
URL = "http://127.0.0.1:3000/v2/models/toy/infer"
BODY = json.dumps({"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                              {"name": "ids", "shape": [1, 3], "datatype": "INT64", "data": [1, 2, 3]}]}).encode()
PLANS = [UsagePlanEntry("free", rate_limit=100, burst_limit=100)]


def resources(auth: AuthSection) -> dict:
    return render_template(Catalog([ModelEntry("toy", "1", memory_mb=256)], PLANS, auth))["Resources"]


IAM = AuthSection("iam")
JWT = AuthSection("jwt", issuer=ISSUER, audience=AUDIENCE)


def signed(credentials, url: str = URL, body: bytes = BODY, headers: dict | None = None) -> Incoming:
    """A request signed by botocore's SigV4Auth for execute-api, as an SDK client signs it."""
    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    SigV4Auth(Credentials(credentials.access_key_id, credentials.secret_access_key), "execute-api", "us-east-1").add_auth(request)
    request.headers["Host"] = url.split("/")[2]
    return Incoming("POST", url, dict(request.headers.items()), body)


def refused(decision, status: int, *words: str) -> bool:
    return isinstance(decision, Refused) and decision.status == status and all(w in decision.message for w in words)


@pytest.fixture
def iam(tmp_path):
    tenants = LocalTenants(tmp_path / "tenants.json", ["free"])
    return tenants, CredentialGate.from_template(resources(IAM), tenants)


def test_sigv4_from_botocore_passes_and_tampered_foreign_or_missing_signatures_are_401(iam):
    tenants, gate = iam
    acme = tenants.create("acme", "free")
    credentials = tenants.sigv4_credentials("acme")
    identity = gate.authenticate(*INFER, signed(credentials))
    assert isinstance(identity, Identity) and identity.tenant.id == acme.id
    assert identity.context["identity"]["userArn"] == "arn:aws:iam::000000000000:user/acme"
    assert gate.authenticate("ServerFunction", "/v2/health/{proxy+}", Incoming("GET", URL, {}, b"")) is None  # open

    good = signed(credentials)
    assert refused(gate.authenticate(*INFER, Incoming("POST", URL, good.headers, BODY.replace(b"1, 2", b"9, 9"))), 401,
                   "signature we calculated does not match", "SigV4")
    assert refused(gate.authenticate(*INFER, Incoming("POST", URL.replace("toy", "toy2"), good.headers, BODY)), 401)
    wrong_secret = type(credentials)(credentials.access_key_id, "x" * 40, credentials.principal)
    assert refused(gate.authenticate(*INFER, signed(wrong_secret)), 401, "does not match")
    stranger = type(credentials)("AKIAAAAAAAAAAAAAAAAA", credentials.secret_access_key, "")
    assert refused(gate.authenticate(*INFER, signed(stranger)), 401, "security token included in the request is invalid")
    assert refused(gate.authenticate(*INFER, Incoming("POST", URL, {}, BODY)), 401, "Missing Authentication Token",
                   "sign the request with AWS SigV4")
    assert refused(gate.authenticate(*INFER, Incoming("POST", URL, {"Authorization": "Basic YTpi"}, BODY)), 401,
                   "not a SigV4 signature")


def test_a_replayed_signature_outside_the_clock_skew_and_a_revoked_tenant_are_refused(iam):
    tenants, gate = iam
    tenants.create("acme", "free")
    request = signed(tenants.sigv4_credentials("acme"))
    later = CredentialGate.from_template(resources(IAM), tenants, now=lambda: datetime.now(timezone.utc) + timedelta(minutes=6))
    assert refused(later.authenticate(*INFER, request), 401, "Signature expired", "clock skew")
    within = CredentialGate.from_template(resources(IAM), tenants, now=lambda: datetime.now(timezone.utc) + timedelta(minutes=4))
    assert isinstance(within.authenticate(*INFER, request), Identity)
    tenants.revoke("acme")  # a correct signature of a revoked tenant: authenticated, not allowed
    assert refused(gate.authenticate(*INFER, request), 403, "not authorized", "ModelInvokePolicy")


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    local = LocalIssuer(tmp_path_factory.mktemp("issuer"))
    endpoint = JwksEndpoint(local)
    yield local, endpoint.url + "/jwks.json"
    endpoint.stop()


def test_a_local_jwt_passes_and_tampered_expired_foreign_audience_and_issuer_tokens_are_401(tmp_path, issuer):
    local, jwks = issuer
    tenants = LocalTenants(tmp_path / "tenants.json", ["free"])
    acme = tenants.create("acme", "free", principal="user-123")  # the token's sub names the tenant
    gate = CredentialGate.from_template(resources(JWT), tenants, jwks)

    def check(token: str):
        return gate.authenticate(*INFER, Incoming("POST", URL, {"Authorization": f"Bearer {token}"}, BODY))

    token = local.token("user-123", issuer=ISSUER, audience=AUDIENCE)
    identity = check(token)
    assert isinstance(identity, Identity) and identity.supplies_key and identity.tenant.id == acme.id
    assert identity.context["authorizer"]["tenant"] == acme.id  # what the function meters
    header, payload, signature = token.split(".")
    assert refused(check(f"{header}.{payload[:-3]}AAA.{signature}"), 401, "Unauthorized", "Bearer")
    assert refused(check(local.token("user-123", issuer=ISSUER, audience=AUDIENCE, ttl_s=-120)), 401, "expired")
    assert refused(check(local.token("user-123", issuer=ISSUER, audience="other")), 401, "not for this API")
    assert refused(check(local.token("user-123", issuer="https://evil.example/", audience=AUDIENCE)), 401, "another issuer")
    foreign = LocalIssuer(tmp_path / "foreign").token("user-123", issuer=ISSUER, audience=AUDIENCE)
    assert refused(check(foreign), 401, "signing key")
    assert refused(gate.authenticate(*INFER, Incoming("POST", URL, {}, BODY)), 401, "no access token")
    assert refused(check(local.token("nobody", issuer=ISSUER, audience=AUDIENCE)), 403, "no enabled tenant",
                   "--principal nobody")
    tenants.revoke("acme")
    assert refused(check(token), 403, "no enabled tenant")


def request_for(incoming: Incoming) -> Request:
    path = "/" + incoming.url.split("/", 3)[3]
    return Request(EnvironBuilder(path=path, method=incoming.method, headers=dict(incoming.headers), data=incoming.body,
                                  base_url="http://127.0.0.1:3000").get_environ())


def event_of(context: dict) -> dict:
    return {"httpMethod": "POST", "path": "/v2/models/toy/infer", "headers": {}, "body": "",
            "requestContext": {"requestId": "r1", "identity": {}, **context}}


def test_one_tenant_cannot_be_metered_as_another_by_sending_its_key(tmp_path, issuer):
    """A caller authenticated as acme who sends bob's x-api-key is still metered (and billed) as acme."""
    tenants = LocalTenants(tmp_path / "tenants.json", ["free"])
    acme = tenants.create("acme", "free", principal="arn:aws:iam::000000000000:user/acme")
    bob = tenants.create("bob", "free")
    keys = ApiKeyGate.from_template(resources(IAM), tenants)
    admit = _admission(keys, CredentialGate.from_template(resources(IAM), tenants))
    context = admit(*INFER, request_for(signed(tenants.sigv4_credentials("acme"), headers={"x-api-key": bob.key})))
    metered = RestApiTrigger().request(event_of(context)).tenant
    assert metered == "arn:aws:iam::000000000000:user/acme" and tenant_index(tenants.list())[metered].name == "acme"
    no_key = admit(*INFER, request_for(signed(tenants.sigv4_credentials("acme"))))  # signed, but no usage-plan key
    assert isinstance(no_key, Refusal) and no_key.status == 403 and "x-api-key" in no_key.body["error"]

    local, jwks = issuer
    carol = tenants.create("carol", "free")  # jwt: no principal, so the token's sub is her name
    admit = _admission(ApiKeyGate.from_template(resources(JWT), tenants),
                       CredentialGate.from_template(resources(JWT), tenants, jwks))
    token = local.token("carol", issuer=ISSUER, audience=AUDIENCE)
    headers = {"Authorization": f"Bearer {token}", "x-api-key": bob.key}  # the header's key is ignored: AUTHORIZER source
    context = admit(*INFER, request_for(Incoming("POST", URL, headers, BODY)))
    assert context["identity"]["apiKeyId"] == context["authorizer"]["tenant"] == carol.id
    assert RestApiTrigger().request(event_of(context)).tenant == carol.id != acme.id


# --- end to end: the local API in iam and jwt mode, a real function behind it, metering into moto DynamoDB -----------

@pytest.fixture(scope="module")
def dynamodb():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    if TABLE in client.list_tables()["TableNames"]:  # moto's servers in one process share their state
        client.delete_table(TableName=TABLE)
    create_table(client)
    previous = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint  # the sandboxes inherit it, as `make demo` does
    try:
        yield client
    finally:
        if previous is None:
            os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        else:
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = previous
        client.delete_table(TableName=TABLE)  # leave no table for the next module's moto server
        server.stop()


@pytest.fixture(scope="module", params=["iam", "jwt"])
def secured_api(request, toy_store, dynamodb, tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"auth-{request.param}")
    catalog = Catalog([ModelEntry("toy", "1", memory_mb=256)], PLANS, IAM if request.param == "iam" else JWT)
    template = directory / "template.yaml"
    template.write_text(dump_template(render_template(catalog, code_uri=str(REPO / "functions" / "inference"))))
    tenants = LocalTenants(directory / "tenants.json", ["free"])
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    env = {"Parameters": {"MODELFN_USAGE_TABLE": TABLE}}
    with LocalApp(template, env_vars=env, parameter_overrides={"ModelBucket": "unused"}, model_store=toy_store,
                  log_stream=open(os.devnull, "w")) as app:
        server = app.serve_api(port=0, tenants=tenants.path)
        try:
            yield request.param, server, tenants, app
        finally:
            server.stop()


def send(url: str, headers: dict, body: bytes | None = BODY) -> tuple[int, dict | str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if response.headers.get_content_type() == "application/json" else text
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_each_mode_serves_authenticated_tenants_meters_them_and_keeps_the_playground_open(secured_api, dynamodb):
    mode, server, tenants, app = secured_api
    url = server.url + "/v2/models/toy/infer"
    status, page = send(server.url + "/", {"Accept": "text/html"}, None)
    assert status == 200 and "API key or token" in page  # the playground page needs no credential in any mode
    assert send(server.url + "/v2/health/live", {}, None)[0] == 200
    status, body = send(url, {"Content-Type": "application/json"})
    assert status == 401 and ("SigV4" if mode == "iam" else "Bearer") in body["error"]

    acme = tenants.create("acme", "free", principal="arn:aws:iam::000000000000:user/acme" if mode == "iam" else None)
    if mode == "iam":
        local = tenants.sigv4_credentials("acme")
        credentials = Credentials(local.access_key_id, local.secret_access_key)
        headers = example.sigv4_headers("POST", url, BODY, credentials, "us-east-1", {"x-api-key": acme.key})
        expected_tenant = "arn:aws:iam::000000000000:user/acme"
        assert send(url, {**headers, "x-api-key": "wrong"})[0] == 401  # the key is signed: changing it breaks the signature
    else:
        token = LocalIssuer(tenants.path.parent / "issuer").token("acme", issuer=ISSUER, audience=AUDIENCE)
        headers = example.bearer_headers(token)
        expected_tenant = acme.id
    status, body = example.call("POST", url, headers, BODY)
    assert status == 200 and body["outputs"][0]["name"] == "probs", body
    app.usage.flush()  # the log subscription delivers the function's metering line to the usage aggregator
    items = dynamodb.query(TableName=TABLE, KeyConditionExpression="tenant = :t",
                           ExpressionAttributeValues={":t": {"S": expected_tenant}})["Items"]
    assert [int(item["requests"]["N"]) for item in items] == [1]  # metered as the authenticated tenant

    new, _ = tenants.rotate("acme", grace_hours=0)  # rotated out at once: the old key no longer passes
    if mode == "iam":
        assert send(url, headers)[0] == 403  # a valid signature, a revoked key
        fresh = example.sigv4_headers("POST", url, BODY, credentials, "us-east-1", {"x-api-key": new.key})
        assert send(url, fresh)[0] == 200
    else:
        assert send(url, headers)[0] == 200  # the authorizer supplies the tenant's current key
        tenants.revoke("acme")
        assert send(url, headers)[0] == 403


@pytest.mark.slow
def test_the_playground_in_a_browser_sends_a_token_and_shows_what_iam_needs(secured_api, browser):  # noqa: F811
    """jwt: the token typed into the page's key field goes out as a bearer token and the model answers; iam: the page
    loads and lists the models, and a request from it shows the 401 that says to sign with SigV4."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    mode, server, tenants, app = secured_api
    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_element(By.ID, "model-toy"))
    if mode == "jwt":
        tenants.create("browser", "free")
        token = LocalIssuer(tenants.path.parent / "issuer").token("browser", issuer=ISSUER, audience=AUDIENCE)
        browser.find_element(By.ID, "api-key").send_keys(token)
    browser.find_element(By.ID, "send-toy").click()
    status = browser.find_element(By.ID, "status-toy")
    wait.until(lambda d: status.text.startswith("HTTP"))
    answer = browser.find_element(By.ID, "response-toy").text
    if mode == "jwt":
        assert status.text == "HTTP 200" and ("predictions" in answer or "outputs" in answer), answer
    else:
        assert status.text == "HTTP 401" and "SigV4" in answer, answer


def test_an_unreachable_jwks_is_an_authorizer_failure_not_a_refused_token(tmp_path):
    tenants = LocalTenants(tmp_path / "tenants.json", ["free"])
    gate = CredentialGate.from_template(resources(JWT), tenants, f"http://127.0.0.1:{free_port()}/jwks.json")
    token = LocalIssuer(tmp_path / "issuer").token("acme", issuer=ISSUER, audience=AUDIENCE)
    decision = gate.authenticate(*INFER, Incoming("POST", URL, {"Authorization": f"Bearer {token}"}, BODY))
    assert refused(decision, 500, "signing keys could not be fetched", "retry")
