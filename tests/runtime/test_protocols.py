"""Open Inference Protocol and TF Serving through InferenceService, against numpy reference results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelfn_runtime.tensors import from_binary, to_binary

from .conftest import FEATURES, IDS, body_json, get, oip_inputs, post
from .toy_model import reference

EXPECTED = reference(FEATURES, IDS)


def test_infer_json_returns_every_output_with_shape_and_datatype(service, meter):
    response = service.handle(post("/v2/models/toy/infer", {"id": "abc", "inputs": oip_inputs()}))
    assert response.status == 200
    payload = body_json(response)
    assert payload["id"] == "abc" and payload["model_name"] == "toy" and payload["model_version"] == "1"
    outputs = {o["name"]: o for o in payload["outputs"]}
    assert outputs["probs"]["shape"] == [2, 3] and outputs["probs"]["datatype"] == "FP32"
    np.testing.assert_allclose(np.array(outputs["probs"]["data"]).reshape(2, 3), EXPECTED["probs"], rtol=1e-6)
    np.testing.assert_array_equal(np.array(outputs["total"]["data"]).reshape(2, 1), EXPECTED["total"])
    assert meter.records[-1].operation == "infer" and meter.records[-1].batch_size == 2


def test_requested_outputs_limit_the_response(service):
    payload = {"inputs": oip_inputs(), "outputs": [{"name": "total"}]}
    outputs = body_json(service.handle(post("/v2/models/toy/versions/1/infer", payload)))["outputs"]
    assert [o["name"] for o in outputs] == ["total"]


def test_binary_inputs_and_outputs_round_trip(service):
    header = json.dumps(
        {
            "inputs": [
                {"name": "features", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}},
                {"name": "ids", "shape": [2, 3], "datatype": "INT64", "parameters": {"binary_data_size": 48}},
            ],
            "outputs": [{"name": "probs", "parameters": {"binary_data": True}}, {"name": "total"}],
        }
    ).encode()
    request = post(
        "/v2/models/toy/infer",
        body=header + to_binary(FEATURES) + to_binary(IDS),
        headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))},
    )
    response = service.handle(request)
    assert response.status == 200 and response.binary
    length = int(response.headers["Inference-Header-Content-Length"])
    meta = json.loads(response.body[:length])
    probs_meta, total_meta = meta["outputs"]
    assert probs_meta["parameters"]["binary_data_size"] == 24 and "data" not in probs_meta
    probs = from_binary(response.body[length:], "FP32", probs_meta["shape"])
    np.testing.assert_allclose(probs, EXPECTED["probs"], rtol=1e-6)
    assert total_meta["data"] == [6.0, 15.0]


def test_binary_data_output_parameter_makes_all_outputs_binary(service):
    response = service.handle(post("/v2/models/toy/infer", {"inputs": oip_inputs(), "parameters": {"binary_data_output": True}}))
    length = int(response.headers["Inference-Header-Content-Length"])
    sizes = [o["parameters"]["binary_data_size"] for o in json.loads(response.body[:length])["outputs"]]
    assert sizes == [24, 8] and len(response.body) == length + 32


def test_model_metadata_and_readiness(service):
    metadata = body_json(service.handle(get("/v2/models/toy")))
    assert metadata == {
        "name": "toy",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}, {"name": "ids", "datatype": "INT64", "shape": [-1, 3]}],
        "outputs": [{"name": "probs", "datatype": "FP32", "shape": [-1, 3]}, {"name": "total", "datatype": "FP32", "shape": [-1, 1]}],
        "parameters": {"provider": "CPUExecutionProvider"},  # the provider the session really runs on
    }
    assert body_json(service.handle(get("/v2/models/toy/versions/1"))) == metadata
    assert body_json(service.handle(get("/v2/models/toy/ready"))) == {"name": "toy", "ready": True, "provider": "CPUExecutionProvider"}
    assert body_json(service.handle(get("/v2/health/live"))) == {"live": True}
    assert body_json(service.handle(get("/v2/health/ready"))) == {"ready": True}
    assert "binary_tensor_data" in body_json(service.handle(get("/v2")))["extensions"]


def test_tfserving_row_format_multi_output(service):
    instances = [{"features": f.tolist(), "ids": i.tolist()} for f, i in zip(FEATURES, IDS)]
    payload = body_json(service.handle(post("/v1/models/toy:predict", {"instances": instances})))
    assert len(payload["predictions"]) == 2
    np.testing.assert_allclose(payload["predictions"][1]["probs"], EXPECTED["probs"][1], rtol=1e-6)
    assert payload["predictions"][0]["total"] == [6.0]


def test_tfserving_columnar_format(service):
    payload = {"signature_name": "serving_default", "inputs": {"features": FEATURES.tolist(), "ids": IDS.tolist()}}
    outputs = body_json(service.handle(post("/v1/models/toy/versions/1:predict", payload)))["outputs"]
    np.testing.assert_allclose(outputs["probs"], EXPECTED["probs"], rtol=1e-6)


def test_tfserving_status_and_metadata(service):
    status = body_json(service.handle(get("/v1/models/toy")))
    assert status["model_version_status"][0] == {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    signature = body_json(service.handle(get("/v1/models/toy/metadata")))["metadata"]["signature_def"]["signature_def"]
    assert signature["serving_default"]["inputs"]["ids"]["dtype"] == "DT_INT64"


@pytest.mark.parametrize("datatype,values", [("BOOL", [True, False]), ("UINT8", [0, 255]), ("FP16", [0.5, 1.5]), ("BYTES", [b"a", b"bc"])])
def test_binary_tensor_encoding_round_trips(datatype, values):
    from modelfn_runtime.tensors import NUMPY_DTYPES

    array = np.array(values, dtype=NUMPY_DTYPES[datatype])
    assert from_binary(to_binary(array), datatype, [2]).tolist() == array.tolist()
