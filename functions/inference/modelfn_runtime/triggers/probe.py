"""Readiness probes: the catch-all function asks each model function whether it can serve.

The probe is ``{"modelfn": "ready"}``, sent by ``readiness.Readiness`` with Lambda's Invoke API. The model function
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

from ..http import HttpRequest, HttpResponse
from .base import Envelope, Trigger, request_id

PROBE_EVENT = {"modelfn": "ready"}


class ProbeTrigger(Trigger):
    name = "probe"

    def matches(self, event: Any) -> bool:
        return isinstance(event, dict) and event.get("modelfn") == "ready"

    def requests(self, event: Any, context: Any, served: str | None = None) -> list[Envelope]:
        path = f"/v2/models/{served}/ready" if served else "/v2/health/ready"
        return [Envelope(HttpRequest("GET", path, request_id=request_id(context), trigger=self.name))]

    def respond(self, event: Any, envelopes: list[Envelope], responses: list[HttpResponse]) -> dict[str, Any]:
        response = responses[0]
        try:
            body = json.loads(response.body) if response.body else {}
        except ValueError:
            body = {}
        if response.status == 200:
            return {"ready": True}
        return {"ready": False, "status": response.status, "error": str(body.get("error", f"status {response.status}"))}
