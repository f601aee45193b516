"""Per-tenant usage in DynamoDB: the ``Meter`` that billing reads.

``UsageMeter.record`` only adds a ``UsageRecord`` to an in-memory aggregate keyed by
(tenant, model, version, UTC day); ``UsageMeter.flush`` (called by the handler once per invocation,
after every request of it is answered) writes each aggregate with ONE ``UpdateItem`` whose ``ADD``
counters are atomic, so concurrent functions never lose a count and there is at most one write per
request. The table layout (one item per tenant, day, model and version)::

    tenant (HASH)   usage_key (RANGE)        month     requests  items  billed_ms  mb_ms  ...
    k7x2...         2026-11-28#digits#1      2026-11   120       480    312        319488

A metering failure never fails or slows inference noticeably: one attempt with short botocore
timeouts, then the aggregate is kept for the next flush and DynamoDB is left alone for
``backoff_s``; every failure is logged and counted as the ``MeteringErrors`` EMF metric.

Example:
    >>> meter = UsageMeter("modelfn-usage")                                    # doctest: +SKIP
    >>> meter.record(UsageRecord("r1", "digits", "1", "rest", "infer", 200, 4, 256, 80, 2.5, tenant="k7x2"))  # doctest: +SKIP
    >>> meter.flush()                                                           # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import platform
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from .environment import USAGE_TABLE, USAGE_TIMEOUT_S
from .http import status_class
from .metering import Meter, MetricsMeter, UsageRecord
from .observability import logger

USAGE_TABLE_ENV = USAGE_TABLE
USAGE_TIMEOUT_ENV = USAGE_TIMEOUT_S  # connect and read timeout of the meter's one attempt per flush
DEFAULT_TIMEOUT_S = 0.5  # DynamoDB answers an UpdateItem in milliseconds; this bounds a sick one
UNTENANTED = "-"
MONTH_INDEX = "month-index"
KEY_SEPARATOR = "#"
TRIGGER_PATTERN = re.compile(r"[^a-z0-9_]")
TRIGGER_PREFIX = "requests_"
"""Requests per trigger are counted in attributes named ``requests_<trigger>``."""
MAX_PENDING = 512  # aggregates kept while DynamoDB is unreachable; beyond this they are dropped and counted


def usage_key(day: str, model: str, version: str) -> str:
    """The table's sort key: ``2026-11-28#digits#1`` (sorts by day, so a date range is one key range)."""
    return KEY_SEPARATOR.join((day, model, version))


def tenant_of(usage: UsageRecord) -> str:
    """Who pays for a request: the record's tenant, else its API key id, else ``-`` (untenanted)."""
    return usage.tenant or usage.api_key_id or UNTENANTED


def architecture() -> str:
    """Lambda's name for this machine's architecture: ``x86_64`` or ``arm64``."""
    return "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"


@dataclass
class Counters:
    """The counters of one aggregate; each becomes an atomic ``ADD`` on its DynamoDB attribute."""

    requests: int = 0
    items: int = 0
    billed_ms: int = 0
    mb_ms: int = 0  # memory MB x billed ms: GB-seconds = mb_ms / 1024 / 1000, exact in integers
    request_bytes: int = 0
    response_bytes: int = 0
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    by_trigger: dict[str, int] = field(default_factory=dict)

    def add(self, usage: UsageRecord, memory_mb: int) -> None:
        billed = max(1, math.ceil(usage.duration_ms))  # Lambda bills whole milliseconds, at least 1
        self.requests += 1
        self.items += usage.batch_size
        self.billed_ms += billed
        self.mb_ms += billed * memory_mb
        self.request_bytes += usage.request_bytes
        self.response_bytes += usage.response_bytes
        kind = status_class(usage.status)
        if kind == "ok":
            self.ok += 1
        elif kind == "client_error":
            self.client_errors += 1
        else:
            self.server_errors += 1
        trigger = TRIGGER_PREFIX + TRIGGER_PATTERN.sub("_", (usage.trigger or "unknown").lower())
        self.by_trigger[trigger] = self.by_trigger.get(trigger, 0) + 1

    def merge(self, other: "Counters") -> None:
        for name in COUNTER_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for trigger, count in other.by_trigger.items():
            self.by_trigger[trigger] = self.by_trigger.get(trigger, 0) + count

    def as_attributes(self) -> dict[str, int]:
        return {**{name: getattr(self, name) for name in COUNTER_FIELDS}, **self.by_trigger}


