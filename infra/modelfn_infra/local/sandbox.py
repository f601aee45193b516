"""Lambda sandboxes on the host: the real Runtime Interface Emulator (shipped inside aws-sam-cli)
running awslambdaric with the function's handler, one process tree per sandbox, bound to 127.0.0.1.

``HostLambdaRuntime`` has the shape of SAM CLI's container ``LambdaRuntime``, so SAM's own
``LocalLambdaRunner`` (template, Globals, environment, ``--env-vars``) and ``LocalApigwService``
(API Gateway emulation) drive it unchanged; only the container is replaced by a host process.

No sandbox outlives the process that started it: each runs in its own session (process group), stopped by
SIGTERM to the group and SIGKILL after a grace period; ``kill_every_sandbox()`` kills them all by pid (the
shutdown deadline and ``atexit`` call it); and Linux sends the RIE SIGTERM (it then stops its runtime) when the
process that started it dies, even by SIGKILL.

Example:
    >>> runtime = HostLambdaRuntime(python=sys.executable)                  # doctest: +SKIP
    >>> runtime.invoke(function_config, '{"inputs": []}', stdout=out, stderr=err)  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import ctypes
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelfn_runtime.errors import LAMBDA_SYNC_PAYLOAD_LIMIT

STOP_GRACE_S = 3.0
"""How long a sandbox has to stop after SIGTERM before its process group gets SIGKILL."""
PROCESS_RESCAN_S = 1.0
"""How long a sandbox's list of runtime processes (for REPORT's Max Memory Used) is reused before /proc is scanned again."""
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
FORWARDED_HOST_VARIABLES = ("PATH", "HOME", "LANG", "TMPDIR")
_INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: ([0-9.]+)\)")
_INVOKE_DONE = re.compile(r"INVOKE RTDONE\(.*duration: ([0-9.]+)ms\)")
_START = re.compile(r"^START RequestId: (\S+)")
_RIE_LINE = re.compile(r"^\d{2} \w{3} \d{4} [\d:,]+ \[\w+\] \(rapid\)|^REPORT RequestId:|^START RequestId:|^END RequestId:")


class PayloadTooLargeError(ValueError):
    """The event exceeds Lambda's 6 MB synchronous invoke limit (Lambda's RequestEntityTooLargeException)."""


@dataclass
class Report:
    """What Lambda's REPORT line says about one invocation."""

    request_id: str
    duration_ms: float
    init_duration_ms: float | None
    memory_size_mb: int
    max_memory_used_mb: int

    @property
    def billed_duration_ms(self) -> int:
        return max(1, math.ceil(self.duration_ms))

    def line(self) -> str:
        init = f"Init Duration: {self.init_duration_ms:.2f} ms\t" if self.init_duration_ms is not None else ""
        return (
            f"REPORT RequestId: {self.request_id}\t{init}Duration: {self.duration_ms:.2f} ms\t"
            f"Billed Duration: {self.billed_duration_ms} ms\tMemory Size: {self.memory_size_mb} MB\t"
            f"Max Memory Used: {self.max_memory_used_mb} MB"
        )


@dataclass
class Invocation:
    payload: bytes
    logs: list[str]
    report: Report
    crashed: bool


