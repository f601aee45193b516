"""Readiness tells the truth: a model that cannot load is not ready, says why, and is loaded again later."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from modelfn_runtime import handler
from modelfn_runtime.artifacts import ModelLoadError
from modelfn_runtime.service import InferenceService

from .conftest import get, oip_inputs, post

FUNCTION_DIR = Path(__file__).resolve().parents[2] / "functions" / "inference"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failed_init_is_not_ready_then_heals_after_the_backoff(monkeypatch, toy_model):
    monkeypatch.setenv("MODEL_NAME", "toy")
    monkeypatch.setenv("MODEL_VERSION", "1")
    monkeypatch.setenv("MODEL_URI", "s3://models/toy/1/")
    attempts = []

    def load():
        attempts.append(1)
        if len(attempts) < 3:
            raise ModelLoadError("s3://models/toy/1/model.onnx does not exist; push the model with `modelfn push`")
        return InferenceService(toy_model)

    clock = Clock()
    slot = handler.ServiceSlot(load=load, clock=clock)
    ready = slot.current().handle(get("/v2/models/toy/ready"))
    assert ready.status == 503 and ready.headers["Retry-After"] == "5"
    assert "is not ready: s3://models/toy/1/model.onnx does not exist" in json.loads(ready.body)["error"]
    assert slot.current().handle(post("/v2/models/toy/infer", {"inputs": oip_inputs()})).status == 503
    assert slot.current().handle(get("/v2/health/ready")).status == 503
    assert slot.current().handle(get("/v2/health/live")).status == 200
    assert len(attempts) == 1, "no reload before the backoff has passed"
    clock.now += 5
    assert slot.current().handle(get("/v2/health/ready")).headers["Retry-After"] == "10"  # second failure: longer pause
    clock.now += 10
    assert slot.current().handle(get("/v2/models/toy/ready")).status == 200
    assert slot.current().handle(post("/v2/models/toy/infer", {"inputs": oip_inputs()})).status == 200
    assert len(attempts) == 3 and slot.failures == 0


def test_unexpected_init_errors_do_not_leak_details(monkeypatch):
    monkeypatch.setenv("MODEL_NAME", "toy")

    def load():
        raise KeyError("internal detail")

    slot = handler.ServiceSlot(load=load, clock=Clock())
    message = json.loads(slot.current().handle(get("/v2/health/ready")).body)["error"]
    assert "KeyError" in message and "internal detail" not in message


def test_function_with_a_missing_model_starts_and_answers_503_with_one_clear_log_line(tmp_path):
    code = (
        "import json, types, app\n"
        "context = types.SimpleNamespace(aws_request_id='r', function_name='f', memory_limit_in_mb=512,\n"
        "                                invoked_function_arn='arn:aws:lambda:us-east-1:123456789012:function:f')\n"
        "event = {'httpMethod': 'GET', 'path': '/v2/models/toy/ready', 'headers': {}, 'requestContext': {'requestId': 'x'}}\n"
        "print('RESPONSE ' + json.dumps(app.lambda_handler(event, context)))\n"
    )
    env = {**os.environ, "MODEL_NAME": "toy", "MODEL_VERSION": "1", "MODEL_URI": str(tmp_path / "absent"),
           "PYTHONPATH": str(FUNCTION_DIR)}
    result = subprocess.run([sys.executable, "-c", code], cwd=FUNCTION_DIR, env=env, capture_output=True, text=True, check=True)
    response = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESPONSE "))[9:])
    assert response["statusCode"] == 503
    assert "modelcard.json is missing; export the model" in json.loads(response["body"])["error"]
    logs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    failures = [line for line in logs if line.get("message") == "model cannot load"]
    assert len(failures) == 1 and failures[0]["uri"] == str(tmp_path / "absent") and failures[0]["level"] == "ERROR"
    assert "modelfn export" in failures[0]["reason"]


def test_payloads_are_not_logged_by_default(service, caplog):
    with caplog.at_level(logging.DEBUG):
        service.handle(post("/v2/models/toy/infer", {"inputs": oip_inputs()}))
        service.handle(post("/v2/models/toy/infer", {"inputs": [{**oip_inputs()[0], "data": [123456789.5] * 8}]}))
    assert caplog.records, "the refusal is logged"
    logged = " ".join(json.dumps(record.__dict__, default=str) for record in caplog.records)
    assert "payload sample" not in logged and "123456789" not in logged and "[1.0, 2.0" not in logged


def test_sampled_payload_logging_redacts_named_tensors_and_secrets(toy_model, caplog):
    from modelfn_runtime.payloads import PayloadLog

    log = PayloadLog.from_env({"MODELFN_PAYLOAD_LOG_RATE": "1", "MODELFN_PAYLOAD_REDACT": "features,probs"})
    service = InferenceService(toy_model, payload_log=log)
    with caplog.at_level(logging.INFO):
        service.handle(post("/v2/models/toy/infer", {"inputs": oip_inputs()}, headers={"X-Api-Key": "sekrit-key"}))
    sample = next(record.__dict__ for record in caplog.records if record.getMessage() == "payload sample")
    assert sample["request_headers"]["x-api-key"] == "[redacted]" and "sekrit" not in json.dumps(sample)
    request = json.loads(sample["request_body"])
    assert request["inputs"][0]["data"] == "[redacted]" and request["inputs"][1]["data"] == [[1, 2, 3], [4, 5, 6]]
    response = json.loads(sample["response_body"])
    assert response["outputs"][0]["data"] == "[redacted]" and response["outputs"][1]["data"] == [6.0, 15.0]
    assert PayloadLog(rate=0.5).maybe_log(post("/x", {}), service.handle(get("/v2/health/live")), sample=lambda: 0.7) is False


def test_payload_log_rate_is_validated():
    import pytest

    from modelfn_runtime.payloads import PayloadLog

    with pytest.raises(ValueError, match="between 0 and 1"):
        PayloadLog.from_env({"MODELFN_PAYLOAD_LOG_RATE": "5"})
