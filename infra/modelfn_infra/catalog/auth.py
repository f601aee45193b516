"""Authentication of the model routes beyond API keys (the catalog's ``auth:`` section), rendered after ``usage``.

* ``api_key`` (default): nothing added; every model route needs an ``x-api-key`` on a usage plan.
* ``iam``: ``AWS_IAM`` on the model routes (and the catch-all) plus the API key, as today: API Gateway checks the
  SigV4 signature and the caller's IAM permission (``ModelInvokePolicy`` grants it), then the key's usage plan.
  A Lambda authorizer cannot sit on the same method as ``AWS_IAM``, so the usage-plan key still comes from the
  ``x-api-key`` header; the tenant that is metered and billed is the IAM principal (``identity.userArn``, mapped
  to the tenant whose record names it, ``modelfn tenants create NAME --principal ARN``), never the key the caller
  sent.
* ``jwt`` with ``user_pool_arn``: a Cognito user-pool authorizer plus the API key from the header; the tenant is
  the token's ``tenant_claim``, mapped the same way.
* ``jwt`` otherwise: a Lambda REQUEST authorizer (``modelfn_runtime.authorizer``, PyJWT from its own layer)
  verifies the token against the issuer's JWKS and returns the tenant's API key as ``usageIdentifierKey``
  (``ApiKeySourceType: AUTHORIZER``): the caller sends only the token.

Health, server metadata and the playground stay open. The API's ``Metadata["modelfn:auth"]`` repeats the mode's
settings for the local API (``local/credentials.py``), which enforces the same rules.

Example:
    >>> template = render_template(Catalog.read("infra/catalog.yaml"))   # doctest: +SKIP
    >>> template["Resources"]["ModelApi"]["Metadata"]["modelfn:auth"]["mode"]   # doctest: +SKIP
    'api_key'
"""

from __future__ import annotations

import json
from typing import Any

from modelfn_runtime import environment as names
from modelfn_runtime import identity, tokens

from . import ids
from .api import OPEN_EVENTS
from .releases import LAMBDA_RUNTIME
from .schema import AuthSection, Catalog

AUTH_METADATA = "modelfn:auth"
AUTHORIZER_FUNCTION = "AuthorizerFunction"
AUTHORIZER_HANDLER = "modelfn_runtime.authorizer.handler"
JWT_LAYER = "JwtLayer"
JWT_LAYER_CODE = "layers/jwt/"
INVOKE_POLICY = "ModelInvokePolicy"
LAMBDA_AUTHORIZER, COGNITO_AUTHORIZER = "JwtAuthorizer", "CognitoAuthorizer"
REAUTHORIZE_EVERY_S = 300
SIGV4_SERVICE = "execute-api"

SIGN = f"sign the request with AWS SigV4 (service {SIGV4_SERVICE}) using the credentials of the tenant's IAM principal"
AUTH_ERRORS: dict[str, dict[str, tuple[int, str]]] = {
    # mode -> gateway response type -> (status, hint after "$context.error.message: ")
    "iam": {
        "MISSING_AUTHENTICATION_TOKEN": (401, f"no SigV4 signature (or no such route: see GET /openapi.json); {SIGN}"),
        "INVALID_SIGNATURE": (401, f"the SigV4 signature does not match or is outside the 5-minute clock skew; {SIGN}, "
                                   "with a correct clock, and send the request exactly as signed"),
        "EXPIRED_TOKEN": (401, "the session token has expired; refresh the temporary credentials and sign again"),
        "ACCESS_DENIED": (403, f"this IAM principal may not invoke the API; an operator attaches the stack's {INVOKE_POLICY} "
                               "to it and registers it with `modelfn tenants create NAME --plan PLAN --principal ARN`"),
    },
    "jwt": {
        "UNAUTHORIZED": (401, f"missing, malformed, expired or foreign access token; {tokens.FIX}"),
        "ACCESS_DENIED": (403, "the token is valid but names no enabled tenant; an operator creates one with "
                               "`modelfn tenants create NAME --plan PLAN --principal SUBJECT`"),
    },
}


def add_auth(template: dict[str, Any], catalog: Catalog) -> None:
    """The ``auth:`` mode's authorizer on every keyed route, its gateway responses and its resources."""
    auth = catalog.auth
    resources = template["Resources"]
    if auth.mode == "api_key":
        return  # today's template, unchanged (the local API reads no metadata as api_key)
    api = resources[ids.API]
    api.setdefault("Metadata", {})[AUTH_METADATA] = _metadata(auth)
    method_auth = _method_auth(template, auth)
    template["Globals"]["Function"]["Environment"]["Variables"][names.AUTH_MODE] = auth.mode  # /openapi.json says so
    for logical_id in [ids.SERVER_FUNCTION, *(entry.logical_id for entry in catalog.models)]:
        events = resources[logical_id]["Properties"]["Events"]
        for name, event in events.items():
            if event["Type"] == "Api" and name.removesuffix("Head") not in OPEN_EVENTS:
                event["Properties"]["Auth"] = dict(method_auth)
    responses = api["Properties"]["GatewayResponses"]
    for response_type, (status, hint) in AUTH_ERRORS["iam" if auth.mode == "iam" else "jwt"].items():
        responses[response_type] = {
            "StatusCode": str(status),
            "ResponseTemplates": {"application/json": json.dumps({"error": f"$context.error.message: {hint}"})},
        }
    if auth.mode == "jwt" and auth.user_pool_arn is None:
        responses["ACCESS_DENIED"]["ResponseTemplates"]["application/json"] = json.dumps(
            {"error": "$context.error.message: $context.authorizer.reason"})


