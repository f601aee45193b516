"""Event-triggered inference under moto: S3 objects, SQS batches, S3 pointers; one result per input."""

from __future__ import annotations

import io
import json
import time

import boto3
import botocore.exceptions
import numpy as np
import pytest
from moto import mock_aws

from modelfn_runtime import aws, handler
from modelfn_runtime.jobs import RetryableJobError
from modelfn_runtime.service import InferenceService
from modelfn_runtime.session import ModelSession

from .conftest import RecordingMeter, oip_inputs
from .toy_model import WEIGHTS, reference, write_linear_model

BUCKET, TABLE = "modelfn-data", "modelfn-idempotency"


class Context:
    function_name = "LinearFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:LinearFunction"

    def __init__(self, request_id: str = "req-1", remaining_ms: int = 10_000) -> None:
        self.aws_request_id = request_id
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@pytest.fixture(scope="module")
def linear_model(tmp_path_factory) -> ModelSession:
    return ModelSession.load(write_linear_model(tmp_path_factory.mktemp("store") / "linear" / "1"), preference="cpu")


@pytest.fixture
def cloud(monkeypatch):
    monkeypatch.setenv("MODELFN_DATA_BUCKET", BUCKET)
    monkeypatch.setenv("MODELFN_IDEMPOTENCY_TABLE", TABLE)
    monkeypatch.setenv("MODELFN_REPLY_QUEUE_PREFIX", "stack-reply-")
    monkeypatch.setenv("MODELFN_CHUNK_ROWS", "16")
    with mock_aws():
        aws.reset()
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        boto3.client("dynamodb").create_table(
            TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        )
        yield s3
    aws.reset()


def use(monkeypatch, model) -> RecordingMeter:
    meter = RecordingMeter()
    monkeypatch.setattr(handler, "SERVICE", InferenceService(model, meter=meter))
    return meter


@pytest.fixture
def linear(monkeypatch, cloud, linear_model) -> RecordingMeter:
    return use(monkeypatch, linear_model)


@pytest.fixture
def toy(monkeypatch, cloud, toy_model) -> RecordingMeter:
    return use(monkeypatch, toy_model)


def put(s3, key: str, body: bytes) -> dict:
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')
    return {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, "size": len(body), "eTag": etag}}}


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def read(s3, key: str) -> tuple[dict, dict]:
    obj = s3.get_object(Bucket=BUCKET, Key=key)
    return json.loads(obj["Body"].read()), obj["Metadata"]


def versions(s3, prefix: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for version in s3.list_object_versions(Bucket=BUCKET, Prefix=prefix).get("Versions", []):
        counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts


def sqs_record(message_id: str, body, attributes: dict | None = None) -> dict:
    return {"eventSource": "aws:sqs", "messageId": message_id, "receiptHandle": f"rh-{message_id}",
            "body": body if isinstance(body, str) else json.dumps(body), "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": attributes or {}, "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q"}


def x_rows(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, 4)).astype(np.float32)


def test_npy_object_is_chunked_and_lands_in_the_outbox(cloud, linear):
    x = x_rows(100)
    assert handler.lambda_handler({"Records": [put(cloud, "inbox/linear/acme/batch.npy", npy(x))]}, Context()) is None
    result, metadata = read(cloud, "outbox/linear/acme/batch.npy.json")
    (y,) = result["outputs"]
    assert y["name"] == "y" and y["shape"] == [100, 3]
    np.testing.assert_allclose(np.array(y["data"], np.float32).reshape(100, 3), x @ WEIGHTS, rtol=1e-5, atol=1e-5)
    assert metadata["model"] == "linear" and metadata["version"] == "1" and metadata["request-id"] == "req-1"
    assert metadata["items"] == "100" and metadata["tenant"] == "acme" and float(metadata["duration-ms"]) >= 0
    assert [r.batch_size for r in linear.records] == [16] * 6 + [4]  # bounded chunks, each metered once
    assert {r.tenant for r in linear.records} == {"acme"} and linear.flushes == 1


