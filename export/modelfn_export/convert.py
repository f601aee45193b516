"""TensorFlow -> ONNX conversion with tf2onnx.

``tf2onnx.convert.from_keras`` does not work with Keras 3, so conversion always starts from the
``tf.function`` with the explicit input signature built by :mod:`modelfn_export.sources`. ONNX input
names are the Keras input (or signature argument) names; output names are the keys of the dict the
wrapped function returns.

:func:`convert` follows ``tf2onnx.convert.from_function`` (freeze with
``convert_variables_to_constants_v2``, then ``_convert_common``) with two differences:

* **captured constants stay constants.** ``from_function`` declares every placeholder of the
  concrete function a graph input, including the ones TensorFlow adds for *captured* tensors (Keras 3
  keeps e.g. ``Normalization``'s mean and variance as plain tensors, not variables), so the ONNX
  model wanted ``…/Sub/y:0`` as an input. Only the signature's own placeholders are inputs here,
  which is what tf2onnx's SavedModel command line does too; freezing turns the captures into
  initializers.
* **custom op handlers** for TensorFlow ops tf2onnx 1.17 lacks: ``Erfc`` (Keras's exact ``gelu``)
  becomes ``1 - Erf(x)``. (``Erf`` is exact in float32 where gelu needs it: ``erfc`` of a large
  argument underflows to 0 both ways.)
* **a** :class:`Conversion` says what else runs: more handlers and extra opsets (raw-text models:
  ``ai.onnx.contrib``, :mod:`modelfn_export.text_ops`), transforms of the frozen GraphDef before tf2onnx
  sees it (:mod:`modelfn_export.nested` inlines nested function calls) and patches active while it runs.
  The export pipeline's steps build it (:mod:`modelfn_export.pipeline.conversion`).

tf2onnx runs with ``continue_on_error=True``: an op it cannot convert is logged and left in the
graph. :func:`convert` collects those (from its log and from a scan of the graph for ops ONNX does
not define) and raises an :class:`ExportError` naming them.

Example:
    >>> check_opset(17)
    >>> model = convert(load_source("digits.keras"), opset=17)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from typing import Any

from .defaults import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from .errors import FAILED, ExportError, one_line

_STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}
_TEXT_OPS = ("StringSplitV2", "StringSplit", "StaticRegexReplace", "RegexReplace", "StringLower", "StringUpper",
             "StringNGrams", "UnicodeDecode", "UnicodeDecodeWithOffsets", "StringStrip")
_OP_FIXES = {
    **{op: "run the text preprocessing (e.g. TextVectorization's standardize/split) before the model and export "
           "the model from token ids; StringLookup on whole strings does convert" for op in _TEXT_OPS},
}
"""Op-specific fixes for ops tf2onnx cannot convert (the generic fix is used otherwise)."""
_UNSUPPORTED_RE = re.compile(r"Tensorflow op \[(?P<node>.*): (?P<op>[^\]]+)\] is not supported")


def check_opset(opset: Any) -> None:
    """Raise :class:`ExportError` unless ``opset`` is an int in 13..18."""
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(
            f"opset {opset} is not supported", f"use {MIN_OPSET}–{MAX_OPSET} (default {DEFAULT_OPSET})"
        )


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def convert(loaded: Any, opset: int = DEFAULT_OPSET, conversion: Conversion | None = None) -> Any:
    """Convert a :class:`~modelfn_export.sources.LoadedSource` to a checked ``onnx.ModelProto``.

    Raises:
        ExportError: bad opset (exit 2); an op tf2onnx cannot convert, a converter failure, or a
            model the ONNX checker rejects (exit 1).
    """
    check_opset(opset)
    conversion = conversion or Conversion()
    import onnx
    import tf2onnx

    logger = logging.getLogger("tf2onnx")
    capture = _Capture()
    saved = (logger.propagate, logger.level)
    logger.addHandler(capture)
    logger.propagate = False  # its errors are reported below as one ExportError, not as log spam
    if logger.level == logging.NOTSET or logger.level > logging.ERROR:
        logger.setLevel(logging.ERROR)
    try:
        trackable = loaded.keep_alive[0] if loaded.keep_alive else None
        if conversion.builder is not None:  # a model built from its config, not converted (keras-hub tokenizers)
            model = conversion.builder(loaded, opset)
        else:
            model = _from_function(loaded.function, loaded.input_signature, opset, trackable, conversion)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        _raise_unsupported(capture.records, None, conversion)
        raise ExportError(
            f"tf2onnx {tf2onnx.__version__} failed to convert the model: {type(exc).__name__}: "
            f"{one_line(exc)[:300]}",
            "replace the layer that fails with standard Keras/TensorFlow ops or try another --opset",
            exit_code=FAILED,
        ) from None
    finally:
        logger.removeHandler(capture)
        logger.propagate = saved[0]
        logger.setLevel(saved[1])

    _raise_unsupported(capture.records, model, conversion)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"the converted ONNX model is invalid: {one_line(exc)[:300]}",
            "replace the layer named in the message with standard Keras/TensorFlow ops",
            exit_code=FAILED,
        ) from None
    return model


def _erfc_handler(ctx: Any, node: Any, name: str, args: Any) -> None:
    """tf2onnx custom op handler: ``Erfc(x)`` -> ``Sub(1, Erf(x))`` (ONNX has no Erfc)."""
    import numpy as np
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    node.type = "Erf"
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
    ctx.insert_new_node_on_output(
        "Sub", node.output[0], inputs=[one.output[0], node.output[0]], name=utils.make_name(f"{node.name}_erfc")
    )


CUSTOM_OP_HANDLERS: dict[str, Any] = {"Erfc": (_erfc_handler, [])}
"""TensorFlow op -> ``(handler, args)`` for ops tf2onnx 1.17 cannot convert on its own."""

GraphTransform = Callable[[Any, list[str], list[str]], Any]
"""``(frozen GraphDef, input names, output names) -> GraphDef``, applied before tf2onnx converts it."""


@dataclass(frozen=True)
class Conversion:
    """What tf2onnx runs with besides the source: handlers, extra opsets, GraphDef transforms, patches, fixes.

    Example:
        >>> Conversion().extended(extra_opsets=(("ai.onnx.contrib", 1),)).domains
        ['ai.onnx.contrib']
    """

    handlers: Mapping[str, Any] = field(default_factory=lambda: dict(CUSTOM_OP_HANDLERS))
    extra_opsets: tuple[tuple[str, int], ...] = ()
    """``(domain, version)`` of custom-op domains the converted model may use."""
    transforms: tuple[GraphTransform, ...] = ()
    patches: tuple[Callable[[], AbstractContextManager[Any]], ...] = ()
    """Context managers entered while tf2onnx runs (fixes of tf2onnx itself)."""
    fixes: Mapping[str, str] = field(default_factory=dict)
    """Op -> the fix a refusal naming that op gives (ahead of the built-in ones)."""
    builder: Callable[[Any, int], Any] | None = None
    """``(loaded source, opset) -> ModelProto`` instead of tf2onnx, for a source built from its config."""

    @property
    def domains(self) -> list[str]:
        return [domain for domain, _ in self.extra_opsets]

    def extended(self, *, handlers: Mapping[str, Any] | None = None, extra_opsets: tuple[tuple[str, int], ...] = (),
                 transforms: tuple[GraphTransform, ...] = (), patches: tuple[Callable[[], Any], ...] = (),
                 fixes: Mapping[str, str] | None = None, builder: Callable[[Any, int], Any] | None = None) -> Conversion:
        """A copy with more handlers, opsets, transforms, patches and fixes (and a builder, when given)."""
        return replace(
            self,
            handlers={**self.handlers, **(handlers or {})},
            extra_opsets=(*self.extra_opsets, *(o for o in extra_opsets if o not in self.extra_opsets)),
            transforms=(*self.transforms, *transforms),
            patches=(*self.patches, *patches),
            fixes={**self.fixes, **(fixes or {})},
            builder=builder or self.builder,
        )


def _from_function(function: Any, input_signature: list[Any], opset: int, trackable: Any, conversion: Conversion) -> Any:
    """``tf2onnx.convert.from_function`` without captured tensors as graph inputs, plus our handlers.

    With ``trackable`` (the Keras model or loaded SavedModel behind ``function``) freezing goes
    through ``tf_loader.from_trackable``, which also exports lookup tables (``StringLookup``,
    ``IntegerLookup``, ``StaticHashTable``) so ``LookupTableFindV2`` converts to ONNX-ML
    ``CategoryMapper``/``LabelEncoder``.
    """
    import tensorflow as tf
    from tf2onnx.convert import tensor_names_from_structed

    # a fresh trace: freezing with tables edits the concrete function's captures in place (and TF >= 2.13
    # does not get them back), and the parity gate still has to run the original
    fresh = tf.function(function.python_function, input_signature=input_signature, autograph=False)
    concrete = fresh.get_concrete_function(*input_signature)
    own = len(tf.nest.flatten(input_signature))  # captured tensors follow the signature's placeholders
    input_names = [t.name for t in concrete.inputs[:own] if t.dtype != tf.dtypes.resource]
    output_names = [t.name for t in concrete.outputs if t.dtype != tf.dtypes.resource]
    renames = tensor_names_from_structed(concrete, input_names, output_names)
    tf_logger = tf.get_logger()
    tf_level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)  # "Issue encountered when serializing table_initializer" is noise
    try:
        model = _freeze_and_convert(concrete, input_names, output_names, renames, opset, trackable, conversion)
    finally:
        tf_logger.setLevel(tf_level)
    _fill_output_shapes(model, concrete, renames)
    return model


def _freeze_and_convert(
    concrete: Any, input_names: list[str], output_names: list[str], renames: dict[str, str], opset: int, trackable: Any,
    conversion: Conversion,
) -> Any:
    import tensorflow as tf
    from tf2onnx import tf_loader, utils
    from tf2onnx.convert import _convert_common

    with tf.device("/cpu:0"), ExitStack() as patches:
        tables = None
        if trackable is not None:
            frozen, tables = tf_loader.from_trackable(trackable, concrete, input_names, output_names, False)
        else:
            frozen = tf_loader.from_function(concrete, input_names, output_names)
        for transform in conversion.transforms:
            frozen = transform(frozen, input_names, output_names)
        for patch in conversion.patches:
            patches.enter_context(patch())
        model, _ = _convert_common(
            frozen,
            name=concrete.name,
            continue_on_error=True,
            opset=opset,
            custom_op_handlers=dict(conversion.handlers),
            extra_opset=[utils.make_opsetid(domain, version) for domain, version in conversion.extra_opsets],
            input_names=input_names,
            output_names=output_names,
            tensors_to_rename=renames,
            initialized_tables=tables or None,
        )
    return model


def _fill_output_shapes(model: Any, concrete: Any, renames: dict[str, str]) -> None:
    """Graph outputs tf2onnx wrote without a shape (unknown rank after a custom handler, e.g. a bincount) get
    TensorFlow's static shape: the ONNX checker rejects an output type without a shape field."""
    tf_shapes = {renames.get(t.name, t.name): t.shape for t in concrete.outputs}
    for output in model.graph.output:
        tensor_type = output.type.tensor_type
        if tensor_type.HasField("shape") or output.name not in tf_shapes or tf_shapes[output.name].rank is None:
            continue
        for i, dim in enumerate(tf_shapes[output.name].as_list()):
            if dim is None:
                tensor_type.shape.dim.add().dim_param = f"{output.name}_dim{i}"
            else:
                tensor_type.shape.dim.add().dim_value = dim


