"""Server readiness: the catch-all is ready only when every model function can serve (it probes them)."""

from __future__ import annotations

import json

from modelfn_runtime import handler
from modelfn_runtime.readiness import Readiness, configured_functions
from modelfn_runtime.service import InferenceService, Unavailable

from .conftest import get, rest_event
from .test_handler import Context


def test_model_functions_come_from_the_environment():
    assert configured_functions("digits=DigitsFunction:live, text-cls=arn:aws:lambda:us-east-1:1:function:T,bad,=x") == {
        "digits": "DigitsFunction:live", "text-cls": "arn:aws:lambda:us-east-1:1:function:T"}
    assert configured_functions("") == {}


def test_catch_all_is_ready_only_when_every_model_function_is(meter):
    answers = {"DigitsFunction:live": {"ready": True}, "ToyFunction:live": {"ready": False, "status": 503, "error": "sha256 mismatch"}}
    calls = []

    def invoke(function):
        calls.append(function)
        return answers[function]

    service = InferenceService(None, served_models=["digits", "toy"], meter=meter)
    service._readiness = Readiness({"digits": "DigitsFunction:live", "toy": "ToyFunction:live"}, invoke=invoke, cache_s=60)
    response = service.handle(get("/v2/health/ready"))
    assert response.status == 503 and response.headers["Retry-After"] == "60"
    error = json.loads(response.body)["error"]
    assert "1 of 2 models cannot serve" in error and "'toy': sha256 mismatch" in error and "digits" not in error.split("(")[1]
    assert service.handle(get("/v2/health/ready")).status == 503 and len(calls) == 2  # cached: no second round of probes
    assert service.handle(get("/v2/health/live")).status == 200  # liveness never probes


def test_unreachable_functions_are_not_ready():
    def invoke(function):
        raise TimeoutError("read timed out")

    readiness = Readiness({"digits": "DigitsFunction"}, invoke=invoke)
    assert readiness.not_ready() == {"digits": "DigitsFunction could not be invoked (TimeoutError): read timed out"}


def test_without_model_functions_the_catch_all_is_ready(meter):
    service = InferenceService(None, served_models=[], meter=meter)
    service._readiness = Readiness({})
    assert service.handle(get("/v2/health/ready")).status == 200


def test_a_model_function_answers_the_probe(monkeypatch, service, meter):
    monkeypatch.setattr(handler, "SERVICE", service)
    assert handler.lambda_handler({"modelfn": "ready"}, Context()) == {"ready": True, "provider": "CPUExecutionProvider"}
    assert meter.records[-1].trigger == "probe" and meter.records[-1].operation == "model_ready"
    broken = InferenceService(None, served_models=["toy"], meter=meter, unavailable=Unavailable("toy", "1", "sha256 mismatch"))
    monkeypatch.setattr(handler, "SERVICE", broken)
    answer = handler.lambda_handler({"modelfn": "ready"}, Context())
    assert answer["ready"] is False and answer["status"] == 503 and "sha256 mismatch" in answer["error"]
    assert handler.lambda_handler(rest_event("GET", "/v2/models/toy/ready"), Context())["statusCode"] == 503


def test_probes_are_not_billed_to_anyone():
    import io
    import json

    from modelfn_runtime.metering import EmfMeter, UsageRecord

    out = io.StringIO()
    EmfMeter(stream=lambda: out).record(UsageRecord("r", "toy", "1", "probe", "model_ready", 200, 0, 0, 12, 1.0))
    line = json.loads(out.getvalue())
    assert "modelfn_usage" not in line and "tenant" not in line and line["Requests"] == 1  # counted, never billed
