"""Property-based fuzzing (hypothesis) of the decoders and of ``lambda_handler`` (issue 9, section 5).

Properties: no 5xx for any request a client can send, no exception escaping the handler for any event,
every answer strict JSON, and peak memory per request within a small multiple of its body size.

Cases per test: ``MODELFN_FUZZ_EXAMPLES`` (600 by default: about 3,000 in CI); ``make fuzz`` runs 20,000 per test.
"""

from __future__ import annotations

import base64
import json
import os
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelfn_runtime import handler
from modelfn_runtime.http import Headers, HttpRequest
from modelfn_runtime.service import InferenceService

EXAMPLES = int(os.environ.get("MODELFN_FUZZ_EXAMPLES", "600"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=5), max_leaves=40)

names = st.sampled_from(["features", "ids", "other", "", "features\n"]) | st.text(max_size=10)
datatypes = st.sampled_from(["FP32", "INT64", "FP64", "BOOL", "BYTES", "UINT8", "FP16", "FLOAT"]) | st.text(max_size=5)
dims = st.integers(min_value=-2, max_value=6) | st.sampled_from([2**31, 2**63, 2**70]) | json_values
shapes = st.lists(dims, max_size=4) | json_values
numbers = st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.booleans() | st.sampled_from(["NaN", "Infinity", "x"])
nested_data = st.recursive(numbers, lambda children: st.lists(children, max_size=5), max_leaves=30) | json_values
parameters = st.none() | st.dictionaries(st.sampled_from(["binary_data_size", "binary_data_output", "binary_data"]), json_values, max_size=2) | json_values

oip_input = st.fixed_dictionaries(
    {"name": names, "shape": shapes, "datatype": datatypes},
    optional={"data": nested_data, "parameters": parameters},
)
oip_request = st.fixed_dictionaries(
    {"inputs": st.lists(oip_input, max_size=3) | json_values},
    optional={
        "outputs": st.lists(st.fixed_dictionaries({"name": names}, optional={"parameters": parameters}), max_size=3) | json_values,
        "parameters": parameters,
        "id": json_values,
    },
)
tfs_request = st.fixed_dictionaries(
    {},
    optional={
        "instances": st.lists(st.dictionaries(names, nested_data, max_size=2) | nested_data, max_size=4) | json_values,
        "inputs": st.dictionaries(names, nested_data, max_size=3) | nested_data,
        "signature_name": json_values,
    },
)
paths = st.sampled_from([
    "/v2/models/toy/infer", "/v1/models/toy:predict", "/v2/models/toy/versions/1/infer", "/v2/models/toy",
    "/v2/models/toy/ready", "/v2/health/ready", "/v2", "/v1/models/toy/metadata",
]) | st.text(max_size=30).map(lambda text: "/" + text)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"])


def assert_well_answered(response) -> None:
    assert response.status < 500, response.body[:300]
    if response.headers.get("Content-Type") == "application/json" and response.body:  # HEAD answers carry no body
        json.loads(response.body, parse_constant=lambda token: pytest.fail(f"bare {token} in a response"))


def send(service: InferenceService, path: str, body: bytes, headers: dict | None = None, method: str = "POST"):
    return service.handle(HttpRequest(method, path, Headers({"content-type": "application/json", **(headers or {})}), body=body))


@FUZZ
@given(payload=oip_request)
def test_oip_decoder_never_fails_with_5xx(service, payload):
    response = send(service, "/v2/models/toy/infer", json.dumps(payload).encode())
    assert_well_answered(response)


@FUZZ
@given(payload=tfs_request)
def test_tfserving_decoder_never_fails_with_5xx(service, payload):
    response = send(service, "/v1/models/toy:predict", json.dumps(payload).encode())
    assert_well_answered(response)


@FUZZ
@given(method=methods, path=paths, body=st.binary(max_size=300) | oip_request.map(lambda p: json.dumps(p).encode()),
       header_length=st.none() | st.integers(-5, 400).map(str) | st.text(max_size=5), content_type=st.sampled_from(
           ["application/json", "application/octet-stream", "text/plain", "x/y", ""]))
