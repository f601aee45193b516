"""No test run, passing or failing, leaves a sandbox or a server behind (issue 18).

An inner pytest session runs two failing tests: one starts start-api through the ``start_api`` helper (it must
clean up although the test fails), one starts start-api bare and leaks it. The session-end check of
tests/conftest.py must name the leak, kill it, and fail the run; afterwards nothing either test started runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ..conftest import REPO
from .conftest import alive

pytestmark = pytest.mark.slow

APP = '''
def lambda_handler(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "hello"}
'''

TEMPLATE = '''
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  HelloFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: hello
      Handler: app.lambda_handler
      Runtime: python3.12
      Events:
        Hello:
          Type: Api
          Properties: {Path: /hello, Method: GET}
'''

INNER_TESTS = '''
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from modelfn_infra.local.sandbox import _children
from tests.local.conftest import start_api

ARGS = ["--port", "0", "--template", "template.yaml", "--no-api-keys", "--idle-shutdown", "600"]


def _warm(cli, record):
    url = next(line.split()[3] for line in cli.stdout if line.startswith("API listening on "))
    with urllib.request.urlopen(url + "/hello", timeout=60) as response:
        assert response.read() == b"hello"
    Path(record).write_text(json.dumps([cli.pid, *_children(cli.pid)]))


def test_fails_with_start_api_from_the_helper():
    with start_api(*ARGS, cwd=Path.cwd()) as cli:
        _warm(cli, "helper.json")
        assert False, "fails on purpose, start-api and its sandbox running"


def test_fails_and_leaks_a_bare_start_api():
    cli = subprocess.Popen([sys.executable, "-m", "modelfn_infra.cli", "local", "start-api", *ARGS],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _warm(cli, "leaked.json")
    assert False, "fails on purpose, and nothing stops start-api"
'''


def test_a_failing_run_leaves_nothing_running_and_a_leak_fails_the_session(tmp_path):
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "app.py").write_text(APP)
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_sessionfinish  # noqa: F401 (the check)\n")
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "MODELFN_LEFTOVER_GRACE_S": "2"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "2 failed" in output and "left running by the suite, killed now" in output, output
    helper = json.loads((tmp_path / "helper.json").read_text())
    leaked = json.loads((tmp_path / "leaked.json").read_text())
    assert len(helper) >= 2 and len(leaked) >= 2, "each start-api ran a sandbox"
    named = {int(line.split()[2].rstrip(":")) for line in output.splitlines() if line.startswith("error: pid ")}
    assert leaked[0] in named, output  # the bare start-api: named and killed
    assert not named & set(helper), output  # the helper's: stopped before the check looked
    assert [pid for pid in helper + leaked if alive(pid)] == []
