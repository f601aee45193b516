"""Per-request metering: the one place every answered request is recorded.

``InferenceService.handle`` calls ``Meter.record`` exactly once per request, success or error,
with a ``UsageRecord``. Today that becomes CloudWatch EMF metrics; per-tenant billing (usage in
DynamoDB keyed by API key) plugs in as another ``Meter`` without touching the request path.

Example:
    >>> class PrintMeter:
    ...     def record(self, usage: UsageRecord) -> None:
    ...         print(usage.model, usage.status, usage.batch_size)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

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
        if usage.status >= 400:
            metrics.add_metric("ClientErrors" if usage.status < 500 else "Errors", MetricUnit.Count, 1)

    def flush(self) -> None:
        """Nothing to do: the handler's ``log_metrics`` flushes EMF metrics."""
