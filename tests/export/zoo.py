"""The model zoo: the kinds of models people train, built with random weights (nothing downloaded).

Every builder returns a :class:`ZooModel`: the source to export (a ``keras.Model`` or a SavedModel
directory), the export options it needs, and, for models whose generated samples cannot exercise
them (string inputs), a samples file. Random weights are made *informative*: no softmax heads
(``classifier_activation=None``), and BatchNormalization moving statistics calibrated on a random
batch, so outputs depend on the input and the parity gate has something to compare.

``tests/export/test_zoo.py`` exports, parity-checks and serves each one;
``scripts/export_zoo_table.py`` turns the recorded figures into the table in ``docs/export.md``.

Example:
    >>> entry = ZOO["transformer-encoder"](tmp_path)   # doctest: +SKIP
    >>> export_model(entry.source, "transformer-encoder", out=store, **entry.options)   # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[2]
KERAS_HUB = REPO / ".venv" / "khub"
"""Where ``make install`` puts keras-hub (``pip install --no-deps --target``, infra/keras-hub-requirements.txt):
its tensorflow-text requires ``tensorflow``, which would install a second TensorFlow over tensorflow-cpu."""
SEED = 0
IMAGE = 64
CLASSES = 10
FP16_ATOL = 1e-3
"""mixed_float16 tolerance (rtol and atol): the float16 layers round every activation to float16
(relative step 2**-11 ≈ 4.9e-4) and TensorFlow (oneDNN) and ONNX Runtime (MLAS) accumulate in
different orders, so differences of a few float16 steps are expected; the zoo model measures ~1.3e-4."""


@dataclass
class ZooModel:
    """One zoo entry, ready for ``export_model(entry.source, name, **entry.options)``."""

    source: Any
    kind: str
    """What it stands for, for the docs table."""
    options: dict[str, Any] = field(default_factory=dict)
    strings: bool = False


def _seed() -> None:
    import keras

    keras.utils.set_random_seed(SEED)


def calibrate_batchnorm(model: Any, shape: tuple[int, ...], low: float = 0.0, high: float = 1.0) -> Any:
    """Set every BatchNormalization's moving statistics from one seeded random batch in [low, high) (see
    :func:`modelfn_infra.bench.models.calibrate_batchnorm`, which the benchmark models share)."""
    from modelfn_infra.bench.models import calibrate_batchnorm as calibrate

    batch = (low + np.random.default_rng(SEED + 1).random((16, *shape)) * (high - low)).astype(np.float32)
    return calibrate(model, batch)


def mobilenet_v2(tmp: Path) -> ZooModel:
    import keras

    _seed()
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(IMAGE, IMAGE, 3), classes=CLASSES, alpha=0.35, classifier_activation=None
    )
    return ZooModel(calibrate_batchnorm(model, (IMAGE, IMAGE, 3)), "keras.applications CNN (depthwise convs)")


def resnet50(tmp: Path) -> ZooModel:
    import keras

    _seed()
    model = keras.applications.ResNet50(
        weights=None, input_shape=(IMAGE, IMAGE, 3), classes=CLASSES, classifier_activation=None
    )
    return ZooModel(calibrate_batchnorm(model, (IMAGE, IMAGE, 3)), "keras.applications CNN (residual)")


def efficientnet_b0(tmp: Path) -> ZooModel:
    import keras

    _seed()
    model = keras.applications.EfficientNetB0(
        weights=None, input_shape=(IMAGE, IMAGE, 3), classes=CLASSES, classifier_activation=None
    )
    # EfficientNet starts with Rescaling(1/255) + Normalization: it expects pixels in [0, 255]
    return ZooModel(calibrate_batchnorm(model, (IMAGE, IMAGE, 3), 0, 255), "keras.applications CNN (Rescaling + Normalization, swish, SE)")


def densenet121(tmp: Path) -> ZooModel:
    import keras

    _seed()
    model = keras.applications.DenseNet121(
        weights=None, input_shape=(IMAGE, IMAGE, 3), classes=CLASSES, classifier_activation=None
    )
    return ZooModel(calibrate_batchnorm(model, (IMAGE, IMAGE, 3)), "keras.applications CNN (dense blocks)")


def transformer_encoder(tmp: Path, vocab: int = 200, length: int = 16, dim: int = 32) -> ZooModel:
    """BERT-style encoder block: token + position embeddings, MultiHeadAttention, exact gelu (Erfc)."""
    import keras

    _seed()
    tokens = keras.Input((length,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab, dim)(tokens)
    positions = keras.layers.Embedding(length, dim)(keras.ops.arange(length))
    x = x + positions
    attention = keras.layers.MultiHeadAttention(num_heads=4, key_dim=dim // 4)(x, x)
    x = keras.layers.LayerNormalization(epsilon=1e-6)(x + attention)
    hidden = keras.layers.Dense(4 * dim, activation="gelu")(x)  # Keras's default gelu is the exact one
    x = keras.layers.LayerNormalization(epsilon=1e-6)(x + keras.layers.Dense(dim)(hidden))
    x = keras.layers.GlobalAveragePooling1D()(x)
    logits = keras.layers.Dense(CLASSES, name="logits")(x)
    return ZooModel(keras.Model(tokens, logits, name="encoder"), "Transformer encoder (MultiHeadAttention, exact gelu, LayerNormalization)")


def bilstm_masking(tmp: Path, vocab: int = 100, length: int = 12) -> ZooModel:
    """Text classifier: Embedding(mask_zero=True) -> Bidirectional(LSTM) -> Dense; id 0 is padding."""
    import keras

    _seed()
    tokens = keras.Input((length,), dtype="int64", name="tokens")
    x = keras.layers.Embedding(vocab, 16, mask_zero=True)(tokens)
    x = keras.layers.Bidirectional(keras.layers.LSTM(16))(x)
    logits = keras.layers.Dense(4, name="logits")(x)
    return ZooModel(keras.Model(tokens, logits, name="bilstm"), "BiLSTM text model with masking")


def preprocessing(tmp: Path) -> ZooModel:
    """``pixels`` (8x8x1 in [0, 255]) -> Rescaling(1/255); ``features`` (4, mean ~50) -> adapted Normalization."""
    import keras

    _seed()
    data = np.random.default_rng(SEED).normal(50.0, [1.0, 5.0, 10.0, 20.0], size=(256, 4)).astype(np.float32)
    norm = keras.layers.Normalization(name="normalize")
    norm.adapt(data)
    pixels = keras.Input((8, 8, 1), name="pixels")
    features = keras.Input((4,), name="features")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1.0 / 255, name="rescale")(pixels))
    x = keras.layers.Concatenate()([x, norm(features)])
    x = keras.layers.Dense(16, activation="relu")(x)
    score = keras.layers.Dense(3, name="score")(x)
    return ZooModel(keras.Model([pixels, features], score, name="preprocessed"), "Normalization + Rescaling preprocessing")


def dict_io(tmp: Path) -> ZooModel:
    import keras

    _seed()
    features = keras.Input((8,), name="features")
    extra = keras.Input((3,), name="extra")
    x = keras.layers.Dense(16, activation="tanh")(keras.layers.Concatenate()([features, extra]))
    label = keras.layers.Dense(4, name="label")(x)
    score = keras.layers.Dense(1, name="score")(x)
    model = keras.Model({"features": features, "extra": extra}, {"label": label, "score": score}, name="dict_io")
    return ZooModel(model, "dict inputs and outputs")


def subclassed(tmp: Path) -> ZooModel:
    import keras

    class Scorer(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="scorer")
            self.hidden = keras.layers.Dense(16, activation="tanh")
            self.out = keras.layers.Dense(3)

        def call(self, measurements: Any, training: bool = False) -> Any:
            return self.out(self.hidden(4.0 * (measurements - 0.5)))  # centred: inputs are in [0, 1)

    _seed()
    model = Scorer()
    model(np.zeros((2, 6), np.float32))  # a subclassed model gets its signature from its first call
    return ZooModel(model, "subclassed keras.Model")


def tf_module(tmp: Path) -> ZooModel:
    """A plain ``tf.Module`` saved with ``tf.saved_model.save``: a variable and a captured constant."""
    import tensorflow as tf

    class Affine(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            rng = np.random.default_rng(SEED)
            self.kernel = tf.Variable(rng.normal(size=(5, 3)).astype(np.float32))
            self.shift = tf.constant(rng.normal(size=(3,)).astype(np.float32))  # captured, not a variable

        @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="x")])
        def __call__(self, x: Any) -> dict[str, Any]:
            return {"y": tf.tanh(tf.matmul(x, self.kernel) + self.shift)}

    module = Affine()
    path = tmp / "tf_module"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    return ZooModel(str(path), "tf.Module SavedModel (variable + captured constant)")


def mixed_float16(tmp: Path) -> ZooModel:
    import keras

    _seed()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((8, 8, 3), name="image")
        x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(32, activation="relu")(x)
        logits = keras.layers.Dense(CLASSES, dtype="float32", name="logits")(x)  # float32 head, as recommended
        model = keras.Model(inputs, logits, name="mixed")
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return ZooModel(model, "mixed_float16 policy (float16 compute, float32 head)", options={"atol": FP16_ATOL, "rtol": FP16_ATOL})


def string_lookup(tmp: Path) -> ZooModel:
    """``text`` (one string per row) -> StringLookup -> Embedding -> Dense."""
    import keras

    _seed()
    vocabulary = ["red", "green", "blue", "cyan", "magenta", "yellow", "black"]
    text = keras.Input((1,), dtype="string", name="text")
    ids = keras.layers.StringLookup(vocabulary=vocabulary, name="lookup")(text)
    x = keras.layers.Flatten()(keras.layers.Embedding(len(vocabulary) + 1, 8)(ids))
    logits = keras.layers.Dense(3, name="logits")(x)
    rows = np.array([[word] for word in (vocabulary + ["unknown", "blue", "red"]) * 3], dtype=str)
    samples = tmp / "text.npy"
    np.save(samples, rows)
    return ZooModel(keras.Model(text, logits, name="strings"), "string input (StringLookup)", options={"samples": samples}, strings=True)


def grouped_conv(tmp: Path) -> ZooModel:
    """A ResNeXt-style block: ``Conv2D(groups=8)`` (cardinality) + BatchNorm + residual. Keras runs grouped convs
    through an XLA-compiled nested function, which the ``nested-functions`` step inlines."""
    import keras

    _seed()
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same")(keras.layers.Rescaling(1 / 255)(inputs))
    for _ in range(2):
        y = keras.layers.Conv2D(64, 1)(x)
        y = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(64, 3, padding="same", groups=8)(y)))
        x = keras.layers.Add()([x, keras.layers.Conv2D(32, 1)(y)])
    logits = keras.layers.Dense(CLASSES, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    model = calibrate_batchnorm(keras.Model(inputs, logits, name="resnext_block"), (16, 16, 3), 0, 255)
    return ZooModel(model, "grouped convolutions (ResNeXt block: nested XLA function inlined)")


CONVNEXT_IMAGE = 32
LAYER_SCALE = 0.5
"""ConvNeXt's LayerScale starts at 1e-6, so with random weights the blocks (where the grouped 7x7 convs are)
barely touch the output and parity would not test them; 0.5 makes every block count."""


def convnext_tiny(tmp: Path) -> ZooModel:
    import keras

    _seed()
    model = keras.applications.ConvNeXtTiny(
        weights=None, input_shape=(CONVNEXT_IMAGE, CONVNEXT_IMAGE, 3), classes=CLASSES, classifier_activation=None
    )
    for layer in model._flatten_layers():
        if type(layer).__name__ == "LayerScale":
            layer.gamma.assign(np.full(layer.gamma.shape, LAYER_SCALE, np.float32))
    return ZooModel(model, f"keras.applications ConvNeXtTiny at {CONVNEXT_IMAGE}x{CONVNEXT_IMAGE} (grouped convs in nested functions, LayerScale)")


TEXT_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! Hello again, world.",
    "Serverless models are cheap when idle",
    "ONNX Runtime runs the model on a CPU",
    "café naïve résumé: unicode words",
    "deploy the model, serve the model, bill per request",
    "state-of-the-art isn't always what you need",
    "Tokens, tokens, tokens!",
]
TEXT_EDGE = ["", "   ", "!!! ???", "HELLO World", "東京 は 🙂", "a\tb\nc  d", "unknownword the", " ".join(["model"] * 20)]


def build_text_classifier(**vectorize: Any) -> Any:
    """``text`` [B, 1] -> TextVectorization(int, default standardize/split) -> Embedding -> pooling, and a TF-IDF
    bigram bag of the same text -> Dense ``logits``; ``tokens`` is the int layer's own output."""
    import keras

    _seed()
    ids = keras.layers.TextVectorization(max_tokens=60, output_sequence_length=8, name="ids", **vectorize)
    bag = keras.layers.TextVectorization(max_tokens=80, output_mode="tf_idf", ngrams=2, name="bag")
    ids.adapt(TEXT_CORPUS)
    bag.adapt(TEXT_CORPUS)
    text = keras.Input((1,), dtype="string", name="text")
    tokens = ids(text)
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(ids.vocabulary_size(), 8)(tokens))
    bag_of_words = keras.layers.Reshape((bag.vocabulary_size(),))(bag(text))  # Keras infers [B, 1, V]; it is [B, V]
    logits = keras.layers.Dense(3, name="logits")(keras.layers.Concatenate()([pooled, bag_of_words]))
    return keras.Model(text, {"tokens": keras.layers.Identity(name="tokens")(tokens), "logits": logits}, name="text")


