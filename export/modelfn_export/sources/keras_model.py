"""Keras models as a source: :func:`from_keras_model` wraps a ``keras.Model`` in a flat-signature ``tf.function``.

Functional and Sequential models are named after their ``keras.Input`` layers and output layers; subclassed
models (no ``model.inputs``) get Keras's own export signature, named after ``call()``'s parameters or
dict keys (:func:`subclassed_signature`).

Example:
    >>> loaded = from_keras_model(model, kind="keras", location="digits.keras")   # doctest: +SKIP
    >>> [i.name for i in loaded.inputs], loaded.output_names                       # doctest: +SKIP
    (['pixels'], ['probs'])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ExportError, one_line
from .outputs import count, trace_outputs
from .ranges import embedding_ranges, preprocessing_ranges, text_vocabularies
from .types import DEFAULT_INT_RANGE, InputInfo, LoadedSource, SourceKind

Pack = Callable[[tuple[Any, ...]], tuple[Any, ...]]
"""Turns the flat tuple of input tensors into the positional arguments of ``model(...)``."""


@dataclass
class KerasSignature:
    """A Keras model's inputs, flat: names, ``(shape, tf dtype)`` pairs and the packer back to ``model(...)``."""

    names: list[str]
    shapes_dtypes: list[tuple[Any, Any]]
    pack: Pack
    int_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    float_ranges: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    vocabularies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    output_names: list[str] = field(default_factory=list)


def from_keras_model(model: Any, *, kind: SourceKind, location: str) -> LoadedSource:
    """Wrap a Keras model in a flat-signature ``tf.function`` returning a dict of named outputs."""
    import tensorflow as tf

    sig = functional_signature(model) if _has_inputs(model) else subclassed_signature(model, location)
    names = sig.names
    if len(set(names)) != len(names):
        raise ExportError(
            f"model '{model.name}' has duplicate input names {names}",
            "give every keras.Input a unique name=",
        )
    infos, specs = _input_specs(sig)
    function = tf.function(_named_outputs(model, sig), input_signature=specs, autograph=False)
    out_names = trace_outputs(function, specs, location)
    clash = sorted(set(out_names) & set(names))
    if clash:
        raise ExportError(
            f"model '{model.name}' uses {clash} both as input and output name",
            "rename the output layer(s) so ONNX tensor names are unique",
        )
    return LoadedSource(
        kind=kind,
        location=location,
        description=_describe(model, len(names), len(out_names)),
        function=function,
        input_signature=specs,
        inputs=infos,
        output_names=out_names,
        keep_alive=[model],
    )


def functional_signature(model: Any) -> KerasSignature:
    """The signature of a functional/Sequential model: its ``keras.Input`` layers, batch dimension ``None``."""
    import tensorflow as tf

    keras_inputs = list(model.inputs)
    input_struct = getattr(model, "_inputs_struct", None)
    names = [_tensor_name(t) for t in keras_inputs]
    shapes_dtypes = [((None,) + tuple(t.shape[1:]), tf.as_dtype(t.dtype)) for t in keras_inputs]
    if isinstance(input_struct, dict):
        def pack(xs: tuple[Any, ...]) -> tuple[Any, ...]:
            return (dict(zip(names, xs)),)
    elif len(names) == 1 and not isinstance(input_struct, (list, tuple)):
        def pack(xs: tuple[Any, ...]) -> tuple[Any, ...]:
            return (xs[0],)
    else:
        def pack(xs: tuple[Any, ...]) -> tuple[Any, ...]:
            return (list(xs),)
    return KerasSignature(
        names,
        shapes_dtypes,
        pack,
        int_ranges=embedding_ranges(model, names),
        float_ranges=preprocessing_ranges(model, names),
        vocabularies=text_vocabularies(model, names),
        output_names=[str(n) for n in getattr(model, "output_names", None) or []],
    )


def _input_specs(sig: KerasSignature) -> tuple[list[InputInfo], list[Any]]:
    """One :class:`InputInfo` (with the range generated samples use) and one ``tf.TensorSpec`` per input."""
    import tensorflow as tf

    infos: list[InputInfo] = []
    specs = []
    for name, (shape, dtype) in zip(sig.names, sig.shapes_dtypes):
        np_dtype = np.dtype(dtype.as_numpy_dtype) if dtype != tf.string else np.dtype(object)
        int_range = None
        if np_dtype.kind in "iu":
            int_range = sig.int_ranges.get(name, (0, 256) if np_dtype == np.uint8 else DEFAULT_INT_RANGE)
        infos.append(InputInfo(name, np_dtype, shape, int_range, sig.float_ranges.get(name), sig.vocabularies.get(name)))
        specs.append(tf.TensorSpec(shape, dtype, name=name))
    return infos, specs


