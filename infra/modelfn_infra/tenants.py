"""Tenants: one API key each, attached to one usage plan (tier), optionally bound to an authenticated principal.

A tenant is an API Gateway API key named after the customer, tagged with its stack, its plan and (for
``auth: {mode: iam}`` or ``jwt``) its principal, and attached to the stack's usage plan ``<stack>-<plan>`` (the
template's ``UsagePlan*`` resources). The key's id is what API Gateway puts in ``requestContext.identity.apiKeyId``;
with iam or jwt the metered tenant is the principal (``modelfn_runtime.identity.rest_tenant``), which the bill maps
back to the tenant by its record. Revoking removes the key from its plan and disables it, but keeps it, so past usage
still has a name on the bill. Rotating issues a new key (same name, plan and principal) and keeps the old one valid
for a grace period, after which ``sweep`` (run by every ``modelfn tenants`` command) revokes it.

``LocalTenants`` keeps the same records in a JSON file for the local API (``modelfn local start-api``): keys only as
salted sha256 digests (the key is shown once, at creation), plus per-tenant SigV4 credentials for the local iam mode.

Example:
    >>> tenants = ApiGatewayTenants(stack="modelfn")                 # doctest: +SKIP
    >>> tenant = tenants.create("acme", plan="pro")                  # doctest: +SKIP
    >>> tenant.key                                                   # doctest: +SKIP
    'Xk2...'  (shown once)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import string
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Protocol

from modelfn_runtime.identity import PRINCIPAL_TAG, STACK_TAG, revoke_after
from modelfn_runtime.identity import REVOKE_AFTER as REVOKE_MARK

from .catalog import PLAN_TAG  # the tag the template puts on its usage plans

TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
PRINCIPAL = re.compile(r"[\w+=,.@:/-]{1,256}")
DEFAULT_STACK = "modelfn"
DEFAULT_LOCAL_TENANTS = Path(".modelfn") / "local" / "tenants.json"
LOCAL_ACCOUNT = "000000000000"
"""The account id of the local API's IAM principals (``arn:aws:iam::000000000000:user/NAME``)."""


class TenantError(ValueError):
    """A tenant operation cannot be done; the message names the fix."""


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    plan: str
    enabled: bool
    created: str
    principal: str | None = None  # the IAM principal ARN (iam) or the tenant-claim value (jwt) this key belongs to
    expires: str | None = None  # a rotated-out key: valid until then (ISO 8601 UTC), revoked after
    key: str | None = None  # the key's value: only returned by create and rotate, printed once

    def public(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if name != "key"}

    def age_days(self, now: datetime | None = None) -> int:
        """Whole days since the key was created (``tenants list`` shows it: rotate old keys)."""
        created = datetime.strptime(self.created, TIME_FORMAT).replace(tzinfo=timezone.utc)
        return max(0, ((now or datetime.now(timezone.utc)) - created).days)


class TenantDirectory(Protocol):
    def plans(self) -> list[str]: ...

    def create(self, name: str, plan: str, principal: str | None = None) -> Tenant: ...

    def list(self) -> list[Tenant]: ...

    def revoke(self, name_or_id: str) -> Tenant: ...

    def rotate(self, name_or_id: str, grace_hours: float = 24) -> tuple[Tenant, Tenant]: ...

    def sweep(self) -> list[Tenant]: ...


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_GRACE_HOURS = 24 * 90