def unsupported_nodes(model: Any, custom_domains: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """``(op_type, node name)`` of nodes whose op no ONNX domain in the model defines (``custom_domains``:
    domains a registered custom-op library defines, e.g. ``ai.onnx.contrib``)."""
    import onnx

    found: list[tuple[str, str]] = []
    known = _STANDARD_DOMAINS | set(custom_domains)

    def scan(graph: Any) -> None:
        for node in graph.node:
            domain = node.domain or ""
            if domain not in known or (
                domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type)
            ):
                found.append((node.op_type, node.name))
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    scan(attr.g)
                for sub in attr.graphs:
                    scan(sub)

    scan(model.graph)
    return found


def _raise_unsupported(records: list[logging.LogRecord], model: Any, conversion: Conversion) -> None:
    import tf2onnx

    ops: dict[str, str] = {}
    failed: dict[str, str] = {}
    for record in records:
        message = record.getMessage()
        match = _UNSUPPORTED_RE.search(message)
        if match:
            ops.setdefault(match.group("op"), match.group("node"))
        elif message.startswith("Failed to convert node"):
            node = message.split("'")[1] if "'" in message else "?"
            failed.setdefault(node, one_line(record.exc_info[1]) if record.exc_info else "")
    if model is not None:
        for op, node in unsupported_nodes(model, conversion.domains):
            ops.setdefault(op, node)
    version = ".".join(tf2onnx.__version__.split(".")[:2])
    if ops:
        names = ", ".join(f"'{op}'" for op in ops)
        nodes = ", ".join(ops.values())
        plural = "s" if len(ops) > 1 else ""
        fixes = {**_OP_FIXES, **conversion.fixes}
        fix = next(
            (fixes[op] for op in ops if op in fixes),
            "replace the layer that uses it (e.g. a tf.py_function/tf.numpy_function or custom op) "
            "or implement it with supported TensorFlow ops",
        )
        raise ExportError(
            f"TensorFlow op{plural} {names} (node{plural} {nodes}) ha{'ve' if plural else 's'} no ONNX "
            f"conversion in tf2onnx {version}",
            fix,
            exit_code=FAILED,
        )
    if failed:
        node, detail = next(iter(failed.items()))
        raise ExportError(
            f"tf2onnx {version} failed to convert node '{node}': {detail[:300]}",
            "replace the layer that produces it with supported TensorFlow ops or try another --opset",
            exit_code=FAILED,
        )