def _named_outputs(model: Any, sig: KerasSignature) -> Callable[..., dict[str, Any]]:
    """The function to trace: flat input tensors in, a dict of named output tensors out."""
    pack, output_names = sig.pack, sig.output_names

    def call(*xs: Any) -> dict[str, Any]:
        result = model(*pack(xs), training=False)
        if isinstance(result, dict):
            return {str(k): v for k, v in result.items()}
        if isinstance(result, (list, tuple)):
            if not output_names:
                return {f"output_{i}": value for i, value in enumerate(result)}
            if len(output_names) != len(result):
                raise ExportError(
                    f"model '{model.name}' returns {len(result)} outputs but names {len(output_names)}",
                    "build it as a functional model with named output layers",
                )
            return dict(zip(output_names, result))
        return {output_names[0] if output_names else "output": result}

    return call


def _describe(model: Any, inputs: int, outputs: int) -> str:
    kind_word = "sequential" if type(model).__name__ == "Sequential" else (
        "functional" if type(model).__name__ == "Functional" or hasattr(model, "_inputs_struct") else "subclassed"
    )
    return (
        f"Keras {kind_word} model '{model.name}' with {count(inputs, 'input')}, "
        f"{count(outputs, 'output')}, {model.count_params():,} params"
    )


def _has_inputs(model: Any) -> bool:
    try:
        return bool(list(model.inputs or []))
    except (AttributeError, ValueError):
        return False


_NOT_INPUTS = {"self", "training", "mask", "kwargs", "args"}


def subclassed_signature(model: Any, location: str) -> KerasSignature:
    """Names, ``(shape, dtype)`` pairs and a packer for a subclassed model's ``call``.

    The input signature is Keras's own (``keras.src.export.export_utils.get_input_signature``, what
    ``model.export()`` uses: the shapes the model was first called with, batch dimension ``None``);
    the names are ``call``'s parameter names (``call(self, features)`` -> ``features``), or the keys
    when a parameter takes a dict.
    """
    import inspect

    import tensorflow as tf
    from keras.src.export.export_utils import get_input_signature

    label = getattr(model, "name", location)
    try:
        signature = list(get_input_signature(model))
    except Exception as exc:  # noqa: BLE001 - not built / never called
        raise ExportError(
            f"subclassed Keras model '{label}' has no input signature yet ({one_line(exc)[:200]})",
            "call the model once on a batch (model(x)) before saving or exporting it, "
            "or build it as a functional model with keras.Input(...)",
        ) from None
    try:
        params = [
            p.name
            for p in inspect.signature(model.call).parameters.values()
            if p.name not in _NOT_INPUTS and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    names: list[str] = []
    shapes_dtypes: list[tuple[Any, Any]] = []
    layout: list[Any] = []  # per positional argument: None (one tensor) or the dict keys

    def add(name: str, spec: Any) -> None:
        if not hasattr(spec, "shape") or spec.shape is None:
            raise ExportError(
                f"subclassed Keras model '{label}' takes a nested input ('{name}') modelfn cannot name",
                "take one tensor or a flat dict of tensors per call() argument, or build a functional model",
            )
        names.append(name)
        shapes_dtypes.append(((None,) + tuple(spec.shape[1:]), tf.as_dtype(spec.dtype or "float32")))

    for index, item in enumerate(signature):
        param = params[index] if index < len(params) else f"input_{index}"
        if isinstance(item, dict):
            for key, spec in item.items():
                add(str(key), spec)
            layout.append([str(k) for k in item])
        else:
            add(param, item)
            layout.append(None)

    def pack(xs: tuple[Any, ...]) -> tuple[Any, ...]:
        args, position = [], 0
        for keys in layout:
            if keys is None:
                args.append(xs[position])
                position += 1
            else:
                args.append(dict(zip(keys, xs[position : position + len(keys)])))
                position += len(keys)
        return tuple(args)

    return KerasSignature(names, shapes_dtypes, pack)


def _tensor_name(tensor: Any) -> str:
    history = getattr(tensor, "_keras_history", None)
    op = getattr(history, "operation", None) if history is not None else None
    name = getattr(op, "name", None) or getattr(tensor, "name", None) or "input"
    return str(name)
