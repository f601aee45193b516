"""What unchanged clients send: bodies without a JSON content type, gzip/deflate, Accept-Encoding,
Triton's classification extension, HEAD; plus the playground page and the OpenAPI document."""

from __future__ import annotations

import gzip
import json
import zlib

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource

from modelfn_runtime.encoding import MAX_DECODED_BYTES
from modelfn_runtime.http import Headers, HttpRequest
from modelfn_runtime.openapi import openapi_document
from modelfn_runtime.service import InferenceService

from .conftest import FEATURES, IDS, body_json, get, oip_inputs, post
from .toy_model import reference

EXPECTED = reference(FEATURES, IDS)


def test_form_urlencoded_json_body_is_parsed_as_tf_serving_and_triton_do(service):
    body = json.dumps({"instances": [{"features": FEATURES[0].tolist(), "ids": IDS[0].tolist()}]}).encode()
    request = HttpRequest("POST", "/v1/models/toy:predict", Headers({"Content-Type": "application/x-www-form-urlencoded"}), body=body)
    response = service.handle(request)
    assert response.status == 200, response.body
    np.testing.assert_allclose(body_json(response)["predictions"][0]["probs"], EXPECTED["probs"][0], rtol=1e-6)


@pytest.mark.parametrize("coding, compress", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda raw: zlib.compress(raw)[2:-4]),  # raw deflate, as some clients send it
])
def test_compressed_request_bodies_are_inflated(service, coding, compress):
    raw = json.dumps({"inputs": oip_inputs()}).encode()
    response = service.handle(post("/v2/models/toy/infer", body=compress(raw), headers={"Content-Encoding": coding}))
    assert response.status == 200, response.body
    probs = next(o for o in body_json(response)["outputs"] if o["name"] == "probs")
    np.testing.assert_allclose(np.reshape(probs["data"], (2, 3)), EXPECTED["probs"], rtol=1e-6)


def test_corrupt_unknown_and_oversized_encodings_are_clear_4xx(service):
    bad = service.handle(post("/v2/models/toy/infer", body=b"not gzip at all", headers={"Content-Encoding": "gzip"}))
    assert bad.status == 400 and "not valid gzip" in body_json(bad)["error"]
    unknown = service.handle(post("/v2/models/toy/infer", body=b"{}", headers={"Content-Encoding": "br"}))
    assert unknown.status == 415 and "gzip or deflate" in body_json(unknown)["error"]
    bomb = gzip.compress(b" " * (MAX_DECODED_BYTES + 1))
    assert len(bomb) < 1024 * 1024
    too_big = service.handle(post("/v2/models/toy/infer", body=bomb, headers={"Content-Encoding": "gzip"}))
    assert too_big.status == 413 and "inflates to more than" in body_json(too_big)["error"]
    truncated = service.handle(post("/v2/models/toy/infer", body=gzip.compress(b'{"inputs": []}')[:-6],
                                    headers={"Content-Encoding": "gzip"}))
    assert truncated.status == 400 and "truncated" in body_json(truncated)["error"]


@pytest.mark.parametrize("accept, coding, inflate", [
    ("gzip", "gzip", gzip.decompress),
    ("deflate, gzip;q=0", "deflate", zlib.decompress),
])
def test_responses_honour_accept_encoding(service, accept, coding, inflate):
    features = np.tile(FEATURES, (40, 1))
    ids = np.tile(IDS, (40, 1))
    request = post("/v2/models/toy/infer", {"inputs": oip_inputs(features, ids)}, headers={"Accept-Encoding": accept})
    response = service.handle(request)
    assert response.status == 200 and response.headers["Content-Encoding"] == coding and response.binary
    assert response.headers["Vary"] == "Accept-Encoding"
    assert body_json(type(response)(200, inflate(response.body)))["model_name"] == "toy"
    plain = service.handle(post("/v2/models/toy/infer", {"inputs": oip_inputs(features, ids)}, headers={"Accept-Encoding": "gzip;q=0"}))
    assert "Content-Encoding" not in plain.headers and body_json(plain)["model_name"] == "toy"


def test_classification_extension_returns_top_k_as_triton_does(service):
    payload = {"inputs": oip_inputs(), "outputs": [{"name": "probs", "parameters": {"classification": 2}}]}
    response = service.handle(post("/v2/models/toy/infer", payload))
    assert response.status == 200, response.body
    (output,) = body_json(response)["outputs"]
    assert output["datatype"] == "BYTES" and output["shape"] == [2, 2]
    for row, expected in zip(np.reshape(output["data"], (2, 2)), EXPECTED["probs"]):
        order = np.argsort(-expected)[:2]
        assert [int(item.split(":")[1]) for item in row] == order.tolist()
        np.testing.assert_allclose([float(item.split(":")[0]) for item in row], expected[order], atol=1e-6)
    assert "classification" in body_json(service.handle(get("/v2")))["extensions"]


@pytest.mark.parametrize("count, message", [(0, "positive integer"), ("2", "positive integer"), (4, "only 3")])
def test_bad_class_counts_are_400(service, count, message):
    payload = {"inputs": oip_inputs(), "outputs": [{"name": "probs", "parameters": {"classification": count}}]}
    response = service.handle(post("/v2/models/toy/infer", payload))
    assert response.status == 400 and message in body_json(response)["error"]


