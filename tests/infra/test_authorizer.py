"""The deployed JWT authorizer (modelfn_runtime.authorizer) against moto's API Gateway keys and a JWKS on 127.0.0.1:
the tenant's usage-plan key for a valid token, 401 (Unauthorized) for a bad one, a Deny with the reason for a valid
token naming no tenant, and a rotated-out key past its grace never chosen."""

from __future__ import annotations

import subprocess
import sys

import boto3
import pytest
from moto import mock_aws

from modelfn_infra.local.commands import JwksEndpoint
from modelfn_infra.local.issuer import LocalIssuer
from modelfn_infra.tenants import ApiGatewayTenants
from modelfn_runtime import authorizer, tokens

from .test_tenants import STACK, deploy_plans

ISSUER, AUDIENCE = "https://auth.example.com/", "models"
ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/Prod/POST/v2/models/digits/infer"


@pytest.fixture
def deployed(tmp_path, monkeypatch):
    issuer = LocalIssuer(tmp_path / "issuer")
    endpoint = JwksEndpoint(issuer)
    for name, value in {tokens.ISSUER_ENV: ISSUER, tokens.AUDIENCE_ENV: AUDIENCE, tokens.JWKS_ENV: endpoint.url + "/jwks",
                        tokens.CLAIM_ENV: "sub", authorizer.STACK_ENV: STACK}.items():
        monkeypatch.setenv(name, value)
    authorizer.verifier.cache_clear()
    authorizer.tenant_keys.cache_clear()
    try:
        with mock_aws():
            client = boto3.client("apigateway", region_name="us-east-1")
            deploy_plans(client)
            yield issuer, ApiGatewayTenants(stack=STACK, client=client), client
    finally:
        endpoint.stop()
        authorizer.verifier.cache_clear()
        authorizer.tenant_keys.cache_clear()


def event(token: str) -> dict:
    return {"type": "REQUEST", "methodArn": ARN, "headers": {"Authorization": f"Bearer {token}"}}


def test_a_valid_token_gets_its_tenants_usage_plan_key_and_a_bad_one_401(deployed):
    issuer, tenants, client = deployed
    acme = tenants.create("acme", "pro", principal="user-123")
    answer = authorizer.handler(event(issuer.token("user-123", issuer=ISSUER, audience=AUDIENCE)), None)
    assert answer["usageIdentifierKey"] == acme.key and answer["context"]["tenant"] == acme.id
    statement = answer["policyDocument"]["Statement"][0]
    assert (statement["Effect"], statement["Resource"]) == ("Allow", "arn:aws:execute-api:us-east-1:123456789012:abc123/Prod/*")
    for bad in (issuer.token("user-123", issuer=ISSUER, audience="other"), "not.a.jwt"):
        with pytest.raises(Exception, match="^Unauthorized$"):
            authorizer.handler(event(bad), None)
    denied = authorizer.handler(event(issuer.token("stranger", issuer=ISSUER, audience=AUDIENCE)), None)
    assert denied["policyDocument"]["Statement"][0]["Effect"] == "Deny" and "usageIdentifierKey" not in denied
    assert "--principal stranger" in denied["context"]["reason"]


def test_rotation_hands_out_the_new_key_and_a_key_past_its_grace_never(deployed):
    issuer, tenants, client = deployed
    tenants.create("acme", "pro")  # no principal: the claim names the tenant
    new, old = tenants.rotate("acme", grace_hours=1)
    keys = authorizer.TenantKeys(STACK, client=client)
    assert keys.find("acme")["id"] == new.id and old.enabled and old.expires
    tenants.revoke(new.id)  # only the rotated-out key is left: valid within its grace ...
    assert authorizer.TenantKeys(STACK, client=client).find("acme")["id"] == old.id
    client.update_api_key(apiKey=old.id, patchOperations=[{"op": "replace", "path": "/description",
                                                           "value": "rotated out, revoke-after=2020-01-01T00:00:00Z"}])
    assert authorizer.TenantKeys(STACK, client=client).find("acme") is None  # ... and never after it


def test_the_authorizer_imports_no_numpy_or_onnxruntime():
    code = ("import sys, modelfn_runtime.authorizer; "
            "print(sorted(m for m in ('numpy', 'onnxruntime') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
