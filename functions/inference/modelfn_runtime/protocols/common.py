"""Decoding helpers both protocol codecs share: JSON bodies, and JSON values as typed tensors, bounded.

The rules a tensor is checked against (the card's shape, the batch and element limits) are ``validation``'s.

Bodies are parsed by orjson (compiled); what it refuses (the NaN/Infinity tokens below, integers over 64 bits,
lone surrogates, very deep nesting) is parsed again by the standard library's ``json``, which decides as before.

Nothing is allocated for a tensor before its datatype, its shape (against the model card) and its size are
known. Numeric tensors take the bulk path: the shape is read off the first element of each nesting level, checked
(card, batch, element count) before numpy builds anything, then numpy converts the whole nested list at once and
the datatype's rules (range, fractional values, NaN/Infinity, BOOL's 0/1) are checked on the array. Anything the
bulk path does not accept as-is (ragged or too-deep nesting, strings, nulls, objects, integers over 64 bits, a
failed check) goes to the reference path, which walks the lists level by level and checks each leaf's Python
type, so every error message, and the element it names, is the same whichever path saw the request first.

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
from collections.abc import Callable, Sequence
from itertools import chain, repeat
from typing import Any, TypeVar

import numpy as np
import orjson

from ..errors import BadRequest, UnsupportedMediaType, quote
from ..modelcard import TensorSpec
from ..tensors import numpy_dtype
from ..validation import Limits, check_data_count, check_elements, check_shape

# TF Serving and Triton parse any body as JSON: curl -d sends application/x-www-form-urlencoded by default.
JSON_TYPES = ("", "application/json", "application/octet-stream", "text/plain", "application/x-www-form-urlencoded")
T = TypeVar("T")
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def check_content_type(content_type: str) -> None:
    if content_type in JSON_TYPES or content_type.endswith("+json"):
        return
    raise UnsupportedMediaType(
        f"Content-Type {quote(content_type)} is not supported; send application/json (or application/octet-stream "
        "with an Inference-Header-Content-Length header for binary tensors)"
    )


def parse_json(raw: bytes | memoryview, what: str = "request body", *, exact: bool = False) -> Any:
    """The JSON value of ``raw``: orjson's parse, or with ``exact`` (and for what orjson refuses) the standard library's.

    The two agree on every body orjson accepts except integer literals over 64 bits, which orjson reads as floats;
    ``decoded`` decodes a refused request again from the exact parse so that its message is the same either way.
    """
    if not exact:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the standard library decides (and words the error): it also reads NaN, Infinity, big integers
    try:
        return json.loads(bytes(raw))
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply for a JSON parser; send tensor data at most a few levels deep") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest(f"{what} is not valid JSON ({quote(str(error))}); send a JSON object") from None


def json_object(raw: bytes | memoryview, what: str = "request body", *, exact: bool = False) -> dict[str, Any]:
    value = parse_json(raw, what, exact=exact)
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def decoded(raw: bytes | memoryview, what: str, decode: Callable[[dict[str, Any]], T]) -> T:
    """``decode`` of the JSON object in ``raw``; a request it refuses is decoded again from the standard library's
    parse (``parse_json``'s ``exact``), so a refusal reads the same as it always has, big integers included.

    Example:
        >>> decoded(b'{"shape": [18446744073709551616]}', "request body", lambda p: type(p["shape"][0]).__name__)
        'float'
    """
    payload = json_object(raw, what)
    try:
        return decode(payload)
    except BadRequest:
        return decode(json_object(raw, what, exact=True))


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
    if spec.datatype != "BYTES" and isinstance(data, list):
        array = _bulk(name, data, spec, limits, declared, max_depth=max(rank, 1))
        if array is not None:
            return array
    return reference_tensor(name, data, spec, limits, declared=declared, b64_objects=b64_objects)


def reference_tensor(
    name: str, data: Any, spec: TensorSpec, limits: Limits, *, declared: Sequence[int] | None = None, b64_objects: bool = False
) -> np.ndarray:
    """``tensor_from_json`` leaf by leaf: the rules' reference, which words every refusal (tests hold the bulk path
    to it). Nested lists are walked level by level (no recursion), each leaf's Python type is checked, and only then
    is one array of the model's datatype built."""
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


