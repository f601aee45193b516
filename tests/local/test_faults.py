"""Fault runs against the local runtime: a runtime process killed mid-invoke, and shutdown by signal (issue 9)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request

import pytest

from modelfn_infra.local.sandbox import _children

from .conftest import alive, start_api

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


SHUTDOWNS = {
    "SIGTERM": (signal.SIGTERM, ()),
    "SIGINT": (signal.SIGINT, ()),
    # what a background job of a non-interactive shell (`make test &`, CI runners) inherits: Python then never raises
    # KeyboardInterrupt for SIGINT by itself, and start-api used to ignore `kill -INT` (issue 18)
    "SIGINT-inherited-ignored": (signal.SIGINT, ("sh", "-c", 'trap "" INT; exec "$@"', "sh")),
}


def _serving(api_template, local_env, tmp_path, prefix=()):
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps(local_env))
    return start_api("--port", "0", "--template", str(api_template), "--env-vars", str(env_file),
                     "--parameter-overrides", "ModelBucket=unused", "--idle-shutdown", "120",
                     "--no-api-keys",  # this test is about stopping sandboxes; keys are tests/local/test_api_keys.py's
                     prefix=prefix)


def _warm(cli) -> list[int]:
    """Wait for start-api to listen, make one request, and return its sandboxes' pids."""
    url = None
    deadline = time.monotonic() + 180  # a bound, not a target: starting is slow on a loaded machine, and not the subject
    while url is None and time.monotonic() < deadline:
        line = cli.stdout.readline()
        if line.startswith("API listening on "):
            url = line.split()[3]
        assert line or cli.poll() is None, "start-api exited before it listened"
    assert url, "start-api did not come up"
    with urllib.request.urlopen(url + "/v2/models/toy/ready", timeout=30) as response:
        assert response.status == 200
    sandboxes = _children(cli.pid)
    assert sandboxes, "a warm sandbox runs after the first request"
    return sandboxes


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


@pytest.mark.parametrize("how", list(SHUTDOWNS))
def test_start_api_stops_every_sandbox_on_sigterm_and_sigint(api_template, local_env, tmp_path, how, record_property):
    signum, prefix = SHUTDOWNS[how]
    with _serving(api_template, local_env, tmp_path, prefix) as cli:
        sandboxes = _warm(cli)
        cli.send_signal(signum)  # with a prefix, sh has exec'd start-api: same pid
        started = time.monotonic()
        # 0: a clean stop; the deadline (15 s) would end a stuck one with 1, so 30 s only bounds the test itself
        assert cli.wait(timeout=30) == 0
        record_property("shutdown_s", round(time.monotonic() - started, 3))
        assert _gone_within(sandboxes, 5) == []


def test_a_start_api_killed_outright_leaves_no_sandbox(api_template, local_env, tmp_path):
    """SIGKILL runs no cleanup: the kernel's parent-death signal stops the sandboxes (their RIE stops its runtime)."""
    with _serving(api_template, local_env, tmp_path) as cli:
        sandboxes = _warm(cli)
        runtimes = [pid for sandbox in sandboxes for pid in _children(sandbox)]
        cli.kill()
        cli.wait(timeout=20)
        assert _gone_within(sandboxes + runtimes, 10) == []
