"""Metering through the local runtime with real parts: sandboxes (Lambda RIE) write metering lines, the local log
subscription delivers them as awslogs events to the usage aggregator, which writes a moto DynamoDB table. A sandbox
killed with SIGKILL between requests loses no request a client got an answer for."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import urllib.request

import boto3
import pytest
from moto.server import ThreadedMotoServer

from modelfn_infra.catalog import Catalog, ModelEntry, UsagePlanEntry, dump_template, render_template
from modelfn_infra.local.commands import LocalApp
from modelfn_infra.local.logs import LogSubscription
from modelfn_infra.local.sandbox import _exited, free_port
from modelfn_infra.tenants import LocalTenants

from ..conftest import REPO
from ..runtime.test_usage import TABLE, create_table, lines_of, record

PIXELS = json.dumps({"inputs": [{"name": "pixels", "shape": [3, 64], "datatype": "FP32", "data": [0.25] * 192}]}).encode()


def infer(url: str, key: str) -> int:
    request = urllib.request.Request(url + "/v2/models/digits/infer", data=PIXELS, method="POST",
                                     headers={"Content-Type": "application/json", "x-api-key": key})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert json.loads(response.read())["outputs"][0]["shape"] == [3, 10]
        return response.status


@pytest.fixture
def usage_table(monkeypatch):
    """moto's DynamoDB on 127.0.0.1 with a new usage table; the sandboxes inherit its endpoint. Yields its client."""
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        create_table(client)
        yield client
    finally:
        moto.stop()


@pytest.mark.slow
def test_a_sandbox_killed_between_requests_loses_no_counted_request(digits_store, tmp_path, usage_table):
    catalog = Catalog([ModelEntry("digits", "1", memory_mb=512)], [UsagePlanEntry("pro", rate_limit=100, burst_limit=100)])
    template = tmp_path / "template.yaml"
    template.write_text(dump_template(render_template(catalog, code_uri=str(REPO / "functions" / "inference"))))
    client = usage_table
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    tenants = LocalTenants(tmp_path / "tenants.json", plans=["pro"])
    acme = tenants.create("acme", "pro")
    env = {"Parameters": {"MODELFN_USAGE_TABLE": TABLE}, "DigitsFunction": {"MODEL_URI": str(digits_store / "digits" / "1")}}
    with LocalApp(template, env_vars=env, parameter_overrides={"ModelBucket": "unused"},
                  log_stream=open(os.devnull, "w")) as app:
        app.usage.interval_s = 3600  # no delivery by the clock: the lines wait in the subscription, not the sandbox
        server = app.serve_api(port=0, tenants=tenants.path)
        try:
            answered = [infer(server.url, acme.key) for _ in range(3)]
            (killed,) = app.runtime.sandbox_pids
            os.killpg(killed, signal.SIGKILL)  # the whole sandbox: RIE and runtime, no chance to flush anything
            deadline = time.monotonic() + 10
            while not _exited(killed) and time.monotonic() < deadline:
                time.sleep(0.02)
            answered += [infer(server.url, acme.key) for _ in range(2)]  # a fresh sandbox answers these
            assert killed not in app.runtime.sandbox_pids
        finally:
            server.stop()
        app.usage.flush()
        app.usage.flush()  # a second delivery of nothing new changes nothing
    rows = client.query(TableName=TABLE, KeyConditionExpression="tenant = :t",
                        ExpressionAttributeValues={":t": {"S": acme.id}})["Items"]
    assert answered == [200] * 5
    assert [(int(r["requests"]["N"]), int(r["items"]["N"]), int(r["ok"]["N"])) for r in rows] == [(5, 15, 5)]


class FlakyClient:
    """DynamoDB that refuses the first transaction (as a throttled or unreachable table would)."""

    def __init__(self, client) -> None:
        self.client, self.calls = client, 0

    def transact_write_items(self, **kwargs):
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("the table is unreachable")
        return self.client.transact_write_items(**kwargs)


def test_the_local_subscription_filters_batches_and_keeps_a_failed_delivery(tmp_path):
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client)
        log = tmp_path / "log.txt"
        with open(log, "w") as out:
            subscription = LogSubscription(TABLE, client=FlakyClient(client), interval_s=3600, log=out)
            usage = lines_of([record(tenant="a"), record(tenant="b", model="")])  # the second carries no usage record
            subscription.put("DigitsFunction", ["START RequestId: x", '{"level":"INFO","message":"modelfn_usage"}', *usage])
            with pytest.raises(ConnectionError):
                subscription.flush()  # kept, as Lambda keeps an event it failed to deliver
            assert subscription.flush() == 1 and subscription.flush() == 0
            subscription.close()
        row = client.get_item(TableName=TABLE, Key={"tenant": {"S": "a"}, "usage_key": {"S": "2026-11-28#toy#1"}})["Item"]
        assert row["requests"]["N"] == "1" and "Item" not in client.get_item(
            TableName=TABLE, Key={"tenant": {"S": "b"}, "usage_key": {"S": "2026-11-28##1"}})


@pytest.mark.slow
def test_the_aggregator_function_runs_in_a_lambda_sandbox(tmp_path, usage_table):
    """The template's UsageAggregatorFunction under the RIE: its handler, its environment, a redelivery."""
    from modelfn_runtime.usage import encode_delivery

    catalog = Catalog([ModelEntry("digits", "1", memory_mb=512)], [UsagePlanEntry("pro", rate_limit=100, burst_limit=100)])
    template = tmp_path / "template.yaml"
    template.write_text(dump_template(render_template(catalog, code_uri=str(REPO / "functions" / "inference"))))
    client = usage_table
    lines = lines_of([record(tenant="acme"), record(tenant="acme", batch=2)])
    event = encode_delivery("/modelfn/stack/functions/digits", "s", [(f"{i:056d}", 0, line) for i, line in enumerate(lines)])
    env = {"UsageAggregatorFunction": {"MODELFN_USAGE_TABLE": TABLE}}
    with LocalApp(template, env_vars=env, parameter_overrides={"ModelBucket": "unused"},
                  log_stream=open(os.devnull, "w")) as app:
        assert app.invoke("UsageAggregatorFunction", event) == {"events": 2, "counted": 2, "duplicates": 0, "rejected": 0}
        assert app.invoke("UsageAggregatorFunction", event)["duplicates"] == 2  # Lambda's retry of the same event
    row = client.get_item(TableName=TABLE, Key={"tenant": {"S": "acme"}, "usage_key": {"S": "2026-11-28#toy#1"}})["Item"]
    assert (row["requests"]["N"], row["items"]["N"]) == ("2", "6")