def test_npz_jsonl_and_json_objects(cloud, toy, monkeypatch, linear_model):
    features, ids = x_rows(20), np.arange(60, dtype=np.int64).reshape(20, 3)
    records = [put(cloud, "inbox/toy/pair.npz", npz(features=features, ids=ids)),
               put(cloud, "inbox/toy/request.json", json.dumps({"id": "r7", "inputs": oip_inputs()}).encode())]
    handler.lambda_handler({"Records": records}, Context())
    result, _ = read(cloud, "outbox/toy/pair.npz.json")
    expected = reference(features, ids)
    outputs = {o["name"]: np.array(o["data"], np.float32).reshape(o["shape"]) for o in result["outputs"]}
    np.testing.assert_allclose(outputs["probs"], expected["probs"], rtol=1e-5)
    np.testing.assert_array_equal(outputs["total"], expected["total"])
    single, _ = read(cloud, "outbox/toy/request.json.json")
    assert single["id"] == "r7" and single["outputs"][1]["data"] == [6.0, 15.0]

    use(monkeypatch, linear_model)
    x = x_rows(40, seed=3)
    lines = "\n".join(json.dumps(row) for row in x.tolist()) + "\n\n"
    handler.lambda_handler({"Records": [put(cloud, "inbox/linear/rows.jsonl", lines.encode())]}, Context())
    result, _ = read(cloud, "outbox/linear/rows.jsonl.json")
    np.testing.assert_allclose(np.array(result["predictions"], np.float32), x @ WEIGHTS, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "key, body, status, reason",
    [
        ("inbox/linear/table.csv", b"1,2,3,4", 415, "suffix '.csv'"),
        ("inbox/linear/garbage.npy", b"not numpy", 400, "not a valid .npy file"),
        ("inbox/linear/wide.npy", npy(np.zeros((3, 5), np.float32)), 400, "shape [3, 5] but the model expects [-1, 4]"),
        ("inbox/linear/doubles.npy", npy(np.zeros((3, 4))), 400, "datatype FP64 but the model expects FP32"),
        ("inbox/linear/scalar.npy", npy(np.float32(1)), 400, "needs a batch dimension"),
        ("inbox/linear/empty.npy", npy(np.zeros((0, 4), np.float32)), 400, "holds 0 rows"),
        ("inbox/linear/names.npz", npz(a=np.zeros((2, 4), np.float32), b=np.zeros((2, 4), np.float32)), 400, "named after the model's inputs"),
        ("inbox/linear/bad.jsonl", b"[1, 2, 3, 4]\n[1, 2,\n", 400, "line 2"),
        ("inbox/linear/nothing.jsonl", b"\n\n", 400, "holds no instances"),
        ("inbox/linear/request.json", b"{not json", 400, "not valid JSON"),
        ("inbox/linear", b"", 400, "not under inbox/<model>/"),
    ],
)
def test_bad_inputs_get_an_error_object_and_are_not_retried(cloud, linear, key, body, status, reason):
    handler.lambda_handler({"Records": [put(cloud, key, body)]}, Context())  # no exception: nothing to retry
    error_key = f"errors/linear/{key.removeprefix('inbox/linear/')}.json" if key != "inbox/linear" else "errors/linear/misrouted/inbox/linear.json"
    document, metadata = read(cloud, error_key)
    assert document["status"] == status and reason in document["error"], document
    assert document["input"] == f"s3://{BUCKET}/{key}" and metadata["status"] == str(status)
    assert len(linear.records) == 1 and linear.records[0].status == status
    assert not versions(cloud, "outbox/")


