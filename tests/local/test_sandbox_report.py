"""REPORT's Max Memory Used without a /proc scan per request: the sandbox keeps its runtime processes for a second and
finds a restarted runtime at once (issue 14 item 8)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

from modelfn_infra.local import sandbox
from modelfn_infra.local.sandbox import Sandbox


def child() -> subprocess.Popen:
    # a process that holds ~20 MB resident, so its VmHWM is well above an idle interpreter's rounding
    return subprocess.Popen([sys.executable, "-c", "import sys, time; x = bytearray(20 * 2**20); sys.stdout.write('up\\n'); "
                             "sys.stdout.flush(); time.sleep(60)"], stdout=subprocess.PIPE)


def test_runtime_processes_are_found_once_and_again_when_one_is_gone(monkeypatch):
    scans = []
    real_children = sandbox._children
    monkeypatch.setattr(sandbox, "_children", lambda pid: scans.append(pid) or real_children(pid))
    box = Sandbox.__new__(Sandbox)  # only what _max_memory_used_mb reads: no RIE is started
    box.process = SimpleNamespace(pid=os.getpid())
    box._runtime_pids = (0.0, [])
    first = child()
    try:
        assert first.stdout.readline() == b"up\n"
        assert box._max_memory_used_mb() >= 20
        assert box._max_memory_used_mb() >= 20
        assert len(scans) == 1, "the second REPORT within a second reuses the process list"
        first.kill()
        first.wait()
        second = child()
        try:
            assert second.stdout.readline() == b"up\n"
            box._max_memory_used_mb()  # the listed process is gone: forget the list
            assert box._max_memory_used_mb() >= 20 and len(scans) == 2
            box._runtime_pids = (time.monotonic() - sandbox.PROCESS_RESCAN_S - 1, box._runtime_pids[1])
            box._max_memory_used_mb()
            assert len(scans) == 3, "an old list is scanned again"
        finally:
            second.kill()
            second.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
