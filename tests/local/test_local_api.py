"""Protocol conformance against the local API (SAM's API Gateway emulation + the Lambda RIE),
with tritonclient.http and a TF Serving JSON client as real peers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from modelfn_infra.digits import held_out

from ..runtime.toy_model import reference

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(api):
    return triton.InferenceServerClient(api.url.removeprefix("http://"))


@pytest.fixture(scope="module")
def digits_reference(digits_store):
    session = ort.InferenceSession(str(digits_store / "digits" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    x_test, y_test = held_out()
    return x_test[:40], session.run(None, {"pixels": x_test[:40]})[0]


def request(api, method, path, body=None, headers=None):
    req = urllib.request.Request(api.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def error_of(body: bytes) -> str:
    return json.loads(body)["error"]


def test_health_server_and_model_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    assert client.is_model_ready("digits") and client.is_model_ready("toy", "1")
    metadata = client.get_model_metadata("digits")
    assert metadata["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert metadata["outputs"] == [{"name": "probs", "datatype": "FP32", "shape": [-1, 10]}]
    assert client.get_model_metadata("toy", "1")["versions"] == ["1"]


@pytest.mark.parametrize("binary", [True, False])
def test_digits_predictions_equal_onnxruntime(client, digits_reference, binary):
    pixels, expected = digits_reference
    tensor = triton.InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=binary)
    outputs = [triton.InferRequestedOutput("probs", binary_data=binary)]
    result = client.infer("digits", [tensor], outputs=outputs, request_id="r-42")
    np.testing.assert_allclose(result.as_numpy("probs"), expected, rtol=1e-6, atol=1e-7)
    assert result.get_response()["id"] == "r-42"


def test_tritonclient_defaults_multiple_inputs_and_outputs(client):
    features = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    ids = np.arange(15, dtype=np.int64).reshape(5, 3)
    inputs = [triton.InferInput("features", [5, 4], "FP32"), triton.InferInput("ids", [5, 3], "INT64")]
    inputs[0].set_data_from_numpy(features)
    inputs[1].set_data_from_numpy(ids, binary_data=False)
    result = client.infer("toy", inputs)  # tritonclient's defaults: binary outputs, all of them
    expected = reference(features, ids)
    np.testing.assert_allclose(result.as_numpy("probs"), expected["probs"], rtol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("total"), expected["total"])
    only_total = client.infer("toy", inputs, model_version="1", outputs=[triton.InferRequestedOutput("total", binary_data=False)])
    assert [o["name"] for o in only_total.get_response()["outputs"]] == ["total"]
    assert only_total.as_numpy("probs") is None


def test_tritonclient_sees_protocol_errors(client):
    tensor = triton.InferInput("pixel", [1, 64], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 64), np.float32))
    with pytest.raises(InferenceServerException, match="unknown input 'pixel'"):
        client.infer("digits", [tensor])
    with pytest.raises(InferenceServerException, match="model 'resnet' is not served here"):
        client.get_model_metadata("resnet")
    with pytest.raises(InferenceServerException, match="no version '9'"):
        client.get_model_metadata("digits", "9")


def test_tf_serving_json_client(api, digits_reference):
    pixels, expected = digits_reference
    status, _, body = request(api, "POST", "/v1/models/digits:predict", json.dumps({"instances": pixels.tolist()}).encode(), {"Content-Type": "application/json"})
    assert status == 200
    np.testing.assert_allclose(np.array(json.loads(body)["predictions"]), expected, rtol=1e-5, atol=1e-6)
    status, _, body = request(api, "POST", "/v1/models/digits/versions/1:predict", json.dumps({"inputs": pixels[:2].tolist()}).encode(), {"Content-Type": "application/json"})
    assert status == 200 and np.array(json.loads(body)["outputs"]).shape == (2, 10)
    status, _, body = request(api, "GET", "/v1/models/digits")
    assert status == 200 and json.loads(body)["model_version_status"][0]["state"] == "AVAILABLE"
    status, _, body = request(api, "GET", "/v1/models/toy/versions/1/metadata")
    assert status == 200 and "serving_default" in json.loads(body)["metadata"]["signature_def"]["signature_def"]


JSON = {"Content-Type": "application/json"}
ERRORS = [
    ("POST", "/v2/models/digits/infer", b"{oops", JSON, 400, "not valid JSON"),
    ("POST", "/v2/models/digits/infer", json.dumps({"inputs": [{"name": "pixels", "shape": [1, 63], "datatype": "FP32", "data": [0] * 63}]}).encode(), JSON, 400, "expects [-1, 64]"),
    ("POST", "/v2/models/digits/infer", json.dumps({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "INT64", "data": [0] * 64}]}).encode(), JSON, 400, "expects FP32"),
    ("POST", "/v2/models/digits/infer", json.dumps({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0] * 60}]}).encode(), JSON, 400, "has 60 elements"),
    ("POST", "/v2/models/resnet/infer", b"{}", JSON, 404, "call with your API key (x-api-key) to see the served models"),
    ("GET", "/v2/models/digits/versions/3/ready", None, {}, 404, "no version '3'"),
    ("GET", "/nothing/here", None, {}, 404, "no route GET /nothing/here"),
    ("GET", "/v2/models/digits/infer", None, {}, 405, "use POST"),
    ("POST", "/v1/models/digits:predict", b"<xml/>", {"Content-Type": "application/xml"}, 415, "send application/json"),
]


@pytest.mark.parametrize("method,path,body,headers,status,message", ERRORS, ids=[f"{e[4]}-{e[1]}" for e in ERRORS])
def test_errors_through_the_api(api, method, path, body, headers, status, message):
    got_status, got_headers, got_body = request(api, method, path, body, headers)
    assert got_status == status
    assert message in error_of(got_body)
    assert got_headers["Content-Type"].startswith("application/json")


def test_payload_over_lambda_limit_is_413_with_hint(api):
    big = json.dumps({"inputs": [{"name": "pixels", "shape": [20000, 64], "datatype": "FP32", "data": [0.5] * 1_280_000}]}).encode()
    status, _, body = request(api, "POST", "/v2/models/digits/infer", big, JSON)
    assert status == 413 and "asynchronous" in error_of(body)


def test_crash_is_502_and_the_next_request_gets_a_fresh_process(api):
    status, _, first_pid = request(api, "GET", "/test/pid")
    assert status == 200
    status, _, body = request(api, "GET", "/test/crash")
    assert status == 502 and error_of(body) == "Internal server error"  # the deployed gateway's {"error": ...} shape
    status, _, second_pid = request(api, "GET", "/test/pid")
    assert status == 200 and second_pid != first_pid


def test_timeout_is_502_and_the_sandbox_is_replaced(api):
    _, _, first_pid = request(api, "GET", "/test/pid")
    status, _, _ = request(api, "GET", "/test/sleep")
    assert status == 502
    status, _, second_pid = request(api, "GET", "/test/pid")
    assert status == 200 and second_pid != first_pid


def test_warm_sandbox_is_reused_and_reports_like_lambda(local_app):
    event = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}, {"name": "ids", "shape": [1, 3], "datatype": "INT64", "data": [1, 2, 3]}]}
    local_app.invoke("ToyFunction", event)
    report = local_app.runtime.last_report
    local_app.invoke("ToyFunction", event)
    warm = local_app.runtime.last_report
    assert warm.init_duration_ms is None  # no second init: the same process served it
    assert warm.memory_size_mb == 256 and 0 < warm.max_memory_used_mb < 2048
    assert warm.billed_duration_ms >= warm.duration_ms and report.request_id != warm.request_id
    assert "REPORT RequestId: " + warm.request_id in local_app.log_path.read_text()


def test_concurrent_requests_get_their_own_sandboxes(api, local_app, digits_reference):
    from concurrent.futures import ThreadPoolExecutor

    pixels, expected = digits_reference

    def one(index: int) -> np.ndarray:
        client = triton.InferenceServerClient(api.url.removeprefix("http://"))
        tensor = triton.InferInput("pixels", [1, 64], "FP32")
        tensor.set_data_from_numpy(pixels[index : index + 1])
        return client.infer("digits", [tensor]).as_numpy("probs")[0]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, range(12)))
    np.testing.assert_allclose(np.stack(results), expected[:12], rtol=1e-6, atol=1e-7)
    assert local_app.runtime._count["DigitsFunction"] <= local_app.runtime.max_sandboxes
