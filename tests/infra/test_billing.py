"""Bills checked against hand-computed examples; the committed price table and cost model; `modelfn usage|bill`."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timezone
from decimal import Decimal

import boto3
import pytest
import yaml
from moto import mock_aws

from modelfn_infra.billing import (
    AwsCosts,
    BillingError,
    PriceTable,
    UsageReader,
    UsageRow,
    make_bill,
    render_bill,
    tenant_index,
)
from modelfn_infra.catalog import Catalog
from modelfn_infra.cli import main
from modelfn_infra.tenants import Tenant
from modelfn_runtime.metering import UsageRecord

from ..conftest import REPO
from ..metering import TableMeter
from ..runtime.test_usage import TABLE, create_table
from .test_tenants import STACK, deploy_plans

PRICES = {
    "currency": "USD",
    "unknown_tenant_plan": "pro",
    "plans": {
        "free": {"per_1k_requests": 0, "free_requests": 1000},
        "pro": {"per_1k_requests": 1.00, "free_requests": 100, "per_gb_second": 0.0001, "models": {"toy": 2.00}},
    },
}
COSTS = {
    "units": {"lambda_request": 0.000001, "dynamodb_write": 0.000002, "rest": 0.00001, "s3_get": 0.000001,
              "s3_put": 0.00001, "sqs_request": 0.0000005},
    "gb_second": {"x86_64": 0.00002, "arm64": 0.00001},
    "per_request": {"lambda_request": 1, "dynamodb_write": 1},
    "per_trigger": {"rest": {"rest": 1}, "s3": {"s3_get": 1, "s3_put": 1}, "sqs": {"sqs_request": 2}},
}
GB_S = 1024 * 1000  # mb_ms of one GB-second
ACME = Tenant("k-acme", "acme", "pro", True, "2026-10-01T00:00:00Z")
BOB = Tenant("k-bob", "bob", "free", True, "2026-10-01T00:00:00Z")


@pytest.fixture
def pricing(tmp_path):
    prices, costs = tmp_path / "prices.yaml", tmp_path / "aws.yaml"
    prices.write_text(yaml.safe_dump(PRICES))
    costs.write_text(yaml.safe_dump(COSTS))
    return PriceTable.load(prices), AwsCosts.load(costs), prices, costs


def row(tenant, model, day, requests, ok=None, items=None, mb_ms=0, arch="x86_64", **triggers) -> UsageRow:
    ok = requests if ok is None else ok
    return UsageRow(tenant, model, "1", day, requests=requests, items=requests if items is None else items, mb_ms=mb_ms,
                    ok=ok, client_errors=requests - ok, architecture=arch, by_trigger=triggers)


ROWS = [
    row("k-acme", "digits", "2026-10-31", 500, rest=500),  # October: not on November's bill
    row("k-acme", "digits", "2026-11-01", 80, ok=70, items=300, mb_ms=10 * GB_S, rest=80),
    row("k-acme", "toy", "2026-11-02", 50, mb_ms=2 * GB_S, arch="arm64", s3=50),
    row("acme", "digits", "2026-11-03", 40, sqs=40),  # work named by the tenant's name (an SQS message's tenant)
    row("k-bob", "digits", "2026-11-15", 1200, rest=1200),
    row("mystery", "digits", "2026-11-20", 10, rest=10),  # no such key: billed at unknown_tenant_plan (pro)
    row("-", "toy", "2026-11-20", 5, direct=5),  # untenanted: listed, never charged
    row("k-acme", "digits", "2026-12-01", 999, rest=999),  # December: not on November's bill
]


def lines_of(bill):
    return {(line.tenant, line.model): line for line in bill.lines}


def test_november_bill_by_hand(pricing):
    prices, costs, *_ = pricing
    bill = make_bill("2026-11", ROWS, tenant_index([ACME, BOB]), prices, costs)
    lines = lines_of(bill)
    assert list(lines) == [("(untenanted)", "toy"), ("acme", "digits"), ("acme", "toy"), ("bob", "digits"), ("mystery", "digits")]

    # acme (pro): 100 free requests, used day by day: 70 on 11-01 (digits), the last 30 on 11-02 (toy).
    digits = lines["acme", "digits"]
    assert (digits.requests, digits.free, digits.billable, digits.items, digits.gb_seconds) == (120, 70, 40, 340, 10)
    assert digits.price == Decimal("0.041")  # 40 x $1.00/1k + 10 GB-s x $0.0001
    # AWS: 10 GB-s x $0.00002 + 120 x ($0.000001 + $0.000002) + 80 REST x $0.00001 + 40 SQS msgs x 2 x $0.0000005
    assert digits.aws_cost == Decimal("0.0002") + Decimal("0.00036") + Decimal("0.0008") + Decimal("0.00004")
    assert digits.margin == Decimal("0.041") - Decimal("0.0014")
    toy = lines["acme", "toy"]
    assert (toy.requests, toy.free, toy.billable, toy.gb_seconds) == (50, 30, 20, 2)
    assert toy.price == Decimal("0.0402")  # 20 x $2.00/1k (toy's price in pro) + 2 GB-s x $0.0001
    assert toy.aws_cost == Decimal("0.00072")  # 2 GB-s arm64 x $0.00001 + 50 x $0.000003 + 50 x ($0.000001 + $0.00001)

    bob = lines["bob", "digits"]  # free plan: 1,000 free, the other 200 at $0 (its quota stops it at API Gateway)
    assert (bob.free, bob.billable, bob.price, bob.aws_cost) == (1000, 200, 0, Decimal("0.0156"))
    assert bob.margin == Decimal("-0.0156")
    mystery = lines["mystery", "digits"]
    assert (mystery.plan, mystery.free, mystery.billable, mystery.price) == ("pro", 10, 0, 0)
    untenanted = lines["(untenanted)", "toy"]
    assert (untenanted.plan, untenanted.billable, untenanted.price, untenanted.aws_cost) == ("-", 0, 0, Decimal("0.000015"))

    assert bill.due() == {"acme": Decimal("0.08"), "bob": Decimal("0.00"), "mystery": Decimal("0.00"), "(untenanted)": Decimal("0.00")}
    assert bill.totals().requests == 5 + 120 + 50 + 1200 + 10


def test_a_rotated_tenant_and_its_principals_are_one_line_with_one_free_allowance(pricing):
    """Usage metered under an old key, the new key, an IAM principal and a token subject is all acme's."""
    prices, costs, *_ = pricing
    old = Tenant("k-old", "acme", "pro", False, "2026-10-01T00:00:00Z", "arn:aws:iam::123456789012:role/acme")
    new = Tenant("k-new", "acme", "pro", True, "2026-11-10T00:00:00Z", "arn:aws:iam::123456789012:role/acme")
    rows = [row("k-old", "digits", "2026-11-01", 30), row("k-new", "digits", "2026-11-12", 20),
            row("arn:aws:sts::123456789012:assumed-role/acme", "digits", "2026-11-13", 5)]
    lines = lines_of(make_bill("2026-11", rows, tenant_index([old, new]), prices, costs))
    assert list(lines) == [("acme", "digits")] and lines["acme", "digits"].requests == 55
    assert lines["acme", "digits"].tenant_id == "k-new"


