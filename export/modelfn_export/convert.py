"""TensorFlow -> ONNX conversion with tf2onnx.

``tf2onnx.convert.from_keras`` does not work with Keras 3, so conversion always goes through
``tf2onnx.convert.from_function`` with the explicit input signature built by
:mod:`modelfn_export.sources`. ONNX input names are the Keras input (or signature argument) names;
output names are the keys of the dict the wrapped function returns.

tf2onnx runs with ``continue_on_error=True`` inside ``from_function``: an op it cannot convert is
logged and left in the graph. :func:`convert` collects those (from its log and from a scan of the
graph for ops ONNX does not define) and raises an :class:`ExportError` naming them.

Example:
    >>> check_opset(17)
    >>> model = convert(load_source("digits.keras"), opset=17)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .defaults import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from .errors import FAILED, ExportError, one_line

_STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}
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


def convert(loaded: Any, opset: int = DEFAULT_OPSET) -> Any:
    """Convert a :class:`~modelfn_export.sources.LoadedSource` to a checked ``onnx.ModelProto``.

    Raises:
        ExportError: bad opset (exit 2); an op tf2onnx cannot convert, a converter failure, or a
            model the ONNX checker rejects (exit 1).
    """
    check_opset(opset)
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
        model, _ = tf2onnx.convert.from_function(
            loaded.function, input_signature=loaded.input_signature, opset=opset
        )
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        _raise_unsupported(capture.records, None)
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

    _raise_unsupported(capture.records, model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"the converted ONNX model is invalid: {one_line(exc)[:300]}",
            "replace the layer named in the message with standard Keras/TensorFlow ops",
            exit_code=FAILED,
        ) from None
    return model


def unsupported_nodes(model: Any) -> list[tuple[str, str]]:
    """``(op_type, node name)`` of nodes whose op no ONNX domain in the model defines."""
    import onnx

    found: list[tuple[str, str]] = []

    def scan(graph: Any) -> None:
        for node in graph.node:
            domain = node.domain or ""
            if domain not in _STANDARD_DOMAINS or (
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


def _raise_unsupported(records: list[logging.LogRecord], model: Any) -> None:
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
        for op, node in unsupported_nodes(model):
            ops.setdefault(op, node)
    version = ".".join(tf2onnx.__version__.split(".")[:2])
    if ops:
        names = ", ".join(f"'{op}'" for op in ops)
        nodes = ", ".join(ops.values())
        plural = "s" if len(ops) > 1 else ""
        raise ExportError(
            f"TensorFlow op{plural} {names} (node{plural} {nodes}) ha{'ve' if plural else 's'} no ONNX "
            f"conversion in tf2onnx {version}",
            "replace the layer that uses it (e.g. a tf.py_function/tf.numpy_function or custom op) "
            "or implement it with supported TensorFlow ops",
            exit_code=FAILED,
        )
    if failed:
        node, detail = next(iter(failed.items()))
        raise ExportError(
            f"tf2onnx {version} failed to convert node '{node}': {detail[:300]}",
            "replace the layer that produces it with supported TensorFlow ops or try another --opset",
            exit_code=FAILED,
        )