def test_limits_and_deleted_objects(cloud, linear, monkeypatch):
    monkeypatch.setenv("MODELFN_MAX_OBJECT_BYTES", "1000")
    event = {"Records": [put(cloud, "inbox/linear/big.npy", npy(x_rows(200)))]}
    cloud.delete_object(Bucket=BUCKET, Key="inbox/linear/gone.npy")
    gone = put(cloud, "inbox/linear/gone.npy", npy(x_rows(2)))
    cloud.delete_object(Bucket=BUCKET, Key="inbox/linear/gone.npy")
    handler.lambda_handler({"Records": [*event["Records"], gone]}, Context())
    big, _ = read(cloud, "errors/linear/big.npy.json")
    assert big["status"] == 413 and "split it into smaller objects" in big["error"]
    missing, _ = read(cloud, "errors/linear/gone.npy.json")
    assert missing["status"] == 404 and "does not exist" in missing["error"]


def test_retried_s3_event_produces_no_second_output(cloud, linear):
    event = {"Records": [put(cloud, "inbox/linear/once.npy", npy(x_rows(5)))]}
    handler.lambda_handler(event, Context("req-1"))
    handler.lambda_handler(event, Context("req-2"))
    assert versions(cloud, "outbox/") == {"outbox/linear/once.npy.json": 1}
    assert len(linear.records) == 1  # the redelivery is not a new request: not metered, not billed


def fail_first_reads(s3_client, keys: set[str], code: str = "SlowDown"):
    """Make the first read of each key fail with a transient S3 error that outlasted botocore's retries
    (an exception raised from a botocore event hook is not retried by the client)."""
    failed: set[str] = set()

    def hook(params, **_):
        key = params.get("Key")
        if key in keys and key not in failed:
            failed.add(key)
            raise botocore.exceptions.ClientError({"Error": {"Code": code, "Message": "injected"}}, "HeadObject")

    s3_client.meta.events.register("before-parameter-build.s3.HeadObject", hook)
    return failed


def test_transient_s3_error_fails_the_event_and_the_retry_finishes_it(cloud, linear):
    records = [put(cloud, f"inbox/linear/part-{i}.npy", npy(x_rows(3, seed=i))) for i in range(3)]
    failed = fail_first_reads(aws.client("s3"), {"inbox/linear/part-1.npy"})
    with pytest.raises(RetryableJobError, match="1 of 3 objects must be retried"):
        handler.lambda_handler({"Records": records}, Context("req-1"))
    assert failed == {"inbox/linear/part-1.npy"}
    handler.lambda_handler({"Records": records}, Context("req-1"))  # Lambda's async retry: same event, same request id
    assert versions(cloud, "outbox/") == {f"outbox/linear/part-{i}.npy.json": 1 for i in range(3)}


