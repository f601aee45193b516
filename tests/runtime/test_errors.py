"""Every documented error: its status and a message that says what was wrong and how to fix it."""

from __future__ import annotations

import json

import pytest

from modelfn_runtime import errors
from modelfn_runtime.http import HttpRequest

from .conftest import FEATURES, body_json, get, oip_inputs, post


def error_of(response) -> str:
    payload = body_json(response)
    assert set(payload) == {"error"}
    return payload["error"]


def infer(service, inputs, **extra):
    return service.handle(post("/v2/models/toy/infer", {"inputs": inputs, **extra}))


BAD_INFER = [
    ("bad json", dict(body=b"{not json"), "not valid JSON"),
    ("not an object", dict(body=b"[1, 2]"), "must be a JSON object"),
    ("no inputs", dict(payload={"inputs": []}), 'non-empty "inputs"'),
]


@pytest.mark.parametrize("label,request_kwargs,message", BAD_INFER, ids=[b[0] for b in BAD_INFER])
def test_malformed_requests_are_400(service, label, request_kwargs, message):
    response = service.handle(post("/v2/models/toy/infer", request_kwargs.get("payload"), body=request_kwargs.get("body")))
    assert response.status == 400 and message in error_of(response)


def renamed(name):
    inputs = oip_inputs()
    inputs[0]["name"] = name
    return inputs


def with_field(index, **fields):
    inputs = oip_inputs()
    inputs[index].update(fields)
    return inputs


INPUT_ERRORS = [
    ("unknown input", renamed("feature"), "unknown input 'feature'; this model's inputs are ['features', 'ids']"),
    ("missing input", oip_inputs()[:1], "missing input 'ids'"),
    ("wrong shape", with_field(0, shape=[1, 8]), "has shape [1, 8] but the model expects [-1, 4]"),
    ("element count", with_field(0, shape=[3, 4]), "has 8 elements but shape [3, 4] needs 12"),
    ("wrong datatype", with_field(0, datatype="FP64"), "has datatype FP64 but the model expects FP32"),
    ("unknown datatype", with_field(0, datatype="FLOAT"), "unknown datatype 'FLOAT'"),
    ("fractional int", with_field(1, data=[1.5, 2, 3, 4, 5, 6]), "holds fractional numbers but its datatype is INT64"),
    ("strings for numbers", with_field(0, data=["a"] * 8), "must hold numbers"),
    ("ragged", with_field(0, data=[[1, 2, 3, 4], [1]]), "ragged"),
    ("negative shape", with_field(0, shape=[-1, 4]), "non-negative integers"),
    ("batch mismatch", with_field(1, shape=[1, 3], data=[1, 2, 3]), "disagree on the batch size"),
]


@pytest.mark.parametrize("label,inputs,message", INPUT_ERRORS, ids=[e[0] for e in INPUT_ERRORS])
def test_input_errors_are_400_with_the_fix(service, label, inputs, message):
    response = infer(service, inputs)
    assert response.status == 400
    assert message in error_of(response)


def test_unknown_output_is_400(service):
    response = infer(service, oip_inputs(), outputs=[{"name": "logits"}])
    assert response.status == 400 and "unknown output 'logits'; this model's outputs are ['probs', 'total']" in error_of(response)


def test_binary_section_errors_are_400(service):
    header = json.dumps({"inputs": [{"name": "features", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}]}).encode()
    short = post("/v2/models/toy/infer", body=header + b"\0" * 10, headers={"Inference-Header-Content-Length": str(len(header))})
    assert service.handle(short).status == 400 and "binary_data_size 32" in error_of(service.handle(short))
    bad_length = post("/v2/models/toy/infer", body=header, headers={"Inference-Header-Content-Length": "abc"})
    assert service.handle(bad_length).status == 400


