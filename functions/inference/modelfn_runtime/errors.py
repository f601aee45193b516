"""Errors a client can act on. Each carries its HTTP status; its message says what was wrong and how to fix it.

Both protocols answer errors as ``{"error": "<message>"}``, so one exception type serves both.

Example:
    >>> raise BadRequest("unknown input 'pixel'; this model's inputs are ['pixels']")
"""

from __future__ import annotations

import os

LAMBDA_SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
"""Lambda's synchronous invoke limit for both the request and the response payload."""


class ModelfnError(Exception):
    """An error answered to the client with ``status`` and ``{"error": message}``."""

    status = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
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


def payload_too_large(what: str, size: int, model: str | None = None, data_bucket: str | None = None) -> PayloadTooLarge:
    """The 413 for a request or response over Lambda's synchronous payload limit, naming the asynchronous path."""
    model = model or "<model>"
    bucket = data_bucket or os.environ.get("MODELFN_DATA_BUCKET") or "<data bucket>"
    return PayloadTooLarge(
        f"{what} is {size} bytes, over Lambda's {LAMBDA_SYNC_PAYLOAD_LIMIT} byte (6 MB) synchronous "
        "payload limit; send smaller batches or use the binary tensor encoding, or go asynchronous: put the "
        f"request (.json, .npy, .npz or .jsonl) at s3://{bucket}/inbox/{model}/<name> and read the result at "
        f"s3://{bucket}/outbox/{model}/<name>.json, or put it under s3://{bucket}/requests/{model}/ and send "
        '{"input_uri": "s3://..."} to the model\'s SQS queue or as an asynchronous invoke (see docs/events.md)'
    )