def test_sqs_batch_reports_only_transient_failures(cloud, linear):
    cloud.put_object(Bucket=BUCKET, Key="requests/linear/big.npy", Body=npy(x_rows(30)))
    cloud.put_object(Bucket=BUCKET, Key="requests/linear/flaky.npy", Body=npy(x_rows(2)))
    sqs = boto3.client("sqs")
    reply = sqs.create_queue(QueueName="stack-reply-1")["QueueUrl"]
    inline = {"id": "m1", "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": list(range(8))}],
              "parameters": {"binary_data_output": True}, "reply_to": reply, "tenant": "acme"}
    records = [
        sqs_record("m1", inline),
        sqs_record("m2", {"input_uri": f"s3://{BUCKET}/requests/linear/big.npy"}, {"tenant": {"stringValue": "beta", "dataType": "String"}}),
        sqs_record("m3", "{not json"),
        sqs_record("m4", {"model_name": "other", "inputs": []}),
        sqs_record("m5", {"input_uri": f"s3://{BUCKET}/inbox/linear/x.npy"}),
        sqs_record("m6", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2]}]}),
        sqs_record("m7", {"input_uri": f"s3://{BUCKET}/requests/linear/flaky.npy"}),
        sqs_record("m8", {"inputs": [], "reply_to": "https://sqs.us-east-1.amazonaws.com/123456789012/someone-elses"}),
    ]
    fail_first_reads(aws.client("s3"), {"requests/linear/flaky.npy"})
    response = handler.lambda_handler({"Records": records}, Context())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m7"}]}
    result, metadata = read(cloud, "outbox/linear/messages/m1.json")
    assert result["id"] == "m1" and result["outputs"][0]["shape"] == [2, 3] and metadata["tenant"] == "acme"
    assert read(cloud, "outbox/linear/messages/m2.json")[0]["outputs"][0]["shape"] == [30, 3]
    errors = {key.rsplit("/", 1)[-1]: read(cloud, key)[0]["error"] for key in versions(cloud, "errors/")}
    assert "not JSON" in errors["m3.json"] and "names 'other'" in errors["m4.json"]
    assert "requests/linear/" in errors["m5.json"] and "6 elements" not in errors["m6.json"] and "has 2 elements" in errors["m6.json"]
    assert "reply queues must be named stack-reply-*" in errors["m8.json"]
    (message,) = sqs.receive_message(QueueUrl=reply, MaxNumberOfMessages=10)["Messages"]
    summary = json.loads(message["Body"])
    assert summary["status"] == 200 and summary["output"].endswith("outbox/linear/messages/m1.json") and summary["result"]["id"] == "m1"
    tenants = {r.tenant for r in linear.records}
    assert {"acme", "beta"} <= tenants

    again = handler.lambda_handler({"Records": records}, Context("req-2"))  # a redelivered batch
    assert again == {"batchItemFailures": []}
    assert all(count == 1 for count in versions(cloud, "").values())


LOCK_MS = 4000
"""The dead invocation's remaining time: wide enough that the immediate retry still finds the lock on a busy machine."""


def test_timeout_mid_batch_recovers_without_duplicates(cloud, linear, monkeypatch):
    records = [sqs_record(f"t{i}", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [i, 0, 0, 0]}]})
               for i in range(4)]
    service = handler.SERVICE
    real_handle, calls = service.handle, []

    class SandboxTimeout(BaseException):
        """What Lambda does at the deadline: the runtime stops mid-record, nothing more runs."""

    def handle_then_time_out(envelope):
        calls.append(envelope)
        if len(calls) == 3:
            raise SandboxTimeout()
        return real_handle(envelope)

    monkeypatch.setattr(service, "handle", handle_then_time_out)
    with pytest.raises(SandboxTimeout):
        handler.lambda_handler({"Records": records}, Context("req-1", remaining_ms=LOCK_MS))
    monkeypatch.setattr(service, "handle", real_handle)
    retry = handler.lambda_handler({"Records": records}, Context("req-2"))
    assert retry == {"batchItemFailures": [{"itemIdentifier": "t2"}]}  # still locked by the dead invocation
    time.sleep(LOCK_MS / 1000 + 0.2)  # the lock expires with the dead invocation's remaining time
    assert handler.lambda_handler({"Records": records}, Context("req-3")) == {"batchItemFailures": []}
    assert versions(cloud, "outbox/") == {f"outbox/linear/messages/t{i}.json": 1 for i in range(4)}


def test_direct_invoke_with_an_s3_pointer(cloud, linear):
    x = x_rows(50, seed=9)
    cloud.put_object(Bucket=BUCKET, Key="requests/linear/huge.npy", Body=npy(x))
    summary = handler.lambda_handler({"input_uri": f"s3://{BUCKET}/requests/linear/huge.npy", "tenant": "acme"}, Context("async-1"))
    assert summary["status"] == 200 and summary["output"] == f"s3://{BUCKET}/outbox/linear/invocations/async-1.json"
    result, _ = read(cloud, "outbox/linear/invocations/async-1.json")
    np.testing.assert_allclose(np.array(result["outputs"][0]["data"], np.float32).reshape(50, 3), x @ WEIGHTS, rtol=1e-5, atol=1e-5)
    assert handler.lambda_handler({"input_uri": f"s3://{BUCKET}/requests/linear/huge.npy"}, Context("async-1")) == summary
    refused = handler.lambda_handler({"input_uri": "s3://elsewhere/x.npy"}, Context("async-2"))
    assert refused["status"] == 400 and "must name an object under" in refused["error"]


