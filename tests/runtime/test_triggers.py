"""The trigger family: one adapter per event kind, picked once; every request metered exactly once."""

from __future__ import annotations

import json

import pytest

from modelfn_runtime import handler, triggers
from modelfn_runtime.errors import LAMBDA_SYNC_PAYLOAD_LIMIT

from .conftest import oip_inputs, rest_event
from .test_handler import Context


@pytest.fixture
def lambda_service(monkeypatch, service):
    monkeypatch.setattr(handler, "SERVICE", service)
    return service


def http_api_event(path: str, authorizer: dict | None = None) -> dict:
    context = {"http": {"method": "GET", "path": path}, "stage": "$default", "requestId": "h1"}
    if authorizer is not None:
        context["authorizer"] = authorizer
    return {"version": "2.0", "rawPath": path, "headers": {}, "requestContext": context, "isBase64Encoded": False}


@pytest.mark.parametrize(
    "event, name",
    [
        (rest_event("GET", "/v2/health/live"), "rest"),
        (http_api_event("/v2/health/live"), "http"),
        ({"inputs": []}, "direct"),
        ({"input_uri": "s3://b/requests/m/x.npy"}, "direct"),
        ({"Records": [{"eventSource": "aws:sqs", "messageId": "1", "body": "{}"}]}, "sqs"),
        ({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}, "s3"),
        ({"Records": []}, "unknown"),
        ([1, 2], "unknown"),
        ("text", "unknown"),
    ],
)
def test_each_event_has_exactly_one_trigger(event, name):
    assert triggers.pick(event).name == name
    assert sum(trigger.matches(event) for trigger in triggers.TRIGGERS) == (0 if name == "unknown" else 1)


def test_direct_invoke_asking_for_binary_outputs_answers_json(lambda_service, meter):
    event = {"inputs": oip_inputs(), "parameters": {"binary_data_output": True},
             "outputs": [{"name": "total", "parameters": {"binary_data": True}}]}
    response = handler.lambda_handler(event, Context())
    assert response["outputs"][0]["name"] == "total" and response["outputs"][0]["data"] == [6.0, 15.0]
    assert len(meter.records) == 1 and meter.records[0].status == 200 and meter.flushes == 1


def test_http_api_tenant_comes_from_the_authorizer(lambda_service, meter):
    handler.lambda_handler(http_api_event("/v2/health/live", {"lambda": {"tenant": "acme"}}), Context())
    handler.lambda_handler(http_api_event("/v2/health/live", {"jwt": {"claims": {"sub": "user-7"}}}), Context())
    handler.lambda_handler(http_api_event("/v2/health/live", {"apiKeyId": "not-in-v2-events"}), Context())
    assert [record.tenant for record in meter.records] == ["acme", "user-7", None]


def test_rest_api_tenant_is_the_api_key_id(lambda_service, meter):
    handler.lambda_handler(rest_event("GET", "/v2/health/live"), Context())
    assert meter.records[-1].tenant == "key-1" and meter.records[-1].api_key_id == "key-1"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda e: e.update(requestContext="oops"), "requestContext must be an object"),
        (lambda e: e.update(body=123, isBase64Encoded=False), "body must be a string"),
        (lambda e: e.update(httpMethod=None), "no httpMethod"),
        (lambda e: e.update(headers=["x"]), "headers must be an object"),
        (lambda e: e.update(headers={"a": 1}), "headers must map strings to strings"),
        (lambda e: e.update(body="%%%", isBase64Encoded=True), "not valid base64"),
    ],
)
def test_malformed_proxy_events_are_metered_400s(lambda_service, meter, mutate, message):
    event = rest_event("POST", "/v2/models/toy/infer", b"{}")
    mutate(event)
    response = handler.lambda_handler(event, Context())
    assert response["statusCode"] == 400 and message in json.loads(response["body"])["error"]
    assert len(meter.records) == 1 and meter.records[0].status == 400 and meter.records[0].trigger == "rest"


def test_unsupported_events_are_metered_once(lambda_service, meter):
    response = handler.lambda_handler({"Records": []}, Context())
    assert response["status"] == 400 and "unsupported event" in response["error"]
    assert len(meter.records) == 1 and meter.records[0].trigger == "unknown" and meter.flushes == 1


def test_oversized_request_names_the_asynchronous_path(lambda_service, meter, monkeypatch):
    monkeypatch.setenv("MODELFN_DATA_BUCKET", "acme-data")
    body = b"x" * (LAMBDA_SYNC_PAYLOAD_LIMIT + 1)
    response = handler.lambda_handler(rest_event("POST", "/v2/models/toy/infer", body), Context())
    error = json.loads(response["body"])["error"]
    assert response["statusCode"] == 413
    assert "s3://acme-data/inbox/toy/<name>" in error and "s3://acme-data/requests/toy/" in error and '"input_uri"' in error
    assert len(meter.records) == 1


def test_direct_invoke_for_another_model_is_a_404(lambda_service, meter):
    response = handler.lambda_handler({"model_name": "other", "inputs": oip_inputs()}, Context())
    assert response["status"] == 404
    response = handler.lambda_handler({"model_name": 7, "inputs": oip_inputs()}, Context())
    assert response["status"] == 400 and "model_name" in response["error"]
    assert len(meter.records) == 2
