"""The Lambda entry point: trigger adapters, init from the environment, model loading (package and S3)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws

from modelfn_runtime import handler, providers
from modelfn_runtime.artifacts import download_from_s3, locate
from modelfn_runtime.session import ModelLoadError, ModelSession

from .conftest import oip_inputs, rest_event
from .toy_model import write_toy_model

REPO = Path(__file__).resolve().parents[2]
FUNCTION_DIR = REPO / "functions" / "inference"


class Context:
    aws_request_id = "req-ctx"
    function_name = "ToyFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ToyFunction"


@pytest.fixture
def lambda_service(monkeypatch, service):
    monkeypatch.setattr(handler, "SERVICE", service)
    return service


def test_rest_event_with_base64_body(lambda_service):
    body = json.dumps({"inputs": oip_inputs()}).encode()
    response = handler.lambda_handler(rest_event("POST", "/v2/models/toy/infer", body, {"content-type": "application/json"}), Context())
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is False
    assert json.loads(response["body"])["outputs"][1]["data"] == [6.0, 15.0]


def test_rest_event_binary_response_is_base64(lambda_service):
    body = json.dumps({"inputs": oip_inputs(), "parameters": {"binary_data_output": True}}).encode()
    response = handler.lambda_handler(rest_event("POST", "/v2/models/toy/infer", body), Context())
    assert response["isBase64Encoded"] is True
    raw = base64.b64decode(response["body"])
    length = int(response["headers"]["Inference-Header-Content-Length"])
    assert json.loads(raw[:length])["outputs"][0]["parameters"]["binary_data_size"] == 24


def test_http_api_event_strips_the_stage(lambda_service, meter):
    event = {
        "version": "2.0",
        "rawPath": "/dev/v2/models/toy/ready",
        "headers": {},
        "requestContext": {"http": {"method": "GET", "path": "/dev/v2/models/toy/ready"}, "stage": "dev", "requestId": "r2"},
        "isBase64Encoded": False,
    }
    assert handler.lambda_handler(event, Context())["statusCode"] == 200
    assert meter.records[-1].trigger == "http" and meter.records[-1].request_id == "r2"


def test_direct_invoke_answers_the_oip_response(lambda_service, meter):
    response = handler.lambda_handler({"id": "d1", "inputs": oip_inputs()}, Context())
    assert response["id"] == "d1" and response["outputs"][0]["name"] == "probs"
    assert meter.records[-1].trigger == "direct"


def test_direct_invoke_errors_carry_status(lambda_service):
    response = handler.lambda_handler({"inputs": oip_inputs()[:1]}, Context())
    assert response["status"] == 400 and "missing input 'ids'" in response["error"]
    assert handler.lambda_handler({"model_name": "x", "inputs": oip_inputs()}, Context())["status"] == 404


def test_unsupported_event_and_bad_base64(lambda_service):
    assert "unsupported event" in handler.lambda_handler({"Records": []}, Context())["error"]
    event = rest_event("POST", "/v2/models/toy/infer", b"{}")
    event["body"] = "%%%not-base64"
    response = handler.lambda_handler(event, Context())
    assert response["statusCode"] == 400 and "not valid base64" in json.loads(response["body"])["error"]


def test_load_service_from_the_environment(monkeypatch, toy_dir):
    monkeypatch.setenv("MODEL_NAME", "toy")
    monkeypatch.setenv("MODEL_VERSION", "1")
    monkeypatch.setenv("MODEL_URI", str(toy_dir))
    monkeypatch.setenv("MODELFN_MODELS", "toy,digits")
    service = handler.load_service()
    assert service.model.card.name == "toy" and service.served_models == ["digits", "toy"]
    assert service.model.provider == "CPUExecutionProvider"
    monkeypatch.setenv("MODEL_VERSION", "2")
    with pytest.raises(RuntimeError, match="holds toy/1 but this function serves toy/2"):
        handler.load_service()


def test_relative_model_uri_is_inside_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    assert locate("models/toy/1").directory == tmp_path / "models/toy/1"


def test_tampered_artifact_is_refused(tmp_path):
    model_dir = write_toy_model(tmp_path / "toy" / "1")
    with (model_dir / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelLoadError, match="sha256"):
        ModelSession.load(model_dir)


def test_missing_artifact_names_the_fix(tmp_path):
    with pytest.raises(ModelLoadError, match="modelfn export"):
        ModelSession.load(tmp_path)


def test_card_and_artifact_must_agree(tmp_path):
    model_dir = write_toy_model(tmp_path / "toy" / "1")
    card = json.loads((model_dir / "modelcard.json").read_text())
    card["inputs"][1]["datatype"] = "INT32"
    (model_dir / "modelcard.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="disagree on 'ids'"):
        ModelSession.load(model_dir)


@pytest.fixture
def aws(monkeypatch, tmp_path):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("modelfn_runtime.artifacts.CACHE_ROOT", tmp_path / "cache")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        yield s3


def upload(s3, model_dir: Path, prefix="models/toy/1/") -> None:
    for name in ("model.onnx", "modelcard.json"):
        s3.put_object(Bucket="models", Key=prefix + name, Body=(model_dir / name).read_bytes())


def test_model_is_copied_from_s3_and_verified(aws, toy_dir):
    upload(aws, toy_dir)
    local = download_from_s3("s3://models/models/toy/1/")
    assert ModelSession.load(local.directory).card.name == "toy"
    assert local.sha256 == ModelSession.load(local.directory).card.artifact.sha256  # verified on the way
    assert download_from_s3("s3://models/models/toy/1") == local  # cached copy reused


def test_a_model_from_s3_is_hashed_once_per_cold_start(aws, toy_dir, monkeypatch):
    upload(aws, toy_dir)
    hashed, file_digest = [], hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda handle, name: hashed.append(handle.name) or file_digest(handle, name))
    monkeypatch.setenv("MODEL_NAME", "toy")
    monkeypatch.setenv("MODEL_VERSION", "1")
    monkeypatch.setenv("MODEL_URI", "s3://models/models/toy/1/")
    service = handler.load_service()
    assert service.model.card.name == "toy"
    # right after the download (this process's temporary file), not again
    assert len(hashed) == 1 and Path(hashed[0]).name.startswith("model.onnx.") and hashed[0].endswith(".partial"), hashed


def test_tampered_s3_artifact_is_refused(aws, toy_dir, tmp_path):
    upload(aws, toy_dir)
    aws.put_object(Bucket="models", Key="models/toy/1/model.onnx", Body=b"not the model")
    with pytest.raises(ModelLoadError, match="push the model again"):
        download_from_s3("s3://models/models/toy/1/")


def test_missing_s3_model_names_the_fix(aws):
    with pytest.raises(ModelLoadError, match="modelfn push"):
        download_from_s3("s3://models/models/absent/1/")


def test_gpu_providers_only_with_a_working_device(monkeypatch):
    assert providers.requested_providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(providers.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(providers, "cuda_device_count", lambda: 0)
    assert providers.requested_providers("auto") == ["CPUExecutionProvider"]
    monkeypatch.setattr(providers, "cuda_device_count", lambda: 1)
    assert providers.requested_providers("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(ValueError, match="use one of"):
        providers.requested_providers("gpu")


def test_threads_follow_lambda_memory(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
    assert providers.available_vcpus() == 1
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "10240")
    assert providers.available_vcpus() == min(6, len(os.sched_getaffinity(0)))


def test_inference_path_imports_no_tensorflow_tf2onnx_or_onnx(toy_dir):
    code = (
        "import sys, json, types, app\n"
        "event = json.load(open(sys.argv[1]))\n"
        "context = types.SimpleNamespace(aws_request_id='r', function_name='f', memory_limit_in_mb=512,\n"
        "                                invoked_function_arn='arn:aws:lambda:us-east-1:123456789012:function:f')\n"
        "assert 'outputs' in app.lambda_handler(event, context)\n"
        "banned = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf2onnx', 'onnx', 'keras'))\n"
        "print(json.dumps(banned))\n"
    )
    event = toy_dir.parent.parent / "direct.json"
    event.write_text(json.dumps({"inputs": oip_inputs()}))
    env = {**os.environ, "MODEL_NAME": "toy", "MODEL_VERSION": "1", "MODEL_URI": str(toy_dir), "PYTHONPATH": str(FUNCTION_DIR)}
    result = subprocess.run([sys.executable, "-c", code, str(event)], cwd=FUNCTION_DIR, env=env, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_float_inputs_stay_exact_through_json(service):
    from .conftest import post

    values = np.array([[0.1, 1e-8, 3.4e38, -2.5]], np.float32)
    request = post("/v2/models/toy/infer", {"inputs": oip_inputs(values, np.zeros((1, 3), np.int64))})
    assert service.handle(request).status == 200


def test_card_without_artifact_in_s3_names_the_fix(aws, toy_dir):
    aws.put_object(Bucket="models", Key="models/toy/1/modelcard.json", Body=(toy_dir / "modelcard.json").read_bytes())
    with pytest.raises(ModelLoadError, match="model.onnx does not exist; push the model"):
        download_from_s3("s3://models/models/toy/1/")


def test_emf_metrics_and_structured_logs(toy_dir, tmp_path):
    code = (
        "import sys, json, types, app\n"
        "context = types.SimpleNamespace(aws_request_id='req-ctx', function_name='f', memory_limit_in_mb=512,\n"
        "                                invoked_function_arn='arn:aws:lambda:us-east-1:123456789012:function:f')\n"
        "for event in json.load(open(sys.argv[1])):\n"
        "    app.lambda_handler(event, context)\n"
    )
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"inputs": oip_inputs()}, {"inputs": oip_inputs()[:1]}]))
    env = {**os.environ, "MODEL_NAME": "toy", "MODEL_VERSION": "1", "MODEL_URI": str(toy_dir), "PYTHONPATH": str(FUNCTION_DIR)}
    result = subprocess.run([sys.executable, "-c", code, str(events)], cwd=FUNCTION_DIR, env=env, capture_output=True, text=True, check=True)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    loaded = next(line for line in lines if line.get("message") == "model loaded")
    assert loaded["provider"] == "CPUExecutionProvider" and loaded["threads"] >= 1
    emf = [line for line in lines if "_aws" in line and "Latency" in line]
    assert emf[0]["model"] == "toy" and emf[0]["BatchSize"] == 2 and emf[0]["request_id"] == "req-ctx"
    assert emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "modelfn"
    assert emf[1]["ClientErrors"] == 1
    cold = [line for line in lines if "ColdStart" in line]  # once per sandbox, on its first invocation
    assert len(cold) == 1 and cold[0]["function_name"] == "f" and cold[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    refused = next(line for line in lines if line.get("message") == "request refused")
    assert refused["status"] == 400 and refused["function_request_id"] == "req-ctx"
    assert refused["cold_start"] is False and refused["model"] == "toy" and refused["version"] == "1"
    assert refused["function_name"] == "f" and refused["function_memory_size"] == 512


def test_tensorrt_is_offered_only_when_libnvinfer_loads(monkeypatch):
    """onnxruntime-gpu lists TensorRT without libnvinfer; offering it then costs an "EP Error" and a retry per session."""
    all_gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(providers.ort, "get_available_providers", lambda: all_gpu)
    monkeypatch.setattr(providers, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(providers, "tensorrt_available", lambda: False)
    assert providers.requested_providers("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers.requested_providers("tensorrt") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(providers, "tensorrt_available", lambda: True)
    assert providers.requested_providers("auto") == all_gpu


def test_cuda_runs_without_tf32_unless_asked(monkeypatch):
    names = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers.provider_options(names) == [{"use_tf32": "0"}, {}]
    monkeypatch.setenv("MODELFN_CUDA_TF32", "1")
    assert providers.provider_options(names) == [{"use_tf32": "1"}, {}]
    assert providers.tensorrt_available() in (True, False)  # really probes the library; none on CPU machines