def test_s3_event_without_data_bucket_is_retried_with_a_clear_reason(cloud, linear, monkeypatch):
    monkeypatch.delenv("MODELFN_DATA_BUCKET")
    monkeypatch.delenv("MODELFN_IDEMPOTENCY_TABLE")
    with pytest.raises(RetryableJobError, match="must be retried"):
        handler.lambda_handler({"Records": [put(cloud, "inbox/linear/a.npy", npy(x_rows(1)))]}, Context())


def test_objects_larger_than_a_chunk_stream_through_tmp_and_are_memory_mapped(cloud, linear, monkeypatch):
    monkeypatch.setenv("MODELFN_CHUNK_BYTES", "256")  # 16 rows of 4 float32 per chunk, and the object is bigger
    x = x_rows(64, seed=5)
    handler.lambda_handler({"Records": [put(cloud, "inbox/linear/large.npy", npy(x))]}, Context())
    result, _ = read(cloud, "outbox/linear/large.npy.json")
    np.testing.assert_allclose(np.array(result["outputs"][0]["data"], np.float32).reshape(64, 3), x @ WEIGHTS, rtol=1e-5, atol=1e-5)
    assert [r.batch_size for r in linear.records] == [16, 16, 16, 16]


def test_results_are_spooled_so_memory_holds_one_chunk_not_the_result():
    """200 chunks of 1,000 rows: the merged result (600,000 numbers, ~4 MB of JSON) never sits in memory."""
    import tracemalloc

    from modelfn_runtime.http import HttpResponse
    from modelfn_runtime.jobs.results import Collector

    chunk = np.random.default_rng(0).random((1000, 3), dtype=np.float32)
    answer = HttpResponse.json(200, {"model_name": "linear", "model_version": "1",
                                     "outputs": [{"name": "y", "datatype": "FP32", "shape": [1000, 3], "data": chunk.ravel().tolist()}]})
    tracemalloc.start()
    try:
        with Collector() as collector:
            for _ in range(200):
                assert collector.add(answer)
            outcome = collector.finish()
            _, peak = tracemalloc.get_traced_memory()
            size = outcome.body_size()
            with open(outcome.path) as handle:
                head = handle.read(200)
    finally:
        tracemalloc.stop()
    assert outcome.items == 200_000 and size > 3_000_000
    assert head.startswith('{"model_name":"linear","model_version":"1","outputs":[{"name":"y","datatype":"FP32","shape":[200000,3],"data":[')
    assert peak < 2_000_000, f"peak {peak} bytes: the result was held in memory"


def test_events_wait_while_the_model_cannot_load(cloud, monkeypatch):
    """A model that failed to load (S3 down at init, say) is not the input's fault: every record is retried."""
    from modelfn_runtime.service import Unavailable

    meter = RecordingMeter()
    broken = InferenceService(None, meter=meter, unavailable=Unavailable("linear", "1", "s3://models/... is unreachable"))
    monkeypatch.setattr(handler, "SERVICE", broken)
    records = [sqs_record("w1", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})]
    assert handler.lambda_handler({"Records": records}, Context()) == {"batchItemFailures": [{"itemIdentifier": "w1"}]}
    with pytest.raises(RetryableJobError, match="must be retried"):
        handler.lambda_handler({"Records": [put(cloud, "inbox/linear/a.npy", npy(x_rows(2)))]}, Context())
    assert not versions(cloud, "errors/") and not versions(cloud, "outbox/")
    answer = handler.lambda_handler({"inputs": oip_inputs()}, Context())  # a direct invoke keeps the model's name
    assert answer["status"] == 503 and "model 'linear' version '1' is not ready" in answer["error"]