@pytest.mark.parametrize(
    "path,message",
    [
        ("/v2/models/nope/infer", "model 'nope' is not served here; this API serves ['other', 'toy']"),
        ("/v2/models/toy/versions/7/infer", "model 'toy' has no version '7'; served versions: ['1']"),
        ("/v1/models/nope:predict", "model 'nope' is not served here"),
        ("/v2/modelz/toy/infer", "no route POST /v2/modelz/toy/infer"),
    ],
)
def test_unknown_model_version_or_route_is_404(service, path, message):
    request = post(path, {"inputs": oip_inputs()})
    request.api_key_id = "key-1"  # callers with a key see the served models; anonymous ones do not
    response = service.handle(request)
    assert response.status == 404 and message in error_of(response)


def test_wrong_method_is_405_with_allow(service):
    response = service.handle(get("/v2/models/toy/infer"))
    assert response.status == 405 and response.headers["Allow"] == "POST"
    assert "use POST" in error_of(response)


def test_unsupported_media_type_is_415(service):
    response = service.handle(post("/v2/models/toy/infer", {"inputs": oip_inputs()}, headers={"Content-Type": "application/xml"}))
    assert response.status == 415 and "send application/json" in error_of(response)
    tfs = service.handle(post("/v1/models/toy:predict", {"instances": []}, headers={"Content-Type": "multipart/form-data"}))
    assert tfs.status == 415


def test_request_over_lambda_limit_is_413_with_async_hint(service, monkeypatch):
    monkeypatch.setattr("modelfn_runtime.service.LAMBDA_SYNC_PAYLOAD_LIMIT", 100)
    response = infer(service, oip_inputs())
    assert response.status == 413 and "asynchronous" in error_of(response)


def test_response_over_lambda_limit_is_413(service, monkeypatch):
    request = post("/v2/models/toy/infer", {"inputs": oip_inputs(FEATURES.repeat(100, 0), FEATURES[:, :3].astype("int64").repeat(100, 0))})
    monkeypatch.setattr("modelfn_runtime.service.LAMBDA_SYNC_PAYLOAD_LIMIT", len(request.body) + 10)
    response = service.handle(request)
    assert response.status == 413 and "the response is" in error_of(response)


def test_limit_is_lambdas_six_megabytes():
    assert errors.LAMBDA_SYNC_PAYLOAD_LIMIT == 6 * 1024 * 1024


TFS_ERRORS = [
    ({"instances": [[1, 2, 3, 4]]}, "each instance must be an object keyed by input name"),
    ({"instances": [{"features": [1, 2, 3, 4], "ids": [1, 2, 3]}], "inputs": {}}, "exactly one of"),
    ({"signature_name": "predict", "instances": []}, "signature 'predict' is not served"),
    ({"instances": []}, "non-empty list"),
    ({"inputs": {"features": [[1, 2, 3, 4]], "idz": [[1, 2, 3]]}}, "unknown input 'idz'"),
    ({"instances": [{"features": [1, 2, 3, 4], "ids": [1, 2, 3]}, {"features": [1, 2, 3, 4]}]}, "every instance must name the same inputs"),
    ({"inputs": {"features": [[1, 2, 3, 4]], "ids": [[1, 2, 300000000000000000000]]}}, "outside the INT64 range"),
]


@pytest.mark.parametrize("payload,message", TFS_ERRORS)
def test_tfserving_errors_are_400(service, payload, message):
    response = service.handle(post("/v1/models/toy:predict", payload))
    assert response.status == 400 and message in error_of(response)


def test_a_genuine_fault_is_500_without_a_traceback(service, monkeypatch, meter):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(service.model.session, "run", explode)
    response = infer(service, oip_inputs())
    assert response.status == 500
    message = error_of(response)
    assert "secret" not in message and "Traceback" not in message and "function logs" in message
    assert meter.records[-1].status == 500


def test_every_request_is_metered_once(service, meter):
    service.handle(get("/v2/health/live"))
    service.handle(get("/v2/models/toy/infer"))
    assert [(r.operation, r.status) for r in meter.records] == [("live", 200), ("unrouted", 405)]


def test_server_function_without_model_answers_health_and_404s():
    from modelfn_runtime.service import InferenceService

    server = InferenceService(model=None, served_models=["digits"])
    assert server.handle(get("/v2/health/ready")).status == 200
    response = server.handle(HttpRequest("GET", "/v2/models/resnet", api_key_id="key-1"))
    assert response.status == 404 and "this API serves ['digits']" in error_of(response)