def test_any_route_body_and_headers_never_fail_with_5xx(service, method, path, body, header_length, content_type):
    headers = {"content-type": content_type}
    if header_length is not None:
        headers["Inference-Header-Content-Length"] = header_length
    assert_well_answered(send(service, path, body, headers, method))


class Context:
    aws_request_id = "fuzz"
    function_name = "ToyFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ToyFunction"


# Events with the keys the triggers look at (Records and input_uri are left out: those triggers read S3 and are
# fuzzed by their own tests under moto).
event_keys = st.sampled_from(
    ["httpMethod", "path", "requestContext", "headers", "body", "isBase64Encoded", "version", "rawPath",
     "queryStringParameters", "inputs", "outputs", "model_name", "model_version", "parameters", "id"]
)
events = st.dictionaries(event_keys, json_values | st.dictionaries(st.sampled_from(["http", "identity", "requestId", "method", "path", "stage", "authorizer"]), json_values, max_size=3), max_size=8) | json_values

rest_events = st.builds(
    lambda method, path, body, b64, headers: {
        "httpMethod": method, "path": path, "headers": headers,
        "requestContext": {"requestId": "r", "stage": "Prod", "identity": {"apiKeyId": "k"}},
        "body": base64.b64encode(body).decode() if b64 else body.decode("latin-1"), "isBase64Encoded": b64,
    },
    methods, paths, st.binary(max_size=200) | oip_request.map(lambda p: json.dumps(p).encode()), st.booleans(),
    st.dictionaries(st.sampled_from(["content-type", "Content-Type", "Inference-Header-Content-Length", "x"]), st.text(max_size=20), max_size=3),
)


@pytest.fixture
def lambda_service(monkeypatch, service):
    monkeypatch.setattr(handler, "SERVICE", service)
    return service


@FUZZ
@given(event=events)
def test_no_exception_escapes_lambda_handler(lambda_service, event):
    reply = handler.lambda_handler(event, Context())
    json.dumps(reply, allow_nan=False)  # whatever the trigger answers is strict JSON
    if isinstance(reply, dict) and "statusCode" in reply:
        assert reply["statusCode"] < 500, reply
    if isinstance(reply, dict) and "status" in reply:
        assert reply["status"] < 500, reply


@FUZZ
@given(event=rest_events)
def test_well_formed_api_events_never_get_5xx(lambda_service, event):
    reply = handler.lambda_handler(event, Context())
    assert reply["statusCode"] < 500, reply


MEMORY_FACTOR = 20
MEMORY_SLACK = 1 << 20


@settings(max_examples=max(20, EXAMPLES // 30), deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.integers(1, 1024), kind=st.sampled_from(["floats", "ints", "strings", "nested", "binary"]))
def test_peak_memory_per_request_is_a_small_multiple_of_its_body(service, rows, kind):
    features = [[0.5, 1.25, -3.0, 7.0]] * rows
    ids = [[1, 2, 3]] * rows
    if kind == "strings":
        features = [["x" * 50, 1, 2, 3]] * rows
    inputs = [
        {"name": "features", "shape": [rows, 4], "datatype": "FP32", "data": features if kind == "nested" else sum(features, [])},
        {"name": "ids", "shape": [rows, 3], "datatype": "INT64", "data": sum(ids, [])},
    ]
    headers = {}
    body = json.dumps({"inputs": inputs}).encode()
    if kind == "binary":
        import numpy as np

        raw = np.asarray(features, np.float32).tobytes()
        inputs[0] = {"name": "features", "shape": [rows, 4], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
        header = json.dumps({"inputs": inputs}).encode()
        body, headers = header + raw, {"Inference-Header-Content-Length": str(len(header))}
    tracemalloc.start()
    try:
        response = send(service, "/v2/models/toy/infer", body, headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status == (400 if kind == "strings" else 200)
    assert peak <= MEMORY_FACTOR * len(body) + MEMORY_SLACK, f"peak {peak} B for a {len(body)} B {kind} body"
