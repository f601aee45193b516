"""AWS clients for the function, created once per sandbox with bounded timeouts.

boto3 is imported on first use, so API-only functions loading their model from the package never pay
for it. Timeouts are short and retries bounded: a hanging endpoint fails a request (which an event
source retries) instead of eating the whole Lambda timeout.

Example:
    >>> s3 = client("s3")                   # doctest: +SKIP
"""

from __future__ import annotations

from functools import cache
from typing import Any

CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 10
MAX_ATTEMPTS = 3


def bounded_client(service: str, *, connect_timeout: float = CONNECT_TIMEOUT_S, read_timeout: float = READ_TIMEOUT_S,
                   max_attempts: int = MAX_ATTEMPTS, retries: dict[str, Any] | None = None) -> Any:
    """A new boto3 client for ``service`` whose connect/read timeouts and retries are bounded (``retries``, when
    given, is botocore's retry configuration as is)."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                    retries=retries or {"max_attempts": max_attempts, "mode": "standard"})
    return boto3.client(service, config=config)


@cache
def client(service: str) -> Any:
    """The sandbox's client for ``service`` (endpoints from the environment, e.g. ``AWS_ENDPOINT_URL_S3``)."""
    return bounded_client(service)


def reset() -> None:
    """Forget cached clients (tests that switch between AWS mocks)."""
    client.cache_clear()


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(error, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