def check_name(name: str) -> None:
    if not TENANT_NAME.fullmatch(name):
        raise TenantError(
            f"tenant name {name[:80]!r} is not valid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


def check_principal(principal: str | None) -> None:
    if principal is not None and not PRINCIPAL.fullmatch(principal):
        raise TenantError(f"principal {principal[:80]!r} is not valid: give an IAM user or role ARN (iam) or the value of "
                          "the token's tenant claim (jwt): 1-256 letters, digits and +=,.@:/-_")


def check_grace(grace_hours: float) -> None:
    if not 0 <= grace_hours <= MAX_GRACE_HOURS:
        raise TenantError(f"--grace-hours must be between 0 (revoke the old key now) and {MAX_GRACE_HOURS} (90 days)")


def find(tenants: Iterable[Tenant], name_or_id: str) -> Tenant:
    """The enabled tenant with this name or id (else a disabled one with this id); the newest key first."""
    matches = sorted((t for t in tenants if name_or_id in (t.id, t.name)), key=lambda t: t.created, reverse=True)
    chosen = [t for t in matches if t.enabled and t.expires is None] or [t for t in matches if t.enabled] or matches
    if not chosen:
        raise TenantError(f"no tenant named {name_or_id[:80]!r} or with that id; `modelfn tenants list` shows them")
    return chosen[0]


class ApiGatewayTenants:
    """Tenants as API Gateway API keys and usage plan keys (the deployed API, or moto in tests)."""

    def __init__(self, stack: str = DEFAULT_STACK, client: Any = None, now=lambda: datetime.now(timezone.utc)) -> None:
        import boto3

        self.stack = stack
        self.client = client or boto3.client("apigateway")
        self.now = now

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

    def create(self, name: str, plan: str, principal: str | None = None) -> Tenant:
        check_name(name)
        check_principal(principal)
        plans = self.usage_plans()
        if plan not in plans:
            raise TenantError(
                f"plan {plan!r} does not exist in stack {self.stack!r}; choose one of {sorted(plans)} "
                "(plans are the usage_plans of infra/catalog.yaml, deployed with the template)"
            )
        existing = [t for t in self.list() if t.name == name and t.enabled]
        if existing:
            raise TenantError(f"tenant {name!r} already exists (id {existing[0].id}); revoke it first or choose another name")
        return self._issue(name, plan, principal, plans[plan])

    def _issue(self, name: str, plan: str, principal: str | None, plan_id: str) -> Tenant:
        tags = {STACK_TAG: self.stack, PLAN_TAG: plan, **({PRINCIPAL_TAG: principal} if principal else {})}
        key = self.client.create_api_key(name=name, description=f"modelfn tenant {name} ({plan} plan)", enabled=True,
                                         generateDistinctId=True, tags=tags)
        try:
            self.client.create_usage_plan_key(usagePlanId=plan_id, keyId=key["id"], keyType="API_KEY")
        except Exception:
            self.client.delete_api_key(apiKey=key["id"])  # no key outside a plan: it would pass no request anyway
            raise
        return Tenant(key["id"], name, plan, True, _date(key.get("createdDate")), principal, key=key["value"])

    def list(self) -> list[Tenant]:
        tenants = []
        for page in self.client.get_paginator("get_api_keys").paginate(includeValues=False):
            for key in page["items"]:
                tags = key.get("tags") or {}
                if tags.get(STACK_TAG) != self.stack:
                    continue
                tenants.append(Tenant(key["id"], key["name"], tags.get(PLAN_TAG, "?"), bool(key.get("enabled")),
                                      _date(key.get("createdDate")), tags.get(PRINCIPAL_TAG),
                                      revoke_after(key.get("description"))))
        return sorted(tenants, key=lambda t: (t.name, t.created, t.id))

    def revoke(self, name_or_id: str) -> Tenant:
        return self._revoke(find(self.list(), name_or_id))

    def _revoke(self, tenant: Tenant) -> Tenant:
        for plan_id in self.usage_plans().values():
            pages = self.client.get_paginator("get_usage_plan_keys").paginate(usagePlanId=plan_id)
            if any(key["id"] == tenant.id for page in pages for key in page["items"]):
                self.client.delete_usage_plan_key(usagePlanId=plan_id, keyId=tenant.id)
        self.client.update_api_key(apiKey=tenant.id, patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}])
        return replace(tenant, enabled=False)

    def rotate(self, name_or_id: str, grace_hours: float = 24) -> tuple[Tenant, Tenant]:
        """A new key for the tenant (same name, plan, principal) and the old one, revoked after ``grace_hours``."""
        check_grace(grace_hours)
        old = find(self.list(), name_or_id)
        if not old.enabled:
            raise TenantError(f"tenant {old.name!r} (id {old.id}) is revoked; create a new one instead")
        plans = self.usage_plans()
        if old.plan not in plans:
            raise TenantError(f"plan {old.plan!r} of tenant {old.name!r} is no longer in stack {self.stack!r}")
        new = self._issue(old.name, old.plan, old.principal, plans[old.plan])
        if grace_hours == 0:
            return new, self._revoke(old)
        ends = _date(self.now() + timedelta(hours=grace_hours))
        description = f"modelfn tenant {old.name} ({old.plan} plan); rotated out, {REVOKE_MARK}{ends}"
        self.client.update_api_key(apiKey=old.id, patchOperations=[{"op": "replace", "path": "/description", "value": description}])
        return new, replace(old, expires=ends)

    def sweep(self) -> list[Tenant]:
        """Revoke every rotated-out key whose grace period has ended; the revoked tenants."""
        now = _date(self.now())
        return [self._revoke(t) for t in self.list() if t.enabled and t.expires is not None and t.expires <= now]


@dataclass(frozen=True)
class SigV4Credentials:
    """A local tenant's IAM credentials (local iam mode): what its client signs with, and who it then is."""

    access_key_id: str
    secret_access_key: str
    principal: str


