"""AWS clients for the function, created once per sandbox with bounded timeouts.

boto3 is imported on first use, so API-only functions loading their model from the package never pay
for it. Timeouts are short and retries bounded: a hanging endpoint fails a request (which an event
source retries) instead of eating the whole Lambda timeout.

Example:
    >>> s3 = client("s3")                   # doctest: +SKIP
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

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


S3FailureKind = Literal["missing", "no_bucket", "denied", "invalid", "credentials", "unreachable", "timeout", "transient"]
_CODE_IN_TEXT = re.compile(r"An error occurred \((\w+)\)")
_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchVersion"})
_DENIED = frozenset({"AccessDenied", "403", "AllAccessDisabled", "Forbidden"})
_INVALID = frozenset({"InvalidObjectState"})  # e.g. an archived object: retrying cannot read it


@dataclass(frozen=True)
class S3Failure:
    """What an S3 call's failure means, the one classification every caller words its message from.

    ``permanent`` failures (missing, denied, invalid, no credentials) cannot heal by retrying the same call;
    the others (unreachable, timeout, throttling, 5xx) may.

    Example:
        >>> from botocore.exceptions import ClientError
        >>> classify_s3_error(ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")).kind
        'missing'
    """

    kind: S3FailureKind
    code: str = ""

    @property
    def permanent(self) -> bool:
        return self.kind in ("missing", "no_bucket", "denied", "invalid", "credentials")


def classify_s3_error(error: BaseException) -> S3Failure:
    """The ``S3Failure`` for an exception raised by a boto3 S3 call (botocore's or boto3's own types; boto3's
    transfer errors only carry the code in their text: "An error occurred (AccessDenied) when calling ...")."""
    code = error_code(error)
    if not code:
        match = _CODE_IN_TEXT.search(str(error))
        code = match.group(1) if match else ""
    if code == "NoSuchBucket":
        return S3Failure("no_bucket", code)
    if code in _MISSING:
        return S3Failure("missing", code)
    if code in _DENIED or code.startswith("KMS"):
        return S3Failure("denied", code)
    if code in _INVALID:
        return S3Failure("invalid", code)
    import botocore.exceptions as boto

    if isinstance(error, (boto.NoCredentialsError, boto.NoRegionError, boto.PartialCredentialsError)):
        return S3Failure("credentials", type(error).__name__)
    if isinstance(error, (boto.ConnectTimeoutError, boto.EndpointConnectionError)):
        return S3Failure("unreachable", type(error).__name__)
    if isinstance(error, boto.ReadTimeoutError):
        return S3Failure("timeout", type(error).__name__)
    return S3Failure("transient", code or type(error).__name__)
