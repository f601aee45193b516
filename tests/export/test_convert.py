"""Real TensorFlow models convert, pass the parity gate and get a card that matches the ONNX model."""

from __future__ import annotations

import re
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


def test_uninformative_parity_is_refused_unless_allowed(tmp_path: Path) -> None:
    """A random-weight MobileNetV2 with its softmax head outputs exactly 1/classes for every input:
    parity would be perfect and prove nothing. The export refuses it, or records it when allowed.
    (Informative MobileNetV2/ResNet50/EfficientNet/DenseNet exports are in test_zoo.py.)"""
    import keras

    from modelfn_export import ExportError, export_model

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=10)
    with pytest.raises(ExportError) as info:
        export_model(model, "uniform", out=tmp_path / "refused")
    message = str(info.value)
    # "at most 0" on most CPUs; a few ulps (7.45e-09) where the softmax kernel differs: either way far below any signal
    assert re.match(r"parity evidence is uninformative \(generated samples\): output 'predictions': it varies by at most "
                    r"(0|[0-9.]+e-0[89]) across 33 sample rows", message), message
    assert message.endswith("or accept it with --allow-uninformative-parity") and info.value.exit_code == 1
    assert not (tmp_path / "refused").exists()

    card = export_model(model, "uniform", out=tmp_path / "allowed", allow_uninformative_parity=True, quantize="int8")
    check_version_dir(tmp_path / "allowed" / "uniform" / "1")
    assert card.parity["informative"] is False and card.parity["uninformative_allowed"] is True
    assert card.parity["per_output"]["predictions"]["spread"] < 1e-7
    assert card.parity["per_output"]["predictions"]["distinct_top1"] == 1
    assert card.quantization["informative"] is False


def test_generated_samples_follow_preprocessing_layers() -> None:
    """Rescaling(1/255) gets pixels in [0, 255]; an adapted Normalization gets mean ± 2·std per feature."""
    from modelfn_export.parity import generate_samples
    from modelfn_export.sources import load_source

    from .zoo import preprocessing

    loaded = load_source(preprocessing(Path(".")).source)
    batch = generate_samples(loaded.inputs, batch_sizes=(256,))[0]
    assert 200 < batch["pixels"].max() <= 255 and batch["pixels"].min() >= 0
    means = batch["features"].mean(axis=0)
    assert np.allclose(means, 50.0, atol=3.0)  # adapted on N(50, [1, 5, 10, 20])
    assert np.all(np.ptp(batch["features"], axis=0) > [2, 10, 20, 40])


def test_opset_is_recorded(digits: dict[str, Any], tmp_path: Path) -> None:
    from modelfn_export import export_model

    card = export_model(str(digits["path"]), "digits", out=tmp_path, opset=13)
    assert card.opset == 13
    check_version_dir(tmp_path / "digits" / "1")


def test_captured_constants_and_exact_gelu(tmp_path: Path) -> None:
    """Normalization's mean/variance are captured constants (not ONNX inputs); exact gelu's Erfc becomes 1 - Erf."""
    import keras
    import onnx

    from modelfn_export import export_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), name="features")
    norm = keras.layers.Normalization()
    norm.adapt(np.random.default_rng(0).normal(10.0, 3.0, (64, 4)).astype(np.float32))
    hidden = keras.layers.Dense(16, activation="gelu")(norm(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="y")(hidden))
    card = export_model(model, "gelu", out=tmp_path)
    graph = onnx.load(tmp_path / "gelu" / "1" / "model.onnx").graph
    assert [i.name for i in graph.input] == ["features"]
    ops = {node.op_type for node in graph.node}
    assert "Erf" in ops and "Erfc" not in ops
    assert card.parity["informative"] is True and card.parity["max_abs_diff"] <= FP32_MAX_ABS_DIFF


def test_subclassed_dict_input_named_from_call(tmp_path: Path) -> None:
    import keras

    from modelfn_export import ExportError, export_model

    class Pair(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="pair")
            self.dense = keras.layers.Dense(2)

        def call(self, inputs, training=False):  # noqa: ANN001, ANN201
            joined = keras.ops.concatenate([inputs["left"], inputs["right"]], axis=-1)
            return {"sum": self.dense(joined - 0.5) * 3.0, "left_twice": inputs["left"] * 2.0}

    keras.utils.set_random_seed(0)
    model = Pair()
    model({"left": np.zeros((1, 3), np.float32), "right": np.zeros((1, 2), np.float32)})
    card = export_model(model, "pair", out=tmp_path)
    check_version_dir(tmp_path / "pair" / "1")
    assert [(s.name, s.shape) for s in card.inputs] == [("left", [-1, 3]), ("right", [-1, 2])]
    assert sorted(s.name for s in card.outputs) == ["left_twice", "sum"]
    assert "subclassed" in card.source["description"]

    class NeverCalled(keras.Model):
        def call(self, x):  # noqa: ANN001, ANN201
            return x

    with pytest.raises(ExportError, match=r"subclassed Keras model .* has no input signature yet .* — call the model once"):
        export_model(NeverCalled(), "never", out=tmp_path)


@pytest.mark.parametrize("form", ["keras-file", "saved-model"])
def test_normalization_model_from_file_and_saved_model(form: str, tmp_path: Path) -> None:
    """The captured-constant fix holds for every source kind, not just in-memory models."""
    from modelfn_export import ExportError, export_model

    from .zoo import preprocessing

    model = preprocessing(tmp_path).source
    options: dict[str, Any] = {}
    if form == "keras-file":
        source = tmp_path / "pre.keras"
        model.save(source)
    else:
        source = tmp_path / "pre_saved"
        model.export(str(source), verbose=False)
        # a SavedModel does not say what its inputs expect: generated [0, 1) features sit ~25 std
        # below Normalization's mean and every row gets the same class, which the gate refuses
        with pytest.raises(ExportError, match=r"parity evidence is uninformative .* same top-1 class"):
            export_model(str(source), "pre", out=tmp_path / "store")
        from modelfn_export.parity import generate_samples
        from modelfn_export.sources import load_source

        batch = generate_samples(load_source(model).inputs, batch_sizes=(64,))[0]  # realistic ranges
        np.savez(tmp_path / "real.npz", **batch)
        options["samples"] = tmp_path / "real.npz"
    card = export_model(str(source), "pre", out=tmp_path / "store", **options)
    check_version_dir(tmp_path / "store" / "pre" / "1")
    assert sorted(s.name for s in card.inputs) == ["features", "pixels"]
    assert card.parity["informative"] is True and card.parity["max_abs_diff"] <= FP32_MAX_ABS_DIFF
