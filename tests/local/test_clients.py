"""Peers that must work unchanged against the local API (SAM's API Gateway emulation + the Lambda RIE):
tritonclient (sync and asyncio, request/response compression, the classification extension), curl as
TF Serving's and Triton's docs use it, KServe's REST wire contract, HEAD, JSON 404s, and the OpenAPI
document the API serves, validated and checked against live traffic."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.request

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource

from modelfn_infra.digits import held_out

from ..conftest import REPO

pytestmark = pytest.mark.slow
CURL = shutil.which("curl")


@pytest.fixture(scope="module")
def client(api):
    return triton.InferenceServerClient(api.url.removeprefix("http://"))


@pytest.fixture(scope="module")
def digits(digits_store):
    session = ort.InferenceSession(str(digits_store / "digits" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    x_test, _ = held_out()
    return x_test[:32], session.run(None, {"pixels": x_test[:32]})[0]


def _pixels(values: np.ndarray, binary: bool = True) -> list:
    tensor = triton.InferInput("pixels", list(values.shape), "FP32")
    tensor.set_data_from_numpy(values, binary_data=binary)
    return [tensor]


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_request_and_response_compression(client, digits, algorithm):
    pixels, expected = digits
    result = client.infer("digits", _pixels(pixels), request_compression_algorithm=algorithm,
                          response_compression_algorithm=algorithm)
    np.testing.assert_allclose(result.as_numpy("probs"), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_classification_extension(client, digits, binary):
    pixels, expected = digits
    outputs = [triton.InferRequestedOutput("probs", binary_data=binary, class_count=3)]
    top = client.infer("digits", _pixels(pixels), outputs=outputs).as_numpy("probs")
    assert top.shape == (32, 3)
    for row, scores in zip(top, expected):
        fields = [(item.decode() if isinstance(item, bytes) else item).split(":") for item in row]
        assert [int(index) for _, index in fields] == np.argsort(-scores)[:3].tolist()
        np.testing.assert_allclose([float(score) for score, _ in fields], np.sort(scores)[::-1][:3], atol=1e-6)


def test_tritonclient_asyncio(api, digits):
    pixels, expected = digits

    async def run():
        client = triton_aio.InferenceServerClient(api.url.removeprefix("http://"))
        try:
            assert await client.is_server_live() and await client.is_model_ready("digits")
            metadata = await client.get_model_metadata("digits")
            results = await asyncio.gather(*(client.infer("digits", _pixels(chunk)) for chunk in np.array_split(pixels, 4)))
            return metadata, np.concatenate([result.as_numpy("probs") for result in results])
        finally:
            await client.close()

    metadata, probs = asyncio.run(run())
    assert metadata["inputs"][0]["name"] == "pixels"
    np.testing.assert_allclose(probs, expected, rtol=1e-6, atol=1e-7)


def _curl(*arguments: str) -> subprocess.CompletedProcess:
    if CURL is None:
        pytest.skip("curl is not installed")
    return subprocess.run([CURL, "-s", "--max-time", "30", *arguments], capture_output=True, text=True, timeout=60)


def test_curl_as_the_tf_serving_and_triton_docs_use_it(api, digits, tmp_path):
    pixels, expected = digits
    # TF Serving's README: curl -d '{"instances": ...}' -X POST .../v1/models/NAME:predict (no Content-Type header)
    tf = _curl("-d", json.dumps({"instances": pixels[:2].tolist()}), "-X", "POST", f"{api.url}/v1/models/digits:predict")
    assert tf.returncode == 0 and tf.stdout, (tf.returncode, tf.stdout, tf.stderr)
    np.testing.assert_allclose(json.loads(tf.stdout)["predictions"], expected[:2], rtol=1e-6, atol=1e-7)
    # Triton's docs: curl -X POST .../v2/models/NAME/infer -d '{"inputs": [...]}'
    body = {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": pixels[0].tolist()}]}
    oip = _curl("-X", "POST", f"{api.url}/v2/models/digits/infer", "-d", json.dumps(body))
    np.testing.assert_allclose(json.loads(oip.stdout)["outputs"][0]["data"], expected[0], rtol=1e-6, atol=1e-7)
    headers = tmp_path / "headers.txt"
    compressed = _curl("--compressed", "-D", str(headers), "-d", json.dumps({"instances": pixels.tolist()}),
                       f"{api.url}/v1/models/digits:predict")
    assert "content-encoding: gzip" in headers.read_text().lower()
    np.testing.assert_allclose(json.loads(compressed.stdout)["predictions"], expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/digits", "/v2/models/digits/ready",
                                  "/v1/models/digits", "/v1/models/digits/metadata", "/", "/openapi.json"])
def test_head_wherever_get_is_served(api, path):
    result = _curl("-I", "-o", "/dev/null", "-w", "%{http_code}", api.url + path)
    assert result.stdout == "200", path


@pytest.mark.parametrize("method, path", [("GET", "/nope"), ("POST", "/v3/anything"), ("GET", "/v2/models/digits/nope"),
                                          ("GET", "/v2/models/unknown"), ("DELETE", "/v1/models/unknown/versions/2/x")])
def test_unknown_routes_are_json_404(api, method, path):
    result = _curl("-X", method, "-w", "\n%{http_code}", api.url + path)
    body, _, status = result.stdout.rpartition("\n")
    assert status == "404" and json.loads(body)["error"], (method, path, result.stdout)


def test_kserve_rest_client_contract(api):
    """What kserve's InferenceRESTClient reads (kserve/inference_client.py, 0.21): v1 is_server_live GETs the
    base URL and wants {"status": "alive"}; v1 is_model_ready wants "ready" from /v1/models/NAME; v2 wants
    "live"/"ready" from /v2/health/* and a 2xx from /v2/models/NAME/ready. The client itself runs against the API in
    the next test, from its own environment (its protobuf pin excludes TensorFlow's)."""

    def get(path: str) -> dict:
        with urllib.request.urlopen(urllib.request.Request(api.url + path, headers={"Accept": "*/*"})) as response:
            return json.load(response)

    assert get("/")["status"].lower() == "alive"
    assert get("/v1/models/digits")["ready"] is True
    assert get("/v2/health/live")["live"] is True and get("/v2/health/ready")["ready"] is True
    assert get("/v2/models/digits/ready")["ready"] is True