def text_classifier(tmp: Path) -> ZooModel:
    """Raw text in: TextVectorization inside the model (ai.onnx.contrib ops of onnxruntime-extensions)."""
    samples = tmp / "text.npy"
    np.save(samples, np.array([[s] for s in TEXT_CORPUS + TEXT_EDGE], dtype=str))
    return ZooModel(build_text_classifier(), "raw text: TextVectorization (int + TF-IDF bigrams), onnxruntime-extensions",
                    options={"samples": samples}, strings=True)


def import_keras_hub() -> Any:
    """keras_hub from ``.venv/khub`` (or ``MODELFN_KERAS_HUB``); a test skips without it, except in CI (fails)."""
    import pytest

    path = os.environ.get("MODELFN_KERAS_HUB", str(KERAS_HUB))
    if os.path.isdir(path) and path not in sys.path:
        sys.path.append(path)  # appended: it never shadows the venv's own packages
    try:
        import keras_hub
    except ImportError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"keras-hub is not installed ({exc}): `make install` puts it in .venv/khub")
    return keras_hub


HUB_CONFIG = dict(vocabulary_size=300, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64, max_sequence_length=32)
"""Tiny keras-hub backbones, built locally from their config with random weights (nothing downloaded)."""


def _token_samples(tmp: Path, names: list[str], rows: int = 32, length: int = 16) -> Path:
    """Realistic feeds: token ids then padding (mask ones then zeros), two segments for BERT."""
    rng = np.random.default_rng(SEED)
    lengths = rng.integers(1, length + 1, size=rows)
    mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
    feeds = {"token_ids": (rng.integers(1, HUB_CONFIG["vocabulary_size"], size=(rows, length)) * mask).astype(np.int32),
             "padding_mask": mask}
    if "segment_ids" in names:
        split = rng.integers(0, length + 1, size=rows)
        feeds["segment_ids"] = ((np.arange(length)[None, :] >= split[:, None]) * mask).astype(np.int32)
    path = tmp / "tokens.npz"
    np.savez(path, **feeds)
    return path


