"""The server's own routes (health, server metadata, the playground and the OpenAPI document), numpy-free.

Their handlers are in ``protocols/server.py``; the catch-all function (``ServerFunction``, no model) serves them,
and every unknown model or route, through ``CatchAll``.

Example:
    >>> READY.path, READY.open, OPENAPI.open
    ('/v2/health/ready', True, False)
"""

from __future__ import annotations

from .routing import GatewayRoute, Route

PROTOCOL = "server"
HEALTH = "/v2/health"

PLAYGROUND = Route("GET", "/", "playground", PROTOCOL, open=True)
"""The browser playground (``Accept: text/html``), else KServe v1's liveness answer."""
OPENAPI = Route("GET", "/openapi.json", "openapi", PROTOCOL)
LIVE = Route("GET", f"{HEALTH}/live", "live", PROTOCOL, open=True)
READY = Route("GET", f"{HEALTH}/ready", "ready", PROTOCOL, open=True)
METADATA = Route("GET", "/v2", "server_metadata", PROTOCOL, open=True)

ROUTES = (PLAYGROUND, OPENAPI, LIVE, READY, METADATA)

GATEWAY = (
    GatewayRoute("Server", METADATA.path, "GET", open=True),
    GatewayRoute("Health", f"{HEALTH}/{{proxy+}}", "GET", open=True),
    GatewayRoute("CatchAll", "/{proxy+}", "ANY"),
    GatewayRoute("Root", PLAYGROUND.path, "ANY", open=True),  # any method: a wrong one is answered 405 by the function
)
"""How API Gateway reaches the catch-all function: health and metadata, the playground, and everything no model
function claims (``/openapi.json`` among it), answered with a protocol-shaped 404 where no route matches."""
