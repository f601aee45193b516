"""Per-tenant usage in DynamoDB, aggregated from the functions' metering lines: what billing reads.

A model function never writes usage itself (that would put a DynamoDB round trip before every response):
``metering.EmfMeter`` writes one log line per request with the tenant usage record under ``modelfn_usage``.
A CloudWatch Logs subscription filter on each model function's log group delivers those lines (gzip + base64,
at least once) to the usage-aggregator function (``usage_aggregator.lambda_handler``, this module's
``UsageAggregator``), which adds them to the usage table:

* one ``TransactWriteItems`` per chunk of log events: a marker item per log event id, ``Put`` with
  ``attribute_not_exists`` (35-day TTL), and one ``Update`` with atomic ``ADD`` counters per (tenant, model,
  version, day) aggregate of those events. A retried or repeated delivery hits the markers: the transaction is
  cancelled, the events already counted are dropped and the rest written again, so nothing counts twice;
* at most 100 items per transaction (DynamoDB's limit): markers plus aggregates, chunked deterministically
  (events sorted by id), with an idempotency token made from the chunk's event ids;
* a delivery that cannot be written raises, so Lambda retries it and then keeps it in the aggregator's dead-letter
  queue (replaying it later is safe for the same reason).

The table layout (one item per tenant, day, model and version; markers have no ``month``, so the month index
and tenant queries never see them)::

    tenant (HASH)       usage_key (RANGE)        month     requests  items  billed_ms  mb_ms  ...
    k7x2...             2026-11-28#digits#1      2026-11   120       480    312        319488
    #event#3779...      /aws/lambda/Digits...                                                   expires_at

Example:
    >>> aggregator = UsageAggregator("modelfn-usage")                          # doctest: +SKIP
    >>> aggregator.handle({"awslogs": {"data": "H4sI..."}})                    # doctest: +SKIP
    Summary(events=3, counted=3, duplicates=0, rejected=0, transactions=1)
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from .environment import USAGE_TABLE
from .http import status_class
from .metering import UNTENANTED, USAGE_KEY, USAGE_VERSION, write_metric
from .observability import logger

__all__ = ["COUNTER_FIELDS", "Counters", "Delivery", "MONTH_INDEX", "Summary", "UNTENANTED", "UsageAggregator",
           "decode_delivery", "encode_delivery", "matches_filter", "usage_key"]

USAGE_TABLE_ENV = USAGE_TABLE
MONTH_INDEX = "month-index"
KEY_SEPARATOR = "#"
TRIGGER_PATTERN = re.compile(r"[^a-z0-9_]")
TRIGGER_PREFIX = "requests_"
"""Requests per trigger are counted in attributes named ``requests_<trigger>``."""
MARKER_PREFIX = "#event#"
"""Marker items' hash key: ``#event#<log event id>`` (no tenant id starts with ``#``), range key: the log group."""
MARKER_TTL_S = 35 * 86400
"""Markers outlive every redelivery: Lambda's async retries (6 h) and the dead-letter queue's retention (14 days)."""
TTL_ATTRIBUTE = "expires_at"
MAX_TRANSACTION_ITEMS = 100
MAX_ATTEMPTS = 6
FILTER_PATTERN = '{ $.%s.v = %d }' % (USAGE_KEY, USAGE_VERSION)
"""The subscription filter's pattern: only metering lines (JSON with ``modelfn_usage.v``) reach the aggregator."""


def matches_filter(message: str) -> bool:
    """What ``FILTER_PATTERN`` selects, for the local log subscription: a JSON object whose ``modelfn_usage.v`` is 1.

    Example:
        >>> matches_filter('{"modelfn_usage": {"v": 1}}'), matches_filter('{"message": "modelfn_usage"}')
        (True, False)
    """
    if '"%s"' % USAGE_KEY not in message:
        return False
    try:
        document = json.loads(message)
    except ValueError:
        return False
    record = document.get(USAGE_KEY) if isinstance(document, dict) else None
    return isinstance(record, dict) and record.get("v") == USAGE_VERSION


def usage_key(day: str, model: str, version: str) -> str:
    """The table's sort key: ``2026-11-28#digits#1`` (sorts by day, so a date range is one key range)."""
    return KEY_SEPARATOR.join((day, model, version))


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

    def add(self, line: "UsageLine") -> None:
        self.requests += 1
        self.items += line.items
        self.billed_ms += line.billed_ms
        self.mb_ms += line.billed_ms * line.memory_mb
        self.request_bytes += line.request_bytes
        self.response_bytes += line.response_bytes
        kind = status_class(line.status)
        if kind == "ok":
            self.ok += 1
        elif kind == "client_error":
            self.client_errors += 1
        else:
            self.server_errors += 1
        trigger = TRIGGER_PREFIX + TRIGGER_PATTERN.sub("_", (line.trigger or "unknown").lower())
        self.by_trigger[trigger] = self.by_trigger.get(trigger, 0) + 1

    def as_attributes(self) -> dict[str, int]:
        return {**{name: getattr(self, name) for name in COUNTER_FIELDS}, **self.by_trigger}


