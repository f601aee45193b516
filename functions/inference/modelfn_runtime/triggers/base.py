"""The interface every trigger adapter implements, and what the handler gives it to answer with.

A ``Trigger`` recognises its kind of event (``matches``) and answers one (``dispatch``) with a ``Serving``: the
sandbox's ``Service`` and, for event-triggered work, its job runner (``Jobs``). Triggers answered per request
(API Gateway, direct invokes, probes) are ``RequestTrigger``\\ s: ``requests`` turns the event into envelopes,
the service answers each, ``respond`` shapes the answers into the trigger's reply. Record triggers (S3, SQS) run
one job per record instead (``records.py``).

Example:
    >>> from modelfn_runtime.http import HttpRequest
    >>> class Ping(RequestTrigger):
    ...     name = "ping"
    ...     def matches(self, event): return event == "ping"
    ...     def requests(self, event, context, served): return [Envelope(HttpRequest("GET", "/v2/health/live"))]
    ...     def respond(self, event, envelopes, responses): return responses[0].status
    >>> Ping().matches("ping")
    True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..envelope import Envelope
from ..http import HttpResponse
from ..interfaces import Service

if TYPE_CHECKING:  # the jobs package loads with the first record or pointer event, not at init
    from ..jobs.job import Job, Settings, Summary


class Jobs(Protocol):
    """What record and pointer triggers need of the job runner (``jobs.runner.JobRunner``)."""

    settings: Settings

    def idempotent(self, context: Any) -> Callable[[Job], Summary]: ...

    def dead_letter(self, job: Job, error: BaseException) -> None: ...


class Serving(Protocol):
    """What the handler gives a trigger for one event: the sandbox's service, and its job runner (made on first use)."""

    @property
    def service(self) -> Service: ...

    def jobs(self) -> Jobs: ...


class Trigger(ABC):
    """One kind of Lambda event."""

    name: str = ""

    @abstractmethod
    def matches(self, event: Any) -> bool:
        """True when ``event`` is this trigger's kind (checks shape only, never raises)."""

    @abstractmethod
    def dispatch(self, event: Any, context: Any, serving: Serving) -> Any:
        """Answer one event; the reply Lambda returns for this trigger."""


class RequestTrigger(Trigger):
    """A trigger whose event carries requests answered right away: ``requests`` -> ``Service.handle`` each (metered
    once) -> ``respond``."""

    @abstractmethod
    def requests(self, event: Any, context: Any, served: str | None) -> list[Envelope]:
        """The envelopes an event carries (``served``: this function's model, if any); decode errors
        become refused envelopes, never exceptions."""

    @abstractmethod
    def respond(self, event: Any, envelopes: list[Envelope], responses: list[HttpResponse]) -> Any:
        """The reply Lambda returns for this trigger, built from one response per envelope."""

    def dispatch(self, event: Any, context: Any, serving: Serving) -> Any:
        service = serving.service
        envelopes = self.requests(event, context, service.served_name)
        return self.respond(event, envelopes, [service.handle(envelope) for envelope in envelopes])
