"""`make demo-events`: drop files into the data bucket and messages on the queue; predictions come back.

Everything runs on 127.0.0.1 and stops at the end: S3, SQS and DynamoDB are a moto server holding the
template's buckets, queues and idempotency table; Lambda's event sources are emulated with the template's
settings (``local/eventsources.py``); the function runs in the real Lambda runtime (RIE + awslambdaric).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from .demo import BUCKET, MODEL, STORE, VERSION, ensure_exported, step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelfn_infra.demo_events", description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=STORE, help="model store to export into (default: models)")
    store = parser.parse_args(argv).store
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    started = time.perf_counter()
    model_dir = ensure_exported(store)
    from .local.cloud import LocalCloud
    from .local.commands import LocalApp

    quiet = open(os.devnull, "w")
    with LocalApp("template.yaml", parameter_overrides={"ModelBucket": BUCKET}, log_stream=quiet) as app, LocalCloud(app, seed=None) as cloud:
        step(f"moto on {cloud.endpoint}: data bucket {cloud.data_bucket}, queue DigitsQueue, table IdempotencyTable")
        push(cloud, store)
        passed = run(cloud, model_dir)
    quiet.close()
    step(f"demo-events {'finished' if passed else 'FAILED'} in {time.perf_counter() - started:.0f} s")
    return 0 if passed else 1


def push(cloud, store: Path) -> None:
    from modelfn_export import push_model

    cloud.sources.s3.create_bucket(Bucket=BUCKET)
    push_model(MODEL, VERSION, bucket=BUCKET, prefix="models/", store=str(store))


def run(cloud, model_dir: Path) -> bool:
    import onnxruntime as ort

    from .digits import held_out

    s3, sqs, bucket = cloud.sources.s3, cloud.sources.sqs, cloud.data_bucket
    x_test, y_test = held_out()
    reference = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"pixels": x_test})[0]
    buffer = io.BytesIO()
    np.save(buffer, x_test)
    s3.put_object(Bucket=bucket, Key=f"inbox/{MODEL}/demo/held-out.npy", Body=buffer.getvalue())
    lines = "".join(json.dumps(row) + "\n" for row in x_test[:5].tolist())
    s3.put_object(Bucket=bucket, Key=f"inbox/{MODEL}/demo/first-five.jsonl", Body=lines.encode())
    s3.put_object(Bucket=bucket, Key=f"inbox/{MODEL}/demo/notes.csv", Body=b"not,a,tensor\n")
    reply = sqs.create_queue(QueueName="local-reply-demo")["QueueUrl"]  # `sam local` resolves the stack name to "local"
    queue = sqs.get_queue_url(QueueName="DigitsQueue")["QueueUrl"]
    message = {"id": "msg-1", "tenant": "demo", "reply_to": reply,
               "inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": x_test[0].tolist()}]}
    message_id = sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(message))["MessageId"]
    step(f"put inbox/{MODEL}/demo/held-out.npy ({len(x_test)} digits), first-five.jsonl, notes.csv; sent one SQS message")

    report = cloud.sources.drain(timeout_s=120)
    step(f"event sources idle after {report.seconds:.1f} s: {report.invocations} invocations")
    results = cloud.results()
    held = json.loads(results[f"outbox/{MODEL}/demo/held-out.npy.json"])["outputs"][0]
    probs = np.array(held["data"], np.float32).reshape(held["shape"])
    five = np.array(json.loads(results[f"outbox/{MODEL}/demo/first-five.jsonl.json"])["predictions"], np.float32)
    error = json.loads(results[f"errors/{MODEL}/demo/notes.csv.json"])
    answer = json.loads(results[f"outbox/{MODEL}/messages/{message_id}.json"])
    replies = sqs.receive_message(QueueUrl=reply, MaxNumberOfMessages=10).get("Messages", [])
    checks = {
        "held-out.npy: one result, all rows": probs.shape == (len(x_test), 10),
        "held-out.npy == onnxruntime": bool(np.allclose(probs, reference, atol=1e-6)),
        "first-five.jsonl == onnxruntime": bool(np.allclose(five, reference[:5], atol=1e-6)),
        "notes.csv refused with a reason": error["status"] == 415,
        "SQS message answered and replied": answer["id"] == "msg-1" and len(replies) == 1,
    }
    accuracy = float((probs.argmax(1) == y_test).mean())
    rows = [
        (f"outbox/{MODEL}/demo/held-out.npy.json", f"{probs.shape[0]} predictions, accuracy {accuracy:.3f}"),
        (f"outbox/{MODEL}/demo/first-five.jsonl.json", f"predicted {' '.join(map(str, five.argmax(1)))} (labels {' '.join(map(str, y_test[:5]))})"),
        (f"errors/{MODEL}/demo/notes.csv.json", error["error"][:90] + "…"),
        (f"outbox/{MODEL}/messages/{message_id[:8]}….json", f"digit {int(np.argmax(answer['outputs'][0]['data']))}; reply queue got "
         f"{json.loads(replies[0]['Body'])['status'] if replies else 'nothing'}"),
        *((check, "ok" if ok else "FAILED") for check, ok in checks.items()),
    ]
    print()
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    print()
    return accuracy > 0.9 and all(checks.values())


if __name__ == "__main__":
    sys.exit(main())