def test_head_answers_where_get_does(service):
    for path in ("/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/toy", "/v1/models/toy", "/", "/openapi.json"):
        response = service.handle(HttpRequest("HEAD", path))
        assert response.status == 200 and response.body == b"", path
    assert service.handle(HttpRequest("HEAD", "/v2/models/nope")).status == 404
    refused = service.handle(HttpRequest("DELETE", "/v2/health/live"))
    assert refused.status == 405 and refused.headers["Allow"] == "GET, HEAD"


def test_playground_page_embeds_the_cards(service):
    response = service.handle(HttpRequest("GET", "/", Headers({"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})))
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/html")
    page = response.body.decode()
    assert '"name":"toy"' in page and "/*MODELS*/[]" not in page
    assert "http://" not in page and "https://" not in page  # no CDN: everything is served by the function


def test_root_answers_kserve_v1_liveness_and_status_its_readiness(service):
    assert body_json(service.handle(get("/")))["status"] == "alive"  # kserve's v1 is_server_live
    status = body_json(service.handle(get("/v1/models/toy")))
    assert status["ready"] is True and status["name"] == "toy"      # kserve's v1 is_model_ready
    assert status["model_version_status"][0]["state"] == "AVAILABLE"  # and TF Serving's status still


def test_server_function_reads_cards_from_the_environment(toy_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("MODELFN_CARD_URIS", f"{toy_dir}, {tmp_path / 'missing'}")
    service = InferenceService(model=None, served_models=["toy"])
    assert [card.name for card in service.cards] == ["toy"]  # the unreadable card is logged and left out
    paths = body_json(service.handle(get("/openapi.json")))["paths"]
    assert "/v2/models/toy/infer" in paths and "/v1/models/toy:predict" in paths


def _validator(document: dict, schema_name: str) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator for one component schema (OpenAPI 3.1 schemas are JSON Schema)."""
    resource = Resource.from_contents({"$schema": "https://json-schema.org/draft/2020-12/schema", **document})
    registry = Registry().with_resource("urn:openapi", resource)
    return Draft202012Validator({"$ref": f"urn:openapi#/components/schemas/{schema_name}"}, registry=registry)


def test_openapi_document_is_valid_and_its_schemas_match_real_traffic(service, toy_model):
    document = body_json(service.handle(get("/openapi.json")))
    validate(document)  # openapi-spec-validator: a valid OpenAPI 3.1 document
    assert document == json.loads(json.dumps(openapi_document([toy_model.card], "0.1.0")))
    request = {"inputs": oip_inputs(), "outputs": [{"name": "probs"}]}
    _validator(document, "toy.InferRequest").validate(request)
    _validator(document, "toy.InferResponse").validate(body_json(service.handle(post("/v2/models/toy/infer", request))))
    rows = {"instances": [{"features": FEATURES[0].tolist(), "ids": IDS[0].tolist()}]}
    _validator(document, "toy.PredictRequest").validate(rows)
    _validator(document, "toy.PredictResponse").validate(body_json(service.handle(post("/v1/models/toy:predict", rows))))
    columns = {"inputs": {"features": FEATURES.tolist(), "ids": IDS.tolist()}}
    _validator(document, "toy.PredictRequest").validate(columns)
    _validator(document, "toy.PredictResponse").validate(body_json(service.handle(post("/v1/models/toy:predict", columns))))
    classified = {"inputs": oip_inputs(), "outputs": [{"name": "probs", "parameters": {"classification": 1}}]}
    _validator(document, "toy.InferResponse").validate(body_json(service.handle(post("/v2/models/toy/infer", classified))))


@pytest.mark.parametrize("bad", [
    {"inputs": [{"name": "features", "shape": [2, 5], "datatype": "FP32", "data": [0] * 10}]},   # wrong fixed dim
    {"inputs": [{"name": "pixels", "shape": [2, 4], "datatype": "FP32", "data": [0] * 8}]},      # unknown input
    {"inputs": [{"name": "features", "shape": [2, 4], "datatype": "INT8", "data": [0] * 8}]},     # wrong datatype
    {"instances": [[1, 2]], "inputs": {}},                                                        # both forms
])
def test_openapi_schemas_reject_what_the_service_refuses(service, bad):
    document = body_json(service.handle(get("/openapi.json")))
    schema = "toy.PredictRequest" if "instances" in bad else "toy.InferRequest"
    assert not _validator(document, schema).is_valid(bad)
    path = "/v1/models/toy:predict" if "instances" in bad else "/v2/models/toy/infer"
    assert service.handle(post(path, bad)).status == 400


def test_server_function_reads_only_the_cards_from_s3(toy_dir, monkeypatch):
    import boto3
    from moto import mock_aws

    from modelfn_runtime import aws

    with mock_aws():
        aws.reset()
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        s3.put_object(Bucket="models", Key="models/toy/1/modelcard.json", Body=(toy_dir / "modelcard.json").read_bytes())
        monkeypatch.setenv("MODELFN_CARD_URIS", "s3://models/models/toy/1/,s3://models/models/absent/1/")
        service = InferenceService(model=None, served_models=["toy", "absent"])
        assert body_json(service.handle(get("/v2/health/ready")))["ready"] is True
        assert service._cards is None  # health never touched the store
        assert [card.name for card in service.cards] == ["toy"]
    aws.reset()
