"""The `modelfn` entry point and `make demo`'s job, as a user runs them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ..conftest import REPO


def modelfn(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelfn_infra.cli", *args], cwd=REPO, capture_output=True, text=True, **kwargs)


def test_help_lists_every_command_without_importing_tensorflow():
    result = modelfn("--help")
    assert result.returncode == 0
    for command in ("export", "push", "template", "local"):
        assert command in result.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, modelfn_infra.cli as c; c.build_parser(); print('tensorflow' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip() == "False"


def test_export_errors_are_one_line_through_the_main_cli(tmp_path):
    result = modelfn("export", "modelfn_infra.digits:build_model", "--name", "digits", "--opset", "19", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "opset 19 is not supported" in result.stderr
    assert not any(tmp_path.iterdir())


def test_push_without_an_export_names_the_fix(tmp_path):
    result = modelfn("push", "digits/1", "--bucket", "b", "--store", str(tmp_path))
    assert result.returncode != 0 and "Traceback" not in result.stderr and "export" in result.stderr


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    result = subprocess.run([sys.executable, "-m", "modelfn_infra.demo", "--store", str(tmp_path / "models")],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "demo finished" in result.stdout
    assert "predictions == onnxruntime (TF Serving)   True" in result.stdout
    assert (tmp_path / "models" / "digits" / "1" / "modelcard.json").is_file()


@pytest.mark.slow
def test_demo_events_runs_end_to_end(digits_store):
    result = subprocess.run([sys.executable, "-m", "modelfn_infra.demo_events", "--store", str(digits_store)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "demo-events finished" in result.stdout and "FAILED" not in result.stdout
    assert "held-out.npy == onnxruntime               ok" in result.stdout
