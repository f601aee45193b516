"""Who a REST API request's tenant is: the one rule the function (metering), the local API and the bill share.

The tenant comes from what API Gateway authenticated, never from anything the caller chooses freely:

* ``jwt`` with modelfn's Lambda authorizer: the authorizer's ``tenant`` context value (the tenant's API key id,
  found from the token's tenant claim; API Gateway also took the usage-plan key from the authorizer);
* ``jwt`` with a Cognito user-pool authorizer: the verified token's tenant claim (``MODELFN_TENANT_CLAIM``,
  default ``sub``), which the tenant record names as its principal;
* ``iam``: the SigV4-authenticated principal (``identity.userArn``; an assumed role's session name dropped),
  which the tenant record names as its principal;
* ``api_key``: the API key id API Gateway checked.

Tenants are API Gateway API keys tagged with these names (``modelfn tenants``); the authorizer reads them too.

Example:
    >>> rest_tenant({"userArn": "arn:aws:sts::123456789012:assumed-role/Acme/s1", "apiKeyId": "k1"}, {})
    'arn:aws:sts::123456789012:assumed-role/Acme'
    >>> rest_tenant({"apiKeyId": "k1"}, {})
    'k1'
"""

from __future__ import annotations

import os
import re
from typing import Any

STACK_TAG = "modelfn:stack"
PRINCIPAL_TAG = "modelfn:principal"
"""The IAM principal ARN (iam) or the token's tenant-claim value (jwt) a tenant's key belongs to."""
REVOKE_AFTER = "revoke-after="
"""In a rotated-out key's description: when its grace period ends (ISO 8601 UTC); it is revoked then. (The
description, not a tag: an API key's tags cannot be changed without its ARN-based tagging API, which moto lacks.)"""
TENANT_CLAIM_ENV = "MODELFN_TENANT_CLAIM"

_ASSUMED_ROLE = re.compile(r"(arn:aws[a-z-]*:sts::\d{12}:assumed-role/[^/]+)/.+")
_ROLE = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):role/(?:.*/)?([^/]+)")


def revoke_after(description: str | None) -> str | None:
    """The end of a rotated-out key's grace period from its description (``...; revoke-after=2026-12-01T10:00:00Z``).

    Example:
        >>> revoke_after("modelfn tenant acme (pro plan); revoke-after=2026-12-01T10:00:00Z")
        '2026-12-01T10:00:00Z'
    """
    marker = (description or "").rpartition(REVOKE_AFTER)[2] if REVOKE_AFTER in (description or "") else ""
    return marker.split()[0].rstrip(";,)") if marker.strip() else None


def principal_of(arn: str) -> str:
    """The stable form of an IAM caller: a role's sessions are one principal (``...:assumed-role/Role``).

    Example:
        >>> principal_of("arn:aws:iam::123456789012:role/team/Acme")
        'arn:aws:sts::123456789012:assumed-role/Acme'
    """
    session = _ASSUMED_ROLE.fullmatch(arn)
    if session:
        return session.group(1)
    role = _ROLE.fullmatch(arn)
    if role:
        return f"arn:{role.group(1)}:sts::{role.group(2)}:assumed-role/{role.group(3)}"
    return arn


def rest_tenant(identity: dict[str, Any], authorizer: dict[str, Any], claim: str | None = None) -> str | None:
    """The tenant of a REST event from its ``requestContext.identity`` and ``requestContext.authorizer``."""
    tenant = authorizer.get("tenant")
    if isinstance(tenant, str) and tenant:
        return tenant
    claims = authorizer.get("claims")
    if isinstance(claims, dict):
        value = claims.get(claim or os.environ.get(TENANT_CLAIM_ENV) or "sub")
        if isinstance(value, str) and value:
            return value
    user = identity.get("userArn")
    if isinstance(user, str) and user:
        return principal_of(user)
    key = identity.get("apiKeyId")
    return key if isinstance(key, str) and key else None
