"""Tensor datatypes and the binary tensor encoding shared by every protocol.

Datatypes use Open Inference Protocol names (``FP32``, ``INT64``, ...). This module is the one
place that maps them to numpy dtypes and to ONNX Runtime's type strings.

BYTES elements are Python ``bytes`` everywhere in the runtime. ONNX Runtime's Python binding wants
``str`` (it stores ``repr(b"x")`` for a ``bytes`` element), so :func:`to_ort` decodes them as UTF-8
right before ``session.run`` (anything else is a 400: ONNX string tensors hold text) and
:func:`from_ort` encodes string outputs back to ``bytes``.

Example:
    >>> import numpy as np
    >>> datatype_of(np.zeros(2, np.float32))
    'FP32'
    >>> from_binary(to_binary(np.arange(3, dtype=np.int64)), "INT64", [3]).tolist()
    [0, 1, 2]
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import numpy as np

from .errors import BadRequest

NUMPY_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}

# ONNX Runtime's NodeArg.type strings.
ORT_TYPES: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

_BY_NUMPY = {dtype: name for name, dtype in NUMPY_DTYPES.items()}


def numpy_dtype(datatype: str) -> np.dtype:
    """The numpy dtype for an OIP datatype name; BadRequest naming the valid ones otherwise."""
    try:
        return NUMPY_DTYPES[datatype]
    except KeyError:
        raise BadRequest(
            f"unknown datatype {datatype!r}; use one of {', '.join(NUMPY_DTYPES)}"
        ) from None


def datatype_of(array: np.ndarray) -> str:
    """The OIP datatype name of a numpy array (strings and bytes are BYTES)."""
    if array.dtype.kind in "OSU":
        return "BYTES"
    try:
        return _BY_NUMPY[array.dtype]
    except KeyError:
        raise TypeError(f"numpy dtype {array.dtype} has no Open Inference Protocol datatype") from None


def to_binary(array: np.ndarray) -> bytes:
    """Raw little-endian bytes of a tensor, row-major; BYTES elements are 4-byte-length-prefixed."""
    if datatype_of(array) == "BYTES":
        chunks = []
        for item in array.reshape(-1):
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            chunks.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(chunks)
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def from_binary(raw: bytes | memoryview, datatype: str, shape: Sequence[int]) -> np.ndarray:
    """Decode raw tensor bytes; BadRequest when their size does not match shape and datatype."""
    dtype = numpy_dtype(datatype)
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_elements(bytes(raw), count).reshape(shape)
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise BadRequest(
            f"binary data holds {len(raw)} bytes but shape {list(shape)} of {datatype} needs "
            f"{expected}; fix the shape or the binary_data_size parameter"
        )
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(shape)


def to_ort(name: str, array: np.ndarray) -> np.ndarray:
    """``array`` as ONNX Runtime takes it: BYTES elements decoded to ``str``; BadRequest if not UTF-8."""
    if array.dtype.kind not in "OS":
        return array
    flat = array.reshape(-1)
    text = np.empty(flat.shape, dtype=object)
    for index, item in enumerate(flat):
        if isinstance(item, (bytes, bytearray, memoryview)):
            try:
                text[index] = bytes(item).decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest(
                    f"input {name!r} element {index} is not valid UTF-8; this model's string tensors hold text: "
                    "send UTF-8 text (base64-encode binary data into text if the model expects that)"
                ) from None
        else:
            text[index] = str(item)
    return text.reshape(array.shape)


def from_ort(array: np.ndarray) -> np.ndarray:
    """An ONNX Runtime output as the runtime keeps it: string elements as UTF-8 ``bytes``."""
    if array.dtype.kind not in "OU":
        return array
    flat = array.reshape(-1)
    raw = np.empty(flat.shape, dtype=object)
    for index, item in enumerate(flat):
        raw[index] = item if isinstance(item, bytes) else str(item).encode("utf-8")
    return raw.reshape(array.shape)


def _bytes_elements(raw: bytes, count: int) -> np.ndarray:
    items: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadRequest("BYTES tensor data is truncated: a 4-byte length prefix is cut off")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadRequest("BYTES tensor data is truncated: an element is shorter than its length prefix")
        items.append(raw[offset : offset + length])
        offset += length
    if len(items) != count:
        raise BadRequest(f"BYTES tensor holds {len(items)} elements but its shape needs {count}")
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array