class Sandbox:
    """One warm execution environment: an RIE process and the runtime it starts on first invoke."""

    def __init__(self, config: Any, python: str, extra_env: dict[str, str] | None = None, *, rie: Path) -> None:
        self.memory_mb = int(config.memory or 128)
        self.timeout_s = int(config.timeout or 3)
        self.port, runtime_api_port = free_port(), free_port()
        environment = {name: os.environ[name] for name in FORWARDED_HOST_VARIABLES if name in os.environ}
        # Lets functions reach a local moto server (e.g. AWS_ENDPOINT_URL_S3) as they would reach AWS.
        environment.update({k: v for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL")})
        environment.update(config.env_vars.resolve())
        environment.update(extra_env or {})
        code_dir = str(config.code_abs_path)
        environment.update(
            LAMBDA_TASK_ROOT=code_dir,
            LAMBDA_RUNTIME_DIR=str(Path(python).parent),
            PYTHONPATH=code_dir,
            PYTHONUNBUFFERED="1",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(self.memory_mb),
            AWS_LAMBDA_FUNCTION_TIMEOUT=str(self.timeout_s),
        )
        command = [
            str(rie),
            "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
            "--runtime-api-address", f"127.0.0.1:{runtime_api_port}",
            python, "-m", "awslambdaric", config.handler,
        ]
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._runtime_pids: tuple[float, list[int]] = (0.0, [])  # (when found, the processes under the RIE)
        self.process = _spawn(command, cwd=code_dir, env=environment)
        _LIVE.add(self)
        threading.Thread(target=self._read_output, daemon=True).start()
        self._wait_until_listening()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def invoke(self, event: bytes) -> Invocation:
        with self._changed:
            mark = len(self._lines)
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{INVOKE_PATH}", data=event, method="POST",
            headers={"Content-Type": "application/json"},
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s + 30) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:  # the RIE answers 502 when the runtime process exits
            payload = error.read()
        except OSError as error:
            payload = json.dumps({"errorType": "Runtime.ExitError", "errorMessage": f"sandbox unreachable: {error}"}).encode()
        elapsed_ms = (time.perf_counter() - started) * 1000
        payload, crashed = _lambda_error_shape(payload)
        # a crashed runtime writes no REPORT line: take the logs there are instead of waiting for one
        lines = self._lines_until_report(mark, wait_s=0.0 if crashed else 2.0)
        return Invocation(payload, [line for line in lines if not _RIE_LINE.match(line)], self._report(lines, elapsed_ms), crashed)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM to the sandbox's process group (the RIE stops its runtime), SIGKILL to what is left after ``grace_s``."""
        self.terminate()
        self.finish(time.monotonic() + grace_s)

    def terminate(self) -> None:
        """Ask the whole sandbox to stop (returns at once; ``finish`` waits)."""
        if self.process.returncode is None:
            _signal_group(self.process.pid, signal.SIGTERM)

    def finish(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic) for the RIE to exit, then SIGKILL its process group and reap it."""
        pid = self.process.pid
        while not _exited(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.process.returncode is None:  # not reaped yet, so the group id is still this sandbox's
            _signal_group(pid, signal.SIGKILL)
        self.process.wait()
        _LIVE.discard(self)

    def _report(self, lines: list[str], elapsed_ms: float) -> Report:
        text = "\n".join(lines)
        request_id = next((m.group(1) for line in lines if (m := _START.match(line))), "-")
        init = _INIT_REPORT.search(text)
        done = _INVOKE_DONE.search(text)
        init_ms = float(init.group(1)) if init else None
        duration = float(done.group(1)) if done else max(0.0, elapsed_ms - (init_ms or 0.0))
        return Report(request_id, duration, init_ms, self.memory_mb, self._max_memory_used_mb())

    def _max_memory_used_mb(self) -> int:
        """Peak resident memory (VmHWM) of the runtime processes under the RIE.

        Finding them scans all of /proc, so the list is kept for ``PROCESS_RESCAN_S`` (every REPORT line needs it,
        and it was most of the local API's per-request work); a process of the list that is gone rescans at once.
        """
        found_at, pids = self._runtime_pids
        if not pids or time.monotonic() - found_at > PROCESS_RESCAN_S:
            pids = _children(self.process.pid)
            self._runtime_pids = (time.monotonic(), pids)
        peak_kb = 0
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:  # the runtime was restarted: find the new one next time
                self._runtime_pids = (0.0, [])
                continue
            match = re.search(r"VmHWM:\s+(\d+) kB", status)
            peak_kb = max(peak_kb, int(match.group(1)) if match else 0)
        return math.ceil(peak_kb / 1024)

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._changed:
                self._lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _lines_until_report(self, mark: int, wait_s: float = 2.0) -> list[str]:
        deadline = time.monotonic() + wait_s
        with self._changed:
            while not any(line.startswith("REPORT RequestId:") for line in self._lines[mark:]):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.alive:
                    break
                self._changed.wait(remaining)
            lines = self._lines[mark:]
            del self._lines[:]  # the next invocation starts a fresh log window
            return lines

    def _wait_until_listening(self) -> None:
        if wait_listening(self.port, lambda: self.alive, deadline_s=10):
            return
        if not self.alive:
            self.finish(0)
            raise RuntimeError("the Lambda RIE exited at start:\n" + "\n".join(self._lines[-20:]))
        self.stop()
        raise RuntimeError(f"the Lambda RIE did not listen on 127.0.0.1:{self.port} within 10 s")


class HostLambdaRuntime:
    """SAM's ``LambdaRuntime`` interface, running functions as warm host sandboxes instead of containers."""

    def __init__(self, python: str = sys.executable, max_sandboxes: int = 2, rie: Path | None = None) -> None:
        if rie is None:
            from .sam_cli import RIE_BINARY as rie
        self.rie = rie
        self.python = python
        self.max_sandboxes = max_sandboxes
        self.extra_env: dict[str, str] = {}
        """Set in every sandbox after the function's own environment (e.g. the local Lambda endpoint)."""
        self._idle: dict[str, list[Sandbox]] = {}
        self._count: dict[str, int] = {}
        self._all: set[Sandbox] = set()  # idle and busy: close() stops every one
        self._closed = False
        self._available = threading.Condition()
        self.last_report: Report | None = None
        self.log_sink: Callable[[str, list[str]], None] | None = None
        """Gets each invocation's log lines (function logical id, lines) before the response is handed back: CloudWatch
        Logs' place locally (``logs.LogSubscription.put`` feeds the usage aggregator from it)."""

    def invoke(self, function_config: Any, event: str, tenant_id: str | None = None, *, stdout=None, stderr=None, **_: Any):
        payload = event.encode("utf-8") if isinstance(event, str) else event
        if len(payload) > LAMBDA_SYNC_PAYLOAD_LIMIT:
            raise PayloadTooLargeError(
                f"the event is {len(payload)} bytes, over Lambda's {LAMBDA_SYNC_PAYLOAD_LIMIT} byte synchronous invoke limit"
            )
        sandbox = self._acquire(function_config)
        crashed = True
        try:
            result = sandbox.invoke(payload)
            crashed = result.crashed
        finally:
            self._release(function_config.name, sandbox, discard=crashed)
        self.last_report = result.report
        if self.log_sink is not None and result.logs:
            self.log_sink(function_config.name, result.logs)
        if stderr is not None:
            for line in [f"START RequestId: {result.report.request_id} Version: $LATEST", *result.logs,
                         f"END RequestId: {result.report.request_id}", result.report.line()]:
                stderr.write_str(line + "\n")
            stderr.flush()
        if stdout is not None:
            stdout.write_str(result.payload.decode("utf-8", "replace"))
            stdout.flush()
        return None

    def close(self) -> None:
        """Stop every sandbox, busy ones too (their invocations answer as crashed); no new one starts after."""
        with self._available:
            self._closed = True
            sandboxes = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._available.notify_all()
        for sandbox in sandboxes:  # all at once: shutdown takes one grace period, not one per sandbox
            sandbox.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for sandbox in sandboxes:
            sandbox.finish(deadline)

    @property
    def sandbox_pids(self) -> list[int]:
        """Process ids of every sandbox (RIE) process this runtime holds."""
        with self._available:
            return [sandbox.process.pid for sandbox in self._all]

    def _acquire(self, config: Any) -> Sandbox:
        with self._available:
            while True:
                if self._closed:
                    raise RuntimeError("the local runtime is shutting down; no new invocation starts")
                idle = self._idle.setdefault(config.name, [])
                while idle and not idle[-1].alive:  # a sandbox that died while idle is noticed here, not on invoke
                    dead = idle.pop()
                    dead.finish(0)  # reaps what is left of it
                    self._all.discard(dead)
                    self._count[config.name] -= 1
                if idle:
                    return idle.pop()
                if self._count.get(config.name, 0) < self.max_sandboxes:
                    self._count[config.name] = self._count.get(config.name, 0) + 1
                    break
                self._available.wait()
        try:
            sandbox = Sandbox(config, self.python, self.extra_env, rie=self.rie)
        except Exception:
            with self._available:
                self._count[config.name] -= 1
                self._available.notify()
            raise
        with self._available:
            if self._closed:
                sandbox.stop()
                raise RuntimeError("the local runtime is shutting down; no new invocation starts")
            self._all.add(sandbox)
        return sandbox

    def _release(self, name: str, sandbox: Sandbox, *, discard: bool) -> None:
        if discard or not sandbox.alive or self._closed:
            sandbox.stop()
            with self._available:
                self._all.discard(sandbox)
                self._count[name] -= 1
                self._available.notify()
            return
        with self._available:
            self._idle[name].append(sandbox)
            self._available.notify()


def _lambda_error_shape(payload: bytes) -> tuple[bytes, bool]:
    """Lambda's invoke error for a timeout or a runtime crash; crashed=True means: start a fresh sandbox."""
    text = payload.decode("utf-8", "replace")
    if text.startswith("Task timed out"):
        return json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": text}).encode(), True
    try:
        body = json.loads(text)
    except ValueError:
        return payload, False
    crashed = isinstance(body, dict) and str(body.get("errorType", "")).startswith("Runtime.")
    return payload, crashed


_LIVE: set[Sandbox] = set()
"""Every sandbox of this process not yet stopped (set operations are atomic under the GIL: no lock, so a signal
handler can read it whatever the interrupted thread was doing)."""


def wait_listening(port: int, alive: Callable[[], bool], *, deadline_s: float, interval_s: float = 0.02) -> bool:
    """True once 127.0.0.1:``port`` accepts a connection; False as soon as ``alive()`` is false or at the deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and alive():
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(interval_s)
    return False


def kill_every_sandbox() -> list[int]:
    """SIGKILL every sandbox's process group now, by pid; the pids signalled. For deadlines and exits, not for stops."""
    killed = []
    for sandbox in tuple(_LIVE):
        if sandbox.process.returncode is None:
            _signal_group(sandbox.process.pid, signal.SIGKILL)
            killed.append(sandbox.process.pid)
    return killed


atexit.register(kill_every_sandbox)  # whatever path the process leaves by, short of os._exit and SIGKILL

_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelfn-sandbox-spawner")
"""Sandboxes start from this one long-lived thread: Linux sends the parent-death signal when the *thread* that
forked a child ends, and request threads end after each request."""


def _spawn(command: list[str], **popen: Any) -> subprocess.Popen:
    """Start ``command`` in its own session, output piped, told SIGTERM when this process dies (Linux)."""
    return _SPAWNER.submit(
        subprocess.Popen, command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=_parent_death_signal(os.getpid()), **popen,
    ).result()


PR_SET_PDEATHSIG = 1


def _parent_death_signal(parent: int):
    """A ``preexec_fn`` that asks Linux for SIGTERM when ``parent`` dies (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork: the child only calls it

    def set_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return set_signal


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _exited(pid: int) -> bool:
    """True once child ``pid`` has exited, without reaping it (its pid, and so its group id, stay reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped
        return True


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid``, found by parent id in /proc/*/stat. (A task's ``children`` file lists only what
    that thread forked, so a sandbox started by a request thread that has since exited would be missed.)"""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # "pid (comm) state ppid ..."; comm may hold spaces
        parents.setdefault(ppid, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for kid in parents.get(queue.pop(), []):
            found.append(kid)
            queue.append(kid)
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
