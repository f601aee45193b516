"""Per-request metering: the one place every answered request is recorded, as ONE log line.

``InferenceService.handle`` calls ``Meter.record`` exactly once per request, success or error (a request the
trigger could not even decode included), with a ``UsageRecord``. ``EmfMeter`` (the meter every function uses)
writes one line to stdout per request and flushes it before the response leaves the handler:

* a CloudWatch Embedded Metric Format document: ``Latency``, ``Requests``, ``BatchSize`` and ``ClientErrors`` /
  ``Errors`` by model, version and operation, and, for metered requests, ``TenantRequests``, ``TenantItems`` and
  ``TenantBilledDuration`` by tenant and model (a second metric directive of the same line);
* for metered requests (a model was named and it is not the platform's readiness probe) the tenant usage record
  under ``modelfn_usage``: what the usage aggregator (``usage.UsageAggregator``, fed by the log group's
  subscription filter) adds to the usage table. See docs/billing.md for why the meter writes a log line and not
  a DynamoDB item.

No network call, no powertools ``Metrics`` object: the line is a precomputed template per (operation, outcome,
trigger) filled with the request's numbers (about 3 us). ``Meter.flush`` is called by the handler once per
invocation; ``EmfMeter`` has nothing left to flush by then.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> meter = EmfMeter(stream=lambda: out, memory_mb=1024, clock=lambda: 1764547200.0)
    >>> meter.record(UsageRecord("r1", "digits", "1", "rest", "infer", 200, 4, 256, 80, 2.5, tenant="k7x2"))
    >>> line = json.loads(out.getvalue())
    >>> line["Latency"], line["modelfn_usage"]["tenant"], line["modelfn_usage"]["day"], line["modelfn_usage"]["billed_ms"]
    (2.5, 'k7x2', '2025-12-01', 3)
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Protocol

from .http import status_class
from .observability import logger

USAGE_KEY = "modelfn_usage"
"""The key of the usage record in a metering line (the subscription filter selects lines that have it)."""
USAGE_VERSION = 1
"""The usage record's shape; the aggregator refuses other shapes (a line from a newer function is not guessed at)."""
UNTENANTED = "-"
NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
_quote = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # C: '"text"' with JSON escapes


@dataclass(frozen=True)
class UsageRecord:
    request_id: str
    model: str
    version: str
    trigger: str
    operation: str
    status: int
    batch_size: int
    request_bytes: int
    response_bytes: int
    duration_ms: float
    api_key_id: str | None = None
    tenant: str | None = None
    """Who pays: the API key id (REST), the authorizer's tenant (HTTP API), or the tenant an event names."""


class Meter(Protocol):
    def record(self, usage: UsageRecord) -> None: ...

    def flush(self) -> None: ...


def tenant_of(usage: UsageRecord) -> str:
    """Who pays for a request: the record's tenant, else its API key id, else ``-`` (untenanted)."""
    return usage.tenant or usage.api_key_id or UNTENANTED


def metered(usage: UsageRecord) -> bool:
    """Requests for a model are billed; health and metadata of the catch-all and readiness probes are not."""
    return bool(usage.model) and usage.trigger != "probe"


def billed_ms(duration_ms: float) -> int:
    """Lambda bills whole milliseconds, at least 1."""
    return max(1, math.ceil(duration_ms))


def architecture() -> str:
    """Lambda's name for this machine's architecture: ``x86_64`` or ``arm64``."""
    return "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"