def bert_backbone(tmp: Path) -> ZooModel:
    keras_hub = import_keras_hub()
    _seed()
    model = keras_hub.models.BertBackbone(**HUB_CONFIG)
    return ZooModel(model, "keras-hub BertBackbone (encoder; dict int inputs, dynamic sequence length)",
                    options={"samples": _token_samples(tmp, [t.name for t in model.inputs])})


def gpt2_backbone(tmp: Path) -> ZooModel:
    keras_hub = import_keras_hub()
    _seed()
    model = keras_hub.models.GPT2Backbone(**HUB_CONFIG)
    return ZooModel(model, "keras-hub GPT2Backbone (causal decoder; dict int inputs, dynamic sequence length)",
                    options={"samples": _token_samples(tmp, [t.name for t in model.inputs])})


WORDPIECE_VOCABULARY = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox", "jump", "##s", "##ed", "##ing", "over",
    "lazy", "dog", ".", ",", "!", "?", "'", "-", "hello", "world", "model", "serve", "un", "##believ", "##able", "caf",
    "##é", "é", "東", "京", "is", "big", "a", "an", "and", "it", "##x", "state", "of", "art",
]
WORDPIECE_TEXT = [
    "The quick brown fox jumped over the lazy dog.", "hello, world! unbelievable", "café CAFÉ", "", "   ", "東京 is big",
    "state-of-the-art", "jumpx quickly", "it's a dog's model", " ".join(["fox"] * 20), "HELLO\tWorld\nagain",
]
"""Text with punctuation, case, accents, CJK, out-of-vocabulary words and pieces, empty and over-long rows (not
``"Straße"``: keras-hub case-folds it to ``strasse``, the graph lowers it to ``straße``; see tokenizers.py)."""