class LocalTenants:
    """Tenants of the local API in a JSON file (default .modelfn/local/tenants.json), mode 0600.

    API keys are kept only as ``sha256(salt + key)`` (one random salt per file), so the file never holds a key that
    passes; ``match_key`` compares a presented key's digest with every stored one in constant time. Each tenant also
    gets local SigV4 credentials (an access key id and its secret, which SigV4 verification needs in clear: they
    are local-only, like moto's); signing with them, it is ``arn:aws:iam::000000000000:user/NAME`` unless it was
    given a principal. A token's tenant claim names the tenant with that principal (else that name). A file
    written by an older modelfn (keys in clear) is rewritten hashed the first time it is read.

    Example:
        >>> tenants = LocalTenants(tmp_path / "tenants.json", plans=["free", "pro"])   # doctest: +SKIP
        >>> tenants.match_key(tenants.create("acme", "free").key).name                  # doctest: +SKIP
        'acme'
    """

    def __init__(self, path: str | Path = DEFAULT_LOCAL_TENANTS, plans: Iterable[str] = (),
                 now=lambda: datetime.now(timezone.utc)) -> None:
        self.path = Path(path)
        self._plans = sorted(plans)
        self.now = now
        self._cache: tuple[tuple[int, int, int], str, list[dict[str, Any]]] | None = None  # (file stamp, salt, records)

    def plans(self) -> list[str]:
        return list(self._plans)

    def create(self, name: str, plan: str, principal: str | None = None) -> Tenant:
        check_name(name)
        check_principal(principal)
        if plan not in self._plans:
            raise TenantError(f"plan {plan!r} is not in the template; choose one of {self._plans} (infra/catalog.yaml usage_plans)")
        salt, records = self._read()
        existing = [r for r in records if r["name"] == name and r["enabled"]]
        if existing:
            raise TenantError(f"tenant {name!r} already exists (id {existing[0]['id']}); revoke it first or choose another name")
        alphabet = string.ascii_uppercase + string.digits
        record = {
            "access_key_id": "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16)),  # the shape of an AWS key id
            "secret_access_key": secrets.token_urlsafe(30),
        }
        tenant, record = self._issue(salt, name, plan, principal, record)
        self._write(salt, [*records, record])
        return tenant

    def _issue(self, salt: str, name: str, plan: str, principal: str | None, credentials: dict[str, Any]) -> tuple[Tenant, dict]:
        """A new key for ``name``: the tenant (with its key, shown once) and the record stored (with its digest)."""
        alphabet = string.ascii_lowercase + string.digits
        key = secrets.token_urlsafe(30)  # 40 characters, like an API Gateway key
        tenant = Tenant("".join(secrets.choice(alphabet) for _ in range(10)),  # the shape of an API Gateway key id
                        name, plan, True, _date(self.now()), principal, key=key)
        record = {**tenant.public(), "key_sha256": _digest(salt, key), **{k: credentials[k] for k in _CREDENTIALS}}
        return tenant, record

    def list(self) -> list[Tenant]:
        self.sweep()
        return sorted((_tenant(r) for r in self._read()[1]), key=lambda t: (t.name, t.created, t.id))

    def revoke(self, name_or_id: str) -> Tenant:
        salt, records = self._read()
        tenant = find([_tenant(r) for r in records], name_or_id)
        self._write(salt, [{**r, "enabled": False} if r["id"] == tenant.id else r for r in records])
        return replace(tenant, enabled=False)

    def rotate(self, name_or_id: str, grace_hours: float = 24) -> tuple[Tenant, Tenant]:
        """A new key for the tenant (same name, plan, principal and SigV4 credentials) and the old one, which stays
        valid for ``grace_hours`` (0: revoked now)."""
        check_grace(grace_hours)
        salt, records = self._read()
        old = find([_tenant(r) for r in records], name_or_id)
        if not old.enabled:
            raise TenantError(f"tenant {old.name!r} (id {old.id}) is revoked; create a new one instead")
        old_record = next(r for r in records if r["id"] == old.id)
        new, record = self._issue(salt, old.name, old.plan, old.principal, old_record)
        ends = _date(self.now() + timedelta(hours=grace_hours))
        retired = {**old_record, "expires": ends, "enabled": grace_hours > 0}
        self._write(salt, [retired if r["id"] == old.id else r for r in records] + [record])
        return new, _tenant(retired)

    def sweep(self) -> list[Tenant]:
        """Revoke every rotated-out key whose grace period has ended; the revoked tenants."""
        salt, records = self._read()
        now = _date(self.now())
        ended = [r["id"] for r in records if r["enabled"] and r.get("expires") and r["expires"] <= now]
        if ended:
            self._write(salt, [{**r, "enabled": False} if r["id"] in ended else r for r in records])
        return [_tenant({**r, "enabled": False}) for r in records if r["id"] in ended]

    def match_key(self, key: str | None) -> Tenant | None:
        """The tenant whose valid key this is (enabled, within any grace period), compared in constant time."""
        if not key:
            return None
        salt, records = self._read()
        presented, now, found = _digest(salt, key), _date(self.now()), None
        for record in records:  # every digest is compared: the time taken does not depend on which one matches
            if hmac.compare_digest(presented, record.get("key_sha256", "")) and _valid(record, now):
                found = _tenant(record)
        return found

    def by_subject(self, subject: str) -> Tenant | None:
        """The newest enabled tenant whose principal is ``subject`` (a token's tenant claim), or named so when it has
        no principal (local jwt mode)."""
        now, found = _date(self.now()), None
        for record in sorted(self._read()[1], key=lambda r: r["created"]):
            principal = record.get("principal") or record["name"]
            if hmac.compare_digest(principal.encode(), subject.encode()) and _valid(record, now):
                found = _tenant(record)
        return found

    def credentials(self, access_key_id: str) -> tuple[Tenant, SigV4Credentials] | None:
        """The tenant signing with ``access_key_id`` (local iam mode) and its credentials: its newest valid key's
        record, else its newest record with ``enabled`` False (a revoked tenant still signs correctly: refused 403)."""
        now, found, valid = _date(self.now()), None, False
        for record in sorted(self._read()[1], key=lambda r: r["created"]):
            if hmac.compare_digest(record.get("access_key_id", ""), access_key_id) and (_valid(record, now) or not valid):
                valid = _valid(record, now)
                principal = record.get("principal") or f"arn:aws:iam::{LOCAL_ACCOUNT}:user/{record['name']}"
                found = (replace(_tenant(record), enabled=valid),
                         SigV4Credentials(record["access_key_id"], record["secret_access_key"], principal))
        return found

    def sigv4_credentials(self, name_or_id: str) -> SigV4Credentials:
        """The local SigV4 credentials of a tenant (to show them to it, or to sign test requests)."""
        tenant = find(self.list(), name_or_id)
        record = next(r for r in self._read()[1] if r["id"] == tenant.id)
        return self.credentials(record["access_key_id"])[1]

    def _read(self) -> tuple[str, list[dict[str, Any]]]:
        """The file's salt and its records (created empty; an older file's clear keys hashed and written back)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return secrets.token_hex(16), []
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # re-read when the file changes (another process wrote it)
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1], [dict(r) for r in self._cache[2]]
        try:
            data = json.loads(self.path.read_text())
            salt = data.get("salt") or secrets.token_hex(16)
            records = [_record(raw, salt) for raw in data["tenants"]]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise TenantError(f"{self.path} is not a tenants file ({error}); delete it to start over") from None
        if "salt" not in data or any("key" in raw for raw in data["tenants"]):
            self._write(salt, records)  # no key stays in clear
        else:
            self._cache = (stamp, salt, [dict(r) for r in records])
        return salt, records

    def _write(self, salt: str, records: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps({"salt": salt, "tenants": records}, indent=2))
        os.chmod(partial, 0o600)
        partial.replace(self.path)


_FIELDS = [f.name for f in fields(Tenant) if f.name != "key"]
_CREDENTIALS = ("access_key_id", "secret_access_key")


def _digest(salt: str, key: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + key.encode("utf-8")).hexdigest()


def _record(raw: dict[str, Any], salt: str) -> dict[str, Any]:
    """A stored record, checked; an older record's clear ``key`` becomes its digest (and credentials are added)."""
    record = {name: raw.get(name) for name in _FIELDS}
    if not all(isinstance(record[name], str) for name in ("id", "name", "plan", "created")):
        raise TypeError("a tenant needs id, name, plan and created")
    record["enabled"] = bool(raw.get("enabled"))
    record["key_sha256"] = raw.get("key_sha256") or (_digest(salt, raw["key"]) if raw.get("key") else "")
    record["access_key_id"] = raw.get("access_key_id") or "AKIA" + secrets.token_hex(8).upper()
    record["secret_access_key"] = raw.get("secret_access_key") or secrets.token_urlsafe(30)
    return record


def _tenant(record: dict[str, Any]) -> Tenant:
    return Tenant(**{name: record.get(name) for name in _FIELDS})


def _valid(record: dict[str, Any], now: str) -> bool:
    return bool(record.get("enabled")) and not (record.get("expires") and record["expires"] <= now)


def _date(value: Any) -> str:
    moment = value if isinstance(value, datetime) else datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)
