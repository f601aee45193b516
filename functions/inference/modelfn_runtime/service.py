"""The inference service: route an ``HttpRequest``, decode, ``session.run``, encode, meter.

One service serves one model (or none: the API's catch-all function answers health, server
metadata and 404s for unknown models). Both protocols share the route table below.

Example:
    >>> service = InferenceService(model=None, served_models=["digits"])
    >>> service.handle(HttpRequest("GET", "/v2/health/live")).status
    200
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import playground
from .cards import cards_from_environment
from .encoding import decode_request, encode_response
from .errors import (
    LAMBDA_SYNC_PAYLOAD_LIMIT,
    MethodNotAllowed,
    ModelfnError,
    ModelNotReady,
    NotFound,
    clip,
    payload_too_large,
    quote,
)
from .http import HttpRequest, HttpResponse
from .limits import Limits
from .metering import Meter, MetricsMeter, UsageRecord
from .modelcard import ModelCard
from .observability import logger, subsegment
from .openapi import openapi_document
from .payloads import PayloadLog
from .protocols.server import server_metadata
from .readiness import Readiness
from .triggers.base import Envelope

if TYPE_CHECKING:  # the catch-all function ships without numpy and onnxruntime: model-only imports stay lazy
    import numpy as np

    from .session import ModelSession

SERVER_VERSION = "0.1.0"
SYNCHRONOUS_TRIGGERS = ("rest", "http", "direct", "test")
"""Requests that travel inside a Lambda payload (6 MB); S3/SQS chunks are bounded by the event machinery."""
_MODEL = r"/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str


ROUTES = [
    Route(method, re.compile(pattern), operation)
    for method, pattern, operation in [
        ("GET", r"/", "playground"),
        ("GET", r"/openapi.json", "openapi"),
        ("GET", r"/v2/health/live", "live"),
        ("GET", r"/v2/health/ready", "ready"),
        ("GET", r"/v2", "server_metadata"),
        ("GET", rf"/v2{_MODEL}", "model_metadata"),
        ("GET", rf"/v2{_MODEL}/ready", "model_ready"),
        ("POST", rf"/v2{_MODEL}/infer", "infer"),
        ("GET", rf"/v1{_MODEL}", "status"),
        ("GET", rf"/v1{_MODEL}/metadata", "metadata"),
        ("POST", rf"/v1{_MODEL}:predict", "predict"),
    ]
]


@dataclass
class Outcome:
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


class InferenceService:
    def __init__(
        self,
        model: ModelSession | None,
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
        self.meter = meter or MetricsMeter()
        self.limits = limits or Limits()
        self.payload_log = payload_log or PayloadLog()  # off unless the function opts in (MODELFN_PAYLOAD_LOG_RATE)
        self._operations: dict[str, Callable[[HttpRequest, dict[str, str]], Outcome]] = {
            "playground": self._root,
            "openapi": lambda request, params: Outcome(HttpResponse.json(200, openapi_document(self.cards, SERVER_VERSION))),
            "live": lambda request, params: Outcome(HttpResponse.json(200, {"live": True})),
            "ready": self._ready,
            "server_metadata": lambda request, params: Outcome(HttpResponse.json(200, server_metadata(SERVER_VERSION))),
            "model_metadata": self._model_metadata,
            "model_ready": self._model_ready,
            "infer": self._infer,
            "status": self._status,
            "metadata": self._metadata,
            "predict": self._predict,
        }

    @property
    def card(self) -> ModelCard | None:
        """The served model's card; None for the catch-all function."""
        return self.model.card if self.model else None

    @property
    def cards(self) -> list[ModelCard]:
        """The cards ``/`` and ``/openapi.json`` describe: this function's model, else MODELFN_CARD_URIS (read once)."""
        if self._cards is None:
            self._cards = [self.model.card] if self.model else cards_from_environment()
        return self._cards

    def handle(self, request: HttpRequest | Envelope) -> HttpResponse:
        """Answer one request and meter it exactly once; errors become ``{"error": ...}`` with their status,
        never a traceback. An envelope the trigger could not decode is answered with its refusal."""
        started = time.perf_counter()
        refusal = None
        if isinstance(request, Envelope):
            request, refusal = request.request, request.refusal
        operation, outcome = "unrouted", Outcome(HttpResponse(500))
        try:
            if refusal is not None:
                raise refusal
            route, params = self._route(request)
            operation = route.operation
            synchronous = request.trigger in SYNCHRONOUS_TRIGGERS
            if synchronous and len(request.body) > LAMBDA_SYNC_PAYLOAD_LIMIT:
                raise payload_too_large("the request body", len(request.body), self._model_name(params))
            outcome = self._operations[operation](decode_request(request), params)
            outcome.response = encode_response(request, outcome.response)
        except ModelfnError as error:
            outcome = Outcome(HttpResponse.json(error.status, {"error": error.message}, error.headers), outcome.batch_size)
            logger.info("request refused", status=error.status, error=error.message, path=clip(request.path))
        except Exception:
            logger.exception("inference failed", path=clip(request.path))
            outcome = Outcome(HttpResponse.json(500, {"error": "internal error while serving the request; see the function logs"}))
        encoded = _encoded_size(outcome.response)
        if request.trigger in SYNCHRONOUS_TRIGGERS and encoded > LAMBDA_SYNC_PAYLOAD_LIMIT:
            # any synchronous answer, an error's too, must fit Lambda's response limit
            error = payload_too_large("the response", encoded, self._model_name({}))
            outcome = Outcome(HttpResponse.json(error.status, {"error": error.message}), outcome.batch_size)
        self.payload_log.maybe_log(request, outcome.response)
        self._meter(request, operation, outcome, started)
        if request.method == "HEAD":  # GET's status and headers, no body
            return HttpResponse(outcome.response.status, b"", outcome.response.headers)
        return outcome.response

    def _model_name(self, params: dict[str, str]) -> str | None:
        return self.served_name or params.get("name")

    def _route(self, request: HttpRequest) -> tuple[Route, dict[str, str]]:
        path = request.path.rstrip("/") or "/"
        matches = [(route, m) for route in ROUTES if (m := route.pattern.fullmatch(path))]
        method = "GET" if request.method == "HEAD" else request.method  # HEAD wherever GET is served
        for route, match in matches:
            if route.method == method:
                return route, {k: v for k, v in match.groupdict().items() if v is not None}
        if matches:
            allowed = {route.method for route, _ in matches}
            raise MethodNotAllowed(request.method, path, sorted(allowed | ({"HEAD"} if "GET" in allowed else set())))
        raise NotFound(
            f"no route {clip(request.method)} {clip(path)}; use /v2/models/{{name}}/infer (Open Inference Protocol) "
            "or /v1/models/{name}:predict (TensorFlow Serving); GET /openapi.json lists every route"
        )

    def _served(self, params: dict[str, str], request: HttpRequest | None = None) -> ModelSession:
        name, version = params["name"], params.get("version")
        if self.model is None and self.unavailable is not None and name == self.unavailable.name:
            raise self.unavailable.error()
        if self.model is None or name != self.model.card.name:
            # The list of served models is for callers with an API key; anonymous callers learn only the way to find it.
            known = f"this API serves {self.served_models}" if request is None or request.api_key_id else (
                "call with your API key (x-api-key) to see the served models"
            )
            raise NotFound(f"model {quote(name)} is not served here; {known}")
        if version is not None and version != self.model.card.version:
            raise NotFound(f"model {quote(name)} has no version {quote(version)}; served versions: [{self.model.card.version!r}]")
        return self.model

    def _ready(self, request: HttpRequest, params: dict[str, str]) -> Outcome:
        if self.unavailable is not None:
            raise self.unavailable.error()
        if self.model is None:  # the catch-all: ready only when every model function can serve
            waiting = self.readiness.not_ready()
            if waiting:
                reasons = "; ".join(f"{quote(name)}: {reason}" for name, reason in sorted(waiting.items()))
                raise ModelNotReady(f"not ready: {len(waiting)} of {len(self.readiness.functions)} models cannot serve ({clip(reasons, 1500)})",
                                    headers={"Retry-After": str(int(self.readiness.cache_s) or 5)})
        return Outcome(HttpResponse.json(200, {"ready": True}))

    @property
    def served_name(self) -> str | None:
        """The model this function serves, loaded or not (None for the catch-all)."""
        if self.model is not None:
            return self.model.card.name
        return self.unavailable.name if self.unavailable is not None else None

    @property
    def readiness(self) -> Readiness:
        """How the catch-all learns whether the model functions can serve (``MODELFN_MODEL_FUNCTIONS``)."""
        if self._readiness is None:
            self._readiness = Readiness.from_env()
        return self._readiness

    def _model_metadata(self, request: HttpRequest, params: dict[str, str]) -> Outcome:
        model = self._served(params, request)  # before the protocol import: the catch-all answers 404 without numpy
        from .protocols import oip

        return Outcome(HttpResponse.json(200, oip.model_metadata(model.card)))

    def _model_ready(self, request: HttpRequest, params: dict[str, str]) -> Outcome:
        model = self._served(params, request)
        return Outcome(HttpResponse.json(200, {"name": model.card.name, "ready": True}))

    def _infer(self, request: HttpRequest, params: dict[str, str]) -> Outcome:
        model = self._served(params, request)
        from .protocols import oip

        infer = oip.decode_infer(request, model.card, self.limits)
        results = _run(model, infer.inputs, infer.outputs, synchronous=request.trigger in SYNCHRONOUS_TRIGGERS)
        return Outcome(oip.encode_infer(model.card, infer, results), infer.batch_size)

    def _root(self, request: HttpRequest, params: dict[str, str]) -> Outcome:
        """The playground for browsers; KServe v1's liveness answer (``{"status": "alive"}``) for API clients."""
        if "text/html" in request.headers.get("accept", ""):
            return Outcome(playground.page(self.cards))
        return Outcome(HttpResponse.json(200, {"status": "alive", "playground": "open / in a browser", "openapi": "/openapi.json"}))

    def _status(self, request: HttpRequest, params: dict[str, str]) -> Outcome:
        model = self._served(params, request)
        from .protocols import tfserving

        card = model.card
        # TF Serving's status, plus KServe v1's readiness keys (its client reads "ready" from this route)
        return Outcome(HttpResponse.json(200, {**tfserving.model_status(card), "name": card.name, "ready": True}))

    def _metadata(self, request: HttpRequest, params: dict[str, str]) -> Outcome:
        model = self._served(params, request)
        from .protocols import tfserving

        return Outcome(HttpResponse.json(200, tfserving.model_metadata(model.card)))

    def _predict(self, request: HttpRequest, params: dict[str, str]) -> Outcome:
        model = self._served(params, request)
        from .protocols import tfserving

        predict = tfserving.decode_predict(request, model.card.inputs, self.limits)
        results = _run(model, predict.inputs, synchronous=request.trigger in SYNCHRONOUS_TRIGGERS)
        return Outcome(HttpResponse.json(200, tfserving.encode_predict(predict, results)), predict.batch_size)

    def _meter(self, request: HttpRequest, operation: str, outcome: Outcome, started: float) -> None:
        card = self.model.card if self.model else None
        self.meter.record(
            UsageRecord(
                request_id=request.request_id,
                model=card.name if card else "",
                version=card.version if card else "",
                trigger=request.trigger,
                operation=operation,
                status=outcome.response.status,
                batch_size=outcome.batch_size,
                request_bytes=len(request.body),
                response_bytes=len(outcome.response.body),
                duration_ms=(time.perf_counter() - started) * 1000,
                api_key_id=request.api_key_id,
                tenant=request.tenant,
            )
        )


def _run(
    model: ModelSession, inputs: dict[str, np.ndarray], outputs: list[str] | None = None, *, synchronous: bool = True
) -> dict[str, np.ndarray]:
    with subsegment("## session.run"):
        results = model.run(inputs, outputs)
    # Refuse before encoding: JSON needs >= 2 bytes per element, binary >= its itemsize, so nothing larger is built.
    at_least = sum(value.size * min(value.dtype.itemsize, 2) for value in results.values())
    if synchronous and at_least > LAMBDA_SYNC_PAYLOAD_LIMIT:
        raise payload_too_large("the response", at_least, model.card.name)
    return results


def _encoded_size(response: HttpResponse) -> int:
    return 4 * math.ceil(len(response.body) / 3) if response.binary else len(response.body)


def describe(service: InferenceService) -> dict[str, Any]:
    model = service.model
    if model is None:
        if service.unavailable is not None:
            return {"model": service.unavailable.name, "version": service.unavailable.version, "ready": False}
        return {"model": None, "served_models": service.served_models}
    return {"model": model.card.name, "version": model.card.version, "provider": model.provider, "threads": model.threads}
