"""The API's OpenAPI 3.1 description, generated from the model cards (never written by hand): the contract.

Every route the API answers is described, with every status it can answer:

* 200 and the route's own schemas: per model, request and response schemas for both protocols, derived from
  its card and exactly as strict as the server (``openapi_schemas``); binary tensors as ``application/octet-stream``
  with ``Inference-Header-Content-Length``;
* the errors, each ``{"error": "<what was wrong and how to fix it>"}`` (``components/responses``): 400, 404 (model
  routes), 413, 415, 500, 503 (not ready, with ``Retry-After``); API Gateway's own 403 (no valid ``x-api-key`` on a
  keyed route), 429 (a usage plan's rate or quota, or the stage's throttle; API Gateway sends no ``Retry-After``:
  back off), 502 (the function failed) and 504 (it ran past the integration timeout);
* 405 with ``Allow`` for any other method on a documented path (``components/responses/MethodNotAllowed``;
  OpenAPI has no place for a path's undocumented methods, so each path item's description says so); HEAD is
  answered wherever GET is, with GET's status and headers and no body.

Which routes need a key: every route but ``OPEN_OPERATIONS`` (the template's open ServerFunction events). With
``MODELFN_AUTH_MODE`` (the catalog's ``auth:``) ``iam`` or ``jwt`` they also need a SigV4 signature or a bearer token,
and may answer 401 (``_with_auth``).
OpenAPI 3.1 schemas are JSON Schema 2020-12, so any JSON Schema validator checks requests against them.

Example:
    >>> document = openapi_document([], "0.1.0")
    >>> document["openapi"], "/v2/health/ready" in document["paths"]
    ('3.1.0', True)
    >>> sorted(document["paths"]["/v2/health/ready"]["get"]["responses"])
    ['200', '400', '413', '415', '429', '500', '502', '503', '504']
"""

from __future__ import annotations

import os
from typing import Any

from . import openapi_schemas as schemas
from .environment import AUTH_MODE
from .modelcard import ModelCard
from .protocols import oip_routes, server_routes, tfserving_routes
from .protocols.routing import Route

OPENAPI_VERSION = "3.1.0"
API_KEY_HEADER = "x-api-key"
OPEN_OPERATIONS = frozenset(route.operation for route in server_routes.ROUTES if route.open)
"""Operations API Gateway answers without an API key (the catalog's open ServerFunction events); the rest need one."""
ERROR_REF = {"$ref": "#/components/schemas/Error"}
OTHER_METHODS = "Any other method answers 405 with an Allow header (#/components/responses/MethodNotAllowed); HEAD answers wherever GET does."
ERRORS: dict[str, tuple[str, str]] = {
    "400": ("BadRequest", "the request is malformed or does not fit the model's signature; the message says what to fix"),
    "403": ("Forbidden", "API Gateway: no valid API key in the x-api-key header (this route needs one)"),
    "404": ("NotFound", "no such model or version here; the message lists the served ones to a caller with a key"),
    "405": ("MethodNotAllowed", "the path does not answer this method; Allow lists the ones it does"),
    "413": ("PayloadTooLarge", "the request or response is over Lambda's 6 MB synchronous limit; the message names the "
                               "asynchronous way (S3, SQS)"),
    "415": ("UnsupportedMediaType", "the Content-Type or Content-Encoding is not one this API reads"),
    "429": ("TooManyRequests", "API Gateway: the key's usage plan (rate or quota) or the stage's throttle refused the "
                               "request; no Retry-After is sent: retry after a short, growing wait"),
    "500": ("InternalError", "the function failed while serving a valid request: a bug, logged with the request id"),
    "502": ("BadGateway", "API Gateway: the function crashed or answered something that is not an HTTP response"),
    "503": ("NotReady", "the model cannot serve yet (loading, or its artifact is unreadable); retry after Retry-After seconds"),
    "504": ("GatewayTimeout", "API Gateway: the function ran past the integration timeout"),
}
ANY_REQUEST = ("400", "413", "415", "429", "500", "502", "504")
"""What any route can answer: a body in an unreadable Content-Encoding (400, 415) or over the limit (413), the
stage's throttle (429), and the function or API Gateway failing (500, 502, 504)."""


