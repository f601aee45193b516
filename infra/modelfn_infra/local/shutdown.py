"""How ``modelfn local invoke`` and ``start-api`` stop: SIGINT, SIGTERM and SIGHUP all end them like Ctrl-C, within
a deadline.

The first signal raises ``KeyboardInterrupt`` in the main thread, so leaving the ``with LocalApp`` blocks stops the
servers and every sandbox. Should that take longer than ``deadline_s`` (15 s), or a second signal come, every sandbox is
killed by pid (``sandbox.kill_every_sandbox``) and the process exits at once with status 1.

SIGINT is handled here too, not left to Python: Python raises ``KeyboardInterrupt`` for SIGINT only when its parent
left SIGINT at the default, and a background job of a non-interactive shell (``make test &``, many CI runners, and
every process they start) begins with SIGINT *ignored*, so ``kill -INT`` used to do nothing at all.

Example:
    >>> stop_on_signals()             # doctest: +SKIP
    >>> with LocalApp("template.yaml") as app:  # doctest: +SKIP
    ...     server = app.serve_api()
    ...     server.wait(idle_shutdown=0)   # returns on the first signal; leaving the block stops every sandbox
"""

from __future__ import annotations

import os
import signal
import threading
import time

from .sandbox import kill_every_sandbox

SHUTDOWN_DEADLINE_S = 15.0
"""From the first signal to a forced exit. A clean stop takes about 1 s, one sandbox grace period (3 s) at most on a
quiet machine, and up to 12.5 s was measured with the command starved of CPU (nice 10 beside two busy loops)."""
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
FORCED_EXIT_STATUS = 1


def stop_on_signals(deadline_s: float = SHUTDOWN_DEADLINE_S) -> "Shutdown":
    """Handle SIGINT, SIGTERM and SIGHUP as described above, whatever dispositions this process inherited."""
    shutdown = Shutdown(deadline_s)
    for signum in SIGNALS:
        signal.signal(signum, shutdown.on_signal)
    return shutdown


class Shutdown:
    """The first signal: ``KeyboardInterrupt`` and a deadline armed; a later one, or the deadline: ``force``."""

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self.started: float | None = None

    def on_signal(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.started is not None:
            self.force(f"{name} again while stopping")
        self.started = time.monotonic()
        timer = threading.Timer(self.deadline_s, self.force, args=(f"still stopping {self.deadline_s:.0f} s after {name}",))
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt(name)

    @staticmethod
    def force(why: str) -> None:
        """Kill every sandbox by pid and exit now (no cleanup that could block: no locks, no buffered streams)."""
        killed = kill_every_sandbox()
        os.write(2, f"modelfn local: {why}: killed {len(killed)} sandbox(es) {killed} and exited\n".encode())
        os._exit(FORCED_EXIT_STATUS)
