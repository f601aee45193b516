"""API Gateway's API-key check, usage-plan throttling and quotas, emulated for the local API.

What a deployed REST API does before a request reaches a function, read from the same template:

* routes whose event (or API) says ``Auth: {ApiKeyRequired: true}`` need an ``x-api-key`` header
  holding an enabled key attached to a usage plan of the API: otherwise 403 (``INVALID_API_KEY``);
* each key has a token bucket of its plan's ``Throttle`` (``BurstLimit`` tokens, refilled at
  ``RateLimit`` per second): an empty bucket answers 429 (``THROTTLED``);
* each key may send ``Quota.Limit`` requests per ``Quota.Period`` (UTC day, ISO week or calendar
  month): one more answers 429 (``QUOTA_EXCEEDED``);
* an admitted request's event carries ``requestContext.identity.apiKey`` and ``apiKeyId``.

Keys come from ``tenants.LocalTenants`` (``modelfn tenants create NAME --plan PLAN --local``: stored as salted
digests), re-read when the file changes. Quota counts live in memory: restarting the local API resets them.

Example:
    >>> gate = ApiKeyGate.from_template(resources, LocalTenants(".modelfn/local/tenants.json"))  # doctest: +SKIP
    >>> gate.check("DigitsFunction", "/v2/models/digits/{proxy+}", headers.get("x-api-key"))     # doctest: +SKIP
    Admitted(tenant=Tenant(id='k3x...', name='acme', plan='free', ...))
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..catalog import GATEWAY_ERRORS, PLAN_TAG, UsagePlanEntry
from ..tenants import LocalTenants, Tenant


@dataclass(frozen=True)
class Admitted:
    tenant: Tenant | None  # None: the route needs no key


@dataclass(frozen=True)
class Refused:
    status: int
    error_type: str  # the API Gateway gateway response type
    message: str


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; each request takes one.

    Example:
        >>> bucket = TokenBucket(rate=1, burst=2, clock=lambda: 0.0)
        >>> bucket.take(), bucket.take(), bucket.take()
        (True, True, False)
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def quota_period_of(moment: datetime, period: str) -> str:
    """The quota window a moment falls in: ``2026-11-28`` (DAY), ``2026-W48`` (WEEK), ``2026-11`` (MONTH); UTC."""
    moment = moment.astimezone(timezone.utc)
    if period == "DAY":
        return moment.strftime("%Y-%m-%d")
    if period == "WEEK":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return moment.strftime("%Y-%m")


def plans_from_template(resources: Mapping[str, Any]) -> dict[str, UsagePlanEntry]:
    """The usage plans of a template (tagged ``modelfn:plan``), by plan name."""
    plans = {}
    for resource in resources.values():
        if resource.get("Type") != "AWS::ApiGateway::UsagePlan":
            continue
        properties = resource.get("Properties") or {}
        tags = {tag.get("Key"): tag.get("Value") for tag in properties.get("Tags") or []}
        name = tags.get(PLAN_TAG)
        if not name:
            continue
        throttle, quota = properties.get("Throttle") or {}, properties.get("Quota") or {}
        plans[name] = UsagePlanEntry(
            name=name,
            rate_limit=float(throttle.get("RateLimit", 10000)),  # API Gateway's account-level defaults
            burst_limit=int(throttle.get("BurstLimit", 5000)),
            quota=int(quota["Limit"]) if "Limit" in quota else None,
            quota_period=str(quota.get("Period", "MONTH")),
        )
    return plans


def key_required_routes(resources: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(function logical id, path) of every REST API event that needs an API key, as the template says."""
    api_default = {
        logical_id: bool(((resource.get("Properties") or {}).get("Auth") or {}).get("ApiKeyRequired"))
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::Serverless::Api"
    }
    required = set()
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") != "Api":
                continue
            properties = event.get("Properties") or {}
            api = properties.get("RestApiId")
            api_id = api.get("Ref") if isinstance(api, dict) else api
            auth = properties.get("Auth") or {}
            if auth.get("ApiKeyRequired", api_default.get(api_id, False)):
                required.add((logical_id, properties.get("Path", "")))
    return required


class ApiKeyGate:
    """Decides, per request, what API Gateway would: admitted (with the key's tenant) or refused (403/429)."""

    def __init__(
        self,
        plans: Mapping[str, UsagePlanEntry],
        required: set[tuple[str, str]],
        tenants: LocalTenants,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.plans = dict(plans)
        self.required = required
        self.tenants = tenants
        self.clock, self.now = clock, now
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        self._used: dict[tuple[str, str], int] = {}

    @classmethod
    def from_template(cls, resources: Mapping[str, Any], tenants: LocalTenants, **kwargs: Any) -> "ApiKeyGate":
        return cls(plans_from_template(resources), key_required_routes(resources), tenants, **kwargs)

    def requires_key(self, function: str, path: str) -> bool:
        return (function, path) in self.required

    def check(self, function: str, path: str, api_key: str | None) -> Admitted | Refused:
        """The ``x-api-key`` header's key (``ApiKeySourceType: HEADER``) against its plan."""
        if not self.requires_key(function, path):
            return Admitted(None)
        return self.limit(self._tenant(api_key))

    def check_tenant(self, function: str, path: str, tenant: Tenant) -> Admitted | Refused:
        """The key an authorizer supplied for ``tenant`` (``ApiKeySourceType: AUTHORIZER``) against its plan."""
        if not self.requires_key(function, path):
            return Admitted(None)
        return self.limit(tenant)

    def limit(self, tenant: Tenant | None) -> Admitted | Refused:
        """A valid key's plan: its quota for this period, then its token bucket."""
        if tenant is None or tenant.plan not in self.plans:
            return _refused("INVALID_API_KEY")
        plan = self.plans[tenant.plan]
        window = (tenant.id, quota_period_of(self.now(), plan.quota_period))
        with self._lock:
            if plan.quota is not None and self._used.get(window, 0) >= plan.quota:
                return _refused("QUOTA_EXCEEDED")
            bucket = self._buckets.get(tenant.id)
            if bucket is None or (bucket.rate, bucket.burst) != (plan.rate_limit, plan.burst_limit):
                bucket = self._buckets[tenant.id] = TokenBucket(plan.rate_limit, plan.burst_limit, self.clock)
            if not bucket.take():
                return _refused("THROTTLED")
            self._used[window] = self._used.get(window, 0) + 1
        return Admitted(tenant)

    def used(self, tenant_id: str, period: str) -> int:
        """Requests admitted for a tenant in a quota window (e.g. ``2026-11``)."""
        return self._used.get((tenant_id, period), 0)

    def _tenant(self, api_key: str | None) -> Tenant | None:
        """The tenant of a valid key (the tenants file re-read when it changes; digests compared in constant time)."""
        return self.tenants.match_key(api_key)


def _refused(error_type: str) -> Refused:
    status, message, hint = GATEWAY_ERRORS[error_type]
    return Refused(status, error_type, f"{message}: {hint}")
