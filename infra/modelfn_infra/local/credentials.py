"""What the deployed API's authorizers do, for the local API: SigV4 (``auth: {mode: iam}``) and JWT (``mode: jwt``).

Read from the template (the API's ``Metadata["modelfn:auth"]`` and each route's ``Auth.Authorizer``) and enforced
before a route's function runs, with real parts:

* **iam**: the ``Authorization: AWS4-HMAC-SHA256 ...`` header is parsed, the tenant found by its access key id in the
  local tenants file, and the signature recomputed for the received request (method, raw path and query, the
  signed headers, the body's sha256) by botocore's own ``SigV4Auth`` and compared with ``hmac.compare_digest``;
  ``X-Amz-Date`` must be within 5 minutes of now (a replay outside the skew is refused). The event then carries
  ``identity.userArn`` (the tenant's principal), ``caller`` and ``accessKey``, as API Gateway's does.
* **jwt**: ``modelfn_runtime.tokens.TokenVerifier`` (the deployed authorizer's own code) checks the bearer token
  against the local issuer's JWKS (``issuer.LocalIssuer``, served on 127.0.0.1), with the template's issuer, audience and tenant claim;
  the claim's tenant comes from the tenants file. With the Lambda authorizer the event carries its context
  (``tenant``, ``subject``, ``tenantName``) and the tenant's usage-plan key is the authorizer's; with Cognito the
  claims, and the key comes from ``x-api-key``.

Missing or malformed credentials get 401, valid ones that are not allowed (no enabled tenant) 403; each message
is the deployed gateway response's (``catalog.AUTH_ERRORS``) with the precise reason first.

Example:
    >>> gate = CredentialGate.from_template(resources, tenants, jwks_uri)        # doctest: +SKIP
    >>> gate.authenticate("DigitsFunction", "/v2/models/digits/{proxy+}", incoming)  # doctest: +SKIP
    Identity(tenant=Tenant(...), context={'identity': {'userArn': 'arn:aws:iam::000000000000:user/acme', ...}})
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from modelfn_runtime.tokens import FIX, TokenRefused, TokenVerifier

from ..catalog import AUTH_ERRORS, AUTH_METADATA, SIGV4_SERVICE
from ..tenants import LOCAL_ACCOUNT, LocalTenants, Tenant
from .apikeys import Refused

CLOCK_SKEW = timedelta(minutes=5)
SIGV4 = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]{16,128})/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
                   r"(?P<service>[a-z0-9-]+)/aws4_request, ?SignedHeaders=(?P<headers>[a-z0-9;-]+), ?"
                   r"Signature=(?P<signature>[0-9a-f]{64})")
AMZ_DATE = "%Y%m%dT%H%M%SZ"
AUTHORIZERS = {"AWS_IAM": "iam", "JwtAuthorizer": "jwt", "CognitoAuthorizer": "jwt"}


@dataclass(frozen=True)
class Incoming:
    """What the check needs of a request: as received, before any decoding."""

    method: str
    url: str  # scheme://host + the raw path and query string
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Identity:
    """An authenticated caller: the tenant it is, whether it supplies the usage-plan key, and the event's context."""

    tenant: Tenant
    supplies_key: bool = False  # True: the Lambda authorizer's usageIdentifierKey (ApiKeySourceType AUTHORIZER)
    context: dict[str, dict[str, Any]] = field(default_factory=dict)  # requestContext additions: identity, authorizer


@dataclass(frozen=True)
class AuthSettings:
    mode: str = "api_key"
    issuer: str = ""
    audience: str = ""
    tenant_claim: str = "sub"
    authorizer: str = ""  # jwt: "lambda" or "cognito"

    @classmethod
    def from_template(cls, resources: Mapping[str, Any]) -> "AuthSettings":
        for resource in resources.values():
            metadata = (resource.get("Metadata") or {}).get(AUTH_METADATA) if resource.get("Type") == "AWS::Serverless::Api" else None
            if metadata:
                return cls(**{k: metadata[k] for k in ("mode", "issuer", "audience", "tenant_claim", "authorizer") if k in metadata})
        return cls()


