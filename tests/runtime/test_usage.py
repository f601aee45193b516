"""The DynamoDB usage meter: one write per aggregate, exact atomic counters, and never a failed or slow inference."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from moto import mock_aws
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from modelfn_infra.catalog import usage_table_resource
from modelfn_infra.local.sandbox import free_port
from modelfn_runtime.metering import MetricsMeter, UsageRecord
from modelfn_runtime.service import InferenceService
from modelfn_runtime.usage import MeterChain, UsageMeter, meter_from_environment

from .conftest import FEATURES, IDS, post

TABLE = "modelfn-usage"


def create_table(client) -> None:
    """The table exactly as the template declares it."""
    properties = usage_table_resource()["Properties"]
    client.create_table(
        TableName=TABLE,
        **{key: properties[key] for key in ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")},
    )


def record(tenant="k1", model="toy", status=200, batch=4, duration=2.2, trigger="rest", request_bytes=100) -> UsageRecord:
    return UsageRecord("r", model, "1", trigger, "infer", status, batch, request_bytes, 50, duration, tenant=tenant)


def at(text: str):
    moment = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return lambda: moment


class CountingClient:
    """A DynamoDB client that counts UpdateItem calls (and can be made to fail)."""

    def __init__(self, client, fail: Exception | None = None) -> None:
        self.client, self.fail, self.updates = client, fail, 0

    def update_item(self, **kwargs):
        self.updates += 1
        if self.fail:
            raise self.fail
        return self.client.update_item(**kwargs)


def item(client, tenant: str, key: str) -> dict:
    raw = client.get_item(TableName=TABLE, Key={"tenant": {"S": tenant}, "usage_key": {"S": key}})["Item"]
    return {name: next(iter(value.values())) for name, value in raw.items()}


@pytest.fixture
def dynamodb():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client)
        yield client


def test_one_invocation_is_one_write_per_aggregate_with_every_counter(dynamodb):
    client = CountingClient(dynamodb)
    meter = UsageMeter(TABLE, client=client, memory_mb=1024, clock=at("2026-11-28T10:00:00"))
    meter.record(record(batch=4, duration=2.2))
    meter.record(record(batch=6, duration=0.4, trigger="sqs"))
    meter.record(record(status=400, batch=0, duration=1.0))
    meter.record(record(status=503, batch=0, duration=3.0))
    meter.record(record(tenant=None, model="toy"))  # untenanted work is kept apart
    meter.record(record(model=""))  # no model: health and metadata of the catch-all are not metered
    assert client.updates == 0  # record never writes
    meter.flush()
    assert client.updates == 2 and meter.pending == 0
    row = item(dynamodb, "k1", "2026-11-28#toy#1")
    assert row["month"] == "2026-11" and row["day"] == "2026-11-28" and row["model"] == "toy" and row["version"] == "1"
    assert int(row["requests"]) == 4 and int(row["items"]) == 10
    assert int(row["billed_ms"]) == 3 + 1 + 1 + 3  # whole milliseconds, rounded up, at least 1
    assert int(row["mb_ms"]) == 8 * 1024
    assert (int(row["ok"]), int(row["client_errors"]), int(row["server_errors"])) == (2, 1, 1)
    assert int(row["requests_rest"]) == 3 and int(row["requests_sqs"]) == 1
    assert int(row["request_bytes"]) == 400 and int(row["memory_mb"]) == 1024
    assert int(item(dynamodb, "-", "2026-11-28#toy#1")["requests"]) == 1
    meter.flush()
    assert client.updates == 2  # nothing pending, nothing written


def test_the_day_is_the_utc_day_of_the_request(dynamodb):
    clock = {"now": datetime(2026, 10, 31, 23, 59, 59, tzinfo=timezone.utc)}
    meter = UsageMeter(TABLE, client=dynamodb, memory_mb=128, clock=lambda: clock["now"])
    meter.record(record())
    clock["now"] = datetime(2026, 11, 1, 0, 0, 0, tzinfo=timezone.utc)
    meter.record(record())
    meter.flush()
    assert item(dynamodb, "k1", "2026-10-31#toy#1")["month"] == "2026-10"
    assert item(dynamodb, "k1", "2026-11-01#toy#1")["month"] == "2026-11"


def test_counters_from_concurrent_functions_add_up_exactly():
    """Eight sandboxes (threads, each its own meter and client) hammer one item of a DynamoDB server.

    moto's server answers one request at a time here (its threaded server is not atomic itself, as DynamoDB
    is), so requests of different sandboxes interleave: a read-modify-write meter would lose counts, ADD cannot.
    """
    port = free_port()
    server = make_server("127.0.0.1", port, DomainDispatcherApplication(create_backend_app), threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        admin = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        create_table(admin)
        threads, invocations, per_invocation = 8, 40, 3
        errors = []

        def sandbox() -> None:
            client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
            meter = UsageMeter(TABLE, client=client, memory_mb=512, clock=at("2026-11-28T12:00:00"))
            for _ in range(invocations):
                for _ in range(per_invocation):
                    meter.record(record(batch=2, duration=1.0))
                meter.flush()
            errors.append(meter.failures)

        workers = [threading.Thread(target=sandbox) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert errors == [0] * threads
        row = {k: next(iter(v.values())) for k, v in admin.get_item(
            TableName=TABLE, Key={"tenant": {"S": "k1"}, "usage_key": {"S": "2026-11-28#toy#1"}})["Item"].items()}
        total = threads * invocations * per_invocation
        assert int(row["requests"]) == total and int(row["items"]) == 2 * total
        assert int(row["billed_ms"]) == total and int(row["mb_ms"]) == 512 * total
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_an_unreachable_table_costs_one_short_timeout_then_nothing_and_loses_nothing(dynamodb, capsys, caplog, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    meter = UsageMeter(TABLE, memory_mb=256, clock=at("2026-11-28T08:00:00"), timeout_s=0.3, backoff_s=60)
    meter.client = CountingClient(meter.client)  # the meter's own client: its timeouts and retry policy
    meter.record(record())
    started = time.perf_counter()
    meter.flush()
    assert time.perf_counter() - started < 2.5  # one attempt, bounded timeouts: no retry storm
    assert meter.failures == 1 and meter.pending == 1
    assert "usage metering failed" in caplog.text and '"MeteringErrors"' in capsys.readouterr().out
    for _ in range(5):  # while backing off, flushes do not touch DynamoDB at all
        meter.record(record())
        started = time.perf_counter()
        meter.flush()
        assert time.perf_counter() - started < 0.05
    assert meter.client.updates == 1 and meter.pending == 1
    meter.client, meter._suspended_until = CountingClient(dynamodb), 0.0  # DynamoDB is back, the backoff is over
    meter.flush()
    assert meter.client.updates == 1 and int(item(dynamodb, "k1", "2026-11-28#toy#1")["requests"]) == 6


def test_a_write_that_may_have_landed_is_not_written_twice(dynamodb, caplog):
    """A read timeout is ambiguous (DynamoDB may have applied the ADD): dropping it may under-bill, never double-bill."""
    client = CountingClient(dynamodb, fail=ReadTimeoutError(endpoint_url="https://dynamodb"))
    meter = UsageMeter(TABLE, client=client, memory_mb=128, clock=at("2026-11-28T08:00:00"), backoff_s=0)
    meter.record(record(tenant="a"))
    meter.record(record(tenant="b"))
    meter.record(record(tenant="b"))
    meter.flush()
    assert client.updates == 1 and meter.pending == 1 and meter.dropped == 1  # tenant a's write timed out; b's kept
    assert "the aggregate in flight is dropped" in caplog.text
    client.fail = None
    meter.flush()
    assert int(item(dynamodb, "b", "2026-11-28#toy#1")["requests"]) == 2
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key={"tenant": {"S": "a"}, "usage_key": {"S": "2026-11-28#toy#1"}})


def test_the_default_client_has_short_timeouts_and_no_retries():
    meter = UsageMeter(TABLE, memory_mb=128)
    config = meter.client.meta.config
    assert config.connect_timeout <= 1 and config.read_timeout <= 1
    assert config.retries["total_max_attempts"] == 1


def test_metering_failure_does_not_fail_inference(toy_model, caplog):
    failing = UsageMeter(TABLE, client=CountingClient(None, fail=EndpointConnectionError(endpoint_url="x")), memory_mb=128)

    class Broken:
        def record(self, usage):
            raise RuntimeError("meter bug")

        def flush(self):
            raise RuntimeError("meter bug")

    service = InferenceService(toy_model, served_models=["toy"], meter=MeterChain(MetricsMeter(), failing, Broken()))
    body = {"inputs": [{"name": "features", "shape": [2, 4], "datatype": "FP32", "data": FEATURES.ravel().tolist()},
                       {"name": "ids", "shape": [2, 3], "datatype": "INT64", "data": IDS.ravel().tolist()}]}
    response = service.handle(post("/v2/models/toy/infer", body))
    assert response.status == 200 and json.loads(response.body)["outputs"]
    service.meter.flush()
    assert failing.failures == 1 and failing.pending == 1
    assert "meter failed to record" in caplog.text and "meter failed to flush" in caplog.text


def test_the_environment_chooses_the_meter(monkeypatch):
    monkeypatch.delenv("MODELFN_USAGE_TABLE", raising=False)
    assert isinstance(meter_from_environment(), MetricsMeter)
    monkeypatch.setenv("MODELFN_USAGE_TABLE", TABLE)
    chain = meter_from_environment()
    assert [type(m).__name__ for m in chain.meters] == ["MetricsMeter", "UsageMeter"]
    assert chain.meters[1].table == TABLE


def test_tenant_metrics_are_emitted_per_tenant_and_model(dynamodb, capsys):
    meter = UsageMeter(TABLE, client=dynamodb, memory_mb=128, clock=at("2026-11-28T08:00:00"))
    meter.record(record(tenant="acme", batch=3))
    meter.flush()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"TenantRequests"' in line]
    assert len(lines) == 1
    assert lines[0]["tenant"] == "acme" and lines[0]["model"] == "toy"
    assert lines[0]["TenantRequests"] == [1.0] or lines[0]["TenantRequests"] == 1.0
    assert lines[0]["TenantItems"] in ([3.0], 3.0)
