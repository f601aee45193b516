"""`make demo`: train -> export -> push to S3 -> serve through API Gateway + Lambda locally -> query -> bill.

Everything runs on 127.0.0.1 and stops at the end: S3 and DynamoDB are a moto server, API Gateway is
SAM's emulation (with API keys, usage-plan throttling and quotas), each Lambda function runs in the
real Runtime Interface Emulator and meters its requests per tenant into the usage table. The demo's
tenants are kept in .modelfn/local/tenants.json (keys as salted digests), so `modelfn local start-api` accepts the
keys the demo prints afterwards. Re-running reuses the exported model in models/ and the tenants, with fresh keys.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from modelfn_runtime import environment as names

from .catalog import API_KEY_HEADER
from .tenants import DEFAULT_LOCAL_TENANTS

MODEL = "digits"
VERSION = "1"
STORE = Path("models")
BUCKET = "modelfn-demo"
LATENCY_REQUESTS = 200
EVALUATE_BATCH = 16
LATENCY_PACE_S = 1 / 40  # the pro plan allows 50 requests/s per key: stay under it while measuring
USAGE_TABLE = "modelfn-usage"
TENANT, FREE_TENANT = "demo", "demo-free"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelfn_infra.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=STORE, help="model store to export into (default: models)")
    parser.add_argument("--tenants", type=Path, default=DEFAULT_LOCAL_TENANTS, help="local tenants file (default: %(default)s)")
    args = parser.parse_args(argv)
    store = args.store
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
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://127.0.0.1:{port}"  # the usage aggregator writes here
        push(store)
        create_usage_table()
        tenants = ensure_tenants(args.tenants)
        passed = serve_and_query(model_dir, tenants, args.tenants)
        # the protocol checks (12), the latency loop, and modelfn evaluate (metadata + one request per batch of 16)
        from .digits import held_out

        evaluated = 1 + math.ceil(len(held_out()[0]) / EVALUATE_BATCH)
        passed = show_bill(args.tenants, expected={TENANT: 12 + LATENCY_REQUESTS + evaluated, FREE_TENANT: 5}) and passed
        how_to(model_dir, tenants[TENANT], args.tenants)
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


def create_usage_table() -> None:
    import boto3

    from .catalog import usage_table_resource

    properties = usage_table_resource()["Properties"]
    boto3.client("dynamodb").create_table(
        TableName=USAGE_TABLE,
        **{key: properties[key] for key in ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")},
    )


def ensure_tenants(path: Path) -> dict:
    """The demo's tenants (pro and free plans) in the local tenants file: reused (with a fresh key) when they exist."""
    import yaml

    from .local.apikeys import plans_from_template
    from .tenants import LocalTenants

    tenants = LocalTenants(path, plans_from_template(yaml.safe_load(Path("template.yaml").read_text())["Resources"]))
    existing = {tenant.name for tenant in tenants.list() if tenant.enabled}
    chosen = {}
    for name, plan in ((TENANT, "pro"), (FREE_TENANT, "free")):
        # keys are stored hashed, so a tenant from an earlier run gets a fresh key (its old one revoked at once)
        chosen[name] = tenants.rotate(name, grace_hours=0)[0] if name in existing else tenants.create(name, plan)
        step(f"tenant {name!r} (plan {chosen[name].plan}, id {chosen[name].id}) in {path}: API key {chosen[name].key}")
    return chosen


def serve_and_query(model_dir: Path, tenants: dict, tenants_file: Path) -> bool:
    from modelfn_runtime.usage import USAGE_TABLE_ENV

    from .local.commands import LocalApp

    quiet = open(os.environ.get("MODELFN_DEMO_LOG") or os.devnull, "w")  # the functions' logs, when asked for
    # the functions' metering lines are aggregated into this (moto) table by the local log subscription
    env = {"Parameters": {USAGE_TABLE_ENV: USAGE_TABLE}}
    with LocalApp("template.yaml", env_vars=env, parameter_overrides={"ModelBucket": BUCKET}, log_stream=quiet) as app:
        server = app.serve_api(port=0, tenants=tenants_file)
        step(f"local API Gateway on {server.url} (API keys required on model routes); "
             "DigitsFunction loads its model from S3 at init")
        try:
            passed = query(server.url, model_dir, app, tenants[TENANT].key, tenants[FREE_TENANT].key)
            report_quality(server.url, model_dir, tenants[TENANT].key)
            return passed
        finally:
            server.stop()
    quiet.close()


