"""The inference service: route an ``HttpRequest`` to the protocol that owns the route, answer, meter.

One service serves one model (or none: the API's catch-all function answers health, server metadata, the
playground, the OpenAPI document and 404s for unknown models). Each protocol owns its routes
(``protocols/*_routes.py``, numpy-free) and its handlers (``protocols/server.py``, ``protocols/oip.py``,
``protocols/tfserving.py``); the service only matches the route, finds the served model a model route names,
and dispatches. What it adds around every handler: content codings, Lambda's payload limits, errors as
``{"error": ...}`` with their status, ``HEAD``, payload sampling and exactly one meter record.

The model protocols' handlers import numpy: they are imported only once a request reached a model route of the
model this function serves, so the catch-all function routes and answers 404 without numpy.

Example:
    >>> service = InferenceService(model=None, served_models=["digits"])
    >>> service.handle(HttpRequest("GET", "/v2/health/live")).status
    200
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from .cards import cards_from_environment
from .encoding import decode_request, encode_response
from .envelope import Envelope
from .errors import LAMBDA_SYNC_PAYLOAD_LIMIT, MethodNotAllowed, ModelfnError, NotFound, clip, quote
from .http import HttpRequest, HttpResponse
from .interfaces import Answer, Model, ServedModel, Unavailable
from .metering import EmfMeter, Meter, UsageRecord
from .modelcard import ModelCard
from .observability import logger
from .payloads import PayloadLog
from .protocols import oip_routes, server, server_routes, tfserving_routes
from .protocols.routing import Route, match
from .readiness import Readiness
from .validation import Limits, payload_too_large

__all__ = ["InferenceService", "ROUTES", "Unavailable", "describe"]

SERVER_VERSION = server.SERVER_VERSION
SYNCHRONOUS_TRIGGERS = ("rest", "http", "direct", "test")
"""Requests that travel inside a Lambda payload (6 MB); S3/SQS chunks are bounded by the event machinery."""

ROUTES: tuple[Route, ...] = (*server_routes.ROUTES, *oip_routes.ROUTES, *tfserving_routes.ROUTES)
"""Every route the service answers, each owned by its protocol."""

ModelHandler = Callable[[HttpRequest, ServedModel], Answer]
ROUTE_CACHE_SIZE = 256
"""Matched (method, path) pairs kept per service: a function sees a handful of paths, so routing is one dict lookup."""


class InferenceService:
    def __init__(
        self,
        model: Model | None,
        served_models: list[str] | None = None,
        meter: Meter | None = None,
        cards: list[ModelCard] | None = None,
        *,
        limits: Limits | None = None,
        unavailable: Unavailable | None = None,
        payload_log: PayloadLog | None = None,
    ):
        self.model = model
        self._cards = cards
        self._readiness: Readiness | None = None
        self.unavailable = unavailable
        own = {model.card.name} if model else ({unavailable.name} if unavailable else set())
        self.served_models = sorted(set(served_models or []) | own)
        self.meter = meter or EmfMeter()
        self.limits = limits or Limits()
        self.payload_log = payload_log or PayloadLog()  # off unless the function opts in (MODELFN_PAYLOAD_LOG_RATE)
        self._routes: dict[tuple[str, str], tuple[Route, dict[str, str]]] = {}

    @property
    def card(self) -> ModelCard | None:
        """The served model's card; None for the catch-all function."""
        return self.model.card if self.model else None

    @property
    def served_name(self) -> str | None:
        """The model this function serves, loaded or not (None for the catch-all)."""
        if self.model is not None:
            return self.model.card.name
        return self.unavailable.name if self.unavailable is not None else None

    @property
    def cards(self) -> list[ModelCard]:
        """The cards ``/`` and ``/openapi.json`` describe: this function's model, else MODELFN_CARD_URIS (read once)."""
        if self._cards is None:
            self._cards = [self.model.card] if self.model else cards_from_environment()
        return self._cards

    @property
    def readiness(self) -> Readiness:
        """How the catch-all learns whether the model functions can serve (``MODELFN_MODEL_FUNCTIONS``)."""
        if self._readiness is None:
            self._readiness = Readiness.from_env()
        return self._readiness

    def handle(self, request: HttpRequest | Envelope) -> HttpResponse:
        """Answer one request and meter it exactly once; errors become ``{"error": ...}`` with their status,
        never a traceback. An envelope the trigger could not decode is answered with its refusal."""
        started = time.perf_counter()
        refusal = None
        if isinstance(request, Envelope):
            request, refusal = request.request, request.refusal
        operation, answer = "unrouted", Answer(HttpResponse(500))
        try:
            if refusal is not None:
                raise refusal
            route, params = self._route(request)
            operation = route.operation
            if self._synchronous(request) and len(request.body) > LAMBDA_SYNC_PAYLOAD_LIMIT:
                raise payload_too_large("the request body", len(request.body), self._model_name(params))
            answer = self._dispatch(route, params, decode_request(request))
            answer.response = encode_response(request, answer.response)
        except ModelfnError as error:
            answer = Answer(HttpResponse.json(error.status, {"error": error.message}, error.headers), answer.batch_size)
            logger.info("request refused", status=error.status, error=error.message, path=clip(request.path))
        except Exception:
            logger.exception("inference failed", path=clip(request.path))
            answer = Answer(HttpResponse.json(500, {"error": "internal error while serving the request; see the function logs"}))
        encoded = _encoded_size(answer.response)
        if self._synchronous(request) and encoded > LAMBDA_SYNC_PAYLOAD_LIMIT:
            # any synchronous answer, an error's too, must fit Lambda's response limit
            error = payload_too_large("the response", encoded, self._model_name({}))
            answer = Answer(HttpResponse.json(error.status, {"error": error.message}), answer.batch_size)
        self.payload_log.maybe_log(request, answer.response)
        self._meter(request, operation, answer, started)
        if request.method == "HEAD":  # GET's status and headers, no body
            return HttpResponse(answer.response.status, b"", answer.response.headers)
        return answer.response

    def _route(self, request: HttpRequest) -> tuple[Route, dict[str, str]]:
        """The route and its path parameters (read-only: shared by the requests of the same path)."""
        key = (request.method, request.path)
        known = self._routes.get(key)
        if known is not None:
            return known
        found = match(ROUTES, request.method, request.path)
        if found.route is not None:
            if len(self._routes) < ROUTE_CACHE_SIZE:  # bounded: unknown model names cannot grow it without end
                self._routes[key] = (found.route, found.params)
            return found.route, found.params
        path = request.path.rstrip("/") or "/"
        if found.allowed:
            raise MethodNotAllowed(request.method, path, found.allowed)
        raise NotFound(
            f"no route {clip(request.method)} {clip(path)}; use {oip_routes.INFER.path} (Open Inference Protocol) "
            f"or {tfserving_routes.PREDICT.path} (TensorFlow Serving); GET {server_routes.OPENAPI.path} lists every route"
        )

    def _dispatch(self, route: Route, params: dict[str, str], request: HttpRequest) -> Answer:
        """The owning protocol's handler answers; a model route first finds the model it names (404/503 before any
        numpy is imported)."""
        if not route.for_model:
            return server.HANDLERS[route.operation](request, self)
        served = ServedModel(self._served(params, request), self.limits, synchronous=self._synchronous(request))
        return _model_handlers(route.protocol)[route.operation](request, served)

    def _served(self, params: dict[str, str], request: HttpRequest) -> Model:
        name, version = params["name"], params.get("version")
        if self.model is None and self.unavailable is not None and name == self.unavailable.name:
            raise self.unavailable.error()
        if self.model is None or name != self.model.card.name:
            # The list of served models is for callers with an API key; anonymous callers learn only the way to find it.
            known = f"this API serves {self.served_models}" if request.api_key_id else (
                "call with your API key (x-api-key) to see the served models"
            )
            raise NotFound(f"model {quote(name)} is not served here; {known}")
        if version is not None and version != self.model.card.version:
            raise NotFound(f"model {quote(name)} has no version {quote(version)}; served versions: [{self.model.card.version!r}]")
        return self.model

    def _model_name(self, params: Mapping[str, str]) -> str | None:
        return self.served_name or params.get("name")

    @staticmethod
    def _synchronous(request: HttpRequest) -> bool:
        return request.trigger in SYNCHRONOUS_TRIGGERS

    def _meter(self, request: HttpRequest, operation: str, answer: Answer, started: float) -> None:
        card = self.card
        self.meter.record(
            UsageRecord(
                request_id=request.request_id,
                model=card.name if card else "",
                version=card.version if card else "",
                trigger=request.trigger,
                operation=operation,
                status=answer.response.status,
                batch_size=answer.batch_size,
                request_bytes=len(request.body),
                response_bytes=len(answer.response.body),
                duration_ms=(time.perf_counter() - started) * 1000,
                api_key_id=request.api_key_id,
                tenant=request.tenant,
            )
        )


def _model_handlers(protocol: str) -> dict[str, ModelHandler]:
    """The handlers of a model protocol, imported on first use (they need numpy; the catch-all never gets here)."""
    if protocol == oip_routes.PROTOCOL:
        from .protocols import oip

        return oip.HANDLERS
    if protocol == tfserving_routes.PROTOCOL:
        from .protocols import tfserving

        return tfserving.HANDLERS
    raise LookupError(f"no model protocol {protocol!r}; add its handlers here")


def _encoded_size(response: HttpResponse) -> int:
    return 4 * math.ceil(len(response.body) / 3) if response.binary else len(response.body)


def describe(service: InferenceService) -> dict[str, Any]:
    model = service.model
    if model is None:
        if service.unavailable is not None:
            return {"model": service.unavailable.name, "version": service.unavailable.version, "ready": False}
        return {"model": None, "served_models": service.served_models}
    described = {"model": model.card.name, "version": model.card.version, "provider": model.provider, "threads": model.threads}
    for key in ("warm_up_ms", "gpu_mem_limit", "fallback"):  # what a ModelSession adds (GPU images, managed capacity)
        if getattr(model, key, None) is not None:
            described[key] = getattr(model, key)
    return described
