"""`make demo`: train -> export -> push to S3 -> serve through API Gateway + Lambda locally -> query.

Everything runs on 127.0.0.1 and stops at the end: S3 is a moto server, API Gateway is SAM's
emulation, each Lambda function runs in the real Runtime Interface Emulator. Re-running reuses the
exported model in models/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

MODEL = "digits"
VERSION = "1"
STORE = Path("models")
BUCKET = "modelfn-demo"
LATENCY_REQUESTS = 200


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelfn_infra.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=STORE, help="model store to export into (default: models)")
    store = parser.parse_args(argv).store
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access-log line per request
    started = time.perf_counter()
    model_dir = ensure_exported(store)
    from moto.server import ThreadedMotoServer

    from .local.sandbox import free_port

    port = free_port()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    s3.start()
    try:
        os.environ["AWS_ENDPOINT_URL_S3"] = f"http://127.0.0.1:{port}"
        push(store)
        passed = serve_and_query(model_dir)
    finally:
        s3.stop()
    step(f"demo {'finished' if passed else 'FAILED'} in {time.perf_counter() - started:.0f} s")
    if passed:
        print("    next: `make demo-events` drops files into the data bucket and messages on the queue (docs/events.md)")
    return 0 if passed else 1


def ensure_exported(store: Path) -> Path:
    model_dir = store / MODEL / VERSION
    if (model_dir / "modelcard.json").is_file():
        step(f"reusing {model_dir} (delete it to export again)")
        return model_dir
    step("training the digits MLP and exporting it (TensorFlow -> ONNX, parity-checked)")
    from modelfn_export import export_model

    card = export_model(
        "modelfn_infra.digits:build_model", MODEL, version=VERSION, out=str(store), progress=lambda line: print(f"    {line}")
    )
    step(f"exported {MODEL}/{card.version}: max abs diff vs TensorFlow {card.parity['max_abs_diff']:.2e}")
    return model_dir


def push(store: Path) -> None:
    import boto3

    from modelfn_export import push_model

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    push_model(MODEL, VERSION, bucket=BUCKET, prefix="models/", store=str(store))
    step(f"pushed {store / MODEL / VERSION} to s3://{BUCKET}/models/{MODEL}/{VERSION}/ (moto S3 on {os.environ['AWS_ENDPOINT_URL_S3']})")


def serve_and_query(model_dir: Path) -> bool:
    from .local.commands import LocalApp

    quiet = open(os.devnull, "w")
    with LocalApp("template.yaml", parameter_overrides={"ModelBucket": BUCKET}, log_stream=quiet) as app:
        server = app.serve_api(port=0)
        step(f"local API Gateway on {server.url}; DigitsFunction loads its model from S3 at init")
        try:
            return query(server.url, model_dir, app)
        finally:
            server.stop()
    quiet.close()


def query(url: str, model_dir: Path, app) -> bool:
    """Query through every protocol; True when predictions agree with onnxruntime and accuracy is sane."""
    import onnxruntime as ort
    import tritonclient.http as triton

    from .digits import held_out

    x_test, y_test = held_out()
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    assert client.is_server_live() and client.is_model_ready(MODEL)
    cold = app.runtime.last_report
    metadata = client.get_model_metadata(MODEL)
    step(f"model metadata: inputs {metadata['inputs']}, outputs {metadata['outputs']}")

    binary = np.concatenate([_triton_infer(client, batch, binary=True) for batch in np.array_split(x_test, 8)])
    json_probs = _triton_infer(client, x_test[:16], binary=False)
    tf_serving = np.array(_tf_serving_predict(url, x_test[:16])["predictions"], np.float32)
    reference = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"pixels": x_test})[0]

    accuracy = float((binary.argmax(1) == y_test).mean())
    agreement = {
        "binary": np.allclose(binary, reference, atol=1e-6),
        "JSON": np.allclose(json_probs, reference[:16], atol=1e-6),
        "TF Serving": np.allclose(tf_serving, reference[:16], atol=1e-6),
    }
    latencies = _latencies(client, x_test)
    rows = [
        ("held-out accuracy (tritonclient, binary)", f"{accuracy:.3f} on {len(y_test)} digits"),
        *((f"predictions == onnxruntime ({protocol})", str(same)) for protocol, same in agreement.items()),
        ("cold start of DigitsFunction", _cold_start(cold)),
        ("first predictions", " ".join(str(d) for d in binary[:12].argmax(1)) + f"  (labels {' '.join(map(str, y_test[:12]))})"),
        (f"latency p50 / p99 ({LATENCY_REQUESTS} requests)", f"{np.percentile(latencies, 50):.1f} ms / {np.percentile(latencies, 99):.1f} ms"),
    ]
    print()
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    print()
    return accuracy > 0.9 and all(agreement.values())


def _cold_start(report) -> str:
    if report is None or report.init_duration_ms is None:
        return "warm"
    return f"init {report.init_duration_ms:.0f} ms (model loaded from S3), max memory {report.max_memory_used_mb} MB of {report.memory_size_mb} MB"


def _triton_infer(client, pixels: np.ndarray, *, binary: bool) -> np.ndarray:
    import tritonclient.http as triton

    tensor = triton.InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=binary)
    result = client.infer(MODEL, [tensor], outputs=[triton.InferRequestedOutput("probs", binary_data=binary)])
    return result.as_numpy("probs")


def _tf_serving_predict(url: str, pixels: np.ndarray) -> dict:
    body = json.dumps({"instances": pixels.tolist()}).encode()
    request = urllib.request.Request(f"{url}/v1/models/{MODEL}:predict", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def _latencies(client, x_test: np.ndarray) -> np.ndarray:
    timings = []
    for index in range(LATENCY_REQUESTS):
        started = time.perf_counter()
        _triton_infer(client, x_test[index % len(x_test)][None, :], binary=True)
        timings.append((time.perf_counter() - started) * 1000)
    return np.array(timings)


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
