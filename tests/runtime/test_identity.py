"""Who a REST request's tenant is (modelfn_runtime.identity.rest_tenant): what API Gateway authenticated, in each auth
mode, never a header or key the caller picks."""

from __future__ import annotations

from modelfn_runtime.identity import principal_of, rest_tenant, revoke_after
from modelfn_runtime.triggers.apigw import RestApiTrigger


def tenant_of(identity: dict, authorizer: dict | None = None, headers: dict | None = None) -> str | None:
    event = {"httpMethod": "POST", "path": "/v2/models/digits/infer", "headers": headers or {},
             "requestContext": {"requestId": "r1", "identity": identity, **({"authorizer": authorizer} if authorizer else {})}}
    return RestApiTrigger().request(event).tenant


def test_each_modes_tenant_comes_from_what_api_gateway_authenticated(monkeypatch):
    assert tenant_of({"apiKeyId": "key-a"}) == "key-a"  # api_key
    session = "arn:aws:sts::123456789012:assumed-role/Acme/i-0abc"
    assert tenant_of({"apiKeyId": "key-b", "userArn": session}) == "arn:aws:sts::123456789012:assumed-role/Acme"  # iam
    assert tenant_of({"apiKeyId": "key-b"}, {"tenant": "key-a", "principalId": "u1"}) == "key-a"  # jwt, Lambda authorizer
    claims = {"claims": {"sub": "u-1", "custom:tenant": "acme"}}
    assert tenant_of({"apiKeyId": "key-b"}, claims) == "u-1"  # jwt, Cognito: the tenant claim (default sub)
    monkeypatch.setenv("MODELFN_TENANT_CLAIM", "custom:tenant")
    assert tenant_of({"apiKeyId": "key-b"}, claims) == "acme"
    assert tenant_of({}, None, headers={"x-tenant": "someone-else", "x-api-key": "k"}) is None  # headers never decide


def test_principals_and_grace_markers():
    assert principal_of("arn:aws:iam::123456789012:user/acme") == "arn:aws:iam::123456789012:user/acme"
    assert principal_of("arn:aws:iam::123456789012:role/path/Acme") == "arn:aws:sts::123456789012:assumed-role/Acme"
    assert rest_tenant({"userArn": ""}, {"tenant": ""}) is None
    assert revoke_after("modelfn tenant a (free plan)") is None
    assert revoke_after("rotated out, revoke-after=2026-12-01T10:00:00Z") == "2026-12-01T10:00:00Z"


def test_the_openapi_document_says_which_credential_each_mode_needs(monkeypatch):
    from openapi_spec_validator import validate

    from modelfn_runtime.openapi import openapi_document

    assert openapi_document([], "0.1.0")["components"]["securitySchemes"].keys() == {"apiKey"}  # api_key: unchanged
    monkeypatch.setenv("MODELFN_AUTH_MODE", "jwt")  # what the template sets for auth: jwt
    for mode, document in (("jwt", openapi_document([], "0.1.0")), ("iam", openapi_document([], "0.1.0", "iam"))):
        validate(document)
        keyed = document["paths"]["/openapi.json"]["get"]
        assert keyed["security"][0] == {mode: [], "apiKey": []} and "401" in keyed["responses"]
        assert document["paths"]["/v2/health/ready"]["get"]["security"] == []  # open routes stay open
