"""The OpenAPI document is the contract (issue 18, item 8): real requests for every route and model go through
the service, and each answer's status, headers, media type and body are checked against the document the
service itself serves; and each request schema is exactly as strict as the server wherever JSON Schema can say it.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from openapi_spec_validator import validate

from modelfn_runtime import openapi_schemas
from modelfn_runtime.errors import LAMBDA_SYNC_PAYLOAD_LIMIT
from modelfn_runtime.http import Headers, HttpRequest
from modelfn_runtime.validation import Limits
from modelfn_runtime.protocols import common
from modelfn_runtime.readiness import Readiness
from modelfn_runtime.service import InferenceService, Unavailable
from modelfn_runtime.session import ModelSession

from ..contract import Contract
from .conftest import FEATURES, IDS, RecordingMeter, body_json, oip_inputs, post
from .test_strings import strings_service  # noqa: F401  (the BYTES model's fixture)
from .toy_model import write_linear_model

TOY_GETS = ["/v2/models/toy", "/v2/models/toy/ready", "/v1/models/toy", "/v1/models/toy/metadata"]
SERVER_GETS = ["/", "/openapi.json", "/v2/health/live", "/v2/health/ready", "/v2"]


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> InferenceService:
    model = ModelSession.load(write_linear_model(tmp_path_factory.mktemp("store") / "linear" / "1"), preference="cpu")
    return InferenceService(model, meter=RecordingMeter())


_CONTRACTS: dict[str, Contract] = {}


def contract_of(service: InferenceService) -> Contract:
    """The document ``service`` serves, checked to be valid OpenAPI 3.1 (once per distinct document)."""
    text = service.handle(HttpRequest("GET", "/openapi.json")).body.decode()
    if text not in _CONTRACTS:
        document = json.loads(text)
        validate(document)
        _CONTRACTS[text] = Contract(document)
    return _CONTRACTS[text]


class Recorder:
    """Sends requests to a service and checks every answer against the document that service serves."""

    def __init__(self, service: InferenceService) -> None:
        self.service = service
        self.contract = contract_of(service)
        self.seen: set[tuple[str, int]] = set()

    def send(self, method: str, path: str, payload=None, *, body: bytes | None = None, headers: dict | None = None):
        raw = body if body is not None else (json.dumps(payload).encode() if payload is not None else b"")
        request = HttpRequest(method, path, Headers({"Content-Type": "application/json", **(headers or {})}), body=raw)
        response = self.service.handle(request)
        self.contract.check_response(method, path, response.status, response.headers, response.body)
        self.seen.add((self.contract.path_of(path) or path, response.status))
        return response


def _infer_requests(recorder: Recorder, model: str, body: dict) -> None:
    for path in (f"/v2/models/{model}/infer", f"/v2/models/{model}/versions/1/infer"):
        assert recorder.send("POST", path, body).status == 200
        assert recorder.send("POST", path, {"inputs": []}).status == 400
        assert recorder.send("POST", path, body, headers={"Content-Type": "image/png"}).status == 415
        assert recorder.send("POST", path, body, headers={"Content-Encoding": "br"}).status == 415
        assert recorder.send("POST", path, body=b"x" * (LAMBDA_SYNC_PAYLOAD_LIMIT + 1)).status == 413
        assert recorder.send("GET", path).status == 405 and recorder.send("DELETE", path).status == 405
    assert recorder.send("POST", f"/v2/models/{model}/versions/2/infer", body).status == 404


def test_every_route_of_a_model_function_answers_as_documented(service):
    recorder = Recorder(service)
    for path in SERVER_GETS + TOY_GETS + [p.replace("/toy", "/toy/versions/1") for p in TOY_GETS]:
        assert recorder.send("GET", path).status == 200, path
        assert recorder.send("HEAD", path).status == 200, path
        assert recorder.send("POST", path, {}).status == 405, path
    for path in TOY_GETS:
        assert recorder.send("GET", path.replace("/toy", "/toy/versions/7")).status == 404
    recorder.send("GET", "/", headers={"Accept": "text/html"})
    _infer_requests(recorder, "toy", {"inputs": oip_inputs(), "id": "r1"})
    classified = {"inputs": oip_inputs(), "outputs": [{"name": "probs", "parameters": {"classification": 2}}, {"name": "total"}]}
    assert recorder.send("POST", "/v2/models/toy/infer", classified).status == 200
    binary = recorder.send("POST", "/v2/models/toy/infer", {"inputs": oip_inputs(), "parameters": {"binary_data_output": True}})
    assert binary.headers["Content-Type"] == "application/octet-stream"
    header = json.loads(binary.body[: int(binary.headers["Inference-Header-Content-Length"])])
    assert recorder.contract.validator({"$ref": "#/components/schemas/toy.InferResponse"}).is_valid(header)
    for path in ("/v1/models/toy:predict", "/v1/models/toy/versions/1:predict"):
        rows = {"instances": [{"features": FEATURES[0].tolist(), "ids": IDS[0].tolist()}], "signature_name": "serving_default"}
        assert recorder.send("POST", path, rows).status == 200
        assert recorder.send("POST", path, {"inputs": {"features": FEATURES.tolist(), "ids": IDS.tolist()}}).status == 200
        assert recorder.send("POST", path, {"instances": [[1, 2, 3, 4]]}).status == 400
        assert recorder.send("POST", path, rows, headers={"Content-Type": "text/csv"}).status == 415
        assert recorder.send("GET", path).status == 405
    statuses = {status for _, status in recorder.seen}
    assert {200, 400, 404, 405, 413, 415} <= statuses
    assert {path for path, _ in recorder.seen} == set(recorder.contract.document["paths"])  # every route was called


def test_errors_of_a_failing_or_loading_model_are_documented(service, toy_model, monkeypatch):
    recorder = Recorder(service)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(service.model, "run", broken)
    response = recorder.send("POST", "/v2/models/toy/infer", {"inputs": oip_inputs()})
    assert response.status == 500 and "see the function logs" in body_json(response)["error"]

    loading = Recorder(InferenceService(None, cards=[toy_model.card], unavailable=Unavailable("toy", "1", "artifact missing")))
    for path in ["/v2/health/ready", *TOY_GETS]:
        response = loading.send("GET", path)
        assert response.status == 503 and response.headers["Retry-After"] == "5", path
    assert loading.send("POST", "/v2/models/toy/infer", {"inputs": oip_inputs()}).status == 503
    assert loading.send("POST", "/v1/models/toy:predict", {"instances": [[0] * 4]}).status == 503
    assert loading.send("GET", "/v2/health/live").status == 200


def test_the_catch_all_answers_as_documented(toy_model):
    catch_all = InferenceService(None, served_models=["toy"], cards=[toy_model.card])
    catch_all._readiness = Readiness({"toy": "ToyFunction"}, invoke=lambda function: {"ready": False, "error": "loading"})
    recorder = Recorder(catch_all)
    assert recorder.send("GET", "/v2/health/ready").status == 503
    for path in ["/", "/openapi.json", "/v2/health/live", "/v2"]:
        assert recorder.send("GET", path).status == 200
    for path in TOY_GETS:  # a model whose function is not deployed here: the catch-all answers 404
        assert recorder.send("GET", path).status == 404
    assert recorder.send("POST", "/v2/models/toy/infer", {"inputs": oip_inputs()}).status == 404
    assert recorder.send("PATCH", "/v2").status == 405


def test_single_input_and_string_models_answer_as_documented(linear, strings_service):  # noqa: F811
    recorder = Recorder(linear)
    row = [1.0, 2.0, "NaN", True]
    for body in ({"instances": [row, row]}, {"instances": [{"x": row}]}, {"inputs": [row]}, {"inputs": {"x": [row]}}):
        assert recorder.send("POST", "/v1/models/linear:predict", body).status == 200, body
    nan = recorder.send("POST", "/v2/models/linear/infer", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": row}]})
    assert "NaN" in body_json(nan)["outputs"][0]["data"]  # non-finite outputs travel as strings, as documented
    strings = Recorder(strings_service)
    b64 = {"b64": "aGk="}
    rows = body_json(strings.send("POST", "/v1/models/strings:predict", {"instances": [["a", b64]]}))["predictions"]
    assert rows == [{"echo": ["a", "hi"], "echo_bytes": [{"b64": "YQ=="}, b64]}]
    columns = body_json(strings.send("POST", "/v1/models/strings:predict", {"inputs": [[b64, "b"]]}))["outputs"]
    assert columns == {"echo": [["hi", "b"]], "echo_bytes": [[b64, {"b64": "Yg=="}]]}
    assert strings.send("POST", "/v1/models/strings:predict", {"instances": [["a", {"b64": "a"}]]}).status == 400
    text = {"inputs": [{"name": "text", "shape": [1, 2], "datatype": "BYTES", "data": ["x", "y"]}]}
    assert strings.send("POST", "/v2/models/strings/infer", text).status == 200


def features(data=None, shape=None, **extra):
    tensor = {"name": "features", "shape": shape or [2, 4], "datatype": "FP32",
              "data": FEATURES.reshape(-1).tolist() if data is None else data, **extra}
    return tensor


IDS_INPUT = oip_inputs()[1]
ROW = {"features": [1, 2, 3, 4], "ids": [1, 2, 3]}

# (request, accepted): the document's schema and the server must agree on each
OIP_CASES = [
    ({"inputs": [features(), IDS_INPUT]}, True),
    ({"inputs": [IDS_INPUT, features(FEATURES.tolist())]}, True),                        # any order, nested data
    ({"inputs": [features(), IDS_INPUT], "id": None, "parameters": None, "outputs": None}, True),  # null is absent
    ({"inputs": [features([True, 2, 3, "NaN", "Infinity", -1e38, 0, 1.5]), IDS_INPUT]}, True),
    ({"inputs": [features(), {**IDS_INPUT, "data": [1.0, 2, 3, 4, 5, 2**62]}]}, True),   # integral floats count
    ({"inputs": [features(), {**IDS_INPUT, "data": [1.5, 2, 3, 4, 5, 6]}]}, False),
    ({"inputs": [features(), {**IDS_INPUT, "data": [2**63, 2, 3, 4, 5, 6]}]}, False),
    ({"inputs": [features([3.5e38] + [0] * 7), IDS_INPUT]}, False),                      # rounds to infinity in FP32
    ({"inputs": [features(["nan"] + [0] * 7), IDS_INPUT]}, False),
    ({"inputs": [features([[[0] * 4] * 2]), IDS_INPUT]}, False),                         # deeper than the rank
    ({"inputs": [features(shape=[2, 5]), IDS_INPUT]}, False),
    ({"inputs": [features(shape=[8]), IDS_INPUT]}, False),
    ({"inputs": [features(), features()]}, False),                                       # an input twice, one missing
    ({"inputs": [features()]}, False),
    ({"inputs": [features(), {**IDS_INPUT, "datatype": "INT32"}]}, False),
    ({"inputs": [features(data=[], shape=[0, 4], parameters={"binary_data_size": 0}), IDS_INPUT]}, False),
    ({"inputs": [features(parameters={"binary_data_size": None}), IDS_INPUT]}, True),
    ({"inputs": [features(), IDS_INPUT], "parameters": {"binary_data_output": 1}}, False),
    ({"inputs": [features(), IDS_INPUT], "parameters": "binary"}, False),
    ({"inputs": [features(), IDS_INPUT], "id": 7}, False),
    ({"inputs": [features(), IDS_INPUT], "outputs": []}, True),
    ({"inputs": [features(), IDS_INPUT], "outputs": [{"name": "probs"}, {"name": "probs"}]}, False),
    ({"inputs": [features(), IDS_INPUT], "outputs": [{"name": "logits"}]}, False),
    ({"inputs": [features(), IDS_INPUT], "outputs": [{"name": "probs", "parameters": None}]}, True),
    ({"inputs": [features(), IDS_INPUT], "outputs": [{"name": "probs", "parameters": {"classification": None}}]}, True),
    ({"inputs": [features(), IDS_INPUT], "outputs": [{"name": "probs", "parameters": {"classification": 3}}]}, True),
    ({"inputs": [features(), IDS_INPUT], "outputs": [{"name": "probs", "parameters": {"classification": 4}}]}, False),
    ({"inputs": [features(), IDS_INPUT], "outputs": [{"name": "probs", "parameters": {"classification": 0}}]}, False),
    ({"inputs": [features(), IDS_INPUT], "outputs": [{"name": "total", "parameters": {"binary_data": "yes"}}]}, False),
    ({"inputs": [features([], [0, 4]), {**IDS_INPUT, "data": [], "shape": [0, 3]}],   # an empty batch, classified
      "outputs": [{"name": "probs", "parameters": {"classification": 2}}]}, True),
]
PREDICT_CASES = [
    ({"instances": [ROW, ROW]}, True),
    ({"inputs": {"features": [[1, 2, 3, 4]], "ids": [[1, 2, 3]]}, "signature_name": "serving_default"}, True),
    ({"instances": [ROW], "signature_name": "predict"}, False),
    ({"instances": [ROW], "signature_name": None}, False),
    ({"instances": [ROW], "inputs": {}}, False),
    ({}, False),
    ({"instances": []}, False),
    ({"instances": [{"features": [1, 2, 3, 4]}]}, False),                               # every input in each row
    ({"instances": [{**ROW, "extra": 1}]}, False),
    ({"instances": [[1, 2, 3, 4]]}, False),                                            # several inputs: rows by name
    ({"instances": [{**ROW, "features": [1, 2, 3]}]}, False),
    ({"inputs": {"features": [], "ids": []}}, False),                                  # [] hides the second dimension
    ({"inputs": {"features": [[1, 2, 3, 4]], "ids": [[1, 2, 3.5]]}}, False),
    ({"inputs": {"features": [[1, 2, 3, 4]]}}, False),
]
LINEAR_CASES = [
    ({"instances": [[1, 2, 3, 4]]}, True),
    ({"instances": [{"x": [1, 2, 3, 4]}]}, True),
    ({"instances": [[1, 2, 3, 4], {"x": [1, 2, 3, 4]}]}, False),                        # bare and keyed rows mixed
    ({"inputs": [[1, 2, 3, 4]]}, True),
    ({"inputs": {"x": [[1, 2, 3, 4]]}}, True),
    ({"inputs": {"y": [[1, 2, 3, 4]]}}, False),
    ({"instances": [[1, 2, 3, 4, 5]]}, False),
    ({"instances": [[1, 2, 3, {"b64": "AA=="}]]}, False),
]


def _agree(service: InferenceService, path: str, schema: str, body: dict, accepted: bool) -> None:
    validator = contract_of(service).validator({"$ref": f"#/components/schemas/{schema}"})
    errors = [error.message[:200] for error in validator.iter_errors(body)]
    assert (not errors) == accepted, errors or "the schema accepts it"
    response = service.handle(post(path, body))
    assert response.status == (200 if accepted else 400), response.body[:300]


@pytest.mark.parametrize("body, accepted", OIP_CASES)
def test_the_infer_schema_is_as_strict_as_the_server(service, body, accepted):
    _agree(service, "/v2/models/toy/infer", "toy.InferRequest", body, accepted)


@pytest.mark.parametrize("body, accepted", PREDICT_CASES)
def test_the_predict_schema_is_as_strict_as_the_server(service, body, accepted):
    _agree(service, "/v1/models/toy:predict", "toy.PredictRequest", body, accepted)


@pytest.mark.parametrize("body, accepted", LINEAR_CASES)
def test_the_single_input_predict_schema_is_as_strict_as_the_server(linear, body, accepted):
    _agree(linear, "/v1/models/linear:predict", "linear.PredictRequest", body, accepted)


def test_schema_leaves_are_the_decoders_own_rules():
    assert openapi_schemas.NON_FINITE_TOKENS == list(common.NON_FINITE)
    for datatype, dtype in (("INT8", np.int8), ("UINT16", np.uint16), ("INT64", np.int64), ("UINT64", np.uint64)):
        schema = openapi_schemas.leaf(datatype)
        assert (schema["minimum"], schema["maximum"]) == (np.iinfo(dtype).min, np.iinfo(dtype).max)
    for datatype, dtype in (("FP16", np.float16), ("FP32", np.float32)):
        limit = openapi_schemas.FLOAT_OVERFLOW[datatype]
        assert np.isinf(np.float64(limit).astype(dtype)) and np.isfinite(np.float64(np.nextafter(limit, 0)).astype(dtype))
        assert math.isclose(limit, float(np.finfo(dtype).max), rel_tol=1e-3)


def test_the_batch_limit_stays_with_the_server(toy_model):
    """The catch-all serves the document and does not know each model's max_batch_size: the schema leaves the
    batch open and the model function refuses an oversize batch with a 400 that names the limit."""
    small = InferenceService(toy_model, limits=Limits(max_batch_size=1), meter=RecordingMeter())
    response = small.handle(post("/v1/models/toy:predict", {"instances": [ROW, ROW]}))
    assert response.status == 400 and "at most 1" in body_json(response)["error"]


# --- what the peer fuzzer found (tests/local/test_fuzz_api.py), one regression test each -------------------------

def test_classification_of_an_empty_batch_is_an_empty_answer(service):
    """Was a 500: numpy cannot infer the class dimension (-1) of an empty batch."""
    body = {"inputs": [features([], [0, 4]), {**IDS_INPUT, "data": [], "shape": [0, 3]}],
            "outputs": [{"name": "probs", "parameters": {"classification": 2}}]}
    response = service.handle(post("/v2/models/toy/infer", body))
    assert response.status == 200, response.body
    assert body_json(response)["outputs"] == [{"name": "probs", "datatype": "BYTES", "shape": [0, 2], "data": []}]


def test_binary_data_size_without_a_binary_section_is_400(service):
    """Was accepted for an empty tensor (binary_data_size 0) though the document allows it only with the binary extension."""
    body = {"inputs": [features([], [0, 4]), {**IDS_INPUT, "data": [], "shape": [0, 3]}]}
    del body["inputs"][0]["data"]
    body["inputs"][0]["parameters"] = {"binary_data_size": 0}
    response = service.handle(post("/v2/models/toy/infer", body))
    assert response.status == 400 and "Inference-Header-Content-Length" in body_json(response)["error"]


def test_nulls_the_server_reads_as_absent_are_documented(service):
    """Was ST201 (a schema-violating request accepted): ``"classification": null`` and the other optional nulls."""
    body = {"inputs": [features(parameters=None), IDS_INPUT], "id": None, "parameters": None,
            "outputs": [{"name": "probs", "parameters": {"classification": None, "binary_data": False}}]}
    assert contract_of(service).validator({"$ref": "#/components/schemas/toy.InferRequest"}).is_valid(body)
    assert service.handle(post("/v2/models/toy/infer", body)).status == 200


def test_every_route_documents_the_gateway_and_error_answers(service):
    """Were undocumented: 403 and 429 (API Gateway's), 503 (not ready, with Retry-After)."""
    document = contract_of(service).document
    for path, item in document["paths"].items():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            statuses = set(operation["responses"])
            assert {"200", "400", "413", "415", "429", "500"} <= statuses, path
            assert ("403" in statuses) == (operation["security"] != []), path
            if path.startswith(("/v1/models", "/v2/models")):
                assert {"403", "404", "503"} <= statuses, path
    assert "Retry-After" in document["components"]["responses"]["NotReady"]["headers"]
    assert "Allow" in document["components"]["responses"]["MethodNotAllowed"]["headers"]