def _bulk(
    name: str, data: list[Any], spec: TensorSpec, limits: Limits, declared: Sequence[int] | None, max_depth: int
) -> np.ndarray | None:
    """The numeric tensor built in bulk, or None where the reference path must decide (and word the error).

    The shape is read off the first element of each level and checked (card, batch, element count) before anything
    is built; each level is then checked by C-level passes (``map``, ``chain``), one pass of ``sum`` over the leaves
    refuses any that is not a number or a boolean, and numpy converts the innermost lists at once. Ragged or too-deep
    nesting, a leaf that is not a number or a boolean, and any failed check hand over to the reference path.
    """
    shape = _leading_shape(data, max_depth)
    if shape is None:
        return None
    count = math.prod(shape)
    try:
        if declared is None:
            check_shape(name, shape, spec, limits)
        else:
            check_data_count(name, count, declared)
        check_elements(name, count, limits)
    except BadRequest:
        return None  # raised again by the reference path, after its checks for ragged nesting
    rows = _innermost_rows(data, shape)
    if rows is None:
        return None
    try:  # one C-level pass over the leaves: TypeError for any that is not a number or a boolean
        sum(map(sum, rows, repeat(0.0)), 0.0) if len(shape) > 1 else sum(rows, 0.0)
        array = _converted(name, rows, spec.datatype)
    except (TypeError, OverflowError):
        return None  # a string, null, object or list among the leaves, or an integer past 64 bits: the reference path
    if array is None:
        return None
    return array.reshape(shape if declared is None else list(declared))


def _leading_shape(data: list[Any], max_depth: int) -> list[int] | None:
    """The shape nested lists have if they are not ragged (the length at each level along the first elements);
    None when they are nested deeper than ``max_depth``."""
    shape: list[int] = []
    level: Any = data
    while type(level) is list:
        shape.append(len(level))
        if len(shape) > max_depth:
            return None
        if not level:
            break
        level = level[0]
    return shape


def _innermost_rows(data: list[Any], shape: list[int]) -> list[Any] | None:
    """The lists that hold the leaves, in row-major order (``data`` itself when it is flat), if every level is lists
    of the width ``shape`` says; else None. The leaves themselves are never copied into one list."""
    level = data
    for depth, width in enumerate(shape[1:]):
        if set(map(type, level)) != {list} or set(map(len, level)) != {width}:
            return None
        if depth < len(shape) - 2:
            level = list(chain.from_iterable(level))
    return level


def _converted(name: str, rows: list[Any], datatype: str) -> np.ndarray | None:
    """Numbers and booleans (a flat list, or lists of equal length) as a flat array of ``datatype``, with the reference
    path's checks and messages; None for what only the reference path converts exactly (integers over 64 bits, mixed
    floats and integers past 2**53)."""
    dtype = numpy_dtype(datatype)
    if dtype.kind == "f":
        narrow = np.array(rows, dtype=dtype).reshape(-1)
        if dtype != np.float64 and np.isinf(narrow).any():
            wide = np.array(rows, dtype=np.float64).reshape(-1)
            if np.any(np.isinf(narrow) & np.isfinite(wide)):
                raise BadRequest(f"input {name!r} holds values outside the {datatype} range (±{float(np.finfo(dtype).max):.4g})")
        return narrow
    values = np.array(rows)  # only numbers and booleans: bool, int64, uint64, float64 (or object past 64 bits)
    if values.dtype.kind not in "biuf":
        return None
    values = values.reshape(-1)
    has_floats = values.dtype.kind == "f"
    if dtype.kind == "b":
        if not np.all((values == 0) | (values == 1)):
            raise BadRequest(f"input {name!r} is BOOL; send true/false or 0/1")
        return values.astype(np.bool_)
    info = np.iinfo(dtype)
    if has_floats:
        finite = np.isfinite(values)
        bad = ~finite | (values != np.trunc(np.where(finite, values, 0)))
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            what = "NaN or Infinity" if not finite[index] else "fractional numbers"
            raise BadRequest(f"input {name!r} holds {what} but its datatype is {datatype} (element {index}); send integers")
        if values.size and np.abs(values).max() >= 2.0**53:
            return None  # integers read as floats may have lost digits: the reference path reads them exactly
        out_of_range = values.size and (values.min() < info.min or values.max() >= float(info.max) + 1)
    else:
        out_of_range = values.size and (values.min() < info.min or values.max() > info.max)
    if out_of_range:
        raise BadRequest(f"input {name!r} holds values outside the {datatype} range [{info.min}, {info.max}]")
    return values.astype(dtype)


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
    """A tensor ready for ``http.dumps``: BYTES as UTF-8 strings and non-finite floats as "NaN"/"Infinity" in nested
    lists; finite numbers stay one array, which ``http.dumps`` writes in bulk."""
    if array.dtype.kind in "OS":
        return np.vectorize(_text, otypes=[object])(array).tolist()
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        values = array.astype(object)
        values[np.isnan(array)] = "NaN"
        values[np.isposinf(array)] = "Infinity"
        values[np.isneginf(array)] = "-Infinity"
        return values.tolist()
    if array.ndim == 0:
        return array.tolist()
    return np.ascontiguousarray(array)  # numbers: written in bulk by http.dumps


def _text(item: Any) -> str:
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
