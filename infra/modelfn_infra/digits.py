"""The demo model: a Keras MLP on scikit-learn's bundled 8x8 digits (nothing is downloaded).

``build_model`` is an export source (``modelfn export modelfn_infra.digits:build_model --name digits``);
``held_out`` is the split the demo measures accuracy on, never seen in training.

Example:
    >>> model = build_model(epochs=5)                # doctest: +SKIP
    >>> x_test, y_test = held_out()
    >>> x_test.shape
    (450, 64)
"""

from __future__ import annotations

import numpy as np

SEED = 0


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, x_test, y_train, y_test)``: float32 pixels in [0, 1], a stratified, seeded 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = (digits.data / 16.0).astype(np.float32)
    return train_test_split(pixels, digits.target, test_size=0.25, random_state=SEED, stratify=digits.target)


def held_out() -> tuple[np.ndarray, np.ndarray]:
    """Test pixels (float32 in [0, 1], shape (n, 64)) and their labels."""
    _, x_test, _, y_test = split()
    return x_test, y_test


def build_model(epochs: int = 40, hidden: int = 64):
    """Train and return the classifier: input ``pixels`` (64 floats), output ``probs`` (10 classes)."""
    import keras

    keras.utils.set_random_seed(SEED)
    x_train, _, y_train, _ = split()
    pixels = keras.Input(shape=(64,), name="pixels")
    hidden = keras.layers.Dense(hidden, activation="relu", name="hidden")(pixels)
    probs = keras.layers.Dense(10, activation="softmax", name="probs")(hidden)
    model = keras.Model(pixels, probs, name="digits_mlp")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    return model
