from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from modelfn_runtime.http import Headers, HttpRequest
from modelfn_runtime.service import InferenceService
from modelfn_runtime.session import ModelSession

from .toy_model import write_toy_model

FEATURES = np.array([[1, 2, 3, 4], [0, 0, 0, 1]], np.float32)
IDS = np.array([[1, 2, 3], [4, 5, 6]], np.int64)


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory) -> Path:
    return write_toy_model(tmp_path_factory.mktemp("store") / "toy" / "1")


@pytest.fixture(scope="session")
def toy_model(toy_dir) -> ModelSession:
    return ModelSession.load(toy_dir, preference="cpu")


class RecordingMeter:
    def __init__(self) -> None:
        self.records = []

        self.flushes = 0

    def record(self, usage) -> None:
        self.records.append(usage)

    def flush(self) -> None:
        self.flushes += 1


@pytest.fixture
def meter() -> RecordingMeter:
    return RecordingMeter()


@pytest.fixture
def service(toy_model, meter) -> InferenceService:
    return InferenceService(toy_model, served_models=["toy", "other"], meter=meter)


def post(path: str, payload=None, *, body: bytes | None = None, headers: dict | None = None) -> HttpRequest:
    raw = body if body is not None else json.dumps(payload).encode()
    return HttpRequest("POST", path, Headers({"Content-Type": "application/json", **(headers or {})}), body=raw)


def get(path: str) -> HttpRequest:
    return HttpRequest("GET", path)


def oip_inputs(features=FEATURES, ids=IDS) -> list[dict]:
    return [
        {"name": "features", "shape": list(features.shape), "datatype": "FP32", "data": features.reshape(-1).tolist()},
        {"name": "ids", "shape": list(ids.shape), "datatype": "INT64", "data": ids.tolist()},
    ]


def body_json(response) -> dict:
    return json.loads(response.body)


def rest_event(method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> dict:
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers or {},
        "requestContext": {"requestId": "req-1", "stage": "Prod", "identity": {"apiKeyId": "key-1"}},
        "body": base64.b64encode(body).decode() if body is not None else None,
        "isBase64Encoded": body is not None,
    }
