"""The interfaces between the runtime's layers, numpy-free, so each layer depends only on what it uses:

* ``Model``: what the service and the protocols need of a loaded model (``session.ModelSession`` is one);
* ``ServedModel``: what a protocol's model-route handler gets: the model, this function's limits, and ``run``;
* ``Answer``: what every route handler returns: the response and the batch size it answered (for the meter);
* ``Unavailable``: the model this function should serve but cannot load (yet);
* ``Service``: what trigger adapters and the event-job pipeline need of ``service.InferenceService``.

Example:
    >>> answer = Answer(HttpResponse.json(200, {"live": True}))
    >>> answer.response.status, answer.batch_size
    (200, 0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .envelope import Envelope
from .errors import ModelNotReady
from .http import HttpRequest, HttpResponse
from .modelcard import ModelCard
from .observability import subsegment
from .validation import Limits, check_result_size

Tensors = Mapping[str, Any]
"""Named tensors: numpy arrays by input or output name (numpy itself stays out of this module)."""


class Model(Protocol):
    """A loaded model: its card, the provider and threads it runs with, and ``run`` (validated against the card)."""

    card: ModelCard
    provider: str
    threads: int

    def run(self, inputs: Tensors, output_names: list[str] | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ServedModel:
    """The model a route names, as its protocol handler gets it: the card, this function's limits, and ``run``.

    ``run`` is traced as ``## session.run`` and, for a synchronous request, refuses results too large for Lambda's
    response payload before anything is encoded.
    """

    model: Model
    limits: Limits
    synchronous: bool = True

    @property
    def card(self) -> ModelCard:
        return self.model.card

    def run(self, inputs: Tensors, outputs: list[str] | None = None) -> dict[str, Any]:
        with subsegment("## session.run"):
            results = self.model.run(inputs, outputs)
        if self.synchronous:
            check_result_size(results, self.card.name)
        return results


@dataclass
class Answer:
    """A route handler's answer: the response and the batch size it answered (0 for metadata and health)."""

    response: HttpResponse
    batch_size: int = 0


@dataclass(frozen=True)
class Unavailable:
    """The model this function should serve but cannot load (yet): readiness says so, model routes answer 503."""

    name: str
    version: str
    reason: str
    retry_after_s: int = 5

    def error(self) -> ModelNotReady:
        return ModelNotReady(
            f"model {self.name!r} version {self.version!r} is not ready: {self.reason}",
            headers={"Retry-After": str(self.retry_after_s)},
        )


class Service(Protocol):
    """What a trigger or a job needs of the service: the served model, and ``handle`` (metered once per request)."""

    @property
    def card(self) -> ModelCard | None: ...

    @property
    def served_name(self) -> str | None: ...

    @property
    def unavailable(self) -> Unavailable | None: ...

    def handle(self, request: HttpRequest | Envelope) -> HttpResponse: ...
