"""Transport-neutral HTTP request and response, the types between trigger adapters and protocols.

Example:
    >>> request = HttpRequest(method="GET", path="/v2/health/live")
    >>> HttpResponse.json(200, {"live": True}).body
    b'{"live":true}'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


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
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})
