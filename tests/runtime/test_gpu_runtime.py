"""The runtime's CUDA features, checked here without a GPU (issue 17): the arena cap per process from the accelerator
memory and the environment's concurrency, the warm-up at init, I/O binding for large batches (same answers as
``session.run``), the CPU fallback reported in the log line, readiness and metadata, and the model cache in /tmp
shared by the processes of one execution environment (one download, every process verified)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import boto3
import numpy as np
import pytest

from modelfn_runtime import environment as names
from modelfn_runtime import handler, providers, session
from modelfn_runtime.session import IO_BINDING_MIN_BATCH, ModelSession

from ..conftest import REPO
from .conftest import body_json, get
from .test_handler import Context
from .toy_model import reference

FALLBACK = "no NVIDIA driver here: this GPU image serves on CPUExecutionProvider"


def test_each_process_caps_its_cuda_arena_at_its_share_of_the_accelerator():
    environ = {names.ACCELERATOR_MEMORY_GIB: "12", names.ENVIRONMENT_CONCURRENCY: "4"}
    share = 3 * 2**30 - providers.CUDA_PROCESS_OVERHEAD_BYTES
    assert providers.gpu_mem_limit_bytes(environ) == share
    assert providers.gpu_mem_limit_bytes({}) is None  # a function without AcceleratorConfig: no cap
    options = providers.provider_options(["CUDAExecutionProvider", "CPUExecutionProvider"], environ)
    assert options == [{"use_tf32": "0", "gpu_mem_limit": str(share), "arena_extend_strategy": "kSameAsRequested"}, {}]
    with pytest.raises(ValueError, match="lower environment_concurrency"):
        providers.gpu_mem_limit_bytes({names.ACCELERATOR_MEMORY_GIB: "3", names.ENVIRONMENT_CONCURRENCY: "8"})
    with pytest.raises(ValueError, match="MODELFN_ACCELERATOR_MEMORY_GIB='twelve'"):
        providers.gpu_mem_limit_bytes({names.ACCELERATOR_MEMORY_GIB: "twelve"})


def test_the_catalog_checks_concurrency_with_the_runtimes_gpu_memory_rule():
    from modelfn_infra.catalog import CatalogError
    from modelfn_infra.catalog.schema import ModelEntry

    per_process = providers.estimated_gpu_bytes(102 * 10**6)
    fits = 12 * 2**30 // per_process

    def entry(concurrency: int) -> ModelEntry:
        return ModelEntry("resnet", "1", package_type="Image", snapstart=False, deployment="AllAtOnce", accelerator="gpu",
                          accelerator_memory_gib=12, model_size_mb=102, environment_concurrency=concurrency)

    entry(fits).validate()
    with pytest.raises(CatalogError, match=f"set environment_concurrency to at most {fits}"):
        entry(fits + 1).validate()


def test_warm_up_runs_each_batch_size_and_is_reported(toy_dir):
    model = ModelSession.load(toy_dir, preference="cpu")
    assert model.warm_up_ms is None and model.gpu_mem_limit is None and model.fallback is None
    calls = []
    run = model.run
    model.run = lambda inputs, output_names=None: calls.append({k: v.shape for k, v in inputs.items()}) or run(inputs)
    elapsed = model.warm_up((1, 8))
    assert elapsed == model.warm_up_ms and elapsed >= 0
    assert calls == [{"features": (1, 4), "ids": (1, 3)}, {"features": (8, 4), "ids": (8, 3)}]
    assert session.WARM_UP_BATCHES["CUDAExecutionProvider"] == (1, 8, IO_BINDING_MIN_BATCH)


def test_io_binding_answers_what_session_run_answers(toy_dir, monkeypatch):
    """The bound path runs on the CPU provider too, so the CUDA branch is exercised here by naming the provider."""
    model = ModelSession.load(toy_dir, preference="cpu")
    rng = np.random.default_rng(7)
    features = rng.normal(size=(IO_BINDING_MIN_BATCH, 4)).astype(np.float32)
    ids = rng.integers(0, 5, size=(IO_BINDING_MIN_BATCH, 3)).astype(np.int64)
    plain = model.run({"features": features, "ids": ids})
    bound = []
    monkeypatch.setattr(model, "_run_bound", lambda names_, feeds: bound.append(len(feeds)) or ModelSession._run_bound(model, names_, feeds))
    model.provider = "CUDAExecutionProvider"
    answer = model.run({"features": features, "ids": ids})
    assert bound == [2]
    expected = reference(features, ids)
    for name in plain:
        np.testing.assert_allclose(answer[name], plain[name], rtol=1e-6)
        np.testing.assert_allclose(answer[name], expected[name], rtol=1e-5, atol=1e-5)
    model.run({"features": features[:IO_BINDING_MIN_BATCH - 1], "ids": ids[:IO_BINDING_MIN_BATCH - 1]})
    assert bound == [2]  # below the measured threshold: session.run


def test_a_gpu_image_without_a_gpu_serves_on_cpu_and_says_so(toy_dir, monkeypatch, caplog):
    monkeypatch.setattr(session.cuda, "REPORT", {"device": "GPU", "verdict": FALLBACK, "serves_on": "CPUExecutionProvider"})
    monkeypatch.setenv("MODEL_NAME", "toy")
    monkeypatch.setenv("MODEL_VERSION", "1")
    monkeypatch.setenv("MODEL_URI", str(toy_dir))
    monkeypatch.setenv(names.ACCELERATOR_MEMORY_GIB, "12")
    monkeypatch.setenv(names.ENVIRONMENT_CONCURRENCY, "2")
    with caplog.at_level(logging.INFO):
        service = handler.load_service()
    model = service.model
    assert model.provider == "CPUExecutionProvider" and model.fallback == FALLBACK
    assert model.warm_up_ms is not None and model.gpu_mem_limit is None  # the cap is CUDA's; CPU has none
    loaded = [record for record in caplog.records if record.getMessage() == "model loaded"]
    assert loaded and loaded[-1].levelname == "WARNING" and loaded[-1].fallback == FALLBACK
    assert loaded[-1].provider == "CPUExecutionProvider" and loaded[-1].warm_up_ms == model.warm_up_ms
    ready = body_json(service.handle(get("/v2/models/toy/ready")))
    assert ready == {"name": "toy", "ready": True, "provider": "CPUExecutionProvider", "fallback": FALLBACK}
    assert body_json(service.handle(get("/v2/models/toy")))["parameters"] == {"provider": "CPUExecutionProvider", "fallback": FALLBACK}
    monkeypatch.setattr(handler, "SERVICE", service)
    assert handler.lambda_handler({"modelfn": "ready"}, Context()) == {"ready": True, "provider": "CPUExecutionProvider",
                                                                  "fallback": FALLBACK}


LOADER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.01)
    from modelfn_runtime.artifacts import locate
    from modelfn_runtime.session import ModelSession
    files = locate(sys.argv[1])
    model = ModelSession.load(files.directory, preference="cpu", sha256=files.sha256)
    print(json.dumps({"result": model.card.name, "sha256": files.sha256}))
""")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_processes_of_one_environment_share_the_cache_one_download_all_verified(toy_dir, tmp_path):
    """Two processes (two concurrent requests of one managed-instance environment) load the same S3 model at once."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}", names.CACHE_DIR: str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(REPO / "functions" / "inference"), os.environ.get("PYTHONPATH", "")])}
    try:
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="models")
        for name in ("model.onnx", "modelcard.json"):
            s3.put_object(Bucket="models", Key=f"models/toy/1/{name}", Body=(toy_dir / name).read_bytes())
        go = tmp_path / "go"
        processes = [subprocess.Popen([sys.executable, "-c", LOADER, "s3://models/models/toy/1/", str(go)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        time.sleep(0.5)  # both are waiting for the same start
        go.touch()
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        server.stop()
    assert all(process.returncode == 0 for process in processes), [err[-2000:] for _, err in outputs]
    lines = [json.loads(line) for out, _ in outputs for line in out.splitlines() if line.startswith("{")]
    messages = [line.get("message") for line in lines]
    assert messages.count("model downloaded from S3") == 1, messages
    assert messages.count("model reused from the shared cache") == 1, messages
    results = [line for line in lines if "result" in line]
    assert [r["result"] for r in results] == ["toy", "toy"] and len({r["sha256"] for r in results}) == 1
    cached = tmp_path / "cache" / "models" / "models" / "toy" / "1"
    assert sorted(p.name for p in cached.iterdir()) == [".lock", "model.onnx", "modelcard.json"]  # no temporary files left
