"""Fixtures shared by the suites: fake AWS credentials and one exported digits model per session; and a check at
session end that the run left no sandbox or server behind."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SECURITY_TOKEN="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    SAM_CLI_TELEMETRY="0",
)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def digits_store(tmp_path_factory) -> Path:
    """A model store holding digits/1, trained and exported through the real export pipeline."""
    from modelfn_export import export_model

    store = tmp_path_factory.mktemp("models")
    export_model("modelfn_infra.digits:build_model", "digits", version="1", out=str(store))
    return store


# --- no test run, passing or failing, leaves a sandbox or a server behind ------------------------------------------
#
# The pytest process becomes the "child subreaper" of everything the suite starts (Linux): a process whose parent
# dies is re-parented to pytest instead of init, so whatever a test left behind is still a descendant of this
# process at the end, found without guessing by name and without touching anything the suite did not start.
# At session end: a Lambda RIE or runtime, a modelfn command, or any process listening on a TCP port that is still
# alive after LEFTOVER_GRACE_S fails the run; every leftover (those and any other) is killed by pid and named.

PR_SET_CHILD_SUBREAPER = 36
LEFTOVER_GRACE_S = float(os.environ.get("MODELFN_LEFTOVER_GRACE_S", "10"))
OURS = ("aws-lambda-rie", "awslambdaric", "modelfn_infra", "modelfn ")


def _adopt_orphans() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


ADOPTING = _adopt_orphans()


def descendants(root: int) -> dict[int, str]:
    """Every live (non-zombie) descendant of ``root``, by pid, with its command line."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                state, ppid = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:2]
            except (OSError, ValueError):
                continue
            if state != "Z":
                parents.setdefault(int(ppid), []).append(int(entry))
    found: dict[int, str] = {}
    queue = [root]
    while queue:
        for pid in parents.get(queue.pop(), []):
            found[pid] = _command(pid)
            queue.append(pid)
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return "?"


def _listening_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A":  # TCP_LISTEN
                inodes.add(fields[9])
    return inodes


def _listens(pid: int, listening: set[str]) -> bool:
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(link.startswith("socket:[") and link[8:-1] in listening for link in links)


def leftovers(grace_s: float = LEFTOVER_GRACE_S) -> tuple[dict[int, str], dict[int, str]]:
    """(sandboxes and servers, other processes) the suite started that are still alive after ``grace_s``."""
    deadline = time.monotonic() + grace_s
    while (found := descendants(os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.2)
    listening = _listening_inodes()
    serious = {pid: command for pid, command in found.items() if any(mark in command for mark in OURS) or _listens(pid, listening)}
    return serious, {pid: command for pid, command in found.items() if pid not in serious}


def pytest_sessionfinish(session):
    if not ADOPTING:
        return
    serious, others = leftovers()
    found = {**serious, **others}
    if not found:
        return
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)  # a descendant of this process: one the suite started
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in found) and time.monotonic() < deadline:
        for pid in found:  # orphans are this process's children now: reap them, or they stay zombies
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.1)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "left running by the suite, killed now", red=bool(serious), yellow=not serious)
        for pid, command in found.items():
            kind = "error" if pid in serious else "warning"
            reporter.write_line(f"{kind}: pid {pid}: {command[:300]}")
    if serious:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
