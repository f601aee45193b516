"""Fault runs against the local runtime: a runtime process killed mid-invoke, and shutdown by signal (issue 9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from modelfn_infra.local.sandbox import _children

from ..conftest import REPO
from .conftest import alive

pytestmark = pytest.mark.slow


def test_a_killed_runtime_is_noticed_at_once_and_the_next_request_succeeds(local_app):
    local_app.invoke("CrashFunction", {"path": "/test/pid"})
    sandbox = local_app.runtime._idle["CrashFunction"][-1]
    runtime_pids = _children(sandbox.process.pid)
    assert runtime_pids, "the runtime process runs under the RIE"
    answer: dict = {}

    def slow_request():
        started = time.monotonic()
        answer["response"] = local_app.invoke("CrashFunction", {"path": "/test/sleep"})
        answer["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.3)
    for pid in runtime_pids:
        os.kill(pid, signal.SIGKILL)
    thread.join(timeout=30)
    assert answer["response"]["errorType"].startswith("Runtime.")
    assert answer["seconds"] < 1.5, f"took {answer['seconds']:.2f} s: the crash waited for a deadline (function timeout 2 s)"
    assert local_app.invoke("CrashFunction", {"path": "/test/pid"})["statusCode"] == 200


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_start_api_stops_every_sandbox_on_sigterm_and_sigint(api_template, local_env, tmp_path, signum):
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps(local_env))
    cli = subprocess.Popen(
        [sys.executable, "-m", "modelfn_infra.cli", "local", "start-api", "--port", "0", "--template", str(api_template),
         "--env-vars", str(env_file), "--parameter-overrides", "ModelBucket=unused", "--idle-shutdown", "120",
         "--no-api-keys"],  # this test is about stopping sandboxes; keys are tests/local/test_api_keys.py's
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = cli.stdout.readline()
            if line.startswith("API listening on "):
                url = line.split()[3]
        assert url, "start-api did not come up"
        with urllib.request.urlopen(url + "/v2/models/toy/ready", timeout=30) as response:
            assert response.status == 200
        sandboxes = _children(cli.pid)
        assert sandboxes, "a warm sandbox runs after the first request"
        cli.send_signal(signum)
        assert cli.wait(timeout=20) == 0
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in sandboxes) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in sandboxes if alive(pid)] == []
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
