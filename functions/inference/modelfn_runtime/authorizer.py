"""The API's Lambda REQUEST authorizer for ``auth: {mode: jwt}`` without a Cognito user pool.

It verifies the bearer token against the issuer's JWKS (``tokens.TokenVerifier``: PyJWT, cached keys, bounded
fetches), finds the tenant whose key belongs to the token's tenant claim (API Gateway API keys of this stack
tagged ``modelfn:principal``, or named like the claim when untagged; newest enabled key first, none past its
rotation grace), and answers API Gateway with:

* ``usageIdentifierKey``: that tenant's API key (the API's ``ApiKeySourceType`` is ``AUTHORIZER``), so usage-plan
  throttling and quotas stay per tenant;
* ``context``: ``tenant`` (the key id, what the function meters, see ``identity.rest_tenant``), ``subject`` and
  ``tenantName``;
* an Allow policy for the API's methods (API Gateway may cache it per token for ``ReauthorizeEvery``).

An invalid token raises ``Unauthorized`` (API Gateway answers 401, gateway response ``UNAUTHORIZED``); a valid token
whose subject is no enabled tenant gets a Deny with a ``reason`` (403, ``ACCESS_DENIED`` shows the reason).
It imports no numpy or onnxruntime: its function carries only this code and the PyJWT layer.

Example:
    >>> handler({"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:1:a/Prod/POST/v2/x",
    ...          "headers": {"Authorization": "Bearer eyJ..."}}, None)           # doctest: +SKIP
    {'principalId': 'acme', 'usageIdentifierKey': '...', 'context': {'tenant': 'k7x2...', ...}, ...}
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone
from functools import cache
from typing import Any

from .aws import bounded_client
from .identity import PRINCIPAL_TAG, STACK_TAG, revoke_after
from .tokens import TokenRefused, TokenVerifier

STACK_ENV = "MODELFN_STACK"
KEYS_TTL_S = 60.0
"""How long the stack's API keys are reused before they are listed again (a new tenant passes within a minute)."""


@cache
def verifier() -> TokenVerifier:
    """One verifier per sandbox: its JWKS cache outlives invocations."""
    return TokenVerifier.from_environment()


class TenantKeys:
    """The stack's enabled API keys by principal, listed from API Gateway at most once per ``ttl`` seconds."""

    def __init__(self, stack: str, client: Any = None, ttl: float = KEYS_TTL_S, clock=time.monotonic) -> None:
        self.stack, self.ttl, self.clock = stack, ttl, clock
        self._client = client
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] = {}
        self._listed = -float("inf")

    def find(self, subject: str) -> dict[str, Any] | None:
        """The newest enabled, unexpired key of the tenant whose principal is ``subject`` (``id``, ``value``, ``name``)."""
        with self._lock:
            if self.clock() - self._listed > self.ttl:
                self._keys = self._list()
                self._listed = self.clock()
            return self._keys.get(subject)

    def _list(self) -> dict[str, dict[str, Any]]:
        client = self._client or bounded_client("apigateway", connect_timeout=2, read_timeout=3, max_attempts=2)
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        found: dict[str, dict[str, Any]] = {}
        for page in client.get_paginator("get_api_keys").paginate(includeValues=True):
            for key in sorted(page["items"], key=lambda k: str(k.get("createdDate", ""))):
                tags = key.get("tags") or {}
                if tags.get(STACK_TAG) != self.stack or not key.get("enabled"):
                    continue
                ends = revoke_after(key.get("description"))
                if ends is not None and ends <= now:  # rotated out and past its grace: as good as revoked
                    continue
                principal = tags.get(PRINCIPAL_TAG) or key.get("name", "")
                newest = found.get(principal)
                if newest is None or str(key.get("createdDate", "")) >= newest["created"]:
                    found[principal] = {"id": key["id"], "value": key.get("value", ""), "name": key.get("name", ""),
                                        "created": str(key.get("createdDate", ""))}
        return found


@cache
def tenant_keys() -> TenantKeys:
    return TenantKeys(os.environ[STACK_ENV])


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Allow (with the tenant's usage-plan key), Deny with a reason (403), or raise ``Unauthorized`` (401)."""
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        token = verifier().verify(headers.get("authorization"))
    except TokenRefused as refused:
        if refused.status >= 500:
            raise RuntimeError(str(refused)) from None  # API Gateway answers 500 (AUTHORIZER_FAILURE): retry
        print(f"modelfn authorizer: refused: {refused}")  # the reason reaches CloudWatch; the caller gets 401
        raise Exception("Unauthorized") from None  # API Gateway's own word for a 401 from an authorizer
    key = tenant_keys().find(token.subject)
    resource = _api_methods(event.get("methodArn", ""))
    if key is None:
        reason = (f"no enabled tenant for {token.subject!r}; an operator creates one with "
                  f"`modelfn tenants create NAME --plan PLAN --principal {token.subject}`")
        return {"principalId": token.subject, "policyDocument": _policy("Deny", resource), "context": {"reason": reason}}
    return {
        "principalId": token.subject,
        "policyDocument": _policy("Allow", resource),
        "usageIdentifierKey": key["value"],
        "context": {"tenant": key["id"], "subject": token.subject, "tenantName": key["name"]},
    }


def _api_methods(method_arn: str) -> str:
    """``arn:...:apiId/stage/*``: every method of the stage, so a cached answer also fits the token's next route."""
    parts = method_arn.split("/")
    return "/".join(parts[:2]) + "/*" if len(parts) >= 2 else method_arn


def _policy(effect: str, resource: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]}
