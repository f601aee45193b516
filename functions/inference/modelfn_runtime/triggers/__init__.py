"""Trigger adapters: one family, one interface, one module per trigger.

A Lambda event reaches the service through exactly one ``Trigger``, picked once by ``pick``:

==========  ==========================================  =========================================
trigger     event                                       reply
==========  ==========================================  =========================================
``rest``    API Gateway REST proxy event (payload v1)   proxy response dict
``http``    API Gateway HTTP API event (payload v2)     proxy response dict
``direct``  an OIP request, or ``{"input_uri": ...}``   OIP response JSON (also async invokes)
``s3``      S3 event notification (``Records``)         ``None``; results land in the data bucket
``sqs``     SQS batch (``Records``)                     ``{"batchItemFailures": [...]}``
``probe``   ``{"modelfn": "ready"}`` (the catch-all's     ``{"ready": true}`` or the reason
            readiness check)
==========  ==========================================  =========================================

Every trigger turns its event into ``Envelope``\\ s (an ``HttpRequest`` plus who asked and, when the
event could not be decoded, the refusal to answer with), the service answers each envelope once (and
meters it once), and the trigger shapes the answers into its reply. API triggers do that per event
(``RequestTrigger``); record triggers (S3, SQS) per record, as jobs of the ``jobs`` pipeline, inside
powertools' batch and idempotency wrappers. Trigger adapters are the runtime's top layer: only the handler
imports them.

Example:
    >>> trigger = pick({"httpMethod": "GET", "path": "/v2/health/live", "requestContext": {}})
    >>> trigger.name
    'rest'
"""

from __future__ import annotations

from typing import Any

from ..envelope import Envelope, request_id
from ..errors import BadRequest
from ..http import HttpResponse
from .base import RequestTrigger, Serving, Trigger

__all__ = ["Envelope", "RequestTrigger", "Serving", "Trigger", "pick", "TRIGGERS", "UNSUPPORTED_EVENT"]

UNSUPPORTED_EVENT = (
    "unsupported event: send an API Gateway REST or HTTP API proxy event, an S3 or SQS event, or invoke "
    'directly with an Open Inference Protocol request ({"inputs": [...]}) or an S3 pointer ({"input_uri": "s3://..."})'
)


def _load() -> list[Trigger]:
    from .apigw import HttpApiTrigger, RestApiTrigger
    from .direct import DirectTrigger
    from .probe import ProbeTrigger
    from .records import S3Trigger, SqsTrigger

    return [HttpApiTrigger(), RestApiTrigger(), SqsTrigger(), S3Trigger(), DirectTrigger(), ProbeTrigger()]


TRIGGERS: list[Trigger] = _load()


def pick(event: Any) -> Trigger:
    """The one trigger whose event this is; ``UnsupportedTrigger`` (answering 400) when none matches."""
    for trigger in TRIGGERS:
        if trigger.matches(event):
            return trigger
    return UnsupportedTrigger()


class UnsupportedTrigger(RequestTrigger):
    """An event no adapter recognises (``pick``'s answer when none matches): one refused request, metered, and
    answered the way a direct invoke is."""

    name = "unknown"

    def matches(self, event: Any) -> bool:
        return not any(trigger.matches(event) for trigger in TRIGGERS)

    def requests(self, event: Any, context: Any, served: str | None = None) -> list[Envelope]:
        return [Envelope.refused(BadRequest(UNSUPPORTED_EVENT), trigger=self.name, request_id=request_id(context))]

    def respond(self, event: Any, envelopes: list[Envelope], responses: list[HttpResponse]) -> Any:
        from .direct import direct_payload

        return direct_payload(responses[0])


