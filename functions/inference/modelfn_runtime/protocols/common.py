"""Decoding helpers both protocol codecs share: JSON bodies, and JSON values as typed tensors, bounded.

The rules a tensor is checked against (the card's shape, the batch and element limits) are ``validation``'s.

Nothing is allocated for a tensor before its datatype, its shape (against the model card) and its size are
known: nested JSON lists are walked level by level (no recursion, no ``np.asarray`` on client JSON), every
leaf's Python type is checked, and only then is one array of the model's datatype built.

NaN and Infinity policy: floating-point inputs (FP16/FP32/FP64) accept the non-standard JSON tokens ``NaN``,
``Infinity`` and ``-Infinity`` (what Python's ``json`` and TF Serving write) and the strings ``"NaN"``,
``"Infinity"``, ``"-Infinity"`` (what modelfn writes); anywhere else (integer or boolean tensors, shapes,
parameters) they are a 400. Responses are strict JSON: non-finite outputs are written as those strings.

Example:
    >>> from modelfn_runtime.modelcard import TensorSpec
    >>> from modelfn_runtime.validation import Limits
    >>> tensor_from_json("x", [[1, 2], [3, "NaN"]], TensorSpec("x", "FP32", [-1, 2]), Limits()).tolist()
    [[1.0, 2.0], [3.0, nan]]
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import BadRequest, UnsupportedMediaType, quote
from ..modelcard import TensorSpec
from ..tensors import numpy_dtype
from ..validation import Limits, check_data_count, check_elements, check_shape

# TF Serving and Triton parse any body as JSON: curl -d sends application/x-www-form-urlencoded by default.
JSON_TYPES = ("", "application/json", "application/octet-stream", "text/plain", "application/x-www-form-urlencoded")
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def check_content_type(content_type: str) -> None:
    if content_type in JSON_TYPES or content_type.endswith("+json"):
        return
    raise UnsupportedMediaType(
        f"Content-Type {quote(content_type)} is not supported; send application/json (or application/octet-stream "
        "with an Inference-Header-Content-Length header for binary tensors)"
    )


def parse_json(raw: bytes | memoryview, what: str = "request body") -> Any:
    try:
        return json.loads(bytes(raw))
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply for a JSON parser; send tensor data at most a few levels deep") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest(f"{what} is not valid JSON ({quote(str(error))}); send a JSON object") from None


def json_object(raw: bytes | memoryview, what: str = "request body") -> dict[str, Any]:
    value = parse_json(raw, what)
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def parameters_of(container: dict[str, Any], where: str) -> dict[str, Any]:
    """The ``parameters`` object of a request, input or output; 400 naming ``where`` when it is not an object."""
    parameters = container.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise BadRequest(f'"parameters" of {where} must be a JSON object, got {type(parameters).__name__}')
    return parameters


def flag(parameters: dict[str, Any], key: str, where: str, default: bool = False) -> bool:
    """A boolean parameter; 400 naming it when it is not true or false."""
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f'parameter "{key}" of {where} must be true or false, got {quote(value)}')
    return value


def tensor_from_json(
    name: str, data: Any, spec: TensorSpec, limits: Limits, *, declared: Sequence[int] | None = None, b64_objects: bool = False
) -> np.ndarray:
    """JSON numbers/booleans/strings (flat or nested) as an array of ``spec.datatype``, shape checked first.

    ``declared`` is the shape an Open Inference Protocol request states (its data may then be flat or nested);
    without it (TF Serving) the nesting is the shape. Integer and boolean inputs refuse fractional or
    out-of-range values instead of silently truncating.
    """
    rank = len(declared) if declared is not None else len(spec.shape)
    nested, leaves = _flatten(name, data, max_depth=max(rank, 1))
    if declared is None:
        check_shape(name, nested, spec, limits)
        shape = nested
    else:
        shape = list(declared)
        check_data_count(name, len(leaves), shape)
    check_elements(name, len(leaves), limits)
    if spec.datatype == "BYTES":
        return _bytes_tensor(name, leaves, b64_objects=b64_objects).reshape(shape)
    return _typed(name, leaves, spec.datatype).reshape(shape)


def _flatten(name: str, data: Any, max_depth: int) -> tuple[list[int], list[Any]]:
    """The shape and the row-major leaves of nested lists, level by level; 400 for ragged or too-deep data."""
    if not isinstance(data, list):
        return [], [data]
    shape: list[int] = []
    level: list[Any] = [data]
    while level and isinstance(level[0], list):
        width = len(level[0])
        if any(not isinstance(item, list) or len(item) != width for item in level):
            raise BadRequest(f"input {name!r} is ragged: every row must have the same length (nesting level {len(shape)})")
        shape.append(width)
        if len(shape) > max_depth:
            raise BadRequest(f"input {name!r} is nested {len(shape)} levels deep but its shape has {max_depth}; fix the nesting")
        level = [leaf for item in level for leaf in item]
    if any(isinstance(item, list) for item in level):
        raise BadRequest(f"input {name!r} is ragged: every row must have the same length (nesting level {len(shape)})")
    return shape, level


def _typed(name: str, leaves: list[Any], datatype: str) -> np.ndarray:
    """One 1-D array of ``datatype`` from JSON leaves whose Python types are checked first."""
    dtype = numpy_dtype(datatype)
    if datatype == "BYTES":
        return _bytes_tensor(name, leaves)
    kinds = {type(value) for value in leaves}
    if dtype.kind == "f" and str in kinds:
        leaves = [_non_finite(name, datatype, index, value) if type(value) is str else value for index, value in enumerate(leaves)]
        kinds.discard(str)
    if not kinds <= {int, float, bool}:
        index, value = next((i, v) for i, v in enumerate(leaves) if type(v) not in (int, float, bool))
        raise BadRequest(
            f"input {name!r} must hold numbers for datatype {datatype}; element {index} is {_describe(value)}"
        )
    if dtype.kind == "f":
        return _floats(name, leaves, datatype, dtype)
    if dtype.kind == "b":
        if not all(value in (0, 1) for value in leaves):
            raise BadRequest(f"input {name!r} is BOOL; send true/false or 0/1")
        return np.array(leaves, dtype=np.bool_)
    return _integers(name, leaves, datatype, dtype, has_floats=float in kinds)


def _non_finite(name: str, datatype: str, index: int, value: str) -> float:
    try:
        return NON_FINITE[value]
    except KeyError:
        raise BadRequest(
            f"input {name!r} must hold numbers for datatype {datatype}; element {index} is the string {quote(value)} "
            '(the only strings allowed are "NaN", "Infinity" and "-Infinity")'
        ) from None


def _floats(name: str, leaves: list[Any], datatype: str, dtype: np.dtype) -> np.ndarray:
    try:
        wide = np.array(leaves, dtype=np.float64)
    except OverflowError:
        raise BadRequest(f"input {name!r} holds an integer too large for {datatype}") from None
    narrow = wide.astype(dtype)
    if dtype != np.float64 and np.any(np.isinf(narrow) & np.isfinite(wide)):
        raise BadRequest(f"input {name!r} holds values outside the {datatype} range (±{float(np.finfo(dtype).max):.4g})")
    return narrow


def _integers(name: str, leaves: list[Any], datatype: str, dtype: np.dtype, *, has_floats: bool) -> np.ndarray:
    if has_floats:
        for index, value in enumerate(leaves):
            if type(value) is float and not value.is_integer():
                what = "NaN or Infinity" if not math.isfinite(value) else "fractional numbers"
                raise BadRequest(f"input {name!r} holds {what} but its datatype is {datatype} (element {index}); send integers")
        leaves = [int(value) for value in leaves]
    info = np.iinfo(dtype)
    if dtype.kind == "u" and leaves and min(leaves) < 0:  # numpy < 2 would wrap negatives silently
        raise BadRequest(f"input {name!r} holds values outside the {datatype} range [{info.min}, {info.max}]")
    try:
        wide = np.array(leaves, dtype=np.uint64 if dtype.kind == "u" else np.int64)
    except OverflowError:
        raise BadRequest(f"input {name!r} holds values outside the {datatype} range [{info.min}, {info.max}]") from None
    if wide.size and (wide.min() < info.min or wide.max() > info.max):
        raise BadRequest(f"input {name!r} holds values outside the {datatype} range [{info.min}, {info.max}]")
    return wide.astype(dtype)


def _bytes_tensor(name: str, leaves: list[Any], *, b64_objects: bool = False) -> np.ndarray:
    """BYTES elements: JSON strings (UTF-8), and with ``b64_objects`` TF Serving's ``{"b64": "<base64>"}`` for binary data."""
    array = np.empty(len(leaves), dtype=object)
    for index, item in enumerate(leaves):
        if b64_objects and isinstance(item, dict) and set(item) == {"b64"}:
            try:
                array[index] = base64.b64decode(item["b64"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise BadRequest(f'input {name!r} has a "b64" value that is not valid base64 (element {index})') from None
            continue
        if not isinstance(item, str) and b64_objects:
            raise BadRequest(f'input {name!r} is a string tensor; element {index} is {_describe(item)}: '
                             'send strings or {"b64": "<base64>"} objects')
        if not isinstance(item, str):
            raise BadRequest(f"input {name!r} is BYTES; element {index} must be a string, got {_describe(item)}")
        array[index] = item.encode("utf-8", "surrogatepass")
    return array


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return f"the string {quote(value)}"
    return quote(value)


def json_value(array: np.ndarray) -> Any:
    """A tensor as JSON-ready nested lists: BYTES as UTF-8 strings, non-finite floats as "NaN"/"Infinity"."""
    if array.dtype.kind in "OS":
        return np.vectorize(_text, otypes=[object])(array).tolist()
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        values = array.astype(object)
        values[np.isnan(array)] = "NaN"
        values[np.isposinf(array)] = "Infinity"
        values[np.isneginf(array)] = "-Infinity"
        return values.tolist()
    return array.tolist()


def _text(item: Any) -> str:
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
