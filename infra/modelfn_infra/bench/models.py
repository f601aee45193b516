"""The benchmark models, built with informative outputs (nothing is downloaded).

Four kinds of model people serve, each exported twice (fp32 and int8) and also saved as a TensorFlow
SavedModel for the TensorFlow-in-Lambda comparison:

* ``digits``: the demo MLP (64 pixels -> 10 classes), trained on scikit-learn's bundled digits; int8 is
  dynamic (int8 weights), the mode that suits dense layers;
* ``small-cnn``: three convolutions on the same digits upsampled to 32x32x1, trained; int8 is static QDQ
  calibrated on the held-out images (dynamic int8 turns convolutions into slow ConvInteger kernels);
* ``mobilenet-v2`` and ``resnet50``: ``keras.applications`` at their ImageNet shape (224x224x3, 1,000 classes)
  with ``weights=None``. Random weights are made informative the way the export zoo does it
  (``tests/export/zoo.py``): logits instead of a softmax head (``classifier_activation=None``) and
  BatchNormalization moving statistics calibrated on a batch of the benchmark's own inputs, so the
  outputs depend on the input and parity and int8 agreement compare something. int8 is static QDQ.

Each model's benchmark inputs (``samples``) are real held-out digits, or seeded uniform images in [0, 1).

Example:
    >>> spec = MODELS["small-cnn"]
    >>> spec.variants()
    ['small-cnn', 'small-cnn-int8']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

SEED = 0
IMAGE = 224
CLASSES = 1000
INT8_SUFFIX = "-int8"
BUILD_VERSION = "1"
"""Bumped when a builder changes: cached exports with another build version are made again."""


@dataclass(frozen=True)
class BenchModel:
    """One benchmark model: how to build it, its benchmark inputs and its export options."""

    name: str
    description: str
    build: Callable[[np.ndarray], Any]
    """Returns a ``keras.Model`` given the benchmark inputs (used for BatchNorm calibration)."""
    samples: Callable[[], np.ndarray]
    int8_mode: str
    small: bool
    """In the ``--quick`` set."""
    tolerance: float = 1e-4
    """Parity rtol and atol; deep float32 nets at 224x224 accumulate more rounding than the default allows."""

    def variants(self) -> list[str]:
        return [self.name, self.name + INT8_SUFFIX]


def base_name(variant: str) -> str:
    """``resnet50-int8`` -> ``resnet50``."""
    return variant.removesuffix(INT8_SUFFIX)


def is_int8(variant: str) -> bool:
    return variant.endswith(INT8_SUFFIX)


def calibrate_batchnorm(model: Any, batch: np.ndarray) -> Any:
    """Set every BatchNormalization's moving statistics from ``batch`` (momentum 0, one training-mode pass):
    random-weight deep nets otherwise shrink or blow up activations until the output no longer depends
    on the input."""
    import keras

    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(batch, training=True)
    for layer, momentum in zip(layers, saved):
        layer.momentum = momentum
    return model


def digits_samples() -> np.ndarray:
    from ..digits import held_out

    return held_out()[0]


def digits_model(samples: np.ndarray) -> Any:
    from ..digits import build_model

    return build_model()


def upsample(pixels: np.ndarray, size: int = 32) -> np.ndarray:
    """8x8 digits (rows of 64) -> ``size`` x ``size`` x 1 images (nearest neighbour)."""
    images = pixels.reshape(-1, 8, 8)
    factor = size // 8
    return np.kron(images, np.ones((1, factor, factor), np.float32)).reshape(-1, size, size, 1).astype(np.float32)


def cnn_samples() -> np.ndarray:
    return upsample(digits_samples())


def small_cnn_model(samples: np.ndarray, epochs: int = 8) -> Any:
    """Conv 16 -> pool -> conv 32 -> pool -> conv 64 -> global average -> 10 logits, trained on the digits."""
    import keras

    from ..digits import split

    keras.utils.set_random_seed(SEED)
    x_train, _, y_train, _ = split()
    image = keras.Input((32, 32, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(10, name="logits")(x)
    model = keras.Model(image, logits, name="small_cnn")
    model.compile(optimizer=keras.optimizers.Adam(0.005),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(upsample(x_train), y_train, epochs=epochs, batch_size=64, verbose=0)
    return model


def image_samples(count: int = 32) -> np.ndarray:
    """Seeded uniform images in [0, 1), ImageNet-shaped."""
    return np.random.default_rng(SEED + 1).random((count, IMAGE, IMAGE, 3), dtype=np.float32)


def mobilenet_v2_model(samples: np.ndarray) -> Any:
    import keras

    keras.utils.set_random_seed(SEED)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(IMAGE, IMAGE, 3), classes=CLASSES,
                                           classifier_activation=None)
    return calibrate_batchnorm(model, samples[:16])


def resnet50_model(samples: np.ndarray) -> Any:
    import keras

    keras.utils.set_random_seed(SEED)
    model = keras.applications.ResNet50(weights=None, input_shape=(IMAGE, IMAGE, 3), classes=CLASSES,
                                        classifier_activation=None)
    return calibrate_batchnorm(model, samples[:16])


MODELS: dict[str, BenchModel] = {
    spec.name: spec
    for spec in (
        BenchModel("digits", "MLP 64-64-10 (trained, scikit-learn digits)", digits_model, digits_samples, "int8", True),
        BenchModel("small-cnn", "3-conv CNN on 32x32x1 digits (trained)", small_cnn_model, cnn_samples, "int8-static", True),
        BenchModel("mobilenet-v2", "MobileNetV2 224x224x3, 1,000 logits (weights=None, BatchNorm calibrated)",
                   mobilenet_v2_model, image_samples, "int8-static", False, tolerance=1e-3),
        BenchModel("resnet50", "ResNet50 224x224x3, 1,000 logits (weights=None, BatchNorm calibrated)",
                   resnet50_model, image_samples, "int8-static", False, tolerance=2e-3),
    )
}


def select(names: list[str] | None, quick: bool) -> list[str]:
    """The variants to measure: ``names`` (base names or variants), else the small models (``quick``) or all.

    Raises:
        ValueError: an unknown name, with the known ones.
    """
    every = [variant for spec in MODELS.values() for variant in spec.variants()]
    if not names:
        return [variant for spec in MODELS.values() if spec.small or not quick for variant in spec.variants()]
    chosen: list[str] = []
    for name in names:
        if name in MODELS:
            chosen.extend(v for v in MODELS[name].variants() if v not in chosen)
        elif name in every:
            if name not in chosen:
                chosen.append(name)
        else:
            raise ValueError(f"unknown benchmark model {name!r}; choose from {', '.join(every)} (or a base name: "
                             f"{', '.join(MODELS)})")
    return chosen
