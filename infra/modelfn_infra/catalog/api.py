"""The REST API: its resource, its generic gateway responses, and the API events of every function.

The paths are not spelled here: they come from the runtime's protocols (``modelfn_runtime.protocols.gateway``),
the same definitions the functions route with and ``/openapi.json`` documents.

Example:
    >>> sorted(model_routes(ModelEntry("digits", "1")))
    ['Metadata', 'Predict', 'Protocol', 'Status', 'Versions']
"""

from __future__ import annotations

import copy
from typing import Any

from modelfn_runtime.protocols.gateway import model_function_routes, server_function_routes

from . import ids
from .protection import api_protection
from .schema import ModelEntry

ERROR_TEMPLATE = '{"error": $context.error.messageString}'  # messageString is already a quoted JSON string
OPEN_EVENTS = tuple(r.event for r in server_function_routes() if r.open)
"""ServerFunction's liveness, readiness, server metadata and the playground page (a browser cannot send a key to load
it; the page sends the key the user types to the model routes) need no key; their HEAD twins neither."""


def rest_api() -> dict[str, Any]:
    """The regional REST API: binary bodies both ways, JSON errors, throttled stage with access logs."""

    def error_response(status: str) -> dict[str, Any]:
        return {"StatusCode": status, "ResponseTemplates": {"application/json": ERROR_TEMPLATE}}

    return {
        "Type": "AWS::Serverless::Api",
        "Properties": {
            "Name": {"Fn::Sub": "${AWS::StackName}-models"},
            "StageName": {"Ref": "StageName"},
            "EndpointConfiguration": {"Type": "REGIONAL"},
            "TracingEnabled": True,
            # Every body travels base64 between API Gateway and Lambda, so binary tensors survive both ways.
            "BinaryMediaTypes": ["*~1*"],
            "GatewayResponses": {
                "DEFAULT_4XX": {"ResponseTemplates": {"application/json": ERROR_TEMPLATE}},
                "DEFAULT_5XX": {"ResponseTemplates": {"application/json": ERROR_TEMPLATE}},
                "REQUEST_TOO_LARGE": error_response("413"),
                "MISSING_AUTHENTICATION_TOKEN": error_response("404"),
            },
            **api_protection(),
        },
        "DependsOn": "ApiGatewayAccount",  # access logs need the region's API Gateway CloudWatch role first
    }


def route(path: str, method: str = "ANY") -> dict[str, Any]:
    """One API event of a function: ``path`` and ``method`` on the REST API."""
    return {"Type": "Api", "Properties": {"RestApiId": {"Ref": ids.API}, "Path": path, "Method": method}}


def server_routes() -> dict[str, Any]:
    """The catch-all function's routes: server metadata, health, the playground (``/``) and every other path."""
    return {r.event: route(r.path, r.method) for r in server_function_routes()}


def model_routes(entry: ModelEntry) -> dict[str, Any]:
    """A model function's routes: OIP v2 under ``/v2/models/<name>``, TF Serving under ``/v1/models/<name>``."""
    return {r.event: route(r.path, r.method) for r in model_function_routes(entry.name)}


def add_head_routes(resources: dict[str, Any]) -> None:
    """API Gateway answers HEAD only where a method says so: give every GET route its HEAD twin."""
    for resource in resources.values():
        routes = resource.get("Properties", {}).get("Events", {})
        for name, event in list(routes.items()):
            if event["Type"] == "Api" and event["Properties"]["Method"] == "GET":
                twin = copy.deepcopy(event)  # no shared dicts: they would render as YAML anchors
                twin["Properties"]["Method"] = "HEAD"
                routes[f"{name}Head"] = twin


def outputs() -> dict[str, Any]:
    return {
        "ApiUrl": {
            "Description": "Base URL of the inference API (append /v2/... or /v1/...).",
            "Value": {"Fn::Sub": "https://${ModelApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}/"},
        },
    }
