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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
}
SLOW = {"resnet50", "densenet121", "efficientnet-b0", "mobilenet-v2"}
"""Entries that take more than a few seconds to convert (marked ``slow``)."""