def wordpiece_tokenizer(tmp: Path) -> ZooModel:
    """``text -> keras_hub WordPieceTokenizer`` (local vocabulary, lowercase): built as an extensions graph."""
    import keras

    keras_hub = import_keras_hub()
    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=WORDPIECE_VOCABULARY, sequence_length=12, lowercase=True)
    text = keras.Input((), dtype="string", name="text")
    samples = tmp / "text.npy"
    np.save(samples, np.array(WORDPIECE_TEXT, dtype=str))
    return ZooModel(keras.Model(text, {"token_ids": tokenizer(text)}, name="wordpiece"),
                    "keras-hub WordPieceTokenizer (raw text -> token ids, onnxruntime-extensions graph)",
                    options={"samples": samples}, strings=True)


ZOO: dict[str, Callable[[Path], ZooModel]] = {
    "mobilenet-v2": mobilenet_v2,
    "resnet50": resnet50,
    "efficientnet-b0": efficientnet_b0,
    "densenet121": densenet121,
    "transformer-encoder": transformer_encoder,
    "bilstm-masking": bilstm_masking,
    "preprocessing": preprocessing,
    "dict-io": dict_io,
    "subclassed": subclassed,
    "tf-module": tf_module,
    "mixed-float16": mixed_float16,
    "string-lookup": string_lookup,
    "text-classifier": text_classifier,
    "grouped-conv": grouped_conv,
    "convnext-tiny": convnext_tiny,
    "bert-backbone": bert_backbone,
    "gpt2-backbone": gpt2_backbone,
    "wordpiece-tokenizer": wordpiece_tokenizer,
}
SLOW = {"resnet50", "densenet121", "efficientnet-b0", "mobilenet-v2", "convnext-tiny"}
"""Entries that take more than a few seconds to convert (marked ``slow``)."""
