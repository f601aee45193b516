"""Per-request metering: the one place every answered request is recorded.

``InferenceService.handle`` calls ``Meter.record`` exactly once per request, success or error (a
request the trigger could not even decode included), with a ``UsageRecord``; the handler calls
``Meter.flush`` once per invocation, after every request of it was answered, so a meter may aggregate
the requests of one invocation (an SQS batch, a chunked S3 object) before writing. ``MetricsMeter``
writes CloudWatch EMF metrics; per-tenant billing plugs in as another ``Meter``.

Example:
    >>> class PrintMeter:
    ...     def record(self, usage: UsageRecord) -> None:
    ...         print(usage.model, usage.status, usage.batch_size)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from .http import status_class
from .observability import metrics


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


class MetricsMeter:
    """EMF metrics: latency, batch size, request count and errors, by model/version/operation."""

    def record(self, usage: UsageRecord) -> None:
        metrics.add_dimension("model", usage.model or "-")
        metrics.add_dimension("version", usage.version or "-")
        metrics.add_dimension("operation", usage.operation)
        metrics.add_metric("Latency", MetricUnit.Milliseconds, usage.duration_ms)
        metrics.add_metric("Requests", MetricUnit.Count, 1)
        if usage.batch_size:
            metrics.add_metric("BatchSize", MetricUnit.Count, usage.batch_size)
        kind = status_class(usage.status)
        if kind != "ok":
            metrics.add_metric("ClientErrors" if kind == "client_error" else "Errors", MetricUnit.Count, 1)

    def flush(self) -> None:
        """EMF metrics are flushed by ``metrics.log_metrics`` around the handler."""
