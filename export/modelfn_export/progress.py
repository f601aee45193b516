"""Progress reporting for the slow export steps.

The API takes ``progress: Callable[[str], None] | None``; each slow step reports a line when it
starts and one with its elapsed seconds when it ends. The CLI prints them on stderr.

Example:
    >>> steps = Steps(print)
    >>> with steps.step("loading"):   # doctest: +ELLIPSIS
    ...     pass
    loading …
    loading: done in 0.0s
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ProgressFn = Callable[[str], None]


class Steps:
    """Times named steps and reports them to a progress callback (which may be ``None``)."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self._progress = progress

    def note(self, message: str) -> None:
        """Report a one-off line (no timing)."""
        if self._progress is not None:
            self._progress(message)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Report ``what …`` now and ``what: done in N.Ns`` when the block finishes without error."""
        self.note(f"{what} …")
        start = time.perf_counter()
        yield
        self.note(f"{what}: done in {time.perf_counter() - start:.1f}s")