def authenticated_routes(resources: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(function logical id, path) of every REST API event whose ``Auth.Authorizer`` is IAM or a JWT authorizer."""
    routes = set()
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            properties = event.get("Properties") or {}
            if event.get("Type") == "Api" and (properties.get("Auth") or {}).get("Authorizer") in AUTHORIZERS:
                routes.add((logical_id, properties.get("Path", "")))
    return routes


class CredentialGate:
    """Authenticates requests to the template's IAM- or JWT-protected routes, as the deployed API does."""

    def __init__(self, settings: AuthSettings, routes: set[tuple[str, str]], tenants: LocalTenants,
                 jwks_uri: str | None = None, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.settings, self.routes, self.tenants, self.now = settings, routes, tenants, now
        self.verifier = None
        if settings.mode == "jwt":
            if jwks_uri is None:
                raise ValueError("mode jwt needs the local issuer's JWKS URL (serve LocalIssuer.jwks_app)")
            self.verifier = TokenVerifier(settings.issuer, settings.audience, jwks_uri, settings.tenant_claim)

    @classmethod
    def from_template(cls, resources: Mapping[str, Any], tenants: LocalTenants, jwks_uri: str | None = None,
                      **kwargs: Any) -> "CredentialGate":
        return cls(AuthSettings.from_template(resources), authenticated_routes(resources), tenants, jwks_uri, **kwargs)

    def authenticate(self, function: str, path: str, request: Incoming) -> Identity | Refused | None:
        """None: the route needs no credential; else the caller's identity or API Gateway's refusal."""
        if (function, path) not in self.routes:
            return None
        if self.settings.mode == "iam":
            return self._sigv4(request)
        return self._jwt(request)

    def _sigv4(self, request: Incoming) -> Identity | Refused:
        headers = {k.lower(): v for k, v in request.headers.items()}
        authorization = headers.get("authorization")
        if not authorization:
            return refusal("iam", "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
        parsed = SIGV4.fullmatch(authorization.strip())
        if parsed is None or parsed["service"] != SIGV4_SERVICE or "host" not in parsed["headers"].split(";"):
            return refusal("iam", "INVALID_SIGNATURE", "Authorization header is not a SigV4 signature for "
                           f"{SIGV4_SERVICE} that signs the host header")
        stamp = headers.get("x-amz-date", "")
        try:
            signed_at = datetime.strptime(stamp, AMZ_DATE).replace(tzinfo=timezone.utc)
        except ValueError:
            return refusal("iam", "INVALID_SIGNATURE", "X-Amz-Date is missing or not YYYYMMDDTHHMMSSZ")
        if abs(self.now() - signed_at) > CLOCK_SKEW or not stamp.startswith(parsed["date"]):
            return refusal("iam", "INVALID_SIGNATURE", f"Signature expired: {stamp} is more than 5 minutes from now")
        found = self.tenants.credentials(parsed["key"])
        if found is None:
            return refusal("iam", "INVALID_SIGNATURE", "The security token included in the request is invalid "
                           "(no local tenant has this access key id)")
        tenant, credentials = found
        declared = headers.get("x-amz-content-sha256")
        if declared is not None and not hmac.compare_digest(declared, hashlib.sha256(request.body).hexdigest()):
            return refusal("iam", "INVALID_SIGNATURE", "X-Amz-Content-SHA256 is not the body's sha256")
        expected = _signature(request, parsed, stamp, credentials.access_key_id, credentials.secret_access_key)
        if not hmac.compare_digest(expected, parsed["signature"]):
            return refusal("iam", "INVALID_SIGNATURE", "The request signature we calculated does not match the signature "
                           "you provided")
        if not tenant.enabled:  # signed correctly, but the tenant is revoked: as a principal without the invoke policy
            return refusal("iam", "ACCESS_DENIED", f"User: {credentials.principal} is not authorized to perform: "
                           "execute-api:Invoke (its tenant is revoked)")
        return Identity(tenant, context={"identity": {
            "userArn": credentials.principal, "caller": credentials.access_key_id, "accessKey": credentials.access_key_id,
            "user": credentials.principal.rpartition("/")[2], "accountId": LOCAL_ACCOUNT}})

    def _jwt(self, request: Incoming) -> Identity | Refused:
        assert self.verifier is not None
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            token = self.verifier.verify(headers.get("authorization"))
        except TokenRefused as refused:
            if refused.status >= 500:  # the deployed authorizer raises: API Gateway answers 500 AUTHORIZER_FAILURE
                return Refused(500, "AUTHORIZER_FAILURE", f"Authorizer error: {refused}")
            return refusal("jwt", "UNAUTHORIZED", f"Unauthorized: {str(refused).removesuffix(f'; {FIX}')}")
        tenant = self.tenants.by_subject(token.subject)
        if tenant is None:
            reason = (f"no enabled tenant for {token.subject!r}; an operator creates one with "
                      f"`modelfn tenants create NAME --plan PLAN --principal {token.subject}`")
            status, _ = AUTH_ERRORS["jwt"]["ACCESS_DENIED"]
            return Refused(status, "ACCESS_DENIED", f"User is not authorized to access this resource: {reason}")
        if self.settings.authorizer == "cognito":
            return Identity(tenant, context={"authorizer": {"claims": {k: str(v) for k, v in token.claims.items()}}})
        return Identity(tenant, supplies_key=True, context={"authorizer": {
            "principalId": token.subject, "tenant": tenant.id, "subject": token.subject, "tenantName": tenant.name}})


def refusal(mode: str, response_type: str, reason: str) -> Refused:
    """The deployed gateway response for ``response_type`` with the precise reason first (what API Gateway's
    ``$context.error.message`` would say)."""
    status, hint = AUTH_ERRORS[mode][response_type]
    return Refused(status, response_type, f"{reason}: {hint}")


def _signature(request: Incoming, parsed: re.Match, stamp: str, access_key: str, secret: str) -> str:
    """The SigV4 signature botocore computes for this request as received, with the signer's headers only."""
    signed = parsed["headers"].split(";")
    lowered = {k.lower(): v for k, v in request.headers.items()}
    aws_request = AWSRequest(method=request.method, url=request.url, data=request.body,
                             headers={name: lowered.get(name, "") for name in signed})
    aws_request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(access_key, secret), parsed["service"], parsed["region"])
    canonical = signer.canonical_request(aws_request)
    return signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
