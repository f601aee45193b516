"""Tenants: one API key each, attached to one usage plan (tier).

A tenant is an API Gateway API key named after the customer, tagged with its stack and plan, and
attached to the stack's usage plan ``<stack>-<plan>`` (the template's ``UsagePlan*`` resources). The
key's id is what API Gateway puts in ``requestContext.identity.apiKeyId``, so it is the tenant id
the meter records and the bill shows by name. Revoking removes the key from its plan and disables
it, but keeps it, so past usage still has a name on the bill.

``LocalTenants`` keeps the same records in a JSON file for the local API (``modelfn local start-api``).

Example:
    >>> tenants = ApiGatewayTenants(stack="modelfn")                 # doctest: +SKIP
    >>> tenant = tenants.create("acme", plan="pro")                  # doctest: +SKIP
    >>> tenant.key                                                   # doctest: +SKIP
    'Xk2...'  (shown once)
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Protocol

from .catalog import PLAN_TAG  # the tag the template puts on its usage plans

TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
STACK_TAG = "modelfn:stack"
DEFAULT_STACK = "modelfn"
DEFAULT_LOCAL_TENANTS = Path(".modelfn") / "local" / "tenants.json"


class TenantError(ValueError):
    """A tenant operation cannot be done; the message names the fix."""


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    plan: str
    enabled: bool
    created: str
    key: str | None = None  # the key's value: only returned by create, printed once

    def public(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if name != "key"}


class TenantDirectory(Protocol):
    def plans(self) -> list[str]: ...

    def create(self, name: str, plan: str) -> Tenant: ...

    def list(self) -> list[Tenant]: ...

    def revoke(self, name_or_id: str) -> Tenant: ...


def check_name(name: str) -> None:
    if not TENANT_NAME.fullmatch(name):
        raise TenantError(
            f"tenant name {name[:80]!r} is not valid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


def find(tenants: Iterable[Tenant], name_or_id: str) -> Tenant:
    """The enabled tenant with this name or id (else a disabled one with this id)."""
    matches = [t for t in tenants if name_or_id in (t.id, t.name)]
    chosen = [t for t in matches if t.enabled] or matches
    if not chosen:
        raise TenantError(f"no tenant named {name_or_id[:80]!r} or with that id; `modelfn tenants list` shows them")
    return chosen[0]


class ApiGatewayTenants:
    """Tenants as API Gateway API keys and usage plan keys (the deployed API, or moto in tests)."""

    def __init__(self, stack: str = DEFAULT_STACK, client: Any = None) -> None:
        import boto3

        self.stack = stack
        self.client = client or boto3.client("apigateway")

    def usage_plans(self) -> dict[str, str]:
        """Plan name -> usage plan id, for the plans ``<stack>-<plan>`` the template created."""
        plans = {}
        for page in self.client.get_paginator("get_usage_plans").paginate():
            for plan in page["items"]:
                name = plan.get("name", "")
                if name.startswith(f"{self.stack}-"):
                    plans[(plan.get("tags") or {}).get(PLAN_TAG) or name[len(self.stack) + 1 :]] = plan["id"]
        return plans

    def plans(self) -> list[str]:
        return sorted(self.usage_plans())

    def create(self, name: str, plan: str) -> Tenant:
        check_name(name)
        plans = self.usage_plans()
        if plan not in plans:
            raise TenantError(
                f"plan {plan!r} does not exist in stack {self.stack!r}; choose one of {sorted(plans)} "
                "(plans are the usage_plans of infra/catalog.yaml, deployed with the template)"
            )
        existing = [t for t in self.list() if t.name == name and t.enabled]
        if existing:
            raise TenantError(f"tenant {name!r} already exists (id {existing[0].id}); revoke it first or choose another name")
        key = self.client.create_api_key(
            name=name,
            description=f"modelfn tenant {name} ({plan} plan)",
            enabled=True,
            generateDistinctId=True,
            tags={STACK_TAG: self.stack, PLAN_TAG: plan},
        )
        try:
            self.client.create_usage_plan_key(usagePlanId=plans[plan], keyId=key["id"], keyType="API_KEY")
        except Exception:
            self.client.delete_api_key(apiKey=key["id"])  # no key outside a plan: it would pass no request anyway
            raise
        return Tenant(key["id"], name, plan, True, _date(key.get("createdDate")), key["value"])

    def list(self) -> list[Tenant]:
        tenants = []
        for page in self.client.get_paginator("get_api_keys").paginate(includeValues=False):
            for key in page["items"]:
                tags = key.get("tags") or {}
                if tags.get(STACK_TAG) != self.stack:
                    continue
                tenants.append(
                    Tenant(key["id"], key["name"], tags.get(PLAN_TAG, "?"), bool(key.get("enabled")), _date(key.get("createdDate")))
                )
        return sorted(tenants, key=lambda t: (t.name, t.created, t.id))

    def revoke(self, name_or_id: str) -> Tenant:
        tenant = find(self.list(), name_or_id)
        for plan_id in self.usage_plans().values():
            pages = self.client.get_paginator("get_usage_plan_keys").paginate(usagePlanId=plan_id)
            if any(key["id"] == tenant.id for page in pages for key in page["items"]):
                self.client.delete_usage_plan_key(usagePlanId=plan_id, keyId=tenant.id)
        self.client.update_api_key(apiKey=tenant.id, patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}])
        return replace(tenant, enabled=False)


class LocalTenants:
    """Tenants of the local API in a JSON file (default .modelfn/local/tenants.json); keys are kept there in clear.

    Example:
        >>> tenants = LocalTenants(tmp_path / "tenants.json", plans=["free", "pro"])   # doctest: +SKIP
        >>> tenants.create("acme", "free").key                                          # doctest: +SKIP
    """

    def __init__(self, path: str | Path = DEFAULT_LOCAL_TENANTS, plans: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self._plans = sorted(plans)

    def plans(self) -> list[str]:
        return list(self._plans)

    def create(self, name: str, plan: str) -> Tenant:
        check_name(name)
        if plan not in self._plans:
            raise TenantError(f"plan {plan!r} is not in the template; choose one of {self._plans} (infra/catalog.yaml usage_plans)")
        tenants = self._read()
        existing = [t for t in tenants if t.name == name and t.enabled]
        if existing:
            raise TenantError(f"tenant {name!r} already exists (id {existing[0].id}); revoke it first or choose another name")
        alphabet = string.ascii_lowercase + string.digits
        tenant = Tenant(
            id="".join(secrets.choice(alphabet) for _ in range(10)),  # the shape of an API Gateway key id
            name=name,
            plan=plan,
            enabled=True,
            created=_date(None),
            key=secrets.token_urlsafe(30),  # 40 characters, like an API Gateway key
        )
        self._write([*tenants, tenant])
        return tenant

    def list(self) -> list[Tenant]:
        return sorted((replace(t, key=None) for t in self._read()), key=lambda t: (t.name, t.created, t.id))

    def revoke(self, name_or_id: str) -> Tenant:
        tenants = self._read()
        tenant = find(tenants, name_or_id)
        self._write([replace(t, enabled=False) if t.id == tenant.id else t for t in tenants])
        return replace(tenant, enabled=False, key=None)

    def by_key(self) -> dict[str, Tenant]:
        """Enabled tenants by key value: what the local API checks ``x-api-key`` against."""
        return {t.key: t for t in self._read() if t.enabled and t.key}

    def _read(self) -> list[Tenant]:
        if not self.path.is_file():
            return []
        try:
            return [Tenant(**raw) for raw in json.loads(self.path.read_text())["tenants"]]
        except (ValueError, KeyError, TypeError) as error:
            raise TenantError(f"{self.path} is not a tenants file ({error}); delete it to start over") from None

    def _write(self, tenants: list[Tenant]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps({"tenants": [asdict(t) for t in tenants]}, indent=2))
        os.chmod(partial, 0o600)
        partial.replace(self.path)


def _date(value: Any) -> str:
    moment = value if isinstance(value, datetime) else datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
