"""Raw-text models: TextVectorization inside the model, exported through the ``ai.onnx.contrib`` opset
(onnxruntime-extensions), parity on text, served as OIP BYTES and TF Serving strings/``b64`` in a process
without TensorFlow (as a deployed function runs), and one clear refusal for what cannot convert faithfully.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from modelfn_export import ExportError

from .export_checks import check_version_dir
from .served import serve_isolated
from .zoo import TEXT_CORPUS, TEXT_EDGE, build_text_classifier

CORPUS, EDGE = TEXT_CORPUS, TEXT_EDGE


def text_classifier(path: Path, **vectorize: object) -> Path:
    """The zoo's raw-text classifier (:func:`tests.export.zoo.build_text_classifier`) saved as .keras, as users do."""
    build_text_classifier(**vectorize).save(path)
    return path


@pytest.fixture(scope="module")
def text_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path, Path]:
    """The classifier saved as .keras and exported with text --samples; ``(card, store, source)``."""
    from modelfn_export import export_model

    root = tmp_path_factory.mktemp("text")
    source = text_classifier(root / "text.keras")
    samples = root / "text.npy"
    np.save(samples, np.array([[s] for s in CORPUS + EDGE], dtype=str))
    card = export_model(str(source), "text", out=root / "store", samples=samples)
    return card, root / "store", source


def test_raw_text_model_exports_with_parity_and_names_its_library(text_export) -> None:
    card, store, _ = text_export
    assert check_version_dir(store / "text" / "1") == card
    assert card.custom_ops["library"] == "onnxruntime-extensions" and card.custom_ops["domain"] == "ai.onnx.contrib"
    assert {"StringRegexReplace", "StringSplit", "StringConcat"} <= set(card.custom_ops["ops"])
    assert card.producers["onnxruntime-extensions"] == card.custom_ops["version"]
    assert [(s.name, s.datatype) for s in card.inputs] == [("text", "BYTES")]
    parity = card.parity
    assert parity["passed"] and parity["informative"] and parity["per_output"]["tokens"]["max_abs_diff"] == 0


def test_raw_text_model_serves_strings_like_tensorflow(text_export) -> None:
    """OIP JSON BYTES and TF Serving (plain strings and {"b64": ...}) through the handler, in a TF-free process."""
    from modelfn_export.sources import load_source

    _, store, source = text_export
    texts = ["Hello, world!", "the LAZY dog", "", "unknownword, again"]
    reference = load_source(str(source)).run({"text": np.array([[t] for t in texts], dtype=object)})
    oip = {"inputs": [{"name": "text", "shape": [len(texts), 1], "datatype": "BYTES", "data": texts}]}
    b64 = {"instances": [[{"b64": base64.b64encode(t.encode()).decode()}] for t in texts]}
    plain = {"instances": [[t] for t in texts]}
    answers = serve_isolated(store / "text" / "1", "text", [
        ("POST", "/v2/models/text/infer", oip), ("POST", "/v1/models/text:predict", b64),
        ("POST", "/v1/models/text:predict", plain),
    ])
    assert [a["status"] for a in answers] == [200, 200, 200], answers
    assert not any(a["tensorflow_imported"] for a in answers)
    outputs = {o["name"]: o for o in json.loads(answers[0]["body"])["outputs"]}
    np.testing.assert_array_equal(np.asarray(outputs["tokens"]["data"]).reshape(outputs["tokens"]["shape"]), reference["tokens"])
    np.testing.assert_allclose(np.asarray(outputs["logits"]["data"]).reshape(outputs["logits"]["shape"]), reference["logits"],
                               rtol=1e-5, atol=1e-6)
    for answer in answers[1:]:
        predictions = json.loads(answer["body"])["predictions"]
        np.testing.assert_array_equal(np.array([p["tokens"] for p in predictions]), reference["tokens"])
        np.testing.assert_allclose(np.array([p["logits"] for p in predictions]), reference["logits"], rtol=1e-5, atol=1e-6)


def test_generated_text_comes_from_the_vocabulary(tmp_path: Path) -> None:
    """Without --samples, parity runs on text made of the vectorizer's words (plus noise): informative."""
    from modelfn_export import export_model

    card = export_model(str(text_classifier(tmp_path / "text.keras", standardize="lower")), "text", out=tmp_path / "store")
    assert card.parity["samples"] == "generated" and card.parity["informative"] is True
    assert card.parity["per_output"]["tokens"]["max_abs_diff"] == 0


def test_other_vectorizer_modes_convert_with_parity(tmp_path: Path) -> None:
    """multi_hot without splitting, count with 1-3-grams and no standardization, int padded to the longest row."""
    import keras

    from modelfn_export import export_model

    keras.utils.set_random_seed(0)
    layers = {
        "multi_hot": keras.layers.TextVectorization(split=None, output_mode="multi_hot"),
        "count": keras.layers.TextVectorization(standardize=None, ngrams=(1, 2, 3), output_mode="count"),
        "ragged": keras.layers.TextVectorization(max_tokens=40),
    }
    text = keras.Input((1,), dtype="string", name="text")
    outputs = {}
    for name, layer in layers.items():
        layer.adapt(CORPUS)
        outputs[name] = keras.layers.Identity(name=name)(layer(text))
    np.save(tmp_path / "text.npy", np.array([[s] for s in CORPUS + EDGE], dtype=str))
    card = export_model(keras.Model(text, outputs), "modes", out=tmp_path / "store", samples=tmp_path / "text.npy")
    assert card.parity["passed"] and card.parity["informative"]
    assert all(output["max_abs_diff"] == 0 for output in card.parity["per_output"].values())
    assert {s.name: s.shape for s in card.outputs}["ragged"] == [-1, -1]  # padded to the batch's longest row


def _hashing_model(path: Path) -> Path:
    import keras

    text = keras.Input((1,), dtype="string", name="text")
    ids = keras.layers.Hashing(num_bins=16)(text)
    keras.Model(text, keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Embedding(16, 4)(ids)))).save(path)
    return path


def _character_model(path: Path) -> Path:
    import keras

    layer = keras.layers.TextVectorization(split="character", output_sequence_length=8)
    layer.adapt(CORPUS)
    text = keras.Input((1,), dtype="string", name="text")
    keras.Model(text, keras.layers.Dense(2)(keras.ops.cast(layer(text), "float32"))).save(path)
    return path


@pytest.mark.parametrize(
    ("build", "message", "fix"),
    [
        (_hashing_model, "TensorFlow op 'StringToHashBucketFast' has no faithful ONNX conversion", "hash client-side"),
        (_character_model, "'UnicodeDecode'", "tokenize client-side"),
    ],
)
def test_text_ops_without_an_equivalent_are_refused_naming_the_op_and_the_fix(build, message, fix, tmp_path: Path) -> None:
    from modelfn_export import export_model

    with pytest.raises(ExportError) as caught:
        export_model(str(build(tmp_path / "m.keras")), "refused", out=tmp_path / "store", samples=_text_samples(tmp_path))
    assert message in caught.value.problem and fix in caught.value.fix
    assert not (tmp_path / "store" / "refused").exists() or not any((tmp_path / "store" / "refused").iterdir())


def _text_samples(tmp_path: Path) -> Path:
    path = tmp_path / "text.npy"
    np.save(path, np.array([[s] for s in CORPUS], dtype=str))
    return path
