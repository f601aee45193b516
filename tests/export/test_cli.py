"""``python -m modelfn_export`` end to end in subprocesses, and the parser-registration functions."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .export_checks import check_version_dir


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MODELFN_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "modelfn_export", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line on stderr; asserts there is exactly one and no traceback."""
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == errors[0]
    return errors[0]


def test_help_is_instant_and_import_is_cheap(tmp_path: Path) -> None:
    started = time.perf_counter()
    result = run_cli("export", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "--quantize {none,int8,int8-static,dynamic,static}" in result.stdout
    assert "--allow-uninformative-parity" in result.stdout
    assert time.perf_counter() - started < 5
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, modelfn_export, modelfn_export.cli; "
         "from modelfn_export import ExportError, ModelCard; print('tensorflow' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip() == "False"


def test_bad_opset(tmp_path: Path) -> None:
    result = run_cli("export", "digits.keras", "--name", "digits", "--opset", "19", "--out", "store", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "error: opset 19 is not supported — use 13–18 (default 17)\n"
    assert not (tmp_path / "store").exists()


def test_missing_source(tmp_path: Path) -> None:
    result = run_cli("export", "x.keras", "--name", "digits", "--out", "store", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "error: source 'x.keras' does not exist — pass a .keras file, a SavedModel directory, "
        "or package.module:function\n"
    )
    assert not (tmp_path / "store").exists()


def test_usage_error_is_one_line(tmp_path: Path) -> None:
    result = run_cli("export", "x.keras", cwd=tmp_path)
    assert result.returncode == 2
    assert error_line(result).startswith("error: the following arguments are required: --name")


def test_tolerance_exceeded(digits: dict[str, Any], tmp_path: Path) -> None:
    result = run_cli(
        "export", str(digits["path"]), "--name", "digits", "--atol", "0", "--rtol", "0",
        "--samples", str(digits["samples"]), "--out", "store", cwd=tmp_path,
    )  # 360 real rows: TF (oneDNN) and ORT (MLAS) never agree bit for bit on all of them
    assert result.returncode == 1
    line = error_line(result)
    assert line.startswith("error: parity failed: output 'probs' differs by up to ")
    assert "rtol=0 atol=0 — " in line
    # stderr holds only timed progress lines and the error: TensorFlow's native start-up chatter is filtered
    assert [l for l in result.stderr.splitlines() if not l.startswith("[")] == [line]
    assert result.stdout == ""
    assert not (tmp_path / "store").exists()


def test_export_success(digits: dict[str, Any], tmp_path: Path) -> None:
    result = run_cli(
        "export", str(digits["path"]), "--name", "digits", "--quantize", "dynamic",
        "--samples", str(digits["samples"]), "--out", "store", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for step in ("importing TensorFlow", "loading keras source", "converting to ONNX", "checking parity",
                 "optimizing", "quantizing"):
        assert f"{step}" in result.stderr, step
    assert "done in" in result.stderr
    table = dict(line.split(None, 1) for line in result.stdout.splitlines() if line and not line.startswith("top-1"))
    assert table["name"] == "digits" and table["version"] == "1"
    assert table["path"] == os.path.join("store", "digits", "1", "model.onnx")
    assert table["opset"] == "17"
    assert table["input"] == "pixels  FP32  [-1, 64]" and table["output"] == "probs  FP32  [-1, 10]"
    assert table["parity"].startswith("max abs diff ")
    assert table["quantization"].startswith("int8 QInt8: agreement ")
    assert "top-1 agreement" in result.stdout
    assert "int8 vs fp32 on this CPU (" in result.stderr  # the measured speedup is reported, and summarised
    assert re.search(r"^int8 speedup +batch 1 \d+\.\d\dx, batch \d+ \d+\.\d\dx vs fp32 on this CPU", result.stdout, re.M)
    card = check_version_dir(tmp_path / "store" / "digits" / "1")
    assert json.loads((tmp_path / "store" / "digits" / "1" / "modelcard.json").read_text())["quantization"]["mode"] == "int8"  # dynamic is the alias
    assert card.parity["samples"] == "x_test.npy"


def test_registers_on_a_foreign_parser() -> None:
    from modelfn_export.cli import add_export_parser, add_push_parser, run_export, run_push

    parser = argparse.ArgumentParser(prog="modelfn")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_export_parser(subparsers)
    add_push_parser(subparsers)
    args = parser.parse_args(["export", "m.keras", "--name", "m", "--opset", "15", "--force-quantized"])
    assert args.func is run_export and args.opset == 15 and args.force_quantized and args.out == "models"
    args = parser.parse_args(["push", "m/2", "--bucket", "b"])
    assert args.func is run_push and args.ref == "m/2" and args.prefix == "" and args.store == "models"


def test_func_returns_exit_code_without_raising(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from modelfn_export.cli import build_parser

    args = build_parser().parse_args(["export", str(tmp_path / "nope.keras"), "--name", "Bad_Name"])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model name 'Bad_Name' is invalid — ") and err.count("\n") == 1


def test_uninformative_parity_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A model whose output ignores its input is refused (exit 1); the flag writes it and says so."""
    import keras
    import numpy as np

    from modelfn_export.cli import build_parser

    inputs = keras.Input((3,), name="x")
    layer = keras.layers.Dense(2, name="y")
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.zeros((3, 2), np.float32), np.array([1.0, -1.0], np.float32)])  # constant output
    model.save(tmp_path / "constant.keras")
    argv = ["export", str(tmp_path / "constant.keras"), "--name", "constant", "--out", str(tmp_path / "store")]

    args = build_parser().parse_args(argv)
    assert args.func(args) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: parity evidence is uninformative (generated samples): output 'y': it varies by at most 0")
    assert err.endswith("or accept it with --allow-uninformative-parity")
    assert not (tmp_path / "store").exists()

    args = build_parser().parse_args([*argv, "--allow-uninformative-parity"])
    assert args.func(args) == 0 and args.allow_uninformative_parity
    captured = capsys.readouterr()
    assert "evidence         UNINFORMATIVE: outputs barely depend on the samples" in captured.out
    assert "WARNING: parity evidence is uninformative" in captured.err
    card = check_version_dir(tmp_path / "store" / "constant" / "1")
    assert card.parity["informative"] is False and card.parity["uninformative_allowed"] is True
