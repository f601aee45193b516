"""What a trigger hands the service: an ``Envelope`` (one ``HttpRequest`` and, when the event could not even be decoded,
the refusal to answer it with), and the Lambda request id it came with.

Example:
    >>> envelope = Envelope(HttpRequest("GET", "/v2/health/live", trigger="rest"))
    >>> envelope.request.path, envelope.refusal is None
    ('/v2/health/live', True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ModelfnError
from .http import HttpRequest


def request_id(context: Any) -> str:
    """The Lambda request id of ``context`` (``""`` for a context without one, e.g. in tests)."""
    return str(getattr(context, "aws_request_id", "") or "")


@dataclass
class Envelope:
    """One request as a trigger delivers it.

    ``refusal`` is set when the event could not even be decoded into a request (bad base64, a malformed
    record, an unreadable input object): the service answers it with that error and meters it like any
    other request, so refused requests are never lost from usage.
    """

    request: HttpRequest
    refusal: ModelfnError | None = None

    @classmethod
    def refused(cls, error: ModelfnError, *, trigger: str, request_id: str = "", path: str = "", tenant: str | None = None) -> "Envelope":
        return cls(HttpRequest("POST", path or "/", request_id=request_id, trigger=trigger, tenant=tenant), error)
