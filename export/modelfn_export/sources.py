"""Load the SOURCE of an export: a Keras model file, a SavedModel directory, or ``module:function``.

Whatever the source, :func:`load_source` returns a :class:`LoadedSource`: a ``tf.function`` with an
explicit, flat input signature (one ``tf.TensorSpec`` per input, named after the input, batch
dimension ``None``) that returns a dict keyed by human output names. The converter and the parity
gate both use that one function, so ONNX and TensorFlow are compared on exactly what was converted.

* ``model.keras`` / ``model.h5``: ``keras.models.load_model(path, compile=False)``.
* a SavedModel directory (has ``saved_model.pb``): ``tf.saved_model.load(dir).signatures[signature]``;
  Keras 3 ``model.export()`` directories expose ``serve`` and ``serving_default``.
* ``package.module:function``: imported with the current directory on ``sys.path``; the function is
  called without arguments and must return a ``keras.Model``.

Functional and Sequential models are named after their ``keras.Input``s and output layers;
subclassed models (no ``model.inputs``) get Keras's own export signature (the shapes of their first
call, as ``model.export()`` uses) named after ``call()``'s parameters or dict keys. Float inputs that
go straight into ``Rescaling``/``Normalization`` record the value range those layers expect, so
generated samples exercise the model.

:func:`classify_source` checks the source without importing TensorFlow, so bad input fails fast.

Example:
    >>> spec = classify_source("models_src/digits.keras")   # doctest: +SKIP
    >>> loaded = load_source("models_src/digits.keras")      # doctest: +SKIP
    >>> [i.name for i in loaded.inputs], loaded.output_names  # doctest: +SKIP
    (['pixels'], ['probs'])
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import FAILED, ExportError, one_line

SourceKind = Literal["keras", "saved_model", "python"]

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_PYTHON_SOURCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_SOURCE_FIX = "pass a .keras file, a SavedModel directory, or package.module:function"

DEFAULT_INT_RANGE = (0, 10)
"""Range ``[low, high)`` of generated integer inputs that feed no Embedding layer."""


@dataclass(frozen=True)
class SourceSpec:
    """What a SOURCE string names, decided without importing TensorFlow."""

    kind: SourceKind
    location: str


@dataclass(frozen=True)
class InputInfo:
    """One model input: name, numpy dtype, shape (``None`` for dynamic dims, batch first)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]
    int_range: tuple[int, int] | None = None
    """For integer inputs: the ``[low, high)`` range generated samples are drawn from."""
    float_range: tuple[Any, Any] | None = None
    """For float inputs that feed a preprocessing layer: ``(low, high)`` (scalars or arrays that
    broadcast to the input's shape) so generated samples are what the layer expects; ``None`` for
    ``[0, 1)``."""


@dataclass
class LoadedSource:
    """A loaded source, ready to convert and to run as the TensorFlow reference."""

    kind: SourceKind
    location: str
    description: str
    function: Any
    """``tf.function`` taking one positional tensor per input (in ``inputs`` order), returning a dict."""
    input_signature: list[Any]
    """The flat list of ``tf.TensorSpec`` passed to ``tf2onnx.convert.from_function``."""
    inputs: list[InputInfo]
    output_names: list[str]
    signature: str | None = None
    keep_alive: list[Any] = field(default_factory=list, repr=False)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the TensorFlow function on numpy feeds keyed by input name; numpy outputs by name."""
        import tensorflow as tf

        args = [tf.convert_to_tensor(feeds[spec.name], dtype=spec.dtype) for spec in self.inputs]
        outputs = self.function(*args)
        return {name: np.asarray(outputs[name].numpy()) for name in self.output_names}

    def card_source(self) -> dict[str, str]:
        """The card's ``source`` object."""
        data = {"kind": self.kind, "location": self.location, "description": self.description}
        if self.signature is not None:
            data["signature"] = self.signature
        return data


_NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:.]+ +\d+ \S+:\d+\] .*"
    r"|To enable the following instructions: .*)$"
)