def openapi_document(cards: list[ModelCard], server_version: str, auth_mode: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document for an API serving ``cards`` (sorted by model name); ``auth_mode`` defaults to
    ``MODELFN_AUTH_MODE`` (``api_key`` when unset)."""
    document = _document(cards, server_version)
    mode = auth_mode or os.environ.get(AUTH_MODE) or "api_key"
    return _with_auth(document, mode) if mode in AUTH_SCHEMES else document


AUTH_SCHEMES: dict[str, dict[str, Any]] = {
    "iam": {"type": "apiKey", "in": "header", "name": "Authorization", "x-amazon-apigateway-authtype": "awsSigv4",
            "description": "an AWS SigV4 signature (service execute-api) by the tenant's IAM principal; send x-api-key too"},
    "jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "an access token from the API's issuer (Authorization: Bearer <token>)"},
}
UNAUTHORIZED = ("401", "Unauthorized", "API Gateway: missing or malformed credential (no or bad SigV4 signature, "
                "outside the 5-minute clock skew; no, expired or foreign token); the message says how to fix it")


def _with_auth(document: dict[str, Any], mode: str) -> dict[str, Any]:
    """``document`` for an API whose keyed routes also need ``mode``'s credential: its scheme, and 401 on them.
    (With the JWT Lambda authorizer the token alone is enough; with Cognito or IAM the key is sent too.)"""
    components = document["components"]
    components["securitySchemes"][mode] = AUTH_SCHEMES[mode]
    status, name, description = UNAUTHORIZED
    components["responses"][name] = _json_response(description, ERROR_REF)
    for item in document["paths"].values():
        for operation in (value for value in item.values() if isinstance(value, dict) and "security" in value):
            if operation["security"]:
                # iam: signature and key; jwt: the token (Lambda authorizer) or the token and the key (Cognito)
                operation["security"] = [{mode: [], "apiKey": []}] + ([{mode: []}] if mode == "jwt" else [])
                operation["responses"][status] = {"$ref": f"#/components/responses/{name}"}
                operation["responses"] = dict(sorted(operation["responses"].items()))
    return document


def _document(cards: list[ModelCard], server_version: str) -> dict[str, Any]:
    cards = sorted(cards, key=lambda c: c.name)
    paths: dict[str, Any] = _server_paths()
    components: dict[str, Any] = {
        "schemas": _common_schemas(),
        "responses": _error_responses(),
        "headers": {
            "Retry-After": {"description": "seconds to wait before trying again", "required": True,
                            "schema": {"type": "integer", "minimum": 0}},
            "Allow": {"description": "the methods this path answers", "required": True, "schema": {"type": "string"}},
        },
        "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER,
                                       "description": "a tenant's key (`modelfn tenants create NAME --plan PLAN`)"}},
    }
    for card in cards:
        model_paths, model_schemas = _model(card)
        paths.update(model_paths)
        components["schemas"].update(model_schemas)
    for item in paths.values():
        item["description"] = OTHER_METHODS
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "modelfn",
            "version": server_version,
            "description": "Model as a Service: Open Inference Protocol v2 (KServe/Triton) and TensorFlow Serving REST, "
            "one AWS Lambda function per model. Generated from the model cards. Every error is "
            '{"error": "<what was wrong and how to fix it>"}.',
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "tags": [{"name": "server"}] + [{"name": card.name, "description": card.description} for card in cards],
        "paths": paths,
        "components": components,
    }


def _server_paths() -> dict[str, Any]:
    alive = {"type": "object", "required": ["status"], "properties": {"status": {"const": "alive"}}}
    root = {"200": {"description": "HTML page (Accept: text/html), or KServe v1 liveness as JSON",
                    "content": {"text/html": {"schema": {"type": "string"}}, "application/json": {"schema": alive}}}}
    operations = [
        (server_routes.PLAYGROUND, "The browser playground (Accept: text/html): every model, its signature and a request form; "
              'otherwise KServe v1 liveness, {"status": "alive"}.', root),
        (server_routes.OPENAPI, "This document.", {"200": _json_response("OpenAPI 3.1 document", {"type": "object"})}),
        (server_routes.LIVE, "Server liveness.", {"200": _json_response("live", _flag("live"))}),
        (server_routes.READY, "Server readiness: every model function can serve.",
         {"200": _json_response("ready", _flag("ready"))}),
        (server_routes.METADATA, "Server name, version and protocol extensions.",
         {"200": _json_response("server metadata", {"$ref": "#/components/schemas/ServerMetadata"})}),
    ]
    return {route.path: {route.method.lower(): _operation(route.operation, route.operation, summary, responses, tag="server")}
            for route, summary, responses in operations}


def _model(card: ModelCard) -> tuple[dict[str, Any], dict[str, Any]]:
    name, key = card.name, _key(card.name)
    model_schemas = {
        f"{key}.InferRequest": schemas.infer_request(card),
        f"{key}.InferResponse": schemas.infer_response(card),
        f"{key}.PredictRequest": schemas.predict_request(card),
        f"{key}.PredictResponse": schemas.predict_response(card),
        f"{key}.ModelMetadata": schemas.model_metadata(card),
    }
    ref = {schema: {"$ref": f"#/components/schemas/{key}.{schema}"} for schema in
           ("InferRequest", "InferResponse", "PredictRequest", "PredictResponse", "ModelMetadata")}
    binary = {"type": "string", "format": "binary"}
    infer_body = {
        "required": True,
        "content": {
            "application/json": {"schema": ref["InferRequest"], "example": schemas.infer_example(card)},
            "application/octet-stream": {"schema": {**binary, "description": "binary tensor extension: the JSON header "
                                         "(as InferRequest, except that a binary input carries parameters.binary_data_size "
                                         "instead of data; its length in Inference-Header-Content-Length), then the raw "
                                         "tensors in input order"}},
        },
    }
    infer_ok = {"description": "inference result",
                "content": {"application/json": {"schema": ref["InferResponse"]},
                            "application/octet-stream": {"schema": {**binary, "description": "binary outputs: the JSON "
                                                         "header (InferResponse; its length in Inference-Header-Content-"
                                                         "Length) then the raw tensors"}}},
                "headers": {"Inference-Header-Content-Length": {"description": "binary responses: the JSON header's length",
                                                                "schema": {"type": "integer", "minimum": 1}}}}
    status = {
        "type": "object",
        "required": ["model_version_status"],
        "properties": {"model_version_status": {"type": "array", "items": {"type": "object"}},
                       "name": {"const": card.name}, "ready": {"type": "boolean"}},
    }
    ready = {"type": "object", "required": ["name", "ready"], "properties": {
        "name": {"const": name}, "ready": {"type": "boolean"},
        "provider": {"type": "string", "description": "the ONNX Runtime execution provider the model runs on"},
        "fallback": {"type": "string", "description": "why a GPU image serves on the CPU here"}}}
    operations: dict[Route, tuple[str, dict[str, Any], dict[str, Any] | None]] = {
        oip_routes.MODEL_METADATA: ("Model metadata from the card (OIP).",
                               _json_response("model metadata", ref["ModelMetadata"]), None),
        oip_routes.MODEL_READY: ("Model readiness (OIP).", _json_response("readiness", ready), None),
        oip_routes.INFER: (f"Run {name} (Open Inference Protocol, JSON or binary tensors).",
                                     infer_ok, infer_body),
        tfserving_routes.STATUS: ("Model version status (TF Serving).", _json_response("status", status), None),
        tfserving_routes.METADATA: ("Signature (TF Serving).",
                                        _json_response("metadata", {"type": "object"}), None),
        tfserving_routes.PREDICT: (f"Run {name} (TensorFlow Serving, row or columnar form).",
                                       _json_response("predictions", ref["PredictResponse"]),
                                       {"required": True, "content": {"application/json": {
                                           "schema": ref["PredictRequest"], "example": schemas.predict_example(card)}}}),
    }
    paths: dict[str, Any] = {}
    version_parameter = {"name": "version", "in": "path", "required": True, "schema": {"type": "string", "enum": [card.version]}}
    header_length = {"name": "Inference-Header-Content-Length", "in": "header", "required": False,
                     "description": "binary tensor extension: the JSON header's byte length (application/octet-stream bodies)",
                     "schema": {"type": "integer", "minimum": 1}}
    for route, (summary, ok, body) in operations.items():
        for versioned in (False, True):
            path = route.path_for(name, "{version}") if versioned else route.path_for(name)
            operation = route.operation
            op = _operation(f"{key}.{operation}{'.versioned' if versioned else ''}", operation, summary, {"200": ok}, tag=name)
            parameters = ([version_parameter] if versioned else []) + ([header_length] if route is oip_routes.INFER else [])
            if parameters:
                op["parameters"] = parameters
            if body is not None:
                op["requestBody"] = body
            paths[path] = {route.method.lower(): op}
    return paths, model_schemas


def _errors_of(operation: str) -> tuple[str, ...]:
    """The error statuses ``operation`` can answer (405 is a path's, for the methods it does not document)."""
    statuses = set(ANY_REQUEST)
    if operation not in OPEN_OPERATIONS:
        statuses.add("403")
    if operation not in OPEN_OPERATIONS and operation != "openapi":  # a model's routes
        statuses.update(("404", "503"))
    if operation == "ready":
        statuses.add("503")
    return tuple(sorted(statuses))


def _error_responses() -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (name, description) in ERRORS.items():
        response = _json_response(description, ERROR_REF)
        if status in ("405", "503"):
            header = "Allow" if status == "405" else "Retry-After"
            response["headers"] = {header: {"$ref": f"#/components/headers/{header}"}}
        responses[name] = response
    return responses


def _common_schemas() -> dict[str, Any]:
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}},
                  "description": "what was wrong and how to fix it"},
        "ServerMetadata": {
            "type": "object",
            "required": ["name", "version", "extensions"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                           "extensions": {"type": "array", "items": {"type": "string"}}},
        },
    }


def _operation(operation_id: str, operation: str, summary: str, responses: dict[str, Any], *, tag: str) -> dict[str, Any]:
    errors = {status: {"$ref": f"#/components/responses/{ERRORS[status][0]}"} for status in _errors_of(operation)}
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "security": [] if operation in OPEN_OPERATIONS else [{"apiKey": []}],
        "responses": {**responses, **errors},
    }


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _flag(name: str) -> dict[str, Any]:
    return {"type": "object", "required": [name], "properties": {name: {"type": "boolean"}}}


def _key(name: str) -> str:
    return name.replace("-", "_")
