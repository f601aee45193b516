"""The adapter interface every trigger implements, and the envelope the service answers.

Example:
    >>> envelope = Envelope(HttpRequest("GET", "/v2/health/live", trigger="rest"))
    >>> envelope.request.path, envelope.refusal is None
    ('/v2/health/live', True)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ModelfnError
from ..http import HttpRequest, HttpResponse
from ..modelcard import ModelCard

Handle = Callable[["Envelope"], HttpResponse]
"""``InferenceService.handle``: answers one envelope and meters it exactly once."""


def request_id(context: Any) -> str:
    """The Lambda request id of ``context`` (``""`` for a context without one, e.g. in tests)."""
    return str(getattr(context, "aws_request_id", "") or "")


class Service(Protocol):
    """What a trigger needs of ``InferenceService``."""

    @property
    def card(self) -> ModelCard | None: ...

    @property
    def served_name(self) -> str | None: ...

    def handle(self, request: HttpRequest | Envelope) -> HttpResponse: ...


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


class Trigger(ABC):
    """One kind of Lambda event.

    ``dispatch`` is the straight line for one event: ``requests`` -> the service answers each envelope
    -> ``respond``. Record triggers (S3, SQS) override it to run the same line per record inside
    powertools' batch and idempotency wrappers.
    """

    name: str = ""

    @abstractmethod
    def matches(self, event: Any) -> bool:
        """True when ``event`` is this trigger's kind (checks shape only, never raises)."""

    @abstractmethod
    def requests(self, event: Any, context: Any, served: str | None) -> list[Envelope]:
        """The envelopes an event carries (``served``: this function's model, if any); decode errors
        become refused envelopes, never exceptions."""

    @abstractmethod
    def respond(self, event: Any, envelopes: list[Envelope], responses: list[HttpResponse]) -> Any:
        """The reply Lambda returns for this trigger, built from one response per envelope."""

    def dispatch(self, event: Any, context: Any, service: Service) -> Any:
        """Answer one event: ``requests`` -> ``service.handle`` each (metered once) -> ``respond``."""
        envelopes = self.requests(event, context, getattr(service, "served_name", None))
        return self.respond(event, envelopes, [service.handle(envelope) for envelope in envelopes])