def test_the_free_allowance_starts_again_each_month(pricing):
    prices, costs, *_ = pricing
    october = lines_of(make_bill("2026-10", ROWS, tenant_index([ACME, BOB]), prices, costs))
    assert list(october) == [("acme", "digits")]
    line = october["acme", "digits"]
    assert (line.requests, line.free, line.billable, line.price) == (500, 100, 400, Decimal("0.4"))
    december = lines_of(make_bill("2026-12", ROWS, tenant_index([ACME, BOB]), prices, costs))
    assert (december["acme", "digits"].free, december["acme", "digits"].price) == (100, Decimal("0.899"))


def test_bill_formats(pricing):
    prices, costs, *_ = pricing
    bill = make_bill("2026-11", ROWS, tenant_index([ACME, BOB]), prices, costs)
    table = render_bill(bill, "table")
    assert "bill for 2026-11 (USD)" in table and "TOTAL" in table and "acme                     USD 0.08" in table
    rows = list(csv.DictReader(io.StringIO(render_bill(bill, "csv"))))
    assert [(r["tenant"], r["model"], r["billable"], r["price"]) for r in rows][1:3] == [
        ("acme", "digits", "40", "0.041000"), ("acme", "toy", "20", "0.040200")]
    data = json.loads(render_bill(bill, "json"))
    assert data["due"]["acme"] == "0.08" and data["totals"]["requests"] == 1385 and len(data["lines"]) == 5
    with pytest.raises(BillingError, match="not YYYY-MM"):
        make_bill("2026-13", ROWS, {}, prices, costs)


def test_price_errors_name_the_fix(tmp_path, pricing):
    prices, costs, *_ = pricing
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**PRICES, "unknown_tenant_plan": "gold"}))
    with pytest.raises(BillingError, match=r"unknown_tenant_plan 'gold' must be one of the plans \['free', 'pro'\]"):
        PriceTable.load(path)
    path.write_text(yaml.safe_dump({**PRICES, "plans": {"pro": {"per_1k_requests": -1}}, "unknown_tenant_plan": "pro"}))
    with pytest.raises(BillingError, match="per_1k_requests must be a non-negative number"):
        PriceTable.load(path)
    path.write_text(yaml.safe_dump({**COSTS, "per_request": {"lambda_requests": 1}}))
    with pytest.raises(BillingError, match=r"names \['lambda_requests'\], which are not in `units`"):
        AwsCosts.load(path)
    gold = Tenant("k-g", "gilded", "gold", True, "")
    with pytest.raises(BillingError, match="plan 'gold', which has no prices"):
        make_bill("2026-11", [row("k-g", "toy", "2026-11-01", 1)], tenant_index([gold]), prices, costs)