class EmfMeter:
    """One EMF line per request (metrics + the tenant usage record), written to stdout and flushed at once.

    ``stream``, ``memory_mb`` and ``clock`` are injectable for tests; ``stream`` is resolved on every write so a
    redirected ``sys.stdout`` (tests, benchmarks) is honoured.
    """

    def __init__(
        self,
        *,
        namespace: str | None = None,
        service: str = "modelfn",
        memory_mb: int | None = None,
        stream: Callable[[], IO[str]] = lambda: sys.stdout,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = namespace or os.environ.get(NAMESPACE_ENV) or "modelfn"
        self.service = service
        self.memory_mb = memory_mb if memory_mb is not None else int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 0)
        self.architecture = architecture()
        self._stream, self._clock = stream, clock
        self._templates: dict[tuple[str, str, str, str, str], str] = {}
        self._day_index, self._day = -1, ""
        self.failures = 0

    def record(self, usage: UsageRecord) -> None:
        """Write the request's line; a meter that fails is logged and counted, never the request's failure."""
        try:
            self._write(usage)
        except Exception:  # noqa: BLE001 - metering never fails inference
            self.failures += 1
            logger.exception("meter failed to record", model=usage.model, request_id=usage.request_id)

    def _write(self, usage: UsageRecord) -> None:
        now = self._clock()
        status = usage.status
        kind = "ok" if status < 400 else status_class(status)
        key = (usage.model, usage.version, usage.operation, kind, usage.trigger)
        template = self._templates.get(key) or self._template(usage, kind)
        duration, batch = usage.duration_ms, usage.batch_size
        if usage.model and usage.trigger != "probe":  # metered(usage), inlined: this runs on every request
            index = int(now // 86400)
            if index != self._day_index:
                self._day_index, self._day = index, time.strftime("%Y-%m-%d", time.gmtime(now))
            tenant = _quote(usage.tenant or usage.api_key_id or UNTENANTED)  # tenant_of(usage)
            billed = math.ceil(duration) or 1  # billed_ms(duration): whole ms, at least 1
            line = template % (int(now * 1000), _quote(usage.request_id or ""), duration, batch, tenant, batch, billed, tenant,
                               self._day, status, batch, billed, usage.request_bytes, usage.response_bytes)
        else:
            line = template % (int(now * 1000), _quote(usage.request_id or ""), duration, batch)
        stream = self._stream()
        stream.write(line)
        stream.flush()  # in CloudWatch Logs before the response returns: nothing waits in this process's memory

    def flush(self) -> None:
        """Nothing to do: every record was written and flushed when it was recorded."""

    def _template(self, usage: UsageRecord, kind: str) -> str:
        """The line for this (model, version, operation, outcome, trigger) with ``%s`` holes, in ``_write``'s order:
        timestamp, request id, latency, batch size; metered: tenant, items, billed ms (the tenant metrics), then the
        usage record's tenant, day, status, items, billed ms, request and response bytes."""
        names = [("Latency", "Milliseconds", "%.3f"), ("Requests", "Count", "1"), ("BatchSize", "Count", "%s")]
        if kind != "ok":
            names.append(("ClientErrors" if kind == "client_error" else "Errors", "Count", "1"))
        directives = [{"Namespace": self.namespace, "Dimensions": [["model", "version", "operation", "service"]],
                       "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in names]}]
        fixed = {"service": self.service, "model": usage.model or "-", "version": usage.version or "-",
                 "operation": usage.operation}
        body = "".join(f',"{name}":{value}' for name, _, value in names)
        if metered(usage):
            tenant_metrics = [("TenantRequests", "Count"), ("TenantItems", "Count"), ("TenantBilledDuration", "Milliseconds")]
            directives.append({"Namespace": self.namespace, "Dimensions": [["tenant", "model"]],
                               "Metrics": [{"Name": name, "Unit": unit} for name, unit in tenant_metrics]})
            body += ',"tenant":%s,"TenantRequests":1,"TenantItems":%s,"TenantBilledDuration":%s'
            body += self._usage_template(usage)
        head = json.dumps({"CloudWatchMetrics": directives}, separators=(",", ":"))[:-1].replace("%", "%%")
        fixed_text = json.dumps(fixed, separators=(",", ":"))[1:-1].replace("%", "%%")
        template = '{"_aws":' + head + ',"Timestamp":%s},' + fixed_text + ',"request_id":%s' + body + "}\n"
        self._templates[(usage.model, usage.version, usage.operation, kind, usage.trigger)] = template
        return template

    def _usage_template(self, usage: UsageRecord) -> str:
        fixed = json.dumps({"v": USAGE_VERSION, "model": usage.model, "version": usage.version, "trigger": usage.trigger,
                            "memory_mb": self.memory_mb, "architecture": self.architecture},
                           separators=(",", ":"))[1:-1].replace("%", "%%")
        return (f',"{USAGE_KEY}":{{{fixed},"tenant":%s,"day":"%s","status":%s,"items":%s,'
                '"billed_ms":%s,"request_bytes":%s,"response_bytes":%s}')


MetricsMeter = EmfMeter
"""The name this meter had while it wrote through powertools ``Metrics``."""


def write_metric(name: str, value: float = 1, unit: str = "Count", *, dimensions: dict[str, str] | None = None,
                 stream: IO[str] | None = None) -> None:
    """One EMF line with one metric (for rare events: cold starts, metering errors), written and flushed.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> write_metric("ColdStart", dimensions={"function_name": "f"}, stream=out)
        >>> json.loads(out.getvalue())["ColdStart"]
        1
    """
    dimensions = {**(dimensions or {}), "service": "modelfn"}
    namespace = os.environ.get(NAMESPACE_ENV) or "modelfn"
    document = {"_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [
        {"Namespace": namespace, "Dimensions": [list(dimensions)], "Metrics": [{"Name": name, "Unit": unit}]}]},
        **dimensions, name: value}
    out = stream or sys.stdout
    out.write(json.dumps(document, separators=(",", ":")) + "\n")
    out.flush()
