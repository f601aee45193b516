"""CloudWatch Logs and the usage subscription, locally: the sandboxes' metering lines delivered to the usage aggregator.

Deployed, each model function's log group has a subscription filter that sends its metering lines to the
usage-aggregator function (``modelfn_runtime.usage.UsageAggregator``). Locally ``HostLambdaRuntime`` hands every
invocation's log lines to ``LogSubscription.put`` before the response goes back to the caller (a line is "in
CloudWatch Logs" once the sandbox wrote it: killing the sandbox afterwards loses nothing). The lines that pass the
same filter get a log event id, and a background thread delivers them in batches, as the awslogs event CloudWatch
Logs sends (JSON, gzip, base64), to the aggregator's own code against the local usage table (moto). A delivery that
fails is kept and tried again, as Lambda retries an asynchronous invoke; ``flush`` delivers what is pending now.

Example:
    >>> subscription = LogSubscription("modelfn-usage")                     # doctest: +SKIP
    >>> runtime.log_sink = subscription.put                                 # doctest: +SKIP
    >>> subscription.flush(); subscription.close()                          # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from typing import Any

from modelfn_runtime.usage import UsageAggregator, encode_delivery, matches_filter

LOCAL_LOG_GROUP = "/modelfn/local/functions/{function}"
BATCH_INTERVAL_S = 0.5
"""How long lines wait before they are delivered (CloudWatch Logs batches subscription deliveries too)."""
MAX_BATCH_EVENTS = 500


class LogSubscription:
    """The usage subscription of every local function's log group; a context manager (leaving it flushes)."""

    def __init__(self, table: str, *, client: Any = None, interval_s: float = BATCH_INTERVAL_S,
                 log=sys.stderr) -> None:
        self.aggregator = UsageAggregator(table, client=client)
        self.interval_s = interval_s
        self._log = log
        self._pending: dict[str, list[tuple[str, int, str]]] = {}
        self._lock = threading.Condition()
        self._deliver_lock = threading.Lock()
        self._ids = itertools.count()
        self._nonce = f"{os.getpid() % 10**7:07d}{time.time_ns() % 10**17:017d}"  # unique across local runs
        self._closed = False
        self.delivered = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="usage-subscription", daemon=True)
        self._thread.start()

    def put(self, function: str, lines: list[str]) -> None:
        """The log lines of one invocation of ``function`` (the sandbox wrote them; the response has not left yet)."""
        now = int(time.time() * 1000)
        events = [(f"{now:016d}{next(self._ids):016d}{self._nonce}", now, line) for line in lines if matches_filter(line)]
        if not events:
            return
        with self._lock:
            self._pending.setdefault(LOCAL_LOG_GROUP.format(function=function), []).extend(events)
            if sum(len(batch) for batch in self._pending.values()) >= MAX_BATCH_EVENTS:
                self._lock.notify()

    def flush(self) -> int:
        """Deliver every pending line now; the number of requests newly counted. Raises when the table refused them."""
        with self._deliver_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            counted = 0
            for index, (group, events) in enumerate(pending.items()):
                try:
                    for start in range(0, len(events), MAX_BATCH_EVENTS):
                        batch = events[start:start + MAX_BATCH_EVENTS]
                        counted += self.aggregator.handle(encode_delivery(group, "local", batch)).counted
                except Exception:
                    self._requeue(dict(list(pending.items())[index:]))  # tried again (the aggregator is idempotent)
                    raise
            self.delivered += counted
            return counted

    def close(self) -> None:
        """Stop the background deliveries and deliver what is left (a failure is reported, not raised)."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(timeout=30)
        self._flush_reporting()

    def __enter__(self) -> "LogSubscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                self._lock.wait(self.interval_s)
            self._flush_reporting()

    def _flush_reporting(self) -> None:
        try:
            self.flush()
        except Exception as error:  # noqa: BLE001 - kept for the next delivery, as Lambda retries
            self.failures += 1
            print(f"usage subscription: delivery failed, kept for the next one ({type(error).__name__}: {error})",
                  file=self._log, flush=True)

    def _requeue(self, pending: dict[str, list[tuple[str, int, str]]]) -> None:
        with self._lock:
            for group, events in pending.items():
                self._pending[group] = events + self._pending.get(group, [])
