"""Readiness probes: the catch-all function asks each model function whether it can serve.

The probe is ``readiness.PROBE_EVENT`` (``{"modelfn": "ready"}``), sent by ``readiness.Readiness`` with Lambda's Invoke API. The model function
answers it the way it answers ``GET /v2/models/<name>/ready``: ``{"ready": true}``, or ``{"ready": false, "status":
503, "error": "<why>"}`` while its model cannot load. Probes are the platform's own traffic: they are metered as
trigger ``probe`` and never billed to a tenant.

Example:
    >>> ProbeTrigger().matches({"modelfn": "ready"})
    True
"""

from __future__ import annotations

import json
from typing import Any

from ..envelope import Envelope, request_id
from ..http import HttpRequest, HttpResponse
from ..protocols import oip_routes, server_routes
from ..readiness import PROBE_EVENT
from .base import RequestTrigger

__all__ = ["PROBE_EVENT", "ProbeTrigger"]


class ProbeTrigger(RequestTrigger):
    name = "probe"

    def matches(self, event: Any) -> bool:
        return isinstance(event, dict) and all(event.get(key) == value for key, value in PROBE_EVENT.items())

    def requests(self, event: Any, context: Any, served: str | None = None) -> list[Envelope]:
        path = oip_routes.MODEL_READY.path_for(served) if served else server_routes.READY.path
        return [Envelope(HttpRequest("GET", path, request_id=request_id(context), trigger=self.name))]

    def respond(self, event: Any, envelopes: list[Envelope], responses: list[HttpResponse]) -> dict[str, Any]:
        response = responses[0]
        try:
            body = json.loads(response.body) if response.body else {}
        except ValueError:
            body = {}
        if response.status == 200:  # with the provider the model serves on (and a GPU image's CPU fallback)
            return {"ready": True, **{key: body[key] for key in ("provider", "fallback") if key in body}}
        return {"ready": False, "status": response.status, "error": str(body.get("error", f"status {response.status}"))}
