"""`modelfn local` with no arguments serves the project's model store; a missing model is one clear line
before any request; `local invoke` fails loudly; relative paths resolve against the project root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from modelfn_infra.catalog import Catalog, ModelEntry, dump_template, render_template
from modelfn_infra.local.commands import LocalApp
from modelfn_infra.local.sandbox import free_port

from ..conftest import REPO
from .conftest import start_api

pytestmark = pytest.mark.slow


def make_project(root: Path, digits_store: Path | None) -> Path:
    """A project directory as a user has it: template.yaml, events/, and (maybe) models/digits/1."""
    root.mkdir(parents=True, exist_ok=True)
    plans = Catalog.read(REPO / "infra" / "catalog.yaml").plans  # a project's catalog has its usage plans
    catalog = Catalog([ModelEntry("digits", "1", memory_mb=512)], plans=plans)
    template = render_template(catalog, code_uri=str(REPO / "functions" / "inference"))
    (root / "template.yaml").write_text(dump_template(template))
    shutil.copytree(REPO / "events", root / "events", dirs_exist_ok=True)
    if digits_store is not None:
        shutil.copytree(digits_store / "digits" / "1", root / "models" / "digits" / "1")
    return root


def modelfn(project: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelfn_infra.cli", *args], cwd=project, capture_output=True, text=True,
                          timeout=timeout)


def test_local_invoke_with_no_arguments_serves_the_local_store(tmp_path, digits_store):
    project = make_project(tmp_path / "project", digits_store)
    result = modelfn(project, "local", "invoke", "DigitsFunction", "-e", "events/rest-tfserving-predict.json")
    assert result.returncode == 0, result.stderr
    assert f"serving models from the local store {project / 'models'}" in result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == 200 and len(json.loads(response["body"])["predictions"][0]) == 10


def test_missing_model_is_one_clear_line_before_any_request(tmp_path):
    project = make_project(tmp_path / "project", None)
    for args in (["local", "invoke", "DigitsFunction", "-e", "events/direct-infer.json"],
                 ["local", "start-api", "--port", str(free_port())]):
        result = modelfn(project, *args)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1, result.stderr
        assert "model digits/1" in errors[0] and str(project / "models" / "digits" / "1") in errors[0]
        assert "modelfn export SOURCE --name digits --version 1" in errors[0] and "Traceback" not in result.stderr


def test_local_invoke_exits_non_zero_when_the_function_fails(tmp_path, digits_store):
    project = make_project(tmp_path / "project", digits_store)
    (project / "models" / "digits" / "1" / "model.onnx").write_bytes(b"not an onnx model")
    result = modelfn(project, "local", "invoke", "DigitsFunction", "-e", "events/direct-infer.json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: DigitsFunction failed: ")


def test_relative_paths_in_env_vars_resolve_against_the_project_root(tmp_path, digits_store):
    project = make_project(tmp_path / "project", digits_store)
    env = {"DigitsFunction": {"MODEL_URI": "models/digits/1"}, "ServerFunction": {"MODELFN_CARD_URIS": "models/digits/1"}}
    with LocalApp(project / "template.yaml", env_vars=env, parameter_overrides={"ModelBucket": "unused"},
                  log_stream=open(os.devnull, "w")) as app:
        assert app.env_vars["DigitsFunction"]["MODEL_URI"] == str(project / "models" / "digits" / "1")
        assert app.env_vars["ServerFunction"]["MODELFN_CARD_URIS"] == str(project / "models" / "digits" / "1")
        response = app.invoke("DigitsFunction", json.loads((project / "events" / "direct-infer.json").read_text()))
    assert response["model_name"] == "digits"


def _printed_key(log) -> str | None:
    """The key of the ``dev`` tenant start-api creates in a fresh project (printed once)."""
    for line in log.read_text().splitlines():
        if "its API key, shown once: " in line:
            return line.rsplit(": ", 1)[1].strip()
    return None


def test_start_api_with_no_arguments_serves_the_model_the_playground_and_openapi(tmp_path, digits_store):
    project = make_project(tmp_path / "project", digits_store)
    port = free_port()
    log = (tmp_path / "start-api.log").open("w")
    base = f"http://127.0.0.1:{port}"
    with start_api("--port", str(port), "--idle-shutdown", "20", cwd=project, stdout=log, stderr=subprocess.STDOUT) as process, log:
        deadline = time.monotonic() + 60
        key = None
        while True:
            try:
                key = key or _printed_key(tmp_path / "start-api.log")
                headers = {"x-api-key": key} if key else {}
                with urllib.request.urlopen(urllib.request.Request(f"{base}/v2/models/digits/ready", headers=headers), timeout=30) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "start-api.log").read_text()
                time.sleep(0.3)
        body = json.dumps({"instances": [[0.0] * 64]}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"{base}/v1/models/digits:predict", data=body, headers=headers), timeout=30) as response:
            assert len(json.load(response)["predictions"][0]) == 10
        with urllib.request.urlopen(urllib.request.Request(base + "/", headers={"Accept": "text/html"}), timeout=30) as response:
            assert '"name":"digits"' in response.read().decode()
        with urllib.request.urlopen(urllib.request.Request(base + "/openapi.json", headers=headers), timeout=30) as response:
            assert "/v2/models/digits/infer" in json.load(response)["paths"]
    assert "serving models from the local store" in (tmp_path / "start-api.log").read_text()