def _metadata(auth: AuthSection) -> dict[str, Any]:
    metadata: dict[str, Any] = {"mode": auth.mode}
    if auth.mode == "jwt":
        metadata.update(issuer=auth.issuer, audience=auth.audience, tenant_claim=auth.tenant_claim, jwks_uri=auth.jwks,
                        authorizer="cognito" if auth.user_pool_arn else "lambda")
    return metadata


def _method_auth(template: dict[str, Any], auth: AuthSection) -> dict[str, Any]:
    """What each keyed route's ``Auth`` becomes; adds the authorizer (and its resources) the mode needs."""
    resources, outputs = template["Resources"], template["Outputs"]
    api_auth = resources[ids.API]["Properties"]["Auth"]
    if auth.mode == "iam":
        resources[INVOKE_POLICY] = _invoke_policy()
        outputs["ModelInvokePolicyArn"] = {
            "Description": "Attach to each tenant's IAM principal: it may then invoke the model routes (SigV4).",
            "Value": {"Ref": INVOKE_POLICY},
        }
        # NONE: API Gateway invokes the function with its resource permission, not with the caller's credentials
        return {"Authorizer": "AWS_IAM", "InvokeRole": "NONE", "ApiKeyRequired": True}
    claim = {identity.TENANT_CLAIM_ENV: auth.tenant_claim}
    if auth.user_pool_arn is not None:
        api_auth["Authorizers"] = {COGNITO_AUTHORIZER: {"UserPoolArn": auth.user_pool_arn, "Identity": {
            "Header": "Authorization", "ReauthorizeEvery": REAUTHORIZE_EVERY_S}}}
        template["Globals"]["Function"]["Environment"]["Variables"].update(claim)  # the runtime meters this claim
        return {"Authorizer": COGNITO_AUTHORIZER, "ApiKeyRequired": True}
    resources[ids.API]["Properties"]["ApiKeySourceType"] = "AUTHORIZER"
    api_auth["Authorizers"] = {LAMBDA_AUTHORIZER: {
        "FunctionArn": {"Fn::GetAtt": [AUTHORIZER_FUNCTION, "Arn"]},
        "FunctionPayloadType": "REQUEST",
        "Identity": {"Headers": ["Authorization"], "ReauthorizeEvery": REAUTHORIZE_EVERY_S},
    }}
    resources[AUTHORIZER_FUNCTION] = _authorizer_function(auth)
    resources[JWT_LAYER] = _jwt_layer()
    return {"Authorizer": LAMBDA_AUTHORIZER, "ApiKeyRequired": True}


def _invoke_policy() -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::ManagedPolicy",
        "Properties": {
            "Description": {"Fn::Sub": "Invoke the model routes of ${AWS::StackName} (attach to tenants' IAM principals)."},
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Action": "execute-api:Invoke",
                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${ModelApi}/${StageName}/*"},
            }]},
        },
    }


def _authorizer_function(auth: AuthSection) -> dict[str, Any]:
    from modelfn_runtime.authorizer import STACK_ENV

    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "Description": "Verifies JWT access tokens (issuer's JWKS) and returns the tenant's usage-plan key.",
            "Handler": AUTHORIZER_HANDLER,
            "MemorySize": 256,
            "Timeout": 5,
            "ReservedConcurrentExecutions": 20,  # answers are cached per token for ReauthorizeEvery seconds
            "Layers": [{"Ref": JWT_LAYER}],
            "Environment": {"Variables": {
                tokens.ISSUER_ENV: auth.issuer, tokens.AUDIENCE_ENV: auth.audience, tokens.JWKS_ENV: auth.jwks,
                tokens.CLAIM_ENV: auth.tenant_claim, STACK_ENV: {"Ref": "AWS::StackName"},
            }},
            "Policies": [{"Statement": [{
                "Effect": "Allow",
                "Action": "apigateway:GET",  # list the stack's API keys (tenants) with their values
                "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/apikeys"},
                             {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/apikeys/*"}],
            }]}],
        },
    }


def _jwt_layer() -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::LayerVersion",
        "Properties": {
            "LayerName": {"Fn::Sub": "${AWS::StackName}-pyjwt"},
            "Description": f"PyJWT and cryptography for the JWT authorizer ({LAMBDA_RUNTIME}, x86_64).",
            "ContentUri": JWT_LAYER_CODE,
            "CompatibleRuntimes": [LAMBDA_RUNTIME],
            "CompatibleArchitectures": ["x86_64"],
            "RetentionPolicy": "Retain",
        },
        "Metadata": {"BuildMethod": LAMBDA_RUNTIME, "BuildArchitecture": "x86_64"},
    }
