"""The shutdown deadline (modelfn_infra.local.shutdown): a stop that hangs, or a second signal, kills every sandbox
by pid and exits 1 at once, whatever the main thread is stuck in."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from .conftest import alive

pytestmark = pytest.mark.slow

APP = '''
def lambda_handler(event, context):
    return {}
'''

# One sandbox, then a main thread that never finishes stopping (as a stuck request or join would).
HANGING_COMMAND = '''
import sys, time
from pathlib import Path
from types import SimpleNamespace
from modelfn_infra.local.sam_cli import RIE_BINARY
from modelfn_infra.local.sandbox import Sandbox
from modelfn_infra.local.shutdown import stop_on_signals

stop_on_signals(deadline_s=float(sys.argv[2]))
config = SimpleNamespace(name="F", handler="app.lambda_handler", memory=128, timeout=30, code_abs_path=Path(sys.argv[1]),
                         env_vars=SimpleNamespace(resolve=dict))
sandbox = Sandbox(config, sys.executable, rie=RIE_BINARY)
try:  # the pid is printed inside the try: a signal the test sends once it read it must land in here
    print(sandbox.process.pid, flush=True)
    time.sleep(600)
except KeyboardInterrupt:
    print("stopping", flush=True)
    time.sleep(600)
'''


def _hanging(tmp_path, deadline_s: float) -> tuple[subprocess.Popen, int]:
    (tmp_path / "app.py").write_text(APP)
    command = subprocess.Popen([sys.executable, "-c", HANGING_COMMAND, str(tmp_path), str(deadline_s)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return command, int(command.stdout.readline())


def test_a_stop_that_hangs_is_ended_at_the_deadline_with_every_sandbox_killed(tmp_path):
    command, sandbox = _hanging(tmp_path, deadline_s=2)
    try:
        command.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert command.wait(timeout=30) == 1
        assert time.monotonic() - started < 15
        assert f"still stopping 2 s after SIGTERM: killed 1 sandbox(es) [{sandbox}]" in command.stderr.read()
        assert not alive(sandbox)
    finally:
        command.kill()
        command.wait()


def test_a_second_signal_while_stopping_exits_at_once(tmp_path):
    command, sandbox = _hanging(tmp_path, deadline_s=600)
    try:
        command.send_signal(signal.SIGINT)
        assert command.stdout.readline() == "stopping\n"
        command.send_signal(signal.SIGINT)
        assert command.wait(timeout=30) == 1
        assert "SIGINT again while stopping: killed 1 sandbox(es)" in command.stderr.read()
        assert not alive(sandbox)
    finally:
        command.kill()
        command.wait()
