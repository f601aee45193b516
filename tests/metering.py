"""Metering for tests that need usage in a table: the function's meter (``EmfMeter``) writing its lines, and the
usage aggregator adding them, as a subscription delivery, to the table (the path deployed functions take).

Example:
    >>> meter = TableMeter("modelfn-usage", client=dynamodb, memory_mb=1024)     # doctest: +SKIP
    >>> meter.record(UsageRecord(...)); meter.flush()                           # doctest: +SKIP
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from modelfn_runtime.metering import EmfMeter, UsageRecord
from modelfn_runtime.usage import UsageAggregator, encode_delivery

_IDS = itertools.count()


class TableMeter:
    """``record`` writes the function's metering line; ``flush`` delivers the lines written since to the aggregator."""

    def __init__(self, table: str, *, client: Any, memory_mb: int, clock: Callable[[], datetime] | None = None,
                 log_group: str = "/aws/lambda/TestFunction") -> None:
        now = clock or (lambda: datetime.now(timezone.utc))
        self._out = io.StringIO()
        self.meter = EmfMeter(stream=lambda: self._out, memory_mb=memory_mb, clock=lambda: now().timestamp())
        self.aggregator = UsageAggregator(table, client=client)
        self.log_group = log_group

    def record(self, usage: UsageRecord) -> None:
        self.meter.record(usage)

    def flush(self) -> None:
        lines = self._out.getvalue().splitlines()
        self._out.seek(0)
        self._out.truncate()
        if lines:
            events = [(f"{next(_IDS):056d}", 0, line) for line in lines]
            self.aggregator.handle(encode_delivery(self.log_group, "test-stream", events))
