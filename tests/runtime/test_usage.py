"""Metering off the request path: one log line per request (no network call), aggregated into the usage table by
the aggregator exactly once per log event, whatever is delivered twice, and under the tenant the gateway checked."""

from __future__ import annotations

import base64
import io
import json
import statistics
import threading
import time
from datetime import datetime, timezone

import boto3
import botocore.client
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from modelfn_infra.catalog import usage_table_resource
from modelfn_infra.local.sandbox import free_port
from modelfn_runtime import handler
from modelfn_runtime.metering import EmfMeter, UsageRecord
from modelfn_runtime.payloads import PayloadLog
from modelfn_runtime.service import InferenceService
from modelfn_runtime.usage import (
    MAX_TRANSACTION_ITEMS,
    UsageAggregator,
    UsageLine,
    aggregator_from_environment,
    chunks,
    encode_delivery,
)

from ..conftest import REPO
from .conftest import FEATURES, IDS, oip_inputs, post, rest_event


def _function_module(name: str):
    """A top-level module of the function package (``functions/inference/<name>.py``), as Lambda imports it: it is
    the deployed handler file, not part of the installed ``modelfn_runtime`` package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "functions" / "inference" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


usage_aggregator = _function_module("usage_aggregator")

TABLE = "modelfn-usage"
GROUP = "/aws/lambda/ToyFunction"


def create_table(client) -> None:
    """The table exactly as the template declares it, new and empty (moto's servers in one process share their
    state: a table an earlier test module left behind is dropped first)."""
    properties = usage_table_resource()["Properties"]
    if TABLE in client.list_tables()["TableNames"]:
        client.delete_table(TableName=TABLE)
    client.create_table(
        TableName=TABLE,
        **{key: properties[key] for key in ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")},
    )


def record(tenant="k1", model="toy", status=200, batch=4, duration=2.2, trigger="rest", request_bytes=100) -> UsageRecord:
    return UsageRecord("r", model, "1", trigger, "infer", status, batch, request_bytes, 50, duration, tenant=tenant)


def at(text: str):
    moment = datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()
    return lambda: moment


def lines_of(records, *, memory_mb=1024, clock=None) -> list[str]:
    out = io.StringIO()
    meter = EmfMeter(stream=lambda: out, memory_mb=memory_mb, clock=clock or at("2026-11-28T10:00:00"))
    for usage in records:
        meter.record(usage)
    return out.getvalue().splitlines()


def delivery(lines, first_id=0, group=GROUP):
    return encode_delivery(group, "2026/11/28/[$LATEST]abc", [(f"{first_id + i:056d}", 0, line) for i, line in enumerate(lines)])


def item(client, tenant: str, key: str) -> dict:
    raw = client.get_item(TableName=TABLE, Key={"tenant": {"S": tenant}, "usage_key": {"S": key}})["Item"]
    return {name: next(iter(value.values())) for name, value in raw.items()}


class CountingClient:
    """A DynamoDB client that counts transactions (and can be made to fail the first ``fail`` of them)."""

    def __init__(self, client, fail: Exception | None = None, times: int = 0) -> None:
        self.client, self.fail, self.times, self.transactions = client, fail, times, []

    def transact_write_items(self, **kwargs):
        self.transactions.append(kwargs["TransactItems"])
        if self.fail is not None and self.times > 0:
            self.times -= 1
            raise self.fail
        return self.client.transact_write_items(**kwargs)


@pytest.fixture
def dynamodb():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client)
        yield client


def test_each_request_is_one_line_and_the_aggregate_has_every_counter(dynamodb):
    lines = lines_of([
        record(batch=4, duration=2.2), record(batch=6, duration=0.4, trigger="sqs"), record(status=400, batch=0, duration=1.0),
        record(status=503, batch=0, duration=3.0), record(tenant=None), record(model=""), record(trigger="probe"),
    ])
    assert len(lines) == 7  # one line per request; the last two (no model, a probe) carry no usage record
    assert [("modelfn_usage" in json.loads(line)) for line in lines] == [True] * 5 + [False] * 2
    client = CountingClient(dynamodb)
    summary = UsageAggregator(TABLE, client=client).handle(delivery(lines))
    assert (summary.counted, summary.rejected, len(client.transactions)) == (5, 2, 1)
    row = item(dynamodb, "k1", "2026-11-28#toy#1")
    assert row["month"] == "2026-11" and row["day"] == "2026-11-28" and row["model"] == "toy" and row["version"] == "1"
    assert int(row["requests"]) == 4 and int(row["items"]) == 10
    assert int(row["billed_ms"]) == 3 + 1 + 1 + 3  # whole milliseconds, rounded up, at least 1
    assert int(row["mb_ms"]) == 8 * 1024
    assert (int(row["ok"]), int(row["client_errors"]), int(row["server_errors"])) == (2, 1, 1)
    assert int(row["requests_rest"]) == 3 and int(row["requests_sqs"]) == 1
    assert int(row["request_bytes"]) == 400 and int(row["memory_mb"]) == 1024 and row["architecture"] in ("x86_64", "arm64")
    assert int(item(dynamodb, "-", "2026-11-28#toy#1")["requests"]) == 1  # untenanted work is kept apart


def test_the_line_is_also_the_emf_metrics_document():
    first, error = (json.loads(line) for line in lines_of([record(tenant="acme", batch=3), record(status=404, batch=0)]))
    directives = first["_aws"]["CloudWatchMetrics"]
    assert directives[0]["Namespace"] == "modelfn" and directives[0]["Dimensions"] == [["model", "version", "operation", "service"]]
    assert {m["Name"] for m in directives[0]["Metrics"]} == {"Latency", "Requests", "BatchSize"}
    assert directives[1]["Dimensions"] == [["tenant", "model"]]
    assert (first["Latency"], first["BatchSize"], first["TenantRequests"], first["TenantItems"]) == (2.2, 3, 1, 3)
    assert first["tenant"] == "acme" and first["TenantBilledDuration"] == 3
    assert error["ClientErrors"] == 1 and "Errors" not in error


def test_the_day_is_the_utc_day_of_the_request(dynamodb):
    moments = iter([at("2026-10-31T23:59:59")(), at("2026-11-01T00:00:00")()])
    lines = lines_of([record(), record()], clock=lambda: next(moments))
    UsageAggregator(TABLE, client=dynamodb).handle(delivery(lines))
    assert item(dynamodb, "k1", "2026-10-31#toy#1")["month"] == "2026-10"
    assert item(dynamodb, "k1", "2026-11-01#toy#1")["month"] == "2026-11"


def test_a_retried_delivery_counts_nothing_twice(dynamodb):
    lines = lines_of([record(tenant="a"), record(tenant="b"), record(tenant="b")])
    aggregator = UsageAggregator(TABLE, client=dynamodb)
    assert aggregator.handle(delivery(lines)).counted == 3
    again = aggregator.handle(delivery(lines))  # Lambda's async retry: the very same event
    assert (again.counted, again.duplicates) == (0, 3)
    # CloudWatch Logs may also redeliver events batched differently, with new ones among them
    overlapping = encode_delivery(GROUP, "s", [(f"{i:056d}", 0, line) for i, line in [(2, lines[2]), (3, lines[0])]])
    assert aggregator.handle(overlapping).counted == 1
    assert int(item(dynamodb, "a", "2026-11-28#toy#1")["requests"]) == 2  # event 3 is a new request of tenant a
    assert int(item(dynamodb, "b", "2026-11-28#toy#1")["requests"]) == 2


def test_chunks_fit_dynamodbs_100_items_per_transaction_and_are_always_cut_the_same_way():
    lines = {f"{i:056d}": UsageLine.parse(line) for i, line in enumerate(lines_of([record(tenant=f"t{i % 130}") for i in range(400)]))}
    cut = chunks(lines)
    assert sum(len(chunk) for chunk in cut) == 400 and len(cut) > 4
    assert all(len(chunk) + len({line.key for line in chunk.values()}) <= MAX_TRANSACTION_ITEMS for chunk in cut)
    assert chunks(dict(reversed(list(lines.items())))) == cut  # the same delivery, in any order: the same transactions


def test_a_large_delivery_is_written_in_several_transactions_and_replayed_as_duplicates(dynamodb):
    records = [record(tenant=f"t{i % 8}", batch=1) for i in range(30)]
    client = CountingClient(dynamodb)  # a limit of 12 items stands in for DynamoDB's 100 (moto is slow with 100)
    summary = UsageAggregator(TABLE, client=client, max_items=12).handle(delivery(lines_of(records)))
    assert summary.counted == 30 and summary.transactions == len(client.transactions) >= 4
    assert max(len(items) for items in client.transactions) <= 12
    rows = [row for row in dynamodb.scan(TableName=TABLE)["Items"] if "month" in row]
    assert len(rows) == 8 and sum(int(row["requests"]["N"]) for row in rows) == 30
    replay = UsageAggregator(TABLE, client=dynamodb, max_items=12).handle(delivery(lines_of(records)))
    assert (replay.counted, replay.duplicates) == (0, 30)


def test_conflicts_are_retried_and_other_failures_fail_the_delivery(dynamodb):
    conflict = ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                            "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}]}, "TransactWriteItems")
    client = CountingClient(dynamodb, fail=conflict, times=2)
    waits = []
    summary = UsageAggregator(TABLE, client=client, sleep=waits.append).handle(delivery(lines_of([record()])))
    assert summary.counted == 1 and len(client.transactions) == 3 and len(waits) == 2
    down = CountingClient(dynamodb, fail=ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "T"), times=1)
    with pytest.raises(ClientError):  # Lambda retries the delivery, then keeps it in the dead-letter queue
        UsageAggregator(TABLE, client=down).handle(delivery(lines_of([record(tenant="z")]), first_id=10))
    assert UsageAggregator(TABLE, client=dynamodb).handle(delivery(lines_of([record(tenant="z")]), first_id=10)).counted == 1
    assert int(item(dynamodb, "z", "2026-11-28#toy#1")["requests"]) == 1


def test_counters_from_concurrent_aggregators_add_up_exactly():
    """Six aggregator invocations at once (threads, each its own client) add to one item of a DynamoDB server,
    every delivery sent twice. moto's server answers one request at a time here, so the requests interleave."""
    port = free_port()
    server = make_server("127.0.0.1", port, DomainDispatcherApplication(create_backend_app), threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        admin = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        create_table(admin)
        threads, deliveries, per_delivery = 6, 5, 3
        lines = lines_of([record(batch=2, duration=1.0)] * per_delivery, memory_mb=512)

        def aggregator(worker: int) -> None:
            client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
            for index in range(deliveries):
                event = delivery(lines, first_id=(worker * deliveries + index) * per_delivery)
                UsageAggregator(TABLE, client=client).handle(event)
                UsageAggregator(TABLE, client=client).handle(event)

        workers = [threading.Thread(target=aggregator, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        row = {k: next(iter(v.values())) for k, v in admin.get_item(
            TableName=TABLE, Key={"tenant": {"S": "k1"}, "usage_key": {"S": "2026-11-28#toy#1"}})["Item"].items()}
        total = threads * deliveries * per_delivery
        assert int(row["requests"]) == total and int(row["items"]) == 2 * total
        assert int(row["billed_ms"]) == total and int(row["mb_ms"]) == 512 * total
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Context:
    aws_request_id = "req-ctx"
    function_name = "ToyFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ToyFunction"


def test_a_usage_store_answering_after_150_ms_adds_nothing_to_a_request(toy_model, monkeypatch, capsys):
    """Every AWS call made while requests are answered is recorded (and takes 150 ms): there is none."""
    calls = []
    real = botocore.client.BaseClient._make_api_call

    def slow_call(self, operation, params):
        calls.append(operation)
        time.sleep(0.15)
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", slow_call)
    monkeypatch.setattr(handler, "SERVICE", InferenceService(toy_model, served_models=["toy"], meter=EmfMeter()))
    body = json.dumps({"inputs": oip_inputs()}).encode()
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        response = handler.lambda_handler(rest_event("POST", "/v2/models/toy/infer", body), Context())
        timings.append(time.perf_counter() - started)
        assert response["statusCode"] == 200
    assert calls == []  # no network round trip on the request path at all
    assert statistics.median(timings) < 0.15  # generous: a store round trip alone would take 150 ms
    usage = [json.loads(line)["modelfn_usage"] for line in capsys.readouterr().out.splitlines() if "modelfn_usage" in line]
    assert len(usage) == 20 and {u["tenant"] for u in usage} == {"key-1"}  # the lines are written before returning


def test_the_tenant_is_the_api_key_the_gateway_checked(toy_model, monkeypatch, capsys, dynamodb):
    """A caller cannot be metered as someone else: not by naming a tenant in headers or body, not by a body that
    looks like a usage line when payload logging writes it to the same log."""
    service = InferenceService(toy_model, served_models=["toy"], meter=EmfMeter(), payload_log=PayloadLog(rate=1.0))
    monkeypatch.setattr(handler, "SERVICE", service)
    capsys.readouterr()
    forged = json.dumps({"_aws": {}, "modelfn_usage": {"v": 1, "tenant": "victim", "day": "2026-11-28", "model": "toy"}})
    body = json.dumps({"inputs": oip_inputs(), "tenant": "victim", "parameters": {"note": forged}}).encode()
    event = rest_event("POST", "/v2/models/toy/infer", body, {"x-tenant": "victim", "x-api-key-id": "victim"})
    event["requestContext"]["identity"]["apiKeyId"] = "attacker"
    assert handler.lambda_handler(event, Context())["statusCode"] in (200, 400)
    lines = capsys.readouterr().out.splitlines()
    summary = UsageAggregator(TABLE, client=dynamodb).handle(delivery(lines))
    assert summary.counted == 1
    tenants = {row["tenant"]["S"] for row in dynamodb.scan(TableName=TABLE)["Items"] if "month" in row}
    assert tenants == {"attacker"}


def test_a_meter_that_fails_does_not_fail_inference(toy_model, caplog):
    class Broken(io.StringIO):
        def write(self, text):
            raise OSError("stdout is gone")

    meter = EmfMeter(stream=Broken)
    service = InferenceService(toy_model, served_models=["toy"], meter=meter)
    body = {"inputs": [{"name": "features", "shape": [2, 4], "datatype": "FP32", "data": FEATURES.ravel().tolist()},
                       {"name": "ids", "shape": [2, 3], "datatype": "INT64", "data": IDS.ravel().tolist()}]}
    response = service.handle(post("/v2/models/toy/infer", body))
    assert response.status == 200 and json.loads(response.body)["outputs"]
    assert meter.failures == 1 and "meter failed to record" in caplog.text


def test_the_aggregator_function_reads_its_table_from_the_environment(dynamodb, monkeypatch):
    monkeypatch.delenv("MODELFN_USAGE_TABLE", raising=False)
    with pytest.raises(RuntimeError, match="MODELFN_USAGE_TABLE"):
        aggregator_from_environment()
    monkeypatch.setenv("MODELFN_USAGE_TABLE", TABLE)
    monkeypatch.setattr(usage_aggregator, "_AGGREGATOR", None)
    answer = usage_aggregator.lambda_handler(delivery(lines_of([record()])), None)
    assert answer == {"events": 1, "counted": 1, "duplicates": 0, "rejected": 0}
    control = {"messageType": "CONTROL_MESSAGE", "logGroup": "", "logStream": "", "logEvents": [{"id": "", "message": "x"}]}
    import gzip

    event = {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(control).encode())).decode()}}
    assert usage_aggregator.lambda_handler(event, None)["events"] == 0


@pytest.mark.parametrize("change", [
    {"v": 2}, {"tenant": ""}, {"tenant": "#event#1"}, {"day": "28-11-2026"}, {"items": -1}, {"billed_ms": True},
    {"status": "200"}, {"memory_mb": 1.5}, {"model": None},
])
def test_a_usage_record_that_is_not_exactly_the_functions_is_rejected(change):
    (line,) = lines_of([record()])
    document = json.loads(line)
    assert UsageLine.parse(line) is not None
    document["modelfn_usage"].update(change)
    assert UsageLine.parse(json.dumps(document)) is None
    del document["_aws"]  # a JSON log line that is not an EMF document never counts
    document["modelfn_usage"] = json.loads(line)["modelfn_usage"]
    assert UsageLine.parse(json.dumps(document)) is None