def import_tensorflow() -> Any:
    """Import TensorFlow without its native start-up chatter.

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless the caller chose a level, and, on the first import, passes
    what the native libraries write to stderr through a filter that drops absl INFO lines (oneDNN
    and CPU-feature notices) and the "before absl::InitializeLog()" banner; anything else is kept.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    with _filtered_native_stderr():
        import tensorflow as tf
    return tf


@contextmanager
def _filtered_native_stderr() -> Iterator[None]:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): import unfiltered
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().decode("utf-8", "replace").splitlines()
                if line.strip() and not _NATIVE_NOISE.match(line)
            ]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def classify_source(source: str | os.PathLike[str]) -> SourceSpec:
    """Decide what kind of source ``source`` names, without importing TensorFlow.

    Raises:
        ExportError: the path does not exist, or is neither a Keras file nor a SavedModel directory.
    """
    text = os.fspath(source)
    path = Path(text)
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return SourceSpec("saved_model", text)
        raise ExportError(f"source '{text}' is a directory without saved_model.pb", _SOURCE_FIX)
    if path.is_file():
        if path.suffix.lower() in KERAS_SUFFIXES:
            return SourceSpec("keras", text)
        raise ExportError(f"source '{text}' is not a .keras/.h5 file", _SOURCE_FIX)
    if _PYTHON_SOURCE.match(text):
        return SourceSpec("python", text)
    raise ExportError(f"source '{text}' does not exist", _SOURCE_FIX)


def load_source(source: Any, signature: str = "serving_default") -> LoadedSource:
    """Load ``source`` (a path, ``module:function``, or an in-memory ``keras.Model``).

    Args:
        source: a ``.keras``/``.h5`` file, a SavedModel directory, ``package.module:function``, or a
            ``keras.Model`` instance.
        signature: the SavedModel signature to export (ignored for Keras models).

    Raises:
        ExportError: the source cannot be found, loaded, or does not yield a usable model.
    """
    import_tensorflow()
    import keras

    if isinstance(source, keras.Model):
        return from_keras_model(source, kind="keras", location=f"<in-memory model '{source.name}'>")
    spec = classify_source(source)
    if spec.kind == "keras":
        return from_keras_model(_load_keras_file(spec.location), kind="keras", location=spec.location)
    if spec.kind == "python":
        return from_keras_model(_call_python_source(spec.location), kind="python", location=spec.location)
    return _load_saved_model(spec.location, signature)


def _load_keras_file(location: str) -> Any:
    import keras

    try:
        return keras.models.load_model(location, compile=False)
    except Exception as exc:  # noqa: BLE001 - any load failure is the user's to fix
        detail = one_line(exc)[:300]
        fix = (
            "build the model in Python and pass package.module:function instead"
            if "safe_mode" in detail or "custom" in detail.lower() or "Unknown" in detail
            else "check that the file is a model saved with model.save('x.keras')"
        )
        raise ExportError(f"cannot load Keras model '{location}': {type(exc).__name__}: {detail}", fix) from None


def _call_python_source(location: str) -> Any:
    import keras

    module_name, func_name = location.split(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ExportError(
                f"source '{location}' does not exist: no module named '{exc.name}'",
                f"{_SOURCE_FIX}; run from the directory that contains the module or add it to PYTHONPATH",
            ) from None
        raise ExportError(
            f"importing '{module_name}' failed: ModuleNotFoundError: {one_line(exc)}",
            "install the missing package or fix the import in the module",
        ) from None
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"importing '{module_name}' failed: {type(exc).__name__}: {one_line(exc)[:300]}",
            "fix the error in the module so that it imports cleanly",
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ExportError(
            f"module '{module_name}' has no function '{func_name}'",
            "pass package.module:function naming a function that returns a keras.Model",
        )
    try:
        model = func()
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"calling '{location}' failed: {type(exc).__name__}: {one_line(exc)[:300]}",
            "make the function build and return the model without arguments",
        ) from None
    if not isinstance(model, keras.Model):
        raise ExportError(
            f"'{location}' returned {type(model).__name__}, not a keras.Model",
            "make the function return the keras.Model to export",
        )
    return model


# --- Keras models --------------------------------------------------------------------------------


def from_keras_model(model: Any, *, kind: SourceKind, location: str) -> LoadedSource:
    """Wrap a Keras model in a flat-signature ``tf.function`` returning a dict of named outputs."""
    import tensorflow as tf

    if _has_inputs(model):
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
        ranges = _embedding_ranges(model, names)
        float_ranges = _preprocessing_ranges(model, names)
        output_names = [str(n) for n in getattr(model, "output_names", None) or []]
    else:
        names, shapes_dtypes, pack = _subclassed_signature(model, location)
        ranges, float_ranges, output_names = {}, {}, []
    if len(set(names)) != len(names):
        raise ExportError(
            f"model '{model.name}' has duplicate input names {names}",
            "give every keras.Input a unique name=",
        )
    infos: list[InputInfo] = []
    specs = []
    for name, (shape, dtype) in zip(names, shapes_dtypes):
        np_dtype = np.dtype(dtype.as_numpy_dtype) if dtype != tf.string else np.dtype(object)
        int_range = None
        if np_dtype.kind in "iu":
            int_range = ranges.get(name, (0, 256) if np_dtype == np.uint8 else DEFAULT_INT_RANGE)
        infos.append(InputInfo(name, np_dtype, shape, int_range, float_ranges.get(name)))
        specs.append(tf.TensorSpec(shape, dtype, name=name))

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

    function = tf.function(call, input_signature=specs, autograph=False)
    out_names = _trace_outputs(function, specs, location)
    clash = sorted(set(out_names) & set(names))
    if clash:
        raise ExportError(
            f"model '{model.name}' uses {clash} both as input and output name",
            "rename the output layer(s) so ONNX tensor names are unique",
        )
    kind_word = "sequential" if type(model).__name__ == "Sequential" else (
        "functional" if type(model).__name__ == "Functional" or hasattr(model, "_inputs_struct") else "subclassed"
    )
    description = (
        f"Keras {kind_word} model '{model.name}' with {_count(len(names), 'input')}, "
        f"{_count(len(out_names), 'output')}, {model.count_params():,} params"
    )
    return LoadedSource(
        kind=kind,
        location=location,
        description=description,
        function=function,
        input_signature=specs,
        inputs=infos,
        output_names=out_names,
        keep_alive=[model],
    )


def _has_inputs(model: Any) -> bool:
    try:
        return bool(list(model.inputs or []))
    except (AttributeError, ValueError):
        return False


_NOT_INPUTS = {"self", "training", "mask", "kwargs", "args"}


def _subclassed_signature(model: Any, location: str) -> tuple[list[str], list[tuple[Any, Any]], Any]:
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

    return names, shapes_dtypes, pack


def _preprocessing_ranges(model: Any, input_names: list[str]) -> dict[str, tuple[Any, Any]]:
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


def _tensor_name(tensor: Any) -> str:
    history = getattr(tensor, "_keras_history", None)
    op = getattr(history, "operation", None) if history is not None else None
    name = getattr(op, "name", None) or getattr(tensor, "name", None) or "input"
    return str(name)


def _embedding_ranges(model: Any, input_names: list[str]) -> dict[str, tuple[int, int]]:
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


def _trace_outputs(function: Any, specs: list[Any], location: str) -> list[str]:
    try:
        concrete = function.get_concrete_function(*specs)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"tracing the model from '{location}' with a dynamic batch dimension failed: "
            f"{type(exc).__name__}: {one_line(exc)[:300]}",
            "make the model accept any batch size (no fixed batch_size in keras.Input)",
            exit_code=FAILED,
        ) from None
    outputs = concrete.structured_outputs
    if not isinstance(outputs, dict) or not outputs:
        raise ExportError(f"model from '{location}' returns no named tensors", "return tensors from the model")
    for key, value in outputs.items():
        if not hasattr(value, "dtype"):
            raise ExportError(
                f"model output '{key}' is a {type(value).__name__}, not a tensor",
                "return a tensor, a list of tensors, or a flat dict of tensors",
            )
    return [str(k) for k in outputs]


# --- SavedModel ----------------------------------------------------------------------------------


def _load_saved_model(location: str, signature: str) -> LoadedSource:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(location)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"cannot load SavedModel '{location}': {type(exc).__name__}: {one_line(exc)[:300]}",
            "re-export it with model.export(dir) or tf.saved_model.save(...)",
        ) from None
    available = sorted(loaded.signatures.keys())
    if not available:
        raise ExportError(
            f"SavedModel '{location}' has no signatures",
            "export it with model.export(dir) or tf.saved_model.save(obj, dir, signatures=...)",
        )
    if signature not in loaded.signatures:
        raise ExportError(
            f"SavedModel '{location}' has no signature '{signature}'",
            f"pass --signature with one of {', '.join(available)}",
        )
    sig = loaded.signatures[signature]
    args, kwargs = sig.structured_input_signature
    if args:
        raise ExportError(
            f"signature '{signature}' of '{location}' has positional inputs",
            "export a signature with named (keyword) inputs, e.g. with model.export(dir)",
        )
    names = sorted(kwargs)
    specs = [tf.TensorSpec(kwargs[n].shape, kwargs[n].dtype, name=n) for n in names]
    infos = []
    for name, spec in zip(names, specs):
        np_dtype = np.dtype(spec.dtype.as_numpy_dtype)
        shape = tuple(spec.shape.as_list()) if spec.shape.rank is not None else None
        if shape is None:
            raise ExportError(
                f"input '{name}' of signature '{signature}' has unknown rank",
                "export the SavedModel with an input_signature of known rank",
            )
        infos.append(InputInfo(name, np_dtype, shape, DEFAULT_INT_RANGE if np_dtype.kind in "iu" else None))

    def call(*xs: Any) -> dict[str, Any]:
        return dict(sig(**dict(zip(names, xs))))

    function = tf.function(call, input_signature=specs, autograph=False)
    out_names = _trace_outputs(function, specs, location)
    try:
        params = sum(int(np.prod(v.shape)) for v in loaded.variables)
        params_text = f", {params:,} params"
    except Exception:  # noqa: BLE001
        params_text = ""
    description = (
        f"SavedModel signature '{signature}' with {_count(len(names), 'input')}, "
        f"{_count(len(out_names), 'output')}{params_text}"
    )
    return LoadedSource(
        kind="saved_model",
        location=location,
        description=description,
        function=function,
        input_signature=specs,
        inputs=infos,
        output_names=out_names,
        signature=signature,
        keep_alive=[loaded, sig],
    )


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
