"""The delivery contract, proved by counting: 1,050 inputs through S3 and SQS with about 10 % faults.

The event sources are Lambda's, emulated with the template's settings over moto (real S3 -> SQS notifications,
real redrive to the dead-letter queue); the function is the real handler, in-process so faults can be injected:
poison inputs, transient S3 errors, a function timing out in the middle of a batch, and batches and S3 events
delivered twice. Every good input must have exactly one output, every poison input exactly one error object
with its reason, every input that never stops failing must be in the dead-letter queue, and nothing else.
"""

from __future__ import annotations

import io
import json
import time
from urllib.parse import unquote_plus

import boto3
import botocore.exceptions
import numpy as np
import onnxruntime as ort
import pytest
from moto import mock_aws

from modelfn_infra.local.commands import LocalApp
from modelfn_infra.local.eventsources import EventSources, InvokeResult
from modelfn_runtime import aws, handler
from modelfn_runtime.service import InferenceService
from modelfn_runtime.session import ModelSession

from ..conftest import REPO
from ..runtime.conftest import RecordingMeter

pytestmark = pytest.mark.slow

S3_GOOD, S3_POISON, S3_TRANSIENT, S3_DEAD = 470, 20, 25, 3
SQS_GOOD, SQS_POISON, SQS_TRANSIENT, SQS_DEAD = 480, 25, 20, 7
TIMED_OUT_SQS_INVOCATIONS, DUPLICATE_EVERY = {4, 15, 27}, 9


class SandboxTimeout(BaseException):
    """Lambda stopping the runtime at its deadline: nothing more runs in that invocation."""


class Context:
    function_name = "DigitsFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:DigitsFunction"

    def __init__(self, number: int, remaining_ms: int) -> None:
        self.aws_request_id = f"invoke-{number}"
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


class Faults:
    """Transient S3 errors (first read, or every read), timeouts mid-batch and duplicate deliveries."""

    def __init__(self, service: InferenceService) -> None:
        self.transient: set[str] = set()
        self.permanent: set[str] = set()
        self.failed_once: set[str] = set()
        self.timeouts = self.duplicates = self.invocations = self.sqs_invocations = 0
        self._deadline_at: int | None = None
        self._real_handle = service.handle
        service.handle = self.handle

    def s3_hook(self, params, **_):
        key = params.get("Key")
        if key in self.permanent or (key in self.transient and key not in self.failed_once):
            self.failed_once.add(key)
            raise botocore.exceptions.ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}, "HeadObject")

    def handle(self, envelope):
        if self._deadline_at is not None:
            self._deadline_at -= 1
            if self._deadline_at == 0:
                self._deadline_at = None
                self.timeouts += 1
                raise SandboxTimeout()
        return self._real_handle(envelope)

    def invoke(self, function: str, event) -> InvokeResult:
        self.invocations += 1
        number = self.invocations
        if event["Records"][0].get("eventSource") == "aws:sqs":
            self.sqs_invocations += 1
            if self.sqs_invocations in TIMED_OUT_SQS_INVOCATIONS and len(event["Records"]) > 3:
                self._deadline_at = 3  # time out while answering the batch's third request
        try:
            payload = handler.lambda_handler(event, Context(number, remaining_ms=400))
        except SandboxTimeout:
            return InvokeResult(None, "Sandbox.Timedout: Task timed out after 10.00 seconds")
        except Exception as error:
            return InvokeResult(None, f"{type(error).__name__}: {error}")
        finally:
            self._deadline_at = None
        if number % DUPLICATE_EVERY == 0:  # at-least-once: the same event delivered again
            self.duplicates += 1
            handler.lambda_handler(event, Context(number, remaining_ms=10_000))
        return InvokeResult(payload)


@pytest.fixture
def deployment(digits_store, monkeypatch, tmp_path):
    model_dir = digits_store / "digits" / "1"
    with mock_aws():
        aws.reset()
        env = {"DigitsFunction": {"MODEL_URI": str(model_dir)}}
        with LocalApp(REPO / "template.yaml", env_vars=env, parameter_overrides={"ModelBucket": "unused"}) as app:
            resolved = app.function_environment("DigitsFunction")
            for name in ("MODELFN_DATA_BUCKET", "MODELFN_IDEMPOTENCY_TABLE", "MODELFN_REPLY_QUEUE_PREFIX", "MODELFN_MAX_RECEIVE_COUNT"):
                monkeypatch.setenv(name, resolved[name])
            meter = RecordingMeter()
            service = InferenceService(ModelSession.load(model_dir, preference="cpu"), meter=meter)
            monkeypatch.setattr(handler, "SERVICE", service)
            faults = Faults(service)
            sources = EventSources.from_template(app, invoke=faults.invoke, visibility_s=1)
            aws.client("s3").meta.events.register("before-parameter-build.s3.HeadObject", faults.s3_hook)
            yield sources, faults, meter, resolved["MODELFN_DATA_BUCKET"], model_dir
    aws.reset()


