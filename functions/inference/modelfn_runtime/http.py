"""Transport-neutral HTTP request and response, the types between trigger adapters and protocols.

Example:
    >>> request = HttpRequest(method="GET", path="/v2/health/live")
    >>> HttpResponse.json(200, {"live": True}).body
    b'{"live":true}'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson


def dumps(payload: Any) -> bytes:
    """``payload`` as compact JSON bytes; numeric numpy arrays in it are written in bulk (orjson, compiled).

    Responses are strict JSON: non-finite floats must already be strings (``protocols.common.json_value`` writes
    them as "NaN"/"Infinity"). What orjson refuses (integers over 64 bits, non-string keys, lone surrogates) is
    written by the standard library's ``json``, as before, which refuses a bare NaN too.

    Example:
        >>> import numpy as np
        >>> dumps({"data": np.arange(3, dtype=np.int32), "ok": True})
        b'{"data":[0,1,2],"ok":true}'
    """
    try:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(payload, separators=(",", ":"), allow_nan=False, default=_listed).encode()


def _listed(value: Any) -> Any:
    """The standard library's fallback for what only orjson writes: numpy arrays, as nested lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


StatusClass = Literal["ok", "client_error", "server_error"]


def status_class(status: int) -> StatusClass:
    """The one rule for what a status means: ``ok`` below 400, ``client_error`` for 4xx (the caller's to fix:
    retrying the same request cannot help), ``server_error`` for 5xx (ours: an event is delivered again).

    Example:
        >>> [status_class(s) for s in (200, 404, 503)]
        ['ok', 'client_error', 'server_error']
    """
    if status < 400:
        return "ok"
    return "client_error" if status < 500 else "server_error"


class Headers(dict[str, str]):
    """Header names folded to lower case: API Gateway REST keeps the client's case, HTTP API lowers it."""

    def __init__(self, items: dict[str, str] | None = None) -> None:
        super().__init__({key.lower(): value for key, value in (items or {}).items()})

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class HttpRequest:
    """One HTTP request as the function sees it, whichever trigger delivered it."""

    method: str
    path: str
    headers: Headers = field(default_factory=Headers)
    query: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    request_id: str = ""
    trigger: str = "test"
    api_key_id: str | None = None
    tenant: str | None = None
    parsed: Any = None
    """The body already decoded as JSON, when the trigger received it that way (direct invokes, SQS)."""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass
class HttpResponse:
    """Status, headers and body bytes; ``binary`` bodies are base64-encoded on the way out."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    binary: bool = False

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> "HttpResponse":
        return cls(status, dumps(payload), {"Content-Type": "application/json", **(headers or {})})
