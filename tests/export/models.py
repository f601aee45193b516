"""Small, real Keras models for the export tests (and the serving tests): nothing is downloaded.

``build_digits_mlp`` trains an MLP on scikit-learn's bundled ``load_digits`` (1,797 8x8 images):
input ``pixels`` (64 floats in [0, 1]), output layer ``probs`` (softmax over 10 classes).

Example:
    >>> model, (x_train, x_test, y_train, y_test) = build_digits_mlp()   # doctest: +SKIP
    >>> model.evaluate(x_test, y_test, verbose=0)[1] > 0.9               # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from modelfn_infra import digits

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SEED = 0


def digits_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, x_test, y_train, y_test)``: the demo's seeded split of the bundled digits."""
    return digits.split()


def _seed() -> None:
    import keras

    keras.utils.set_random_seed(SEED)


def build_digits_mlp(epochs: int = 15, hidden: int = 64) -> tuple[Any, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The demo's MLP (``pixels`` -> ``probs``), trained briefly; ``(model, (x_train, x_test, y_train, y_test))``."""
    return digits.build_model(epochs=epochs, hidden=hidden), digits.split()


def build_digits_cnn(epochs: int = 3) -> tuple[Any, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """A small trained CNN on 8x8x1 digit images: ``image`` -> Conv/Pool/Dense -> ``probs``."""
    import keras

    _seed()
    x_train, x_test, y_train, y_test = digits_data()
    x_train, x_test = x_train.reshape(-1, 8, 8, 1), x_test.reshape(-1, 8, 8, 1)
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="digits_cnn")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    return model, (x_train, x_test, y_train, y_test)


def build_two_io(dict_io: bool = False) -> Any:
    """Functional model with inputs ``features`` (8 floats) and ``extra`` (3 floats) and outputs
    ``label`` (softmax over 4) and ``score`` (1 float). ``dict_io`` builds it with dict inputs/outputs."""
    import keras

    _seed()
    features = keras.Input((8,), name="features")
    extra = keras.Input((3,), name="extra")
    x = keras.layers.Concatenate()([features, extra])
    x = keras.layers.Dense(16, activation="tanh")(x)
    label = keras.layers.Dense(4, activation="softmax", name="label")(x)
    score = keras.layers.Dense(1, name="score")(x)
    if dict_io:
        return keras.Model({"features": features, "extra": extra}, {"label": label, "score": score}, name="two_io_dict")
    return keras.Model([features, extra], [label, score], name="two_io")


def build_embedding(vocab: int = 50) -> Any:
    """int64 ``tokens`` (6 ids in [0, vocab)) -> Embedding -> pooled -> ``probs`` (3 classes)."""
    import keras

    _seed()
    tokens = keras.Input((6,), dtype="int64", name="tokens")
    x = keras.layers.Embedding(vocab, 8)(tokens)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model(tokens, outputs, name="embedding_classifier")


def build_mobilenet(size: int = 96, classes: int = 10, calibrate: bool = True) -> Any:
    """``keras.applications.MobileNetV2(weights=None, alpha=0.35)`` at ``size`` x ``size`` x 3.

    With random weights the activations vanish through the 50+ layers (the softmax is exactly
    uniform), which would make parity trivially exact; ``calibrate`` sets every BatchNormalization's
    moving statistics from one random batch (momentum 0, one training-mode forward pass) so the
    outputs are informative.
    """
    import keras

    _seed()
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(size, size, 3), classes=classes, alpha=0.35, name="mobilenetv2"
    )
    if calibrate:
        batch = np.random.default_rng(SEED + 1).random((16, size, size, 3)).astype(np.float32)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.0
        model(batch, training=True)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.99
    return model


def build_py_function_model() -> Any:
    """A model with a ``tf.py_function`` layer: its ``EagerPyFunc`` op has no ONNX conversion."""
    import keras
    import tensorflow as tf

    class Doubler(keras.layers.Layer):
        def call(self, x):  # noqa: ANN001, ANN201
            y = tf.py_function(lambda t: t * 2.0, [x], tf.float32)
            y.set_shape(x.shape)
            return y

    _seed()
    inputs = keras.Input((4,), name="x")
    outputs = keras.layers.Dense(2, name="y")(Doubler(name="doubler")(inputs))
    return keras.Model(inputs, outputs, name="py_function_model")


def build_quantization_tie(features: int = 16) -> Any:
    """A 2-class classifier (logits) whose two weight columns differ by ``±1e-4`` per feature: int8
    weight quantization rounds both columns to the same values, so the quantized model always ties
    (argmax 0) while fp32 picks class 1 for about half of the rows — top-1 agreement with fp32 is far
    below the threshold by construction, and the fp32 evidence is informative (both classes occur,
    logits vary with the input)."""
    import keras

    rng = np.random.default_rng(SEED)
    k = rng.integers(-127, 128, size=features).astype(np.float32)
    k[0] = 127.0  # the weight range, so the int8 scale is exactly 1/127
    w0 = k / 127.0
    delta = np.where(rng.random(features) < 0.5, -1e-4, 1e-4).astype(np.float32)
    delta[0] = 0.0  # keep the range (and so the scale) exact
    kernel = np.stack([w0, w0 + delta], axis=1).astype(np.float32)
    inputs = keras.Input((features,), name="x")
    outputs = keras.layers.Dense(2, name="logits")(inputs)
    model = keras.Model(inputs, outputs, name="tie")
    model.get_layer("logits").set_weights([kernel, np.zeros(2, np.float32)])
    return model