def test_every_input_has_exactly_one_outcome(deployment):
    sources, faults, meter, bucket, model_dir = deployment
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    queue_url = sqs.get_queue_url(QueueName="DigitsQueue")["QueueUrl"]
    dlq_url = sqs.get_queue_url(QueueName="DigitsDeadLetterQueue")["QueueUrl"]
    rng = np.random.default_rng(0)
    expected: dict[str, np.ndarray] = {}   # outbox key -> the pixels whose predictions it must hold
    poison: set[str] = set()               # errors/ keys
    dead_objects: set[str] = set()         # S3 keys whose events must reach the OnFailure destination
    dead_messages: set[str] = set()        # message ids that must reach the dead-letter queue

    for i in range(S3_GOOD + S3_TRANSIENT + S3_DEAD):
        key = f"inbox/digits/tenant-{i % 3}/batch-{i}.npy"
        pixels = rng.random((1 + i % 3, 64), dtype=np.float32)
        if i < S3_GOOD:
            expected[f"outbox/digits/tenant-{i % 3}/batch-{i}.npy.json"] = pixels
        elif i < S3_GOOD + S3_TRANSIENT:
            faults.transient.add(key)
            expected[f"outbox/digits/tenant-{i % 3}/batch-{i}.npy.json"] = pixels
        else:
            faults.permanent.add(key)
            dead_objects.add(key)
        s3.put_object(Bucket=bucket, Key=key, Body=npy(pixels))
    for i in range(S3_POISON):
        name, body = [(f"bad-{i}.csv", b"1,2,3"), (f"bad-{i}.npy", b"garbage"), (f"bad-{i}.npy", npy(np.zeros((2, 63), np.float32)))][i % 3]
        s3.put_object(Bucket=bucket, Key=f"inbox/digits/{name}", Body=body)
        poison.add(f"errors/digits/{name}.json")

    def send(body) -> str:
        return sqs.send_message(QueueUrl=queue_url, MessageBody=body if isinstance(body, str) else json.dumps(body))["MessageId"]

    for _ in range(SQS_GOOD):
        pixels = rng.random((1, 64), dtype=np.float32)
        message = {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": pixels.ravel().tolist()}]}
        expected[f"outbox/digits/messages/{send(message)}.json"] = pixels
    for i in range(SQS_TRANSIENT + SQS_DEAD):
        key = f"requests/digits/pointer-{i}.npy"
        pixels = rng.random((4, 64), dtype=np.float32)
        s3.put_object(Bucket=bucket, Key=key, Body=npy(pixels))
        message_id = send({"input_uri": f"s3://{bucket}/{key}", "tenant": "acme"})
        if i < SQS_TRANSIENT:
            faults.transient.add(key)
            expected[f"outbox/digits/messages/{message_id}.json"] = pixels
        else:
            faults.permanent.add(key)
            dead_messages.add(message_id)
    for i in range(SQS_POISON):
        body = ["{not json", {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.5]}]},
                {"model_name": "other", "inputs": []}, {"input_uri": "s3://elsewhere/x.npy"}, [1, 2]][i % 5]
        poison.add(f"errors/digits/messages/{send(body)}.json")
    assert len(expected) + len(poison) + len(dead_objects) + len(dead_messages) == 1050

    report = sources.drain(timeout_s=240, settle_s=1.5)
    assert report.idle, f"still delivering after {report.seconds:.0f} s: {report}"

    versions: dict[str, int] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            versions[version["Key"]] = versions.get(version["Key"], 0) + 1
    outputs = {key for key in versions if key.startswith("outbox/")}
    errors = {key for key in versions if key.startswith("errors/")}
    assert outputs == set(expected), f"missing {sorted(set(expected) - outputs)[:5]}, unexpected {sorted(outputs - set(expected))[:5]}"
    dead_reasons = {f"errors/digits/messages/{message_id}.json" for message_id in dead_messages}
    assert errors == poison | dead_reasons
    assert all(versions[key] == 1 for key in outputs | errors), "an output was written twice"

    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    for key, pixels in expected.items():
        (probs,) = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["outputs"]
        np.testing.assert_allclose(np.array(probs["data"], np.float32).reshape(probs["shape"]),
                                   session.run(None, {"pixels": pixels})[0], rtol=1e-5, atol=1e-6)
    for key in poison:
        document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert 400 <= document["status"] < 500 and len(document["error"]) > 20, document
    for key in dead_reasons:  # the function records why, on the receive that sends the message to the DLQ
        document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert document["dead_lettered"] is True and "ServiceUnavailable" in document["error"], document

    dead = []
    while batch := sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", []):
        dead.extend(batch)
        sqs.delete_message_batch(QueueUrl=dlq_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
    redriven = {m["MessageId"] for m in dead if "requestContext" not in json.loads(m["Body"])}
    records = [json.loads(m["Body"]) for m in dead if "requestContext" in json.loads(m["Body"])]
    assert redriven == dead_messages
    assert {unquote_plus(r["requestPayload"]["Records"][0]["s3"]["object"]["key"]) for r in records} == dead_objects
    assert all(r["requestContext"]["condition"] == "RetriesExhausted" and "must be retried" in r["responsePayload"]["errorMessage"]
               for r in records)

    served = [r for r in meter.records if r.status == 200]
    assert len(served) == len(expected)  # each good input metered once: redeliveries and timed-out work are not
    assert len([r for r in meter.records if 400 <= r.status < 500]) == len(poison)
    assert faults.timeouts == 3 and faults.duplicates >= 5 and faults.failed_once >= faults.transient
    print(f"\ndelivered 1050 inputs in {report.seconds:.1f} s with {report.invocations} invocations, "
          f"{faults.timeouts} timeouts, {faults.duplicates} duplicate deliveries, {report.function_errors} function errors")