def test_committed_price_table_and_cost_model_name_source_and_date_and_match_the_plans():
    prices = PriceTable.load(REPO / "infra" / "pricing" / "prices.yaml")
    costs = AwsCosts.load(REPO / "infra" / "pricing" / "aws.yaml")
    assert prices.source and prices.as_of and costs.as_of and "aws.amazon.com/lambda/pricing" in costs.source
    assert set(prices.plans) == {plan.name for plan in Catalog.read(REPO / "infra" / "catalog.yaml").plans}
    assert set(costs.gb_second) == {"x86_64", "arm64"}
    # one REST request of 100 ms at 1,024 MB on x86_64: $0.20/M + $3.50/M + $0.625/M + 0.1 GB-s x $0.0000166667
    one = costs.cost(row("t", "digits", "2026-11-01", 1, mb_ms=100 * 1024, rest=1))
    assert one == Decimal("0.0000002") + Decimal("0.0000035") + Decimal("0.000000625") + Decimal("0.1") * Decimal("0.0000166667")


def test_usage_and_bill_from_the_table_across_a_month_boundary(pricing, tmp_path, capsys):
    *_, prices_path, costs_path = pricing
    with mock_aws():
        apigateway = boto3.client("apigateway", region_name="us-east-1")
        deploy_plans(apigateway)
        assert main(["tenants", "create", "acme", "--plan", "pro", "--stack", STACK]) == 0
        capsys.readouterr()
        acme = apigateway.get_api_keys()["items"][0]["id"]
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb)
        clock = {"now": datetime(2026, 10, 31, 23, 59, 59, tzinfo=timezone.utc)}
        meter = TableMeter(TABLE, client=dynamodb, memory_mb=1024, clock=lambda: clock["now"])

        def invoke(requests: int, tenant: str = acme) -> None:
            for _ in range(requests):
                meter.record(UsageRecord("r", "digits", "1", "rest", "infer", 200, 2, 100, 40, 99.2, tenant=tenant))
            meter.flush()

        invoke(150)  # 2026-10-31, 23:59:59 UTC
        clock["now"] = datetime(2026, 11, 1, 0, 0, 0, tzinfo=timezone.utc)
        invoke(130)
        invoke(20, tenant="acme")  # S3 work under the tenant's name
        clock["now"] = datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc)
        invoke(10)

        november = UsageReader(TABLE, dynamodb).month("2026-11")
        assert [(r.day, r.tenant, r.requests) for r in november] == sorted(
            [("2026-11-01", acme, 130), ("2026-11-01", "acme", 20), ("2026-11-30", acme, 10)])
        rows = UsageReader(TABLE, dynamodb).query(tenant=acme, start=date(2026, 10, 31), end=date(2026, 11, 1))
        assert [(r.day, r.requests) for r in rows] == [("2026-10-31", 150), ("2026-11-01", 130)]

        common = ["--stack", STACK, "--table", TABLE]
        capsys.readouterr()  # the meter's EMF lines
        assert main(["usage", "--tenant", "acme", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "csv", *common]) == 0
        usage = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
        assert sorted((u["day"], u["tenant"], u["requests"], u["items"]) for u in usage) == [
            ("2026-11-01", "acme", "130", "260"), ("2026-11-01", "acme", "20", "40"), ("2026-11-30", "acme", "10", "20")]
        plot = tmp_path / "daily.png"
        assert main(["bill", "--month", "2026-11", "--format", "json", "--prices", str(prices_path),
                     "--aws-costs", str(costs_path), "--plot", str(plot), *common]) == 0
        bill = json.loads(capsys.readouterr().out)
        # 160 requests in November of 100 ms (99.2 rounded up) at 1 GB: 16 GB-s; 100 free, 60 at $1.00/1k
        (line,) = bill["lines"]
        assert (line["tenant"], line["requests"], line["free"], line["billable"]) == ("acme", 160, 100, 60)
        assert Decimal(line["gb_seconds"]) == Decimal("16.000") and Decimal(line["price"]) == Decimal("0.0616")
        assert bill["due"] == {"acme": "0.06"}
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
        assert main(["bill", "--month", "2026-1", *common]) == 2
        assert "not YYYY-MM" in capsys.readouterr().err
        assert main(["usage", "--from", "yesterday", *common]) == 2
        assert "YYYY-MM-DD" in capsys.readouterr().err