def query(url: str, model_dir: Path, app, key: str, free_key: str) -> bool:
    """Query through every protocol; True when predictions agree with onnxruntime and accuracy is sane."""
    import onnxruntime as ort
    import tritonclient.http as triton

    from .digits import held_out

    x_test, y_test = held_out()
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    headers = {API_KEY_HEADER: key}
    assert client.is_server_live() and client.is_model_ready(MODEL, headers=headers)
    cold = app.runtime.last_report
    metadata = client.get_model_metadata(MODEL, headers=headers)
    step(f"model metadata: inputs {metadata['inputs']}, outputs {metadata['outputs']}")

    binary = np.concatenate([_triton_infer(client, batch, key, binary=True) for batch in np.array_split(x_test, 8)])
    json_probs = _triton_infer(client, x_test[:16], key, binary=False)
    tf_serving = np.array(_tf_serving_predict(url, x_test[:16], key)[1]["predictions"], np.float32)
    reference = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"pixels": x_test})[0]

    accuracy = float((binary.argmax(1) == y_test).mean())
    agreement = {
        "binary": np.allclose(binary, reference, atol=1e-6),
        "JSON": np.allclose(json_probs, reference[:16], atol=1e-6),
        "TF Serving": np.allclose(tf_serving, reference[:16], atol=1e-6),
    }
    latencies = _latencies(client, x_test, key)
    no_key = _tf_serving_predict(url, x_test[:1], None)
    burst = [_tf_serving_predict(url, x_test[:1], free_key)[0] for _ in range(8)]
    limits_ok = no_key[0] == 403 and burst[:5] == [200] * 5 and 429 in burst
    rows = [
        ("held-out accuracy (tritonclient, binary)", f"{accuracy:.3f} on {len(y_test)} digits"),
        *((f"predictions == onnxruntime ({protocol})", str(same)) for protocol, same in agreement.items()),
        ("cold start of DigitsFunction", _cold_start(cold)),
        ("first predictions", " ".join(str(d) for d in binary[:12].argmax(1)) + f"  (labels {' '.join(map(str, y_test[:12]))})"),
        (f"latency p50 / p99 ({LATENCY_REQUESTS} requests)", f"{np.percentile(latencies, 50):.1f} ms / {np.percentile(latencies, 99):.1f} ms"),
        ("without an API key", f"{no_key[0]} {no_key[1]['error'][:60]}..."),
        ("free plan (burst 5), 8 requests at once", " ".join(map(str, burst))),
    ]
    print()
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    print()
    return accuracy > 0.9 and all(agreement.values()) and limits_ok


def show_bill(tenants_file: Path, expected: dict[str, int]) -> bool:
    """This month's bill from the usage the functions metered; True when each tenant's requests were all metered."""
    from datetime import datetime, timezone

    from .billing import AwsCosts, PriceTable, UsageReader, make_bill, render_bill, tenant_index
    from .tenants import LocalTenants

    month = datetime.now(timezone.utc).strftime("%Y-%m")
    tenants = tenant_index(LocalTenants(tenants_file).list())
    bill = make_bill(month, UsageReader(USAGE_TABLE).month(month), tenants, PriceTable.load(), AwsCosts.load())
    step(f"the bill so far (`modelfn bill --month {month}`), from the usage metered into DynamoDB (moto):")
    print(render_bill(bill, "table"))
    metered = {line.tenant: line.requests for line in bill.lines}
    print()
    return all(metered.get(name) == count for name, count in expected.items())


def how_to(model_dir: Path, tenant, tenants_file: Path) -> None:
    env_file = tenants_file.parent / "env.json"
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text(json.dumps({"DigitsFunction": {names.MODEL_URI: str(model_dir.resolve())}}))
    print("  try it yourself with the demo tenant's key:")
    print(f"    .venv/bin/modelfn local start-api --env-vars {env_file} --parameter-overrides ModelBucket=unused")
    print(f"    python3 -c 'import json; print(json.dumps({{\"instances\": [[0.0] * 64]}}))' | curl -s -H 'x-api-key: {tenant.key}' \\")
    print("      -H 'Content-Type: application/json' -d @- http://127.0.0.1:3000/v1/models/digits:predict")
    print("  more keys: .venv/bin/modelfn tenants create NAME --plan free|pro --local")
    print()


def report_quality(url: str, model_dir: Path, key: str) -> None:
    """`modelfn evaluate`'s summary for the held-out split, measured through the local API."""
    from .digits import held_out
    from .evaluate import evaluate

    x_test, y_test = held_out()
    step(f"modelfn evaluate {MODEL} on the {len(y_test)} held-out digits (through the API; TensorFlow retrained from the card's source)")
    result = evaluate(MODEL, {"pixels": x_test}, y_test, url, batch_size=EVALUATE_BATCH, store=model_dir.parent.parent, api_key=key)
    print("\n".join("  " + line for line in result.summary().splitlines()) + "\n")
    step("next: `.venv/bin/modelfn local start-api` serves models/ on http://127.0.0.1:3000 (playground at /, OpenAPI at /openapi.json)")


def _cold_start(report) -> str:
    if report is None or report.init_duration_ms is None:
        return "warm"
    return f"init {report.init_duration_ms:.0f} ms (model loaded from S3), max memory {report.max_memory_used_mb} MB of {report.memory_size_mb} MB"


def _triton_infer(client, pixels: np.ndarray, key: str, *, binary: bool) -> np.ndarray:
    import tritonclient.http as triton

    tensor = triton.InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=binary)
    outputs = [triton.InferRequestedOutput("probs", binary_data=binary)]
    result = client.infer(MODEL, [tensor], outputs=outputs, headers={API_KEY_HEADER: key})
    return result.as_numpy("probs")


def _tf_serving_predict(url: str, pixels: np.ndarray, key: str | None) -> tuple[int, dict]:
    body = json.dumps({"instances": pixels.tolist()}).encode()
    headers = {"Content-Type": "application/json", **({API_KEY_HEADER: key} if key else {})}
    request = urllib.request.Request(f"{url}/v1/models/{MODEL}:predict", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _latencies(client, x_test: np.ndarray, key: str) -> np.ndarray:
    timings = []
    for index in range(LATENCY_REQUESTS):
        started = time.perf_counter()
        _triton_infer(client, x_test[index % len(x_test)][None, :], key, binary=True)
        timings.append((time.perf_counter() - started) * 1000)
        time.sleep(max(0.0, LATENCY_PACE_S - (time.perf_counter() - started)))
    return np.array(timings)


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