def test_openapi_document_served_by_the_api_is_valid_and_matches_traffic(api, client, digits):
    with urllib.request.urlopen(api.url + "/openapi.json") as response:
        document = json.load(response)
    validate(document)
    assert {"/v2/models/digits/infer", "/v1/models/digits:predict", "/v2/models/toy/infer", "/", "/openapi.json"} <= set(document["paths"])
    registry = Registry().with_resource(
        "urn:api", Resource.from_contents({"$schema": "https://json-schema.org/draft/2020-12/schema", **document})
    )

    def check(schema: str, instance) -> None:
        Draft202012Validator({"$ref": f"urn:api#/components/schemas/{schema}"}, registry=registry).validate(instance)

    pixels, _ = digits
    request = {"inputs": [{"name": "pixels", "shape": [2, 64], "datatype": "FP32", "data": pixels[:2].tolist()}]}
    check("digits.InferRequest", request)
    http = urllib.request.Request(api.url + "/v2/models/digits/infer", data=json.dumps(request).encode(),
                                  headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(http) as response:
        check("digits.InferResponse", json.load(response))
    predict = {"instances": pixels[:3].tolist()}
    check("digits.PredictRequest", predict)
    http = urllib.request.Request(api.url + "/v1/models/digits:predict", data=json.dumps(predict).encode())
    with urllib.request.urlopen(http) as response:
        check("digits.PredictResponse", json.load(response))
    with pytest.raises(Exception, match="64"):
        check("digits.PredictRequest", {"instances": [[0.0] * 63]})


def test_kserve_rest_client_against_the_local_api(api, digits):
    """kserve's own InferenceRESTClient (v1 and v2), run from its own environment as a KServe user runs it."""
    import os
    import sys

    peer = REPO / ".venv" / "peers" / "bin" / "python"
    if not peer.is_file():
        reason = f"{peer} is missing: `make install` builds the peer clients' environment (infra/peer-requirements.txt)"
        print(f"SKIP {reason}", file=sys.stderr)
        pytest.skip(reason)
    pixels, expected = digits
    result = subprocess.run([str(peer), str(REPO / "tests" / "local" / "kserve_peer.py"), api.url, json.dumps(pixels[:3].tolist())],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers["v2_server_live"] and answers["v2_server_ready"] and answers["v2_model_ready"]
    assert answers["v1_server_live"] and answers["v1_model_ready"]
    np.testing.assert_allclose(np.array(answers["v2_probs"], np.float32), expected[:3], atol=1e-6)
    np.testing.assert_allclose(np.array(answers["v1_predictions"], np.float32), expected[:3], atol=1e-6)
