"""`modelfn evaluate` through the local API: metrics equal what onnxruntime gives on the same test set,
TensorFlow agreement from the card's source, the confusion-matrix PNG, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from modelfn_infra.digits import held_out
from modelfn_infra.evaluate import evaluate

from ..conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def test_set(tmp_path_factory):
    x_test, y_test = held_out()
    path = tmp_path_factory.mktemp("data") / "digits-test.npz"
    np.savez(path, x=x_test, y=y_test)
    return path, x_test, y_test


def test_metrics_match_onnxruntime_and_tensorflow(api, digits_store, test_set):
    from sklearn.metrics import f1_score

    _, x_test, y_test = test_set
    result = evaluate("digits", {"pixels": x_test}, y_test, api.url, batch_size=64, store=digits_store)
    session = ort.InferenceSession(str(digits_store / "digits" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"pixels": x_test})[0].argmax(1)
    np.testing.assert_array_equal(result.predictions, expected)
    assert result.accuracy == pytest.approx(float((expected == y_test).mean())) and result.accuracy > 0.9
    np.testing.assert_allclose(result.f1, f1_score(y_test, expected, average=None))
    assert result.confusion.sum() == len(y_test) and np.trace(result.confusion) == int((expected == y_test).sum())
    assert len(result.latency_ms) == int(np.ceil(len(y_test) / 64)) and (result.latency_ms > 0).all()
    assert result.tf_agreement is not None and result.tf_agreement > 0.98, result.tf_note
    summary = result.summary()
    assert f"accuracy          {result.accuracy:.4f}" in summary and "confusion matrix" in summary and "p99" in summary


def test_cli_reports_and_plots(api, test_set, tmp_path):
    path, _, _ = test_set
    plot = tmp_path / "confusion.png"
    result = subprocess.run([sys.executable, "-m", "modelfn_infra.cli", "evaluate", "digits", "--data", str(path), "--endpoint", api.url,
                             "--plot", str(plot), "--no-tf"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "TF agreement      n/a (not asked for)" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000


@pytest.mark.parametrize("args, message", [
    (["--labels", "nope"], "has no labels key 'nope'"),
    (["--endpoint", "http://127.0.0.1:9"], "cannot reach http://127.0.0.1:9"),
])
def test_cli_errors_are_one_line(api, test_set, args, message):
    path, _, _ = test_set
    command = [sys.executable, "-m", "modelfn_infra.cli", "evaluate", "digits", "--data", str(path), "--endpoint", api.url, *args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
