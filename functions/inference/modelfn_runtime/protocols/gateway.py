"""API Gateway's routes for template.yaml, from the protocols' own route definitions: what the renderer asks for.

A model's function gets its OIP and TF Serving routes; the catch-all ``ServerFunction`` gets health, server
metadata, the playground and the catch-all. ``open`` routes need no API key where the API requires one; the
renderer adds each GET route's HEAD twin itself. Numpy-free and cheap to import (``modelfn_infra`` calls it).

Example:
    >>> [(r.event, r.method, r.path) for r in model_function_routes("digits")][:2]
    [('Metadata', 'GET', '/v2/models/digits'), ('Protocol', 'ANY', '/v2/models/digits/{proxy+}')]
    >>> [r.event for r in server_function_routes() if r.open]
    ['Server', 'Health', 'Root']
"""

from __future__ import annotations

from . import oip_routes, server_routes, tfserving_routes
from .routing import GatewayRoute

__all__ = ["GatewayRoute", "model_function_routes", "server_function_routes"]


def model_function_routes(name: str) -> list[GatewayRoute]:
    """The routes of model ``name``'s function, in template order: OIP (Metadata, Protocol), then TF Serving (Status,
    Predict, Versions)."""
    return [route.for_model(name) for route in (*oip_routes.GATEWAY, *tfserving_routes.GATEWAY)]


def server_function_routes() -> list[GatewayRoute]:
    """The routes of the catch-all function, in template order: Server, Health, CatchAll, Root."""
    return list(server_routes.GATEWAY)
