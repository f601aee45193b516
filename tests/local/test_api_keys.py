"""The local API's API Gateway emulation of API keys, usage-plan throttling and quotas, and the key id in the event."""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

from modelfn_infra.catalog import Catalog, ModelEntry, UsagePlanEntry, dump_template, render_template
from modelfn_infra.local.apikeys import (
    Admitted,
    ApiKeyGate,
    Refused,
    TokenBucket,
    key_required_routes,
    plans_from_template,
    quota_period_of,
)
from modelfn_infra.local.commands import LocalApp
from modelfn_infra.local.sandbox import free_port
from modelfn_infra.tenants import LocalTenants

from ..conftest import REPO
from ..runtime.test_usage import TABLE, create_table

INFER = ("DigitsFunction", "/v2/models/digits/{proxy+}")


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def gate_for(tmp_path, plans, clock, now=None):
    tenants = LocalTenants(tmp_path / "tenants.json", plans=[p.name for p in plans])
    gate = ApiKeyGate({p.name: p for p in plans}, {INFER}, tenants, clock=clock,
                      now=now or (lambda: datetime(2026, 11, 28, tzinfo=timezone.utc)))
    return gate, tenants


def test_token_bucket_refills_at_its_rate():
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.t += 0.49
    assert not bucket.take()
    clock.t += 0.01  # 0.5 s at 2/s: one token
    assert bucket.take() and not bucket.take()
    clock.t += 60  # never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_gate_refuses_missing_wrong_and_revoked_keys_with_api_gateway_answers(tmp_path):
    gate, tenants = gate_for(tmp_path, [UsagePlanEntry("free", 10, 10)], Clock())
    acme = tenants.create("acme", "free")
    for key in (None, "", "wrong"):
        refused = gate.check(*INFER, key)
        assert isinstance(refused, Refused) and (refused.status, refused.error_type) == (403, "INVALID_API_KEY")
        assert refused.message.startswith("Forbidden: missing or invalid API key: send the key you were given in the x-api-key")
    assert gate.check(*INFER, acme.key) == Admitted(replace(acme, key=None))  # the file knows only the key's digest
    assert gate.check("ServerFunction", "/v2/health/{proxy+}", None) == Admitted(None)  # routes that need no key
    tenants.revoke("acme")  # the file changed: the next request sees it
    assert isinstance(gate.check(*INFER, acme.key), Refused)


def test_gate_throttles_per_key_by_plan(tmp_path):
    clock = Clock()
    gate, tenants = gate_for(tmp_path, [UsagePlanEntry("free", 1, 2), UsagePlanEntry("pro", 100, 50)], clock)
    free, other, pro = tenants.create("a", "free"), tenants.create("b", "free"), tenants.create("c", "pro")
    answers = [gate.check(*INFER, free.key) for _ in range(3)]
    assert [type(a).__name__ for a in answers] == ["Admitted", "Admitted", "Refused"]
    assert (answers[2].status, answers[2].error_type) == (429, "THROTTLED")
    assert isinstance(gate.check(*INFER, other.key), Admitted)  # buckets are per key
    assert all(isinstance(gate.check(*INFER, pro.key), Admitted) for _ in range(50))
    clock.t += 1.0
    assert isinstance(gate.check(*INFER, free.key), Admitted)


def test_gate_enforces_quotas_per_period(tmp_path):
    clock, now = Clock(), {"t": datetime(2026, 11, 30, 23, 0, tzinfo=timezone.utc)}
    gate, tenants = gate_for(tmp_path, [UsagePlanEntry("free", 1000, 1000, quota=3, quota_period="MONTH")], clock, lambda: now["t"])
    acme = tenants.create("acme", "free")
    answers = [gate.check(*INFER, acme.key) for _ in range(4)]
    assert [getattr(a, "error_type", "ok") for a in answers] == ["ok", "ok", "ok", "QUOTA_EXCEEDED"]
    assert answers[3].status == 429 and answers[3].message.startswith("Limit Exceeded: ")
    assert gate.used(acme.id, "2026-11") == 3
    now["t"] = datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)
    assert isinstance(gate.check(*INFER, acme.key), Admitted)


def test_quota_periods():
    moment = datetime(2026, 11, 28, 23, 30, tzinfo=timezone.utc)
    assert [quota_period_of(moment, p) for p in ("DAY", "WEEK", "MONTH")] == ["2026-11-28", "2026-W48", "2026-11"]


def test_the_template_says_which_routes_need_keys_and_what_plans_allow():
    resources = yaml.safe_load((REPO / "template.yaml").read_text())["Resources"]
    required = key_required_routes(resources)
    assert ("DigitsFunction", "/v2/models/digits/{proxy+}") in required
    assert ("DigitsFunction", "/v1/models/digits:predict") in required
    assert ("ServerFunction", "/{proxy+}") in required
    assert ("ServerFunction", "/v2/health/{proxy+}") not in required and ("ServerFunction", "/v2") not in required
    catalog = Catalog.read(REPO / "infra" / "catalog.yaml")
    assert plans_from_template(resources) == {
        p.name: UsagePlanEntry(p.name, p.rate_limit, p.burst_limit, p.quota, p.quota_period) for p in catalog.plans
    }


