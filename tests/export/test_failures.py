"""Failures: one-line errors naming the problem and the fix, and no partial output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelfn_export import ExportError, export_model

from . import models as export_models


def test_unconvertible_op_is_named(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_model(export_models.build_py_function_model(), "py", out=tmp_path / "store")
    message = str(info.value)
    assert message.startswith("TensorFlow op 'EagerPyFunc' (node ")
    assert "doubler" in message  # the node path names the offending layer
    assert "has no ONNX conversion in tf2onnx 1.17 — replace the layer that uses it" in message
    assert "\n" not in message and info.value.exit_code == 1
    assert not (tmp_path / "store").exists()


def test_tolerance_exceeded(digits: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_model(
            str(digits["path"]), "digits", out=tmp_path / "store", rtol=0, atol=0, samples=digits["samples"]
        )
    message = str(info.value)
    assert message.startswith("parity failed: output 'probs' differs by up to ")
    assert "beyond rtol=0 atol=0 — " in message and "--atol/--rtol" in message
    assert "\n" not in message and info.value.exit_code == 1
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("opset", [12, 19, 0])
def test_bad_opset(opset: int, tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_model("x.keras", "digits", out=tmp_path, opset=opset)
    assert str(info.value) == f"opset {opset} is not supported — use 13–18 (default 17)"
    assert info.value.exit_code == 2


def test_bad_tolerance(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"--atol -1 is invalid — use a finite number >= 0"):
        export_model("x.keras", "digits", out=tmp_path, atol=-1)


def test_bad_samples(digits: dict[str, Any], tmp_path: Path) -> None:
    import numpy as np

    np.save(tmp_path / "wrong.npy", np.zeros((4, 63), np.float32))
    with pytest.raises(ExportError, match=r"has shape \[4, 63\] but the model expects \[-1, 64\]"):
        export_model(str(digits["path"]), "digits", out=tmp_path / "store", samples=tmp_path / "wrong.npy")
    np.savez(tmp_path / "keys.npz", pixel=np.zeros((4, 64), np.float32))
    with pytest.raises(ExportError, match=r"key the .npz arrays by exactly the model's input names"):
        export_model(str(digits["path"]), "digits", out=tmp_path / "store", samples=tmp_path / "keys.npz")
    with pytest.raises(ExportError, match=r"samples file .*missing.npy' does not exist"):
        export_model(str(digits["path"]), "digits", out=tmp_path / "store", samples=tmp_path / "missing.npy")
    assert not (tmp_path / "store").exists()


def test_npz_samples_for_multi_input(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    np.savez(tmp_path / "two.npz", features=rng.random((5, 8)), extra=rng.random((5, 3)))  # float64: cast
    card = export_model(export_models.build_two_io(), "two", out=tmp_path, samples=tmp_path / "two.npz")
    assert card.parity["samples"] == "two.npz" and card.parity["batch_sizes"] == [5]


def test_without_the_text_step_text_vectorization_names_the_ops_and_the_fix(tmp_path: Path) -> None:
    """tf2onnx alone cannot convert TextVectorization's string ops (the ``text-ops`` step maps them to
    ai.onnx.contrib: tests/export/test_text.py); the refusal names them and the fix."""
    import keras
    import numpy as np

    from modelfn_export.options import ExportOptions
    from modelfn_export.pipeline import EXPORT_PIPELINE, run_pipeline

    vectorize = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4)
    vectorize.adapt(["red green blue", "cyan magenta", "yellow black red"])
    text = keras.Input((1,), dtype="string", name="text")
    x = keras.layers.Flatten()(keras.layers.Embedding(21, 4)(vectorize(text)))
    model = keras.Model(text, keras.layers.Dense(2, name="y")(x))
    np.save(tmp_path / "text.npy", np.array([["red green"], ["blue cyan"]]))
    options = ExportOptions("text", out=tmp_path / "store", samples=tmp_path / "text.npy")
    with pytest.raises(ExportError) as info:
        run_pipeline(model, options, pipeline=EXPORT_PIPELINE.without("text-ops"))
    message = str(info.value)
    assert "'StringSplitV2'" in message and "no ONNX conversion in tf2onnx 1.17" in message
    assert "run the text preprocessing (e.g. TextVectorization's standardize/split) before the model" in message
    assert not (tmp_path / "store").exists()


def test_string_inputs_without_a_vocabulary_need_samples(tmp_path: Path) -> None:
    """Generated text needs the vocabulary of a layer right after the input; behind another layer there is none."""
    import keras

    vocabulary = ["red", "green", "blue"]
    text = keras.Input((1,), dtype="string", name="text")
    ids = keras.layers.StringLookup(vocabulary=vocabulary)(keras.layers.Identity()(text))
    model = keras.Model(text, keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Embedding(4, 4)(ids))))
    with pytest.raises(ExportError, match=r"cannot generate meaningful samples for string input 'text' — pass --samples"):
        export_model(model, "text", out=tmp_path / "store")
