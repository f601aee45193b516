from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from modelfn_infra.catalog import Catalog, ModelEntry, dump_template, render_template
from modelfn_infra.local.commands import LocalApp
from modelfn_infra.local.sandbox import _children

from ..conftest import REPO, descendants
from ..runtime.toy_model import write_toy_model

CRASH_APP = '''
import os
import time

def lambda_handler(event, context):
    if event.get("path", "").endswith("/crash"):
        os._exit(1)
    if event.get("path", "").endswith("/sleep"):
        time.sleep(10)
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": str(os.getpid())}
'''


@pytest.fixture(scope="session")
def toy_store(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("toy-store")
    write_toy_model(store / "toy" / "1")
    return store


@pytest.fixture(scope="session")
def api_template(tmp_path_factory) -> Path:
    """The rendered template for a catalog of digits and toy, plus a function that can crash on purpose."""
    directory = tmp_path_factory.mktemp("app")
    catalog = Catalog([ModelEntry("digits", "1", memory_mb=512), ModelEntry("toy", "1", memory_mb=256)])
    template = render_template(catalog, code_uri=str(REPO / "functions" / "inference"))
    crash_code = directory / "crash"
    crash_code.mkdir()
    (crash_code / "app.py").write_text(CRASH_APP)
    template["Resources"]["CrashFunction"] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "CodeUri": str(crash_code),
            "Timeout": 2,
            "Events": {"Crash": {"Type": "Api", "Properties": {"RestApiId": {"Ref": "ModelApi"}, "Path": "/test/{proxy+}", "Method": "GET"}}},
        },
    }
    path = directory / "template.yaml"
    path.write_text(dump_template(template))
    return path


@pytest.fixture(scope="session")
def local_env(digits_store, toy_store) -> dict:
    return {
        "DigitsFunction": {"MODEL_URI": str(digits_store / "digits" / "1")},
        "ToyFunction": {"MODEL_URI": str(toy_store / "toy" / "1")},
        "ServerFunction": {"MODELFN_CARD_URIS": f"{digits_store / 'digits' / '1'},{toy_store / 'toy' / '1'}"},
    }


@pytest.fixture(scope="module")
def local_app(api_template, local_env, tmp_path_factory):
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    log = (tmp_path_factory.mktemp("logs") / "functions.log").open("w")
    with LocalApp(api_template, env_vars=local_env, parameter_overrides={"ModelBucket": "unused"}, log_stream=log) as app:
        app.log_path = Path(log.name)
        yield app
    log.close()


@pytest.fixture(scope="module")
def api(local_app):
    server = local_app.serve_api(port=0, api_keys=False)  # protocol conformance; keys: test_api_keys.py
    yield server
    server.stop()


def read_json(response) -> dict:
    return json.loads(response.read())


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie left for init to reap counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@contextmanager
def start_api(*args: str, cwd: Path = REPO, prefix: tuple[str, ...] = (), **popen) -> Iterator[subprocess.Popen]:
    """``modelfn local start-api ARGS`` as a child process (``prefix``: a command to run it under). However the test
    ends, passing or failing, start-api and every sandbox it started are stopped when the block is left."""
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL, "text": True, **popen}
    process = subprocess.Popen([*prefix, sys.executable, "-m", "modelfn_infra.cli", "local", "start-api", *args], cwd=cwd, **popen)
    try:
        yield process
    finally:
        stop_tree(process)


def stop_tree(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM ``process`` (SIGKILL after ``timeout``), then SIGKILL whatever it started that is still alive."""
    started = set(_children(process.pid))
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    ours = descendants(os.getpid())  # orphans are re-parented to pytest (tests/conftest.py): still ours to stop
    for pid in started & set(ours):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if process.stdout is not None:
        process.stdout.close()
