"""Trigger adapters: Lambda events in, ``HttpRequest``; ``HttpResponse`` out, the trigger's response shape.

Supported events: API Gateway REST (payload v1) and HTTP API (payload v2) proxy events. A direct
invoke carries an Open Inference Protocol request as the event itself; ``direct_invoke_request`` turns it
into the equivalent ``POST /v2/models/{name}/infer`` so every trigger travels the same path.
S3 and SQS adapters will sit beside these.

Example:
    >>> request = from_event({"httpMethod": "GET", "path": "/v2/health/live",
    ...                       "headers": {}, "requestContext": {"requestId": "r1", "stage": "Prod"}})
    >>> request.method, request.path, request.trigger
    ('GET', '/v2/health/live', 'rest')
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .errors import BadRequest
from .http import Headers, HttpRequest, HttpResponse


def trigger_of(event: Any) -> str:
    """'rest', 'http' or 'direct' for a supported event; BadRequest naming what is accepted otherwise."""
    if isinstance(event, dict):
        if event.get("version") == "2.0" and "http" in event.get("requestContext", {}):
            return "http"
        if "httpMethod" in event and "requestContext" in event:
            return "rest"
        if "inputs" in event:
            return "direct"
    raise BadRequest(
        "unsupported event: send an API Gateway REST or HTTP API proxy event, or invoke directly "
        'with an Open Inference Protocol request ({"inputs": [...]})'
    )


def from_event(event: dict[str, Any]) -> HttpRequest:
    """The HttpRequest an API Gateway proxy event carries."""
    if trigger_of(event) == "http":
        return _from_http_api(event)
    return _from_rest_api(event)


def direct_invoke_request(event: dict[str, Any], model_name: str, request_id: str) -> HttpRequest:
    """A direct-invoke OIP request as ``POST /v2/models/{name}[/versions/{v}]/infer``."""
    payload = {key: value for key, value in event.items() if key not in ("model_name", "model_version")}
    name = event.get("model_name", model_name)
    version = event.get("model_version")
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
    return HttpRequest(
        method="POST",
        path=path,
        headers=Headers({"content-type": "application/json"}),
        body=json.dumps(payload).encode(),
        request_id=request_id,
        trigger="direct",
    )


def to_proxy_response(response: HttpResponse) -> dict[str, Any]:
    """The Lambda proxy integration response for API Gateway (valid for REST and HTTP API)."""
    if response.binary:
        body, encoded = base64.b64encode(response.body).decode("ascii"), True
    else:
        body, encoded = response.body.decode("utf-8"), False
    return {"statusCode": response.status, "headers": response.headers, "body": body, "isBase64Encoded": encoded}


def to_direct_response(response: HttpResponse) -> dict[str, Any]:
    """A direct invoke answers the OIP JSON itself; errors keep their status so no retry is wasted on them."""
    payload = json.loads(response.body) if response.body else {}
    if response.status >= 400:
        payload["status"] = response.status
    return payload


def _decode_body(body: str | None, is_base64: bool) -> bytes:
    if body is None:
        return b""
    if not is_base64:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("the request body is marked base64-encoded but is not valid base64") from None


def _from_rest_api(event: dict[str, Any]) -> HttpRequest:
    context = event.get("requestContext") or {}
    return HttpRequest(
        method=event["httpMethod"].upper(),
        path=event.get("path") or "/",
        headers=Headers(event.get("headers") or {}),
        query=dict(event.get("queryStringParameters") or {}),
        body=_decode_body(event.get("body"), bool(event.get("isBase64Encoded"))),
        request_id=context.get("requestId", ""),
        trigger="rest",
        api_key_id=(context.get("identity") or {}).get("apiKeyId"),
    )


def _from_http_api(event: dict[str, Any]) -> HttpRequest:
    context = event["requestContext"]
    path = event.get("rawPath") or context["http"].get("path") or "/"
    stage = context.get("stage", "$default")
    if stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]
    return HttpRequest(
        method=context["http"]["method"].upper(),
        path=path,
        headers=Headers(event.get("headers") or {}),
        query=dict(event.get("queryStringParameters") or {}),
        body=_decode_body(event.get("body"), bool(event.get("isBase64Encoded"))),
        request_id=context.get("requestId", ""),
        trigger="http",
        api_key_id=(context.get("authorizer") or {}).get("apiKeyId"),
    )
