"""Direct invokes (``aws lambda invoke``, SDKs, Step Functions), synchronous or asynchronous.

The event is an Open Inference Protocol request, answered with the OIP response JSON; an error keeps
its HTTP status in ``"status"`` so callers (and Lambda destinations) can tell a bad request from a
fault. A Lambda response is JSON, so binary outputs (``binary_data_output``) are answered as JSON data.

A request too large for Lambda's 6 MB synchronous (1 MB asynchronous) payload goes through S3: put it
under ``requests/<model>/`` in the data bucket and invoke with ``{"input_uri": "s3://…"}``, typically
with ``InvocationType=Event``. The result lands in ``outbox/<model>/invocations/<request id>.json`` and
the invoke answers a summary (status, output URI) that the OnSuccess destination receives; transient
failures raise, so Lambda retries and finally sends the event to the OnFailure destination. Lambda
keeps the request id across those retries, which is what the job's idempotency key is made of.

Example:
    >>> DirectTrigger().matches({"inputs": []}), DirectTrigger().matches({"input_uri": "s3://b/k"})
    (True, True)
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ..envelope import Envelope, request_id
from ..errors import BadRequest
from ..http import Headers, HttpRequest, HttpResponse, status_class
from ..protocols.oip_routes import INFER
from .base import RequestTrigger, Serving

ROUTING_FIELDS = ("model_name", "model_version", "tenant")


def direct_payload(response: HttpResponse) -> dict[str, Any]:
    """A direct invoke answers the OIP JSON itself; errors keep their status so no retry is wasted on them."""
    payload = json.loads(response.body) if response.body else {}
    if status_class(response.status) != "ok":
        payload["status"] = response.status
    return payload


class DirectTrigger(RequestTrigger):
    name = "direct"

    def matches(self, event: Any) -> bool:
        return isinstance(event, dict) and ("inputs" in event or "input_uri" in event)

    def requests(self, event: dict[str, Any], context: Any, served: str | None = None) -> list[Envelope]:
        rid = request_id(context)
        tenant = event.get("tenant") if isinstance(event.get("tenant"), str) else None
        name, version = event.get("model_name"), event.get("model_version")
        if name is not None and not isinstance(name, str) or version is not None and not isinstance(version, (str, int)):
            error = BadRequest('"model_name" and "model_version" must be strings when given')
            return [Envelope.refused(error, trigger=self.name, request_id=rid, tenant=tenant)]
        from ..jobs.job import json_outputs  # the jobs package loads on the first direct invoke, not at init

        path = INFER.path_for(name or served or "-", version)
        payload = json_outputs({key: value for key, value in event.items() if key not in ROUTING_FIELDS})
        request = HttpRequest("POST", path, Headers({"content-type": "application/json"}), request_id=rid,
                              trigger=self.name, tenant=tenant, parsed=payload)
        return [Envelope(request)]

    def respond(self, event: Any, envelopes: list[Envelope], responses: list[HttpResponse]) -> dict[str, Any]:
        return direct_payload(responses[0])

    def dispatch(self, event: dict[str, Any], context: Any, serving: Serving) -> Any:
        if "input_uri" in event:
            return self._pointer(event, context, serving)
        return super().dispatch(event, context, serving)

    def _pointer(self, event: dict[str, Any], context: Any, serving: Serving) -> dict[str, Any]:
        """An S3 pointer: the request is an object under ``requests/<model>/``, run as a job (async invokes)."""
        from ..jobs.job import Job, pointer_job

        runner = serving.jobs()
        rid = request_id(context)
        served = serving.service.served_name or ""
        tenant = event.get("tenant") if isinstance(event.get("tenant"), str) else None
        job = Job(model=served, source=f"invoke:{rid}", result_name=f"invocations/{rid}",
                  idempotency_key=f"invoke:{rid}", trigger=self.name, tenant=tenant, request_id=rid)
        if not served:
            job = replace(job, refusal="this function serves no model; invoke a model's function")
        elif event.get("model_name") not in (None, served):
            job = replace(job, refusal=f"this function serves {served!r}, not {str(event.get('model_name'))[:80]!r}")
        else:
            job = pointer_job(job, event["input_uri"], runner.settings)
        return runner.idempotent(context)(job)

