"""Decoding is bounded: each request is checked against the model card before anything is built for it.

One regression test per defect found by trying the API as an attacker would (issue 9).
"""

from __future__ import annotations

import json
import logging
import math
import tracemalloc

import numpy as np
import pytest

from modelfn_runtime import errors
from modelfn_runtime.errors import BadRequest, quote
from modelfn_runtime.http import HttpRequest
from modelfn_runtime.modelcard import TensorSpec
from modelfn_runtime.protocols.common import tensor_from_json
from modelfn_runtime.service import InferenceService, Unavailable
from modelfn_runtime.validation import Limits

from .conftest import FEATURES, IDS, body_json, get, oip_inputs, post


def error_of(response) -> str:
    payload = body_json(response)
    assert set(payload) == {"error"}, payload
    return payload["error"]


def infer(service, payload=None, *, body=None, headers=None):
    return service.handle(post("/v2/models/toy/infer", payload, body=body, headers=headers))


def with_field(index, **fields):
    inputs = oip_inputs()
    inputs[index].update(fields)
    return inputs


def test_mixed_long_string_and_many_items_is_refused_without_a_huge_array(toy_model):
    """Was: np.asarray made a fixed-width text array of items x longest string (156 KB body -> > 1 GB)."""
    service = InferenceService(toy_model, limits=Limits(max_batch_size=10_000))
    data = ["x" * 100_000] + [1] * 27_999
    body = json.dumps({"inputs": with_field(0, shape=[7_000, 4], data=data)}).encode()
    tracemalloc.start()
    try:
        response = infer(service, body=body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status == 400
    assert "must hold numbers for datatype FP32; element 0 is the string 'xxx" in error_of(response)
    assert peak < 20 * len(body), f"peak {peak} bytes for a {len(body)} byte body"


def test_bytes_tensor_with_mixed_items_is_refused_by_element():
    spec = TensorSpec("text", "BYTES", [-1])
    with pytest.raises(BadRequest, match="element 1 must be a string, got 1"):
        tensor_from_json("text", ["a" * 10_000, 1, 2], spec, Limits())
    array = tensor_from_json("text", ["a" * 10_000, "b"], spec, Limits())
    assert array.dtype == object and array.tolist() == [b"a" * 10_000, b"b"]


@pytest.mark.parametrize(
    "payload,message",
    [
        ({"inputs": oip_inputs(), "parameters": [1]}, '"parameters" of the request must be a JSON object, got list'),
        ({"inputs": with_field(0, parameters="binary")}, "\"parameters\" of input 'features' must be a JSON object, got str"),
        ({"inputs": oip_inputs(), "outputs": [{"name": "probs", "parameters": 3}]}, "\"parameters\" of output 'probs' must be"),
        ({"inputs": oip_inputs(), "parameters": {"binary_data_output": "yes"}}, 'parameter "binary_data_output" of the request must be true or false'),
        ({"inputs": oip_inputs(), "outputs": [{"name": "probs", "parameters": {"binary_data": 1}}]}, 'parameter "binary_data" of output'),
        ({"inputs": oip_inputs(), "id": {"a": 1}}, '"id" must be a string'),
        ({"inputs": oip_inputs(), "outputs": [{"name": "probs"}, {"name": "probs"}]}, "names an output twice"),
        ({"inputs": with_field(0, parameters={"binary_data_size": True})}, "declares binary_data_size True"),
    ],
)
def test_malformed_fields_are_400_naming_the_field(service, payload, message):
    response = infer(service, payload)
    assert response.status == 400 and message in error_of(response)


@pytest.mark.parametrize(
    "shape,data,message",
    [
        ([0, 2**70], [], "has a dimension over 2147483647"),
        ([2**20, 4], [1.0] * 8, "has a batch of 1048576 but this model accepts at most 1024"),
        ([1, 4, 1], [1.0] * 4, "has shape [1, 4, 1] but the model expects [-1, 4]"),
        ([], 1.0, "has shape [] but the model expects [-1, 4]"),
    ],
)
def test_shapes_numpy_refuses_are_400(service, shape, data, message):
    response = infer(service, {"inputs": with_field(0, shape=shape, data=data)})
    assert response.status == 400 and message in error_of(response)


def test_binary_input_with_huge_shape_is_refused_before_allocation(service):
    header = json.dumps({"inputs": [
        {"name": "features", "shape": [2**30, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}},
        oip_inputs()[1]]}).encode()
    response = infer(service, body=header + b"\0" * 32, headers={"Inference-Header-Content-Length": str(len(header))})
    assert response.status == 400 and "accepts at most 1024" in error_of(response)


def test_deep_nesting_is_400_not_a_recursion_error(service):
    depth = 100_000
    body = b'{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": ' + b"[" * depth + b"]" * depth + b"}]}"
    response = infer(service, body=body)
    assert response.status == 400 and "nested too deeply" in error_of(response)
    nested = [[[[1.0, 2.0, 3.0, 4.0]]]]
    response = infer(service, {"inputs": with_field(0, shape=[1, 4], data=nested)})
    assert response.status == 400 and "nested 3 levels deep but its shape has 2" in error_of(response)


def test_tfserving_nesting_and_batch_are_checked_against_the_card(service):
    response = service.handle(post("/v1/models/toy:predict", {"inputs": {"features": [[[1, 2, 3, 4]]], "ids": [[1, 2, 3]]}}))
    assert response.status == 400 and "nested 3 levels deep" in error_of(response)
    rows = [{"features": [1, 2, 3, 4], "ids": [1, 2, 3]}] * 1100
    response = service.handle(post("/v1/models/toy:predict", {"instances": rows}))
    assert response.status == 400 and "accepts at most 1024 per request" in error_of(response)


def test_batch_limit_comes_from_the_environment(toy_model):
    small = InferenceService(toy_model, limits=Limits.from_env({"MODELFN_MAX_BATCH_SIZE": "1"}))
    response = infer(small, {"inputs": oip_inputs()})
    assert response.status == 400 and "accepts at most 1 per request" in error_of(response)
    with pytest.raises(ValueError, match="MODELFN_MAX_BATCH_SIZE='lots' is invalid"):
        Limits.from_env({"MODELFN_MAX_BATCH_SIZE": "lots"})


def test_nan_policy_float_inputs_accept_nan_and_responses_stay_strict_json(service):
    body = b'{"inputs": [{"name": "features", "shape": [2, 4], "datatype": "FP32", "data": [NaN, 1, 2, 3, 0, 0, 0, 1]},' \
           b' {"name": "ids", "shape": [2, 3], "datatype": "INT64", "data": [1, 2, 3, 4, 5, 6]}]}'
    response = infer(service, body=body)
    assert response.status == 200
    text = response.body.decode()
    assert "NaN" in text and "NaN," not in text.replace('"NaN",', "")  # only the quoted string, never a bare token
    probs = json.loads(text, parse_constant=lambda token: pytest.fail(f"bare {token} in the response"))["outputs"][0]["data"]
    assert probs[:3] == ["NaN", "NaN", "NaN"] and all(isinstance(p, float) for p in probs[3:])
    inf = infer(service, {"inputs": with_field(0, data=["Infinity", 0, 0, 0, "-Infinity", 0, 0, 0])})
    assert inf.status == 200


@pytest.mark.parametrize(
    "data,message",
    [
        ([float("nan"), 2, 3, 4, 5, 6], "holds NaN or Infinity but its datatype is INT64 (element 0)"),
        ([1, 2, 3, 4, 5, "NaN"], "must hold numbers for datatype INT64; element 5 is the string 'NaN'"),
        ([1, 2, 3, 4, 5, 2**64], "outside the INT64 range"),
    ],
)
def test_nan_and_overflow_in_integer_inputs_are_400(service, data, message):
    body = json.dumps({"inputs": with_field(1, data=data)}).encode()  # json.dumps writes a bare NaN
    response = infer(service, body=body)
    assert response.status == 400 and message in error_of(response)


def test_float_overflow_and_unknown_strings_are_400(service):
    response = infer(service, {"inputs": with_field(0, data=[1e39] + [0] * 7)})
    assert response.status == 400 and "outside the FP32 range" in error_of(response)
    response = infer(service, {"inputs": with_field(0, data=["nan"] + [0] * 7)})
    assert response.status == 400 and "element 0 is the string 'nan'" in error_of(response)


def test_client_input_is_quoted_truncated(service):
    long = "n" * 100_000
    for response in [
        infer(service, {"inputs": [{**oip_inputs()[0], "name": long}]}),
        infer(service, {"inputs": with_field(0, shape=[long])}),
        service.handle(post(f"/v2/models/{long}/infer", {"inputs": oip_inputs()})),
        service.handle(post("/v1/models/toy:predict", {"signature_name": long, "instances": [1]})),
        infer(service, {"inputs": oip_inputs()}, headers={"Content-Type": "x/" + long}),
    ]:
        assert 400 <= response.status < 500
        assert len(error_of(response)) < 400, error_of(response)[:500]


def test_error_messages_and_responses_are_bounded(service, monkeypatch):
    assert len(errors.ModelfnError("x" * 10**6).message) <= errors.MESSAGE_LIMIT + 1
    assert len(quote(list(range(10**6)))) <= errors.QUOTE_LIMIT + 1
    monkeypatch.setattr("modelfn_runtime.service.LAMBDA_SYNC_PAYLOAD_LIMIT", 60)
    response = service.handle(get("/v2/models/toy/nowhere/at/all"))
    assert response.status == 413, "the response guard must cover error responses too"


def test_log_lines_are_bounded(service, caplog):
    long = "p" * 200_000
    with caplog.at_level(logging.INFO):
        service.handle(post(f"/v2/models/toy/{long}", {"inputs": oip_inputs()}))
    lines = [record.getMessage() + json.dumps(getattr(record, "path", "")) for record in caplog.records]
    assert lines and all(len(line) < 4096 for line in lines)


def test_unavailable_model_is_not_ready_and_answers_503_with_the_reason():
    service = InferenceService(model=None, unavailable=Unavailable("toy", "1", "s3://b/toy/1/ has no model.onnx"))
    for path in ["/v2/health/ready", "/v2/models/toy/ready", "/v2/models/toy"]:
        response = service.handle(get(path))
        assert response.status == 503 and "has no model.onnx" in error_of(response)
        assert response.headers["Retry-After"]
    assert service.handle(get("/v2/health/live")).status == 200


def test_anonymous_404s_do_not_list_the_served_models(toy_model):
    service = InferenceService(toy_model, served_models=["toy", "secret-model"])
    anonymous = service.handle(HttpRequest("GET", "/v2/models/nope"))
    assert anonymous.status == 404 and "secret-model" not in error_of(anonymous) and "API key" in error_of(anonymous)
    keyed = service.handle(HttpRequest("GET", "/v2/models/nope", api_key_id="key-1"))
    assert "this API serves ['secret-model', 'toy']" in error_of(keyed)


def test_valid_requests_still_decode_exactly(service):
    response = infer(service, {"inputs": oip_inputs()})
    assert response.status == 200
    outputs = {o["name"]: o["data"] for o in body_json(response)["outputs"]}
    assert outputs["total"] == [float(v) for v in IDS.sum(1)]
    nested = infer(service, {"inputs": [{**oip_inputs()[0], "data": FEATURES.tolist()}, oip_inputs()[1]]})
    assert body_json(nested)["outputs"] == body_json(response)["outputs"]
    bools = tensor_from_json("b", [[True, 0], [1, False]], TensorSpec("b", "BOOL", [-1, 2]), Limits())
    assert bools.dtype == np.bool_ and bools.tolist() == [[True, False], [True, False]]
    big = tensor_from_json("u", [2**64 - 1], TensorSpec("u", "UINT64", [-1]), Limits())
    assert big.dtype == np.uint64 and int(big[0]) == 2**64 - 1
    assert math.isinf(tensor_from_json("f", ["-Infinity"], TensorSpec("f", "FP64", [-1]), Limits())[0])
