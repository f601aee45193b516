"""API Gateway proxy events: REST APIs (payload format 1.0) and HTTP APIs (payload format 2.0).

The event is read as a plain dict rather than through powertools' ``APIGatewayProxyEvent``: importing
``aws_lambda_powertools.utilities.data_classes`` costs about 140 ms of cold start (it imports every
event class), and bodies must stay bytes (``decoded_body`` returns text). Malformed events from direct
invokers (a non-dict ``requestContext``, a non-string body, no method) are refused with a 400.

Example:
    >>> envelope, = RestApiTrigger().requests(
    ...     {"httpMethod": "GET", "path": "/v2/health/live", "requestContext": {"requestId": "r1"}}, None)
    >>> envelope.request.method, envelope.request.path, envelope.request.trigger
    ('GET', '/v2/health/live', 'rest')
"""

from __future__ import annotations

import base64
import binascii
from abc import abstractmethod
from typing import Any

from ..envelope import Envelope
from ..errors import BadRequest, ModelfnError
from ..http import Headers, HttpRequest, HttpResponse
from ..identity import rest_tenant
from .base import RequestTrigger


def proxy_response(response: HttpResponse) -> dict[str, Any]:
    """The Lambda proxy integration response (valid for REST and HTTP API)."""
    if response.binary:
        body, encoded = base64.b64encode(response.body).decode("ascii"), True
    else:
        body, encoded = response.body.decode("utf-8"), False
    return {"statusCode": response.status, "headers": response.headers, "body": body, "isBase64Encoded": encoded}


class _ProxyTrigger(RequestTrigger):
    """A proxy event carries one request; a malformed event becomes one refused request (a 400), never a crash."""

    def requests(self, event: dict[str, Any], context: Any, served: str | None = None) -> list[Envelope]:
        context_id = _text(event.get("requestContext", {}).get("requestId") if isinstance(event.get("requestContext"), dict) else "")
        try:
            return [Envelope(self.request(event))]
        except ModelfnError as error:
            return [Envelope.refused(error, trigger=self.name, request_id=context_id)]
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            problem = BadRequest(f"malformed API Gateway {self.name.upper()} event ({type(error).__name__}: {str(error)[:80]}); "
                                 "send the proxy event API Gateway sends")
            return [Envelope.refused(problem, trigger=self.name, request_id=context_id)]

    def respond(self, event: Any, envelopes: list[Envelope], responses: list[HttpResponse]) -> dict[str, Any]:
        return proxy_response(responses[0])

    @abstractmethod
    def request(self, event: dict[str, Any]) -> HttpRequest:
        """The request this proxy event carries; BadRequest (or a KeyError/TypeError on a malformed event) otherwise."""


class RestApiTrigger(_ProxyTrigger):
    """``AWS::Serverless::Api`` (REST) events; the tenant is what API Gateway authenticated (``identity.rest_tenant``:
    the authorizer's tenant, the token's tenant claim, the IAM principal, else the API key id it checked)."""

    name = "rest"

    def matches(self, event: Any) -> bool:
        return isinstance(event, dict) and "httpMethod" in event and "requestContext" in event

    def request(self, event: dict[str, Any]) -> HttpRequest:
        context = _mapping(event.get("requestContext"), "requestContext")
        identity = _mapping(context.get("identity"), "requestContext.identity")
        api_key_id = _optional_text(identity.get("apiKeyId"))
        return HttpRequest(
            method=_required_text(event.get("httpMethod"), "httpMethod").upper(),
            path=_text(event.get("path")) or "/",
            headers=Headers(_string_map(event.get("headers"), "headers")),
            query=_string_map(event.get("queryStringParameters"), "queryStringParameters"),
            body=decode_body(event.get("body"), bool(event.get("isBase64Encoded"))),
            request_id=_text(context.get("requestId")),
            trigger=self.name,
            api_key_id=api_key_id,
            tenant=rest_tenant(identity, _mapping(context.get("authorizer"), "requestContext.authorizer")),
        )


class HttpApiTrigger(_ProxyTrigger):
    """HTTP API (payload 2.0) events. HTTP APIs have no API keys: the tenant comes from the authorizer,
    a Lambda authorizer's ``tenant`` context value or a JWT authorizer's ``sub`` claim."""

    name = "http"

    def matches(self, event: Any) -> bool:
        context = event.get("requestContext") if isinstance(event, dict) else None
        return isinstance(event, dict) and event.get("version") == "2.0" and isinstance(context, dict) and "http" in context

    def request(self, event: dict[str, Any]) -> HttpRequest:
        context = _mapping(event.get("requestContext"), "requestContext")
        http = _mapping(context.get("http"), "requestContext.http")
        path = _text(event.get("rawPath")) or _text(http.get("path")) or "/"
        stage = _text(context.get("stage")) or "$default"
        if stage != "$default" and path.startswith(f"/{stage}/"):
            path = path[len(stage) + 1 :]
        return HttpRequest(
            method=_required_text(http.get("method"), "requestContext.http.method").upper(),
            path=path,
            headers=Headers(_string_map(event.get("headers"), "headers")),
            query=_string_map(event.get("queryStringParameters"), "queryStringParameters"),
            body=decode_body(event.get("body"), bool(event.get("isBase64Encoded"))),
            request_id=_text(context.get("requestId")),
            trigger=self.name,
            tenant=_http_api_tenant(_mapping(context.get("authorizer"), "requestContext.authorizer")),
        )


def decode_body(body: Any, is_base64: bool) -> bytes:
    """A proxy event's body as bytes; BadRequest for invalid base64 or a non-string body."""
    if body is None:
        return b""
    if not isinstance(body, str):
        raise BadRequest(f"the event's body must be a string, got {type(body).__name__}")
    if not is_base64:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("the request body is marked base64-encoded but is not valid base64") from None


def _http_api_tenant(authorizer: dict[str, Any]) -> str | None:
    lambda_context = authorizer.get("lambda")
    if isinstance(lambda_context, dict) and lambda_context.get("tenant"):
        return _optional_text(lambda_context["tenant"])
    jwt = authorizer.get("jwt")
    claims = jwt.get("claims") if isinstance(jwt, dict) else None
    return _optional_text(claims.get("sub")) if isinstance(claims, dict) else None


def _mapping(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"the event's {field} must be an object, got {type(value).__name__}")
    return value


def _string_map(value: Any, field: str) -> dict[str, str]:
    mapping = _mapping(value, field)
    for key, item in mapping.items():  # a plain loop: this runs on every API request
        if not (isinstance(key, str) and isinstance(item, str)):
            raise BadRequest(f"the event's {field} must map strings to strings")
    return mapping


def _required_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"the event has no {field}; send the proxy event API Gateway sends")
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