# --- end to end: the local API with keys, throttling, quotas and metering into a moto DynamoDB ------------------

@pytest.fixture(scope="module")
def keyed_api(digits_store, tmp_path_factory):
    directory = tmp_path_factory.mktemp("keyed")
    catalog = Catalog(
        [ModelEntry("digits", "1", memory_mb=512)],
        [UsagePlanEntry("free", rate_limit=0.2, burst_limit=2), UsagePlanEntry("tiny", rate_limit=100, burst_limit=100, quota=3)],
    )
    template = directory / "template.yaml"
    template.write_text(dump_template(render_template(catalog, code_uri=str(REPO / "functions" / "inference"))))
    port = free_port()
    dynamodb = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    dynamodb.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    create_table(client)
    previous = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint  # the sandboxes inherit it, as `make demo` does
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    tenants = LocalTenants(directory / "tenants.json", plans=["free", "tiny"])
    env = {"Parameters": {"MODELFN_USAGE_TABLE": TABLE}, "DigitsFunction": {"MODEL_URI": str(digits_store / "digits" / "1")}}
    try:
        with LocalApp(template, env_vars=env, parameter_overrides={"ModelBucket": "unused"},
                      log_stream=open(os.devnull, "w")) as app:
            # warm the model's sandbox first: a cold start slower than one refill (5 s at 0.2/s, a loaded machine) would
            # let the third request of a burst of three through
            app.invoke("DigitsFunction", json.loads((REPO / "events" / "direct-infer.json").read_text()))
            server = app.serve_api(port=0, tenants=tenants.path)
            try:
                yield server, tenants, client, app
            finally:
                server.stop()
    finally:
        if previous is None:
            os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        else:
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = previous
        dynamodb.stop()


def call(server, path, key=None, body=None):
    headers = {"Content-Type": "application/json", **({"x-api-key": key} if key else {})}
    request = urllib.request.Request(server.url + path, data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


PIXELS = json.dumps({"inputs": [{"name": "pixels", "shape": [2, 64], "datatype": "FP32", "data": [0.5] * 128}]}).encode()


@pytest.mark.slow
def test_local_api_checks_keys_throttles_meters_and_enforces_quotas(keyed_api):
    server, tenants, dynamodb, app = keyed_api
    assert call(server, "/v2/health/live") == (200, {"live": True})  # health stays open
    status, body = call(server, "/v2/models/digits/infer", body=PIXELS)
    assert status == 403 and "x-api-key" in body["error"]
    assert call(server, "/v2/models/digits/infer", key="not-a-key", body=PIXELS)[0] == 403
    assert call(server, "/v1/models/digits", key="not-a-key")[0] == 403
    assert call(server, "/v2/models/unknown/ready")[0] == 403  # the catch-all needs a key too

    free = tenants.create("acme", "free")  # created while the API runs: picked up at once
    answers = [call(server, "/v2/models/digits/infer", key=free.key, body=PIXELS) for _ in range(3)]
    assert [status for status, _ in answers] == [200, 200, 429]  # burst 2, then 0.2 requests/s
    assert answers[0][1]["outputs"][0]["shape"] == [2, 10]
    assert answers[2][1]["error"].startswith("Too Many Requests: ")

    tiny = tenants.create("tiny-co", "tiny")
    statuses = [call(server, "/v1/models/digits:predict", key=tiny.key, body=json.dumps({"instances": [[0.1] * 64]}).encode())[0]
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # quota 3 a month
    assert call(server, "/v1/models/digits:predict", key=tiny.key, body=b"{}")[1]["error"].startswith("Limit Exceeded: ")

    # API Gateway put the key id into each admitted REST event; the function metered it as the tenant, and the local
    # log subscription delivered its metering lines to the usage aggregator
    app.usage.flush()

    def metered(tenant_id):
        items = dynamodb.query(TableName=TABLE, KeyConditionExpression="tenant = :t",
                               ExpressionAttributeValues={":t": {"S": tenant_id}})["Items"]
        return [(int(i["requests"]["N"]), int(i["items"]["N"]), int(i["requests_rest"]["N"])) for i in items]

    assert metered(free.id) == [(2, 4, 2)]
    assert metered(tiny.id) == [(3, 3, 3)]

    tenants.revoke("acme")
    assert call(server, "/v2/models/digits/infer", key=free.key, body=PIXELS)[0] == 403


@pytest.mark.slow
def test_no_api_keys_serves_like_sam_local(digits_store, tmp_path):
    template = tmp_path / "template.yaml"
    catalog = Catalog([ModelEntry("digits", "1", memory_mb=512)], [UsagePlanEntry("free", 1, 1)])
    template.write_text(dump_template(render_template(catalog, code_uri=str(REPO / "functions" / "inference"))))
    env = {"DigitsFunction": {"MODEL_URI": str(Path(digits_store) / "digits" / "1")}}
    with LocalApp(template, env_vars=env, parameter_overrides={"ModelBucket": "unused"}, log_stream=open(os.devnull, "w")) as app:
        server = app.serve_api(port=0, api_keys=False)
        try:
            assert call(server, "/v2/models/digits/ready")[0] == 200
        finally:
            server.stop()
