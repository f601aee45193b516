"""The server's handlers (``server_routes``): health, server metadata, the playground and the OpenAPI document.

They need no model and no numpy: the catch-all function (deployed without onnxruntime and numpy, see
``modelfn build``) answers them. Each reads what it needs from the service through ``Server``.

Example:
    >>> server_metadata("0.1.0")["extensions"]
    ['binary_tensor_data', 'classification']
"""

from __future__ import annotations

from typing import Any, Protocol

from .. import playground
from ..errors import ModelNotReady, clip, quote
from ..http import HttpRequest, HttpResponse
from ..interfaces import Answer, Model, Unavailable
from ..modelcard import ModelCard
from ..openapi import openapi_document
from ..readiness import Readiness
from .oip_routes import EXTENSIONS
from .server_routes import LIVE, METADATA, OPENAPI, PLAYGROUND, READY

SERVER_NAME = "modelfn"
SERVER_VERSION = "0.1.0"


class Server(Protocol):
    """What the server's handlers read from the service."""

    @property
    def model(self) -> Model | None: ...

    @property
    def unavailable(self) -> Unavailable | None: ...

    @property
    def cards(self) -> list[ModelCard]: ...

    @property
    def readiness(self) -> Readiness: ...


def server_metadata(version: str = SERVER_VERSION) -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": version, "extensions": EXTENSIONS}


def _playground(request: HttpRequest, server: Server) -> Answer:
    """The playground for browsers; KServe v1's liveness answer (``{"status": "alive"}``) for API clients."""
    if "text/html" in request.headers.get("accept", ""):
        return Answer(playground.page(server.cards))
    return Answer(HttpResponse.json(200, {"status": "alive", "playground": "open / in a browser", "openapi": OPENAPI.path}))


def _openapi(request: HttpRequest, server: Server) -> Answer:
    return Answer(HttpResponse.json(200, openapi_document(server.cards, SERVER_VERSION)))


def _live(request: HttpRequest, server: Server) -> Answer:
    return Answer(HttpResponse.json(200, {"live": True}))


def _ready(request: HttpRequest, server: Server) -> Answer:
    """Ready when this function's model loaded; the catch-all is ready only when every model function can serve."""
    if server.unavailable is not None:
        raise server.unavailable.error()
    if server.model is None:
        readiness = server.readiness
        waiting = readiness.not_ready()
        if waiting:
            reasons = "; ".join(f"{quote(name)}: {reason}" for name, reason in sorted(waiting.items()))
            raise ModelNotReady(f"not ready: {len(waiting)} of {len(readiness.functions)} models cannot serve ({clip(reasons, 1500)})",
                                headers={"Retry-After": str(int(readiness.cache_s) or 5)})
    return Answer(HttpResponse.json(200, {"ready": True}))


def _metadata(request: HttpRequest, server: Server) -> Answer:
    return Answer(HttpResponse.json(200, server_metadata()))


HANDLERS = {
    PLAYGROUND.operation: _playground,
    OPENAPI.operation: _openapi,
    LIVE.operation: _live,
    READY.operation: _ready,
    METADATA.operation: _metadata,
}
"""The handler of each route in ``server_routes.ROUTES``, by operation."""
