"""Errors a client can act on. Each carries its HTTP status; its message says what was wrong and how to fix it.

Both protocols answer errors as ``{"error": "<message>"}``, so one exception type serves both.

Example:
    >>> raise BadRequest("unknown input 'pixel'; this model's inputs are ['pixels']")
"""

from __future__ import annotations

import reprlib

LAMBDA_SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
"""Lambda's synchronous invoke limit for both the request and the response payload."""

QUOTE_LIMIT = 80
"""Client input is echoed into error messages and logs at most this many characters long."""

MESSAGE_LIMIT = 2048
"""No error message (and so no error response body or log line) is longer than this."""


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A short repr of client input (at most ``limit`` characters, any size or depth), for messages and logs.

    ``reprlib`` bounds the depth, the items and the string lengths it shows, so a huge or deeply nested
    value costs no more than a small one.

    Example:
        >>> len(quote("x" * 10_000)) <= 81
        True
        >>> quote([[[[[[1]]]]]])
        '[[[[[...]]]]]'
    """
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` itself (no quotes) cut to ``limit`` characters: for paths and methods in messages and logs."""
    return text if len(text) <= limit else text[:limit] + "…"


_REPR = reprlib.Repr()  # keyword arguments need Python 3.12
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 4, 8, 8, 8, 8
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = QUOTE_LIMIT, QUOTE_LIMIT, 40


class ModelfnError(Exception):
    """An error answered to the client with ``status`` and ``{"error": message}``."""

    status = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        if len(message) > MESSAGE_LIMIT:
            message = message[:MESSAGE_LIMIT] + "…"
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ModelfnError):
    status = 400


class NotFound(ModelfnError):
    status = 404


class MethodNotAllowed(ModelfnError):
    status = 405

    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        super().__init__(
            f"method {method} is not allowed on {path}; use {' or '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )


class PayloadTooLarge(ModelfnError):
    status = 413


class UnsupportedMediaType(ModelfnError):
    status = 415


class ModelNotReady(ModelfnError):
    status = 503
