"""Decoding helpers both protocol codecs share: JSON bodies and JSON values as typed tensors."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import BadRequest, UnsupportedMediaType
from ..tensors import numpy_dtype

# TF Serving and Triton parse any body as JSON: curl -d sends application/x-www-form-urlencoded by default.
JSON_TYPES = ("", "application/json", "application/octet-stream", "text/plain", "application/x-www-form-urlencoded")


def check_content_type(content_type: str) -> None:
    if content_type in JSON_TYPES or content_type.endswith("+json"):
        return
    raise UnsupportedMediaType(
        f"Content-Type {content_type!r} is not supported; send application/json (or application/octet-stream "
        "with an Inference-Header-Content-Length header for binary tensors)"
    )


def parse_json(raw: bytes | memoryview, what: str = "request body") -> Any:
    try:
        return json.loads(bytes(raw))
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest(f"{what} is not valid JSON ({error}); send a JSON object") from None


def json_object(raw: bytes | memoryview, what: str = "request body") -> dict[str, Any]:
    value = parse_json(raw, what)
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def tensor_from_json(name: str, data: Any, datatype: str) -> np.ndarray:
    """JSON numbers/booleans/strings (flat or nested) as a numpy array of ``datatype``.

    Integer and boolean inputs refuse fractional or out-of-range values instead of silently truncating.
    """
    dtype = numpy_dtype(datatype)
    if datatype == "BYTES":
        return _bytes_tensor(name, data)
    try:
        raw = np.asarray(data)
    except ValueError:
        raise BadRequest(f"input {name!r} is ragged: every row must have the same length") from None
    if raw.dtype.kind == "O" and all(isinstance(v, int) for v in raw.reshape(-1)):
        raise BadRequest(f"input {name!r} holds integers outside the {datatype} range")
    if raw.dtype.kind not in "biuf":
        raise BadRequest(f"input {name!r} must hold numbers for datatype {datatype}, got {_describe(raw)}")
    if dtype.kind in "iub" and raw.dtype.kind == "f" and not np.all(np.mod(raw, 1) == 0):
        raise BadRequest(f"input {name!r} holds fractional numbers but its datatype is {datatype}; send integers")
    if dtype.kind in "iu" and raw.size and raw.dtype.kind in "iuf":
        info = np.iinfo(dtype)
        if raw.min() < info.min or raw.max() > info.max:
            raise BadRequest(f"input {name!r} holds values outside the {datatype} range [{info.min}, {info.max}]")
    if dtype.kind == "b" and raw.dtype.kind != "b" and not np.isin(raw, (0, 1)).all():
        raise BadRequest(f"input {name!r} is BOOL; send true/false or 0/1")
    return raw.astype(dtype)


def _bytes_tensor(name: str, data: Any) -> np.ndarray:
    raw = np.asarray(data, dtype=object)
    flat = raw.reshape(-1)
    for index, item in enumerate(flat):
        if not isinstance(item, str):
            raise BadRequest(f"input {name!r} is BYTES; element {index} must be a string")
        flat[index] = item.encode("utf-8")
    return raw


def _describe(raw: np.ndarray) -> str:
    return "strings" if raw.dtype.kind in "US" else "nested objects or nulls"


def json_value(array: np.ndarray) -> Any:
    """A tensor as JSON-ready nested lists; BYTES elements as UTF-8 strings."""
    if array.dtype.kind in "OS":
        return np.vectorize(_text, otypes=[object])(array).tolist()
    return array.tolist()


def _text(item: Any) -> str:
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
