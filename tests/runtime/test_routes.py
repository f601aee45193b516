"""Each protocol owns its routes: the service, the OpenAPI document, the event jobs and the template's API Gateway
routes all take their paths from ``protocols/*_routes.py``, and those stay numpy-free for the catch-all function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelfn_runtime.jobs.job import Job
from modelfn_runtime.openapi import openapi_document
from modelfn_runtime.protocols import gateway, oip, oip_routes, server, server_routes, tfserving, tfserving_routes
from modelfn_runtime.protocols.routing import GatewayRoute, Route, match
from modelfn_runtime.service import ROUTES

FUNCTION_DIR = Path(__file__).resolve().parents[2] / "functions" / "inference"
PROTOCOLS = [(server_routes, server), (oip_routes, oip), (tfserving_routes, tfserving)]


def concrete_paths(route: Route, name: str = "digits") -> list[str]:
    return [route.path_for(name), route.path_for(name, "1")] if route.for_model else [route.path]


def gateway_route_for(routes: list[GatewayRoute], path: str, method: str) -> GatewayRoute | None:
    """API Gateway's choice for a request: an exact path first, else the greedy ``{proxy+}`` with the longest prefix."""
    fits = [r for r in routes if r.method in (method, "ANY")]
    exact = [r for r in fits if r.path == path]
    if exact:
        return exact[0]
    greedy = [r for r in fits if r.path.endswith("/{proxy+}") and path.startswith(r.path.removesuffix("{proxy+}"))]
    return max(greedy, key=lambda r: len(r.path), default=None)


@pytest.mark.parametrize("routes,protocol", PROTOCOLS, ids=lambda p: getattr(p, "__name__", "").rsplit(".", 1)[-1])
def test_each_protocol_has_one_handler_per_route(routes, protocol):
    assert set(protocol.HANDLERS) == {route.operation for route in routes.ROUTES}
    assert {route.protocol for route in routes.ROUTES} == {routes.PROTOCOL}


def test_the_service_routes_every_protocols_routes_and_nothing_else():
    assert ROUTES == (*server_routes.ROUTES, *oip_routes.ROUTES, *tfserving_routes.ROUTES)
    for route in ROUTES:
        for path in concrete_paths(route):
            found = match(ROUTES, route.method, path)
            assert found.route == route, path
            if route.method == "GET":
                assert match(ROUTES, "HEAD", path).route == route
    assert match(ROUTES, "GET", "/v2/models/digits/infer").allowed == ["POST"]
    assert match(ROUTES, "GET", "/nowhere").route is None and match(ROUTES, "GET", "/nowhere").allowed == []


def test_every_route_reaches_its_function_through_the_gateway_with_the_right_key_rule():
    model_routes, server_function = gateway.model_function_routes("digits"), gateway.server_function_routes()
    for route in ROUTES:
        function = model_routes if route.for_model else server_function
        for path in concrete_paths(route):
            chosen = gateway_route_for(function, path, route.method)
            assert chosen is not None, f"no API Gateway route sends {route.method} {path} to its function"
            assert chosen.open == route.open, f"{path}: the gateway route {chosen.event} and the route disagree on the key"
    # what no model function claims lands on the catch-all, which answers 404 with the routes to use
    assert gateway_route_for(server_function, "/v2/models/other/infer", "POST").event == "CatchAll"


def test_gateway_routes_are_the_ones_the_template_renders():
    from modelfn_infra.catalog import Catalog, ModelEntry, render_template

    resources = render_template(Catalog([ModelEntry("digits", "1")]))["Resources"]

    def events(function: str) -> list[tuple[str, str, str]]:
        rendered = resources[function]["Properties"]["Events"]
        return [(name, e["Properties"]["Path"], e["Properties"]["Method"]) for name, e in rendered.items()
                if e["Type"] == "Api" and not name.endswith("Head")]

    assert events("DigitsFunction") == [(r.event, r.path, r.method) for r in gateway.model_function_routes("digits")]
    assert events("ServerFunction") == [(r.event, r.path, r.method) for r in gateway.server_function_routes()]


def test_openapi_documents_exactly_the_routes(toy_model):
    document = openapi_document([toy_model.card], server.SERVER_VERSION)
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}  # a path item's other keys describe it
    documented = {(path, method.upper()) for path, operations in document["paths"].items() for method in operations
                  if method in methods}
    expected = {(route.path, route.method) for route in ROUTES if not route.for_model}
    expected |= {(path, route.method) for route in ROUTES if route.for_model
                 for path in (route.path_for("toy"), route.path_for("toy", "{version}"))}
    assert documented == expected


def test_event_jobs_and_probes_take_their_paths_from_the_routes():
    job = Job(model="digits", source="s", result_name="r", idempotency_key="k", trigger="sqs", version="2")
    assert job.infer_path == oip_routes.INFER.path_for("digits", "2") == "/v2/models/digits/versions/2/infer"
    assert job.predict_path == tfserving_routes.PREDICT.path_for("digits", "2") == "/v1/models/digits/versions/2:predict"
    from modelfn_runtime.triggers.probe import ProbeTrigger

    paths = [ProbeTrigger().requests({"modelfn": "ready"}, None, served)[0].request.path for served in ("digits", None)]
    assert paths == [oip_routes.MODEL_READY.path_for("digits"), server_routes.READY.path]


CATCH_ALL = """
import json, sys, types
import app
from modelfn_runtime.protocols import gateway
gateway.model_function_routes("digits")
def rest(method, path, key=None):
    context = {"requestId": "r", "identity": {"apiKeyId": key} if key else {}}
    return {"httpMethod": method, "path": path, "headers": {}, "requestContext": context, "body": None}
context = types.SimpleNamespace(aws_request_id="r", function_name="f", memory_limit_in_mb=256,
                                invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:f")
events = [rest("GET", "/v2/health/live"), rest("POST", "/v2/models/digits/infer", "key-1"),
          rest("GET", "/v1/models/digits:predict"), rest("GET", "/openapi.json"), rest("GET", "/v2")]
statuses = [app.lambda_handler(event, context)["statusCode"] for event in events]
print(json.dumps({"statuses": statuses, "heavy": sorted(m for m in ("numpy", "onnxruntime") if m in sys.modules)}))
"""


def test_the_catch_all_routes_and_refuses_without_numpy():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL")}
    env.update(MODELFN_MODELS="digits", PYTHONPATH=str(FUNCTION_DIR), POWERTOOLS_METRICS_NAMESPACE="modelfn")
    result = subprocess.run([sys.executable, "-c", CATCH_ALL], cwd=FUNCTION_DIR, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"statuses": [200, 404, 405, 200, 200], "heavy": []}