COUNTER_FIELDS = tuple(f.name for f in fields(Counters) if f.name != "by_trigger")
"""The usage table's counter attributes (billing reads exactly these), besides the per-trigger ``requests_*`` ones."""


@dataclass(frozen=True)
class AggregateKey:
    tenant: str
    model: str
    version: str
    day: str  # YYYY-MM-DD, UTC


class UsageMeter:
    """Aggregate usage per (tenant, model, version, day) and write it to DynamoDB once per invocation.

    Only requests for a model are metered (health and server metadata answered by the catch-all
    function are free). ``client`` and ``clock`` are injectable for tests.
    """

    def __init__(
        self,
        table: str,
        *,
        client: Any = None,
        memory_mb: int | None = None,
        clock: Callable[[], datetime] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        backoff_s: float = 30.0,
    ) -> None:
        self.table = table
        self.memory_mb = memory_mb if memory_mb is not None else int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 0)
        self.architecture = architecture()
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._client = client  # made on the first flush: boto3's import stays out of the cold start
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._pending: dict[AggregateKey, Counters] = {}
        self._lock = threading.Lock()
        self._suspended_until = 0.0
        self._emf = EphemeralMetrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "modelfn"), service="modelfn")
        self.writes = 0
        self.failures = 0
        self.dropped = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            from .aws import bounded_client

            # one attempt within the timeout: a failed write is kept for the next flush, never retried in place
            self._client = bounded_client("dynamodb", connect_timeout=self.timeout_s, read_timeout=self.timeout_s,
                                          retries={"total_max_attempts": 1})
        return self._client

    @client.setter
    def client(self, client: Any) -> None:
        self._client = client

    def record(self, usage: UsageRecord) -> None:
        if not usage.model or usage.trigger == "probe":  # readiness probes are the platform's, not a tenant's
            return
        key = AggregateKey(tenant_of(usage), usage.model, usage.version, self._clock().strftime("%Y-%m-%d"))
        with self._lock:
            counters = self._pending.get(key)
            if counters is None:
                if len(self._pending) >= MAX_PENDING:
                    self.dropped += 1
                    _count("MeteringDropped")
                    return
                counters = self._pending[key] = Counters()
            counters.add(usage, self.memory_mb)

    def flush(self) -> None:
        """Write every pending aggregate with one UpdateItem each; on failure keep them for the next flush."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending or time.monotonic() < self._suspended_until:
            self._keep(pending)
            return
        items = list(pending.items())
        for index, (key, counters) in enumerate(items):
            try:
                self._write(key, counters)
            except Exception as error:  # botocore errors, timeouts, anything: metering never fails inference
                self.failures += 1
                self._suspended_until = time.monotonic() + self.backoff_s
                uncertain = _maybe_applied(error)
                if uncertain:  # the ADD may have landed: writing it again could bill twice, so it is dropped
                    self.dropped += counters.requests
                    _count("MeteringUncertain", counters.requests)
                self._keep(dict(items[index + 1 if uncertain else index :]))
                logger.warning(
                    "usage metering failed; " + ("the aggregate in flight is dropped, " if uncertain else "") + "kept for the next flush",
                    table=self.table,
                    error=f"{type(error).__name__}: {str(error)[:200]}",
                    pending=self.pending,
                    retry_after_s=self.backoff_s,
                )
                _count("MeteringErrors")
                return
            self.writes += 1
            self._tenant_metrics(key, counters)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _keep(self, pending: dict[AggregateKey, Counters]) -> None:
        with self._lock:
            for key, counters in pending.items():
                if key in self._pending:
                    self._pending[key].merge(counters)
                elif len(self._pending) < MAX_PENDING:
                    self._pending[key] = counters
                else:
                    self.dropped += counters.requests
                    _count("MeteringDropped", counters.requests)

    def _tenant_metrics(self, key: AggregateKey, counters: Counters) -> None:
        """EMF metrics per tenant and model: one line per written aggregate (the instance is reused: it is cheaper)."""
        self._emf.add_dimension("tenant", key.tenant)
        self._emf.add_dimension("model", key.model)
        self._emf.add_metric("TenantRequests", MetricUnit.Count, counters.requests)
        self._emf.add_metric("TenantItems", MetricUnit.Count, counters.items)
        self._emf.add_metric("TenantBilledDuration", MetricUnit.Milliseconds, counters.billed_ms)
        self._emf.flush_metrics()

    def _write(self, key: AggregateKey, counters: Counters) -> None:
        added = counters.as_attributes()
        fixed = {
            "month": key.day[:7],
            "day": key.day,
            "model": key.model,
            "version": key.version,
            "memory_mb": self.memory_mb,
            "architecture": self.architecture,
        }
        names = {f"#a{i}": name for i, name in enumerate([*added, *fixed])}
        ids = {name: alias for alias, name in names.items()}
        values: dict[str, Any] = {f":{ids[name][1:]}": {"N": str(value)} for name, value in added.items()}
        for name, value in fixed.items():
            values[f":{ids[name][1:]}"] = {"N": str(value)} if isinstance(value, int) else {"S": value}
        expression = "ADD " + ", ".join(f"{ids[name]} :{ids[name][1:]}" for name in added)
        expression += " SET " + ", ".join(f"{ids[name]} = :{ids[name][1:]}" for name in fixed)
        self.client.update_item(
            TableName=self.table,
            Key={"tenant": {"S": key.tenant}, "usage_key": {"S": usage_key(key.day, key.model, key.version)}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )


class MeterChain:
    """Several meters as one; a meter that raises is logged and counted, never propagated to the request.

    Example:
        >>> meter = MeterChain(MetricsMeter())
        >>> meter.flush()
    """

    def __init__(self, *meters: Meter) -> None:
        self.meters = list(meters)

    def record(self, usage: UsageRecord) -> None:
        for meter in self.meters:
            try:
                meter.record(usage)
            except Exception:
                logger.exception("meter failed to record", meter=type(meter).__name__)
                _count("MeteringErrors")

    def flush(self) -> None:
        for meter in self.meters:
            try:
                meter.flush()
            except Exception:
                logger.exception("meter failed to flush", meter=type(meter).__name__)
                _count("MeteringErrors")


def meter_from_environment() -> Meter:
    """EMF metrics always; per-tenant usage in DynamoDB when ``MODELFN_USAGE_TABLE`` names a table
    (``MODELFN_USAGE_TIMEOUT_S`` bounds each write, default 0.5 s)."""
    table = os.environ.get(USAGE_TABLE_ENV)
    if not table:
        return MetricsMeter()
    try:
        timeout_s = float(os.environ.get(USAGE_TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    except ValueError:
        logger.warning(f"{USAGE_TIMEOUT_ENV} is not a number of seconds; using {DEFAULT_TIMEOUT_S}")
        timeout_s = DEFAULT_TIMEOUT_S
    return MeterChain(MetricsMeter(), UsageMeter(table, timeout_s=timeout_s))



def _maybe_applied(error: Exception) -> bool:
    """A read timeout means DynamoDB may have applied the update; every other failure means it did not."""
    from botocore.exceptions import ReadTimeoutError

    return isinstance(error, ReadTimeoutError)


def _count(name: str, value: int = 1) -> None:
    metrics = EphemeralMetrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "modelfn"), service="modelfn")
    metrics.add_metric(name, MetricUnit.Count, value)
    metrics.flush_metrics()