COUNTER_FIELDS = tuple(f.name for f in fields(Counters) if f.name != "by_trigger")
"""The usage table's counter attributes (billing reads exactly these), besides the per-trigger ``requests_*`` ones."""


@dataclass(frozen=True)
class UsageLine:
    """One request's usage, as a model function's metering line carries it."""

    tenant: str
    day: str
    model: str
    version: str
    trigger: str
    status: int
    items: int
    billed_ms: int
    memory_mb: int
    architecture: str
    request_bytes: int
    response_bytes: int

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.tenant, self.day, self.model, self.version

    @classmethod
    def parse(cls, message: str) -> "UsageLine | None":
        """The usage record of a metering line; None for any other line (or a malformed one)."""
        try:
            document = json.loads(message)
            record = document[USAGE_KEY] if isinstance(document, dict) and "_aws" in document else None
            if not isinstance(record, dict) or record.get("v") != USAGE_VERSION:
                return None
            line = cls(**{name: record[name] for name in _LINE_FIELDS})
        except (ValueError, KeyError, TypeError):
            return None
        texts = (line.tenant, line.day, line.model, line.version, line.trigger, line.architecture)
        numbers = (line.status, line.items, line.billed_ms, line.memory_mb, line.request_bytes, line.response_bytes)
        if not all(isinstance(t, str) and t for t in texts) or not all(type(n) is int and n >= 0 for n in numbers):
            return None
        if not _DAY.fullmatch(line.day) or line.tenant.startswith(MARKER_PREFIX):
            return None
        return line


_LINE_FIELDS = tuple(f.name for f in fields(UsageLine))
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Delivery:
    """One subscription delivery: the log group and stream, and ``(event id, message)`` per log event."""

    log_group: str
    log_stream: str
    events: list[tuple[str, str]]


def decode_delivery(event: dict[str, Any]) -> Delivery:
    """The delivery an ``{"awslogs": {"data": ...}}`` event carries (base64 of gzip of JSON); control messages
    (CloudWatch Logs checking the destination) carry no events."""
    payload = json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))
    if payload.get("messageType") != "DATA_MESSAGE":
        return Delivery(payload.get("logGroup", ""), payload.get("logStream", ""), [])
    return Delivery(payload["logGroup"], payload["logStream"],
                    [(str(item["id"]), str(item["message"])) for item in payload.get("logEvents", [])])


def encode_delivery(log_group: str, log_stream: str, events: Iterable[tuple[str, int, str]],
                    filters: tuple[str, ...] = ("usage",), owner: str = "123456789012") -> dict[str, Any]:
    """The event CloudWatch Logs sends a subscribed function for ``(id, timestamp_ms, message)`` log events
    (the local runtime's log subscription uses it; so do tests).

    Example:
        >>> decode_delivery(encode_delivery("/g", "s", [("1", 0, "hello")])).events
        [('1', 'hello')]
    """
    payload = {"messageType": "DATA_MESSAGE", "owner": owner, "logGroup": log_group, "logStream": log_stream,
               "subscriptionFilters": list(filters),
               "logEvents": [{"id": event_id, "timestamp": timestamp, "message": message}
                             for event_id, timestamp, message in events]}
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode("ascii")}}


@dataclass
class Summary:
    """What one delivery added: events seen, requests counted, duplicates skipped, lines rejected, transactions."""

    events: int = 0
    counted: int = 0
    duplicates: int = 0
    rejected: int = 0
    transactions: int = 0


