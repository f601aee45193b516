"""Real TensorFlow models convert, pass the parity gate and get a card that matches the ONNX model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from . import models as export_models
from .export_checks import check_version_dir

FP32_MAX_ABS_DIFF = 1e-4


def _export(model: Any, name: str, sources_dir: Path, out: Path, **kwargs: Any) -> Any:
    from modelfn_export import export_model

    path = sources_dir / f"{name}.keras"
    model.save(path)
    return export_model(str(path), name, out=out, **kwargs)


def _check_parity(card: Any) -> None:
    parity = card.parity
    assert parity["passed"] is True
    assert parity["max_abs_diff"] <= FP32_MAX_ABS_DIFF
    assert parity["samples"] == "generated" and parity["batch_sizes"] == [1, 32]
    assert set(parity["per_output"]) == {o.name for o in card.outputs}


def test_digits_mlp(digits_export: tuple[Any, Path], digits: dict[str, Any]) -> None:
    card, out = digits_export
    on_disk = check_version_dir(out / "digits" / "1")
    assert on_disk == card
    assert [(s.name, s.datatype, s.shape) for s in card.inputs] == [("pixels", "FP32", [-1, 64])]
    assert [(s.name, s.datatype, s.shape) for s in card.outputs] == [("probs", "FP32", [-1, 10])]
    _check_parity(card)
    assert card.parity["top1_agreement"] == 1.0
    assert card.opset == 17
    assert card.optimization["level"] == "basic"
    assert card.quantization == {"mode": "none"}
    assert set(card.producers) >= {"tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime"}
    assert card.source["kind"] == "keras" and card.source["location"].endswith("digits.keras")
    assert "4,810 params" in card.source["description"]

    # the artifact classifies real digits as well as the Keras model does
    from modelfn_export.parity import run_onnx

    probs = run_onnx(out / "digits" / "1" / "model.onnx", [{"pixels": digits["x_test"]}])[0]["probs"]
    keras_probs = digits["model"].predict(digits["x_test"], verbose=0)
    assert np.abs(probs - keras_probs).max() <= FP32_MAX_ABS_DIFF
    assert (probs.argmax(1) == digits["y_test"]).mean() > 0.9


def test_small_cnn(sources_dir: Path, tmp_path: Path) -> None:
    model, _ = export_models.build_digits_cnn()
    card = _export(model, "digits-cnn", sources_dir, tmp_path)
    check_version_dir(tmp_path / "digits-cnn" / "1")
    assert [(s.name, s.datatype, s.shape) for s in card.inputs] == [("image", "FP32", [-1, 8, 8, 1])]
    assert [(s.name, s.shape) for s in card.outputs] == [("probs", [-1, 10])]
    _check_parity(card)


@pytest.mark.parametrize("dict_io", [False, True], ids=["list-io", "dict-io"])
def test_two_named_inputs_and_outputs(dict_io: bool, sources_dir: Path, tmp_path: Path) -> None:
    name = "two-dict" if dict_io else "two"
    card = _export(export_models.build_two_io(dict_io), name, sources_dir, tmp_path)
    check_version_dir(tmp_path / name / "1")
    assert {(s.name, s.datatype, tuple(s.shape)) for s in card.inputs} == {
        ("features", "FP32", (-1, 8)),
        ("extra", "FP32", (-1, 3)),
    }
    assert {(s.name, s.datatype, tuple(s.shape)) for s in card.outputs} == {
        ("label", "FP32", (-1, 4)),
        ("score", "FP32", (-1, 1)),
    }
    _check_parity(card)
    # only the classifier-like output gets a top-1 figure
    assert "top1_agreement" in card.parity["per_output"]["label"]
    assert "top1_agreement" not in card.parity["per_output"]["score"]
    assert "2 inputs, 2 outputs" in card.source["description"]


def test_in_memory_model(tmp_path: Path) -> None:
    from modelfn_export import export_model

    card = export_model(export_models.build_two_io(), "in-memory", out=tmp_path)
    check_version_dir(tmp_path / "in-memory" / "1")
    assert card.source["location"] == "<in-memory model 'two_io'>"


def test_int64_embedding_input(sources_dir: Path, tmp_path: Path) -> None:
    from modelfn_export.parity import generate_samples
    from modelfn_export.sources import load_source

    model = export_models.build_embedding(vocab=50)
    card = _export(model, "embedding", sources_dir, tmp_path)
    check_version_dir(tmp_path / "embedding" / "1")
    assert [(s.name, s.datatype, s.shape) for s in card.inputs] == [("tokens", "INT64", [-1, 6])]
    _check_parity(card)

    # generated ids cover the Embedding's whole vocabulary range, and never leave it
    loaded = load_source(model)
    assert loaded.inputs[0].int_range == (0, 50)
    ids = np.concatenate([b["tokens"].ravel() for b in generate_samples(loaded.inputs)])
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 50 and ids.max() >= 10


@pytest.mark.slow
def test_mobilenet_v2(sources_dir: Path, tmp_path: Path) -> None:
    model = export_models.build_mobilenet(size=96, classes=10)
    card = _export(model, "mobilenet", sources_dir, tmp_path)
    check_version_dir(tmp_path / "mobilenet" / "1")
    assert [(s.datatype, s.shape) for s in card.inputs] == [("FP32", [-1, 96, 96, 3])]
    assert [(s.name, s.shape) for s in card.outputs] == [("predictions", [-1, 10])]
    _check_parity(card)
    assert card.parity["top1_agreement"] == 1.0
    assert card.artifact.bytes > 1_000_000
    # calibrated, so parity compares informative outputs (not a constant uniform softmax)
    assert card.parity["max_abs_diff"] > 0


def test_opset_is_recorded(digits: dict[str, Any], tmp_path: Path) -> None:
    from modelfn_export import export_model

    card = export_model(str(digits["path"]), "digits", out=tmp_path, opset=13)
    assert card.opset == 13
    check_version_dir(tmp_path / "digits" / "1")
