"""Value ranges generated samples are drawn from, read off the layers right after a Keras model's inputs.

* integer inputs that (transitively) feed an ``Embedding``: ``[0, input_dim)``;
* float inputs that go straight into ``Rescaling``/``Normalization``: the range those layers expect.

Both are best effort: on any surprise they return nothing and samples fall back to the defaults.

Example:
    >>> embedding_ranges(model, ["tokens"])   # doctest: +SKIP
    {'tokens': (0, 50)}
"""

from __future__ import annotations

from typing import Any

import numpy as np


def preprocessing_ranges(model: Any, input_names: list[str]) -> dict[str, tuple[Any, Any]]:
    """Value ranges for float inputs that go straight into a ``Rescaling`` or ``Normalization`` layer.

    ``Rescaling(scale, offset)`` expects ``[0, 1/scale]`` (``[0, (1 - offset)/scale]`` with a negative
    offset, e.g. ``1/127.5, -1`` -> ``[0, 255]``); an adapted ``Normalization`` expects
    ``mean ± 2·std``. Generated samples in ``[0, 1)`` would leave such a model all but constant.
    """
    import keras

    ranges: dict[str, tuple[Any, Any]] = {}
    wanted = set(input_names)
    try:
        for layer in getattr(model, "layers", []) or []:
            for node in getattr(layer, "_inbound_nodes", []):
                for tensor in getattr(node, "input_tensors", []):
                    history = getattr(tensor, "_keras_history", None)
                    op = getattr(history, "operation", None)
                    if not isinstance(op, keras.layers.InputLayer) or op.name not in wanted or op.name in ranges:
                        continue
                    found = _layer_range(layer)
                    if found is not None:
                        ranges[op.name] = found
    except Exception:  # noqa: BLE001 - best effort: fall back to [0, 1)
        pass
    return ranges


def text_vocabularies(model: Any, input_names: list[str]) -> dict[str, tuple[str, ...]]:
    """The vocabulary of the ``TextVectorization``/``StringLookup``/keras-hub tokenizer a string input goes straight
    into (generated text is made of its words), without the mask, OOV, special (``[CLS]``) and suffix (``##s``) tokens."""
    import keras

    kinds = (keras.layers.TextVectorization, keras.layers.StringLookup)
    found: dict[str, tuple[str, ...]] = {}
    try:
        for layer, name in _direct_consumers(model, input_names):
            tokenizer = "keras_hub" in type(layer).__module__ and callable(getattr(layer, "get_vocabulary", None))
            if (isinstance(layer, kinds) or tokenizer) and name not in found:
                words = [str(w) for w in layer.get_vocabulary()]
                words = [w for w in words if w and not (w.startswith("[") and w.endswith("]")) and not w.startswith("##")]
                if words:
                    found[name] = tuple(words)
    except Exception:  # noqa: BLE001 - best effort: without a vocabulary, --samples is asked for
        pass
    return found


def _direct_consumers(model: Any, input_names: list[str]) -> list[tuple[Any, str]]:
    """``(layer, input name)`` for every layer that takes one of ``input_names`` straight from the model's inputs."""
    import keras

    pairs = []
    for layer in getattr(model, "layers", []) or []:
        for node in getattr(layer, "_inbound_nodes", []):
            for tensor in getattr(node, "input_tensors", []):
                op = getattr(getattr(tensor, "_keras_history", None), "operation", None)
                if isinstance(op, keras.layers.InputLayer) and op.name in input_names:
                    pairs.append((layer, op.name))
    return pairs


def _layer_range(layer: Any) -> tuple[Any, Any] | None:
    import keras

    if isinstance(layer, keras.layers.Rescaling):
        scale = np.asarray(layer.scale, dtype=np.float64)
        offset = np.asarray(layer.offset, dtype=np.float64)
        if np.any(scale == 0):
            return None
        width = np.where(offset < 0, 1.0 - offset, 1.0) / np.abs(scale)
        return (np.zeros_like(width, dtype=np.float32), width.astype(np.float32))
    if isinstance(layer, keras.layers.Normalization) and not getattr(layer, "invert", False):
        mean = np.asarray(layer.mean, dtype=np.float64)
        std = np.sqrt(np.maximum(np.asarray(layer.variance, dtype=np.float64), 1e-12))
        if mean.ndim > 0 and mean.shape[0] == 1:
            mean, std = mean[0], std[0]  # the layer keeps a leading broadcast (batch) axis
        return ((mean - 2 * std).astype(np.float32), (mean + 2 * std).astype(np.float32))
    return None



def embedding_ranges(model: Any, input_names: list[str]) -> dict[str, tuple[int, int]]:
    """``[0, input_dim)`` for integer inputs that (transitively) feed an Embedding layer."""
    import keras

    ranges: dict[str, tuple[int, int]] = {}
    wanted = set(input_names)

    def sources(tensor: Any, seen: set[int]) -> set[str]:
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return set()
        op, node_index = history.operation, history.node_index
        if id(op) in seen:
            return set()
        seen.add(id(op))
        if isinstance(op, keras.layers.InputLayer):
            return {op.name} & wanted
        nodes = getattr(op, "_inbound_nodes", [])
        if node_index >= len(nodes):
            return set()
        found: set[str] = set()
        for parent in getattr(nodes[node_index], "input_tensors", []):
            found |= sources(parent, seen)
        return found

    def visit(layer: Any) -> None:
        for sub in getattr(layer, "layers", []) or []:
            visit(sub)
        if isinstance(layer, keras.layers.Embedding):
            for node in getattr(layer, "_inbound_nodes", []):
                for tensor in getattr(node, "input_tensors", []):
                    for name in sources(tensor, set()):
                        low, high = ranges.get(name, (0, layer.input_dim))
                        ranges[name] = (0, min(high, int(layer.input_dim)))

    try:
        visit(model)
    except Exception:  # noqa: BLE001 - best effort: fall back to the default range
        pass
    return ranges