class UsageAggregator:
    """Add deliveries of metering lines to the usage table, each log event exactly once.

    ``client``, ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(self, table: str, *, client: Any = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, max_items: int = MAX_TRANSACTION_ITEMS) -> None:
        self.table = table
        self.max_items = max_items
        self._client = client
        self._clock, self._sleep = clock, sleep

    @property
    def client(self) -> Any:
        if self._client is None:
            from .aws import bounded_client

            self._client = bounded_client("dynamodb")
        return self._client

    def handle(self, event: dict[str, Any]) -> Summary:
        """Decode one subscription event and add its metering lines; raises when they could not be written."""
        return self.add(decode_delivery(event))

    def add(self, delivery: Delivery) -> Summary:
        summary = Summary(events=len(delivery.events))
        lines: dict[str, UsageLine] = {}
        for event_id, message in sorted(set(delivery.events)):
            line = UsageLine.parse(message)
            if line is None:
                summary.rejected += 1
            elif event_id not in lines:
                lines[event_id] = line
        if summary.rejected:
            logger.warning("lines without a usage record of this version were skipped", log_group=delivery.log_group,
                           rejected=summary.rejected)
            write_metric("UsageLinesRejected", summary.rejected)
        for chunk in chunks(lines, self.max_items):
            counted, transactions = self._write(delivery.log_group, chunk)
            summary.counted += counted
            summary.duplicates += len(chunk) - counted
            summary.transactions += transactions
        return summary

    def _write(self, log_group: str, chunk: dict[str, UsageLine]) -> tuple[int, int]:
        """Write one chunk in one transaction; events whose marker exists are dropped and the rest retried."""
        pending = dict(chunk)
        transactions = 0
        for attempt in range(MAX_ATTEMPTS):
            if not pending:
                return 0, transactions
            items, marker_ids = self._transaction(log_group, pending)
            transactions += 1
            try:
                self.client.transact_write_items(TransactItems=items, ClientRequestToken=_token(log_group, marker_ids))
                return len(pending), transactions
            except Exception as error:  # noqa: BLE001 - sorted below; anything else is raised
                reasons = _cancellation_codes(error)
                if reasons is None:
                    raise
            counted = {marker_ids[i] for i, code in enumerate(reasons[: len(marker_ids)]) if code == "ConditionalCheckFailed"}
            for event_id in counted:  # already in the table: a redelivery
                del pending[event_id]
            if not counted:  # conflicts or throttling: back off and try the same transaction again
                self._sleep(min(2.0, 0.05 * 2 ** attempt))
        raise RuntimeError(f"usage of {len(pending)} log events of {log_group} could not be written after {MAX_ATTEMPTS} "
                           "attempts; the delivery is retried (and then kept in the dead-letter queue)")

    def _transaction(self, log_group: str, lines: dict[str, UsageLine]) -> tuple[list[dict[str, Any]], list[str]]:
        expires = str(int(self._clock()) + MARKER_TTL_S)
        marker_ids = sorted(lines)
        items: list[dict[str, Any]] = [{"Put": {
            "TableName": self.table,
            "Item": {"tenant": {"S": MARKER_PREFIX + event_id}, "usage_key": {"S": log_group}, TTL_ATTRIBUTE: {"N": expires}},
            "ConditionExpression": "attribute_not_exists(tenant)",
        }} for event_id in marker_ids]
        aggregates: dict[tuple[str, str, str, str], tuple[Counters, UsageLine]] = {}
        for event_id in marker_ids:
            line = lines[event_id]
            counters = aggregates.setdefault(line.key, (Counters(), line))[0]
            counters.add(line)
        items += [{"Update": self._update(line, counters)} for counters, line in aggregates.values()]
        return items, marker_ids

    def _update(self, line: UsageLine, counters: Counters) -> dict[str, Any]:
        added = counters.as_attributes()
        fixed = {"month": line.day[:7], "day": line.day, "model": line.model, "version": line.version,
                 "memory_mb": line.memory_mb, "architecture": line.architecture}
        names = {f"#a{i}": name for i, name in enumerate([*added, *fixed])}
        ids = {name: alias for alias, name in names.items()}
        values: dict[str, Any] = {f":{ids[name][1:]}": {"N": str(value)} for name, value in added.items()}
        for name, value in fixed.items():
            values[f":{ids[name][1:]}"] = {"N": str(value)} if isinstance(value, int) else {"S": value}
        expression = "ADD " + ", ".join(f"{ids[name]} :{ids[name][1:]}" for name in added)
        expression += " SET " + ", ".join(f"{ids[name]} = :{ids[name][1:]}" for name in fixed)
        return {
            "TableName": self.table,
            "Key": {"tenant": {"S": line.tenant}, "usage_key": {"S": usage_key(line.day, line.model, line.version)}},
            "UpdateExpression": expression, "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
        }


def chunks(lines: dict[str, UsageLine], max_items: int = MAX_TRANSACTION_ITEMS) -> list[dict[str, UsageLine]]:
    """Events in id order, cut so that each chunk's markers plus its aggregates fit one transaction: the same
    delivery is always cut the same way."""
    chunks: list[dict[str, UsageLine]] = []
    current: dict[str, UsageLine] = {}
    keys: set[tuple[str, str, str, str]] = set()
    for event_id in sorted(lines):
        line = lines[event_id]
        if current and len(current) + 1 + len(keys | {line.key}) > max_items:
            chunks.append(current)
            current, keys = {}, set()
        current[event_id] = line
        keys.add(line.key)
    if current:
        chunks.append(current)
    return chunks


def _token(log_group: str, event_ids: list[str]) -> str:
    """DynamoDB's idempotency token for one transaction (a retry of the very same request is applied once)."""
    return hashlib.sha256("\n".join([log_group, *event_ids]).encode()).hexdigest()[:36]


def _cancellation_codes(error: Exception) -> list[str] | None:
    """The per-item reason codes of a cancelled transaction; None for any other error."""
    response = getattr(error, "response", None) or {}
    if response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons = response.get("CancellationReasons")
    if reasons is None:  # botocore leaves them in the message only when the model lacks them
        found = re.search(r"\[([^\]]*)\]", str(error))
        return [code.strip() for code in found.group(1).split(",")] if found else []
    return [reason.get("Code", "None") for reason in reasons]


def aggregator_from_environment() -> UsageAggregator:
    """The aggregator of the table ``MODELFN_USAGE_TABLE`` names (the aggregator function's environment)."""
    table = os.environ.get(USAGE_TABLE_ENV)
    if not table:
        raise RuntimeError(f"{USAGE_TABLE_ENV} is not set: the usage aggregator needs the usage table's name")
    return UsageAggregator(table)
