"""Lambda Managed Instances on the bill: instance time x (EC2 On-Demand + 15 %) + requests, no GB-seconds, shared
out by metered duration; instance time metered by Cost Explorer (moto) or estimated from the minimum instances."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import boto3
import pytest
import yaml
from moto import mock_aws
from moto.moto_api import _internal as moto_api

from modelfn_infra.billing import Capacity, make_bill, render_bill, tenant_index
from modelfn_infra.capacity import (
    FLEET_TAG,
    CapacityError,
    Fleet,
    InstanceHours,
    ManagedPrices,
    fleet_costs,
    instance_time,
    parse_fleet,
)
from modelfn_infra.cli import main
from modelfn_runtime.metering import UsageRecord

from ..conftest import REPO
from ..metering import TableMeter
from ..runtime.test_usage import TABLE, create_table
from .test_billing import ACME, BOB, COSTS, PRICES, row
from .test_tenants import STACK, deploy_plans

MANAGED = {"management_fee": 0.15, "request": 0.0000004, "default_minimum_instances": 3,
           "instance_types": {"g6.xlarge": {"hourly": 0.8, "vcpus": 4, "memory_gib": 16, "gpus": 1, "gpu_memory_gib": 24},
                              "c7i.large": {"hourly": 0.1, "vcpus": 2, "memory_gib": 4}}}
FLEET = Fleet("gpu", ("resnet",), "g6.xlarge", minimum_instances=3)


@pytest.fixture
def lambda_pricing(tmp_path):
    """The plans and Lambda cost model of test_billing.py, as files for the command line."""
    prices, costs = tmp_path / "prices.yaml", tmp_path / "aws.yaml"
    prices.write_text(yaml.safe_dump(PRICES))
    costs.write_text(yaml.safe_dump(COSTS))
    return prices, costs


@pytest.fixture
def managed(tmp_path):
    path = tmp_path / "managed.yaml"
    path.write_text(yaml.safe_dump(MANAGED))
    return ManagedPrices.load(path), path


def test_committed_managed_prices_name_their_source_and_date_and_cover_gpu_and_cpu_types():
    prices = ManagedPrices.load(REPO / "infra" / "pricing" / "managed_instances.yaml")
    assert prices.management_fee == Decimal("0.15") and prices.request == Decimal("0.0000002")
    assert "aws.amazon.com/lambda/pricing" in prices.source and prices.as_of
    for name in ("g6.xlarge", "g6.2xlarge", "g5.xlarge", "g6e.xlarge"):
        assert prices.instance(name).gpus == 1 and prices.instance(name).gpu_memory_gib >= 24
    for family in ("c7i", "c7g", "m7i"):
        sizes = [prices.instance(f"{family}.{size}") for size in ("large", "xlarge", "2xlarge", "4xlarge")]
        assert [s.vcpus for s in sizes] == [2, 4, 8, 16]
        assert all(b.hourly == 2 * a.hourly for a, b in zip(sizes, sizes[1:])), "On-Demand doubles with each size"


def test_floor_estimate_is_the_minimum_instances_every_hour_of_the_month(managed):
    prices, _ = managed
    hours = InstanceHours.floor_estimate(FLEET, "2026-11", prices)
    assert hours.hours == 3 * 30 * 24 and hours.source.startswith("estimate")
    (cost,) = fleet_costs([hours], prices)
    assert cost.ec2 == Decimal("1728.0") and cost.management_fee == Decimal("259.2") and cost.total == Decimal("1987.2")
    default = InstanceHours.floor_estimate(Fleet("cpu", ("digits",), "c7i.large"), "2026-02", prices)
    assert default.hours == 3 * 28 * 24, "no minimum given: the three instances Lambda keeps for AZ resiliency"


def test_a_managed_model_pays_requests_and_its_share_of_instance_time_not_gb_seconds(managed):
    from modelfn_infra.billing import AwsCosts, PriceTable

    prices, _ = managed
    plans, costs = PriceTable(**_plans()), AwsCosts(**_costs())
    rows = [
        row("k-acme", "resnet", "2026-11-02", 100, mb_ms=50 * 1024 * 1000, rest=100),   # 50 GB-s: not charged
        row("k-bob", "resnet", "2026-11-03", 300, mb_ms=0, rest=300),
        row("k-acme", "digits", "2026-11-02", 10, mb_ms=1024 * 1000, rest=10),           # a Lambda function: GB-seconds
    ]
    rows = [_with_ms(rows[0], 3000), _with_ms(rows[1], 1000), rows[2]]
    (cost,) = fleet_costs([InstanceHours("gpu", "g6.xlarge", Decimal(100), "test")], prices)  # 80 + 12 = 92
    bill = make_bill("2026-11", rows, tenant_index([ACME, BOB]), plans, costs, Capacity((FLEET,), (cost,), prices))
    lines = {(line.tenant, line.model): line for line in bill.lines}
    acme, bob, digits = lines[("acme", "resnet")], lines[("bob", "resnet")], lines[("acme", "digits")]
    # requests at Managed Instances' price (0.4 µ$) + the meter write (2 µ$) + REST (10 µ$); no GB-seconds
    assert acme.aws_cost == Decimal(100) * Decimal("0.0000124") + Decimal(92) * 3 / 4
    assert bob.aws_cost == Decimal(300) * Decimal("0.0000124") + Decimal(92) / 4
    assert acme.instance_cost + bob.instance_cost == cost.total
    assert digits.instance_cost == 0 and digits.aws_cost == Decimal("0.00002") + 10 * Decimal("0.000013")
    assert acme.gb_seconds == 50, "metered GB-seconds still show; they just cost nothing on Managed Instances"
    text = render_bill(bill, "table")
    assert "Lambda Managed Instances" in text and "g6.xlarge" in text and "92.00" in text
    capacity = json.loads(render_bill(bill, "json"))["capacity"]
    assert capacity == [{"fleet": "gpu", "instance_type": "g6.xlarge", "instance_hours": "100", "source": "test",
                         "ec2": "80.000000", "management_fee": "12.000000", "total": "92.000000"}]


def test_unused_capacity_stays_on_the_bill_as_its_own_line(managed):
    from modelfn_infra.billing import AwsCosts, PriceTable

    prices, _ = managed
    costs = fleet_costs([InstanceHours.floor_estimate(FLEET, "2026-11", prices)], prices)
    bill = make_bill("2026-11", [], {}, PriceTable(**_plans()), AwsCosts(**_costs()), Capacity((FLEET,), tuple(costs), prices))
    (idle,) = bill.lines
    assert idle.tenant == "(idle capacity)" and idle.model == "fleet gpu" and idle.aws_cost == costs[0].total
    assert bill.totals().aws_cost == Decimal("1987.2") and idle.price == 0


def test_cost_explorer_instance_hours_per_instance_type_scoped_by_the_fleet_tag(managed):
    prices, _ = managed
    with mock_aws():
        client = boto3.client("ce", region_name="us-east-1")
        moto_api.moto_api_backend.set_ce_cost_usage(_ce_result({"g6.xlarge": "2160.5", "g6.2xlarge": "12"}), "123456789012")
        hours = instance_time([FLEET], "2026-11", prices, client=client)
    assert [(h.instance_type, h.hours) for h in hours] == [("g6.2xlarge", Decimal("12")), ("g6.xlarge", Decimal("2160.5"))]
    assert all(h.source.startswith("Cost Explorer") for h in hours)


def test_cost_explorer_request_names_the_tag_the_usage_group_and_the_month():
    calls = []

    class Recorder:
        def get_cost_and_usage(self, **kwargs):
            calls.append(kwargs)
            return {"ResultsByTime": []}

    assert InstanceHours.from_cost_explorer("gpu", "2026-12", Recorder()) == []
    (call,) = calls
    assert call["TimePeriod"] == {"Start": "2026-12-01", "End": "2027-01-01"} and call["Metrics"] == ["UsageQuantity"]
    assert {"Tags": {"Key": FLEET_TAG, "Values": ["gpu"]}} in call["Filter"]["And"]
    assert call["GroupBy"] == [{"Type": "DIMENSION", "Key": "INSTANCE_TYPE"}]


def test_errors_name_the_fix(managed, tmp_path):
    prices, _ = managed
    with pytest.raises(CapacityError, match="no On-Demand price for instance type 'p5.48xlarge'"):
        InstanceHours.floor_estimate(Fleet("big", ("m",), "p5.48xlarge"), "2026-11", prices)
    with pytest.raises(CapacityError, match="NAME:INSTANCE_TYPE:MODEL"):
        parse_fleet("gpu:g6.xlarge")
    assert parse_fleet("gpu:g6.xlarge:resnet,mobilenet:2") == Fleet("gpu", ("resnet", "mobilenet"), "g6.xlarge", 2)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**MANAGED, "management_fee": 15}))
    with pytest.raises(CapacityError, match="0.15 for 15 %"):
        ManagedPrices.load(bad)
    with mock_aws():
        with pytest.raises(CapacityError, match="activate modelfn:fleet as a cost allocation tag"):
            instance_time([FLEET], "2026-11", prices, client=boto3.client("ce", region_name="us-east-1"))


def test_modelfn_bill_prices_a_fleet_by_instance_time(lambda_pricing, managed, capsys):
    prices_path, costs_path = lambda_pricing
    _, managed_path = managed
    with mock_aws():
        apigateway = boto3.client("apigateway", region_name="us-east-1")
        deploy_plans(apigateway)
        assert main(["tenants", "create", "acme", "--plan", "pro", "--stack", STACK]) == 0
        acme = apigateway.get_api_keys()["items"][0]["id"]
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb)
        meter = TableMeter(TABLE, client=dynamodb, memory_mb=8192, clock=lambda: datetime(2026, 11, 5, tzinfo=timezone.utc))
        for _ in range(20):
            meter.record(UsageRecord("r", "resnet", "1", "rest", "infer", 200, 8, 4_800_000, 32_000, 12.5, tenant=acme))
        meter.flush()
        capsys.readouterr()
        common = ["--month", "2026-11", "--stack", STACK, "--table", TABLE, "--format", "json", "--prices", str(prices_path),
                  "--aws-costs", str(costs_path), "--managed-prices", str(managed_path)]
        assert main(["bill", *common, "--fleet", "gpu:g6.xlarge:resnet:3", "--instance-time", "estimate"]) == 0
        bill = json.loads(capsys.readouterr().out)
        moto_api.moto_api_backend.set_ce_cost_usage(_ce_result({"g6.xlarge": "100"}), "123456789012")
        assert main(["bill", *common, "--fleet", "gpu:g6.xlarge:resnet"]) == 0
        metered = json.loads(capsys.readouterr().out)
        assert main(["bill", *common, "--fleet", "gpu:g6.xlarge"]) == 2
        assert "NAME:INSTANCE_TYPE:MODEL" in capsys.readouterr().err
    (line,) = bill["lines"]
    assert bill["capacity"][0]["instance_hours"] == "2160" and Decimal(bill["capacity"][0]["total"]) == Decimal("1987.2")
    # 20 requests: Managed Instances' request price + the meter write + REST each, and the whole fleet (the only user)
    assert Decimal(line["aws_cost"]) == (20 * Decimal("0.0000124") + Decimal("1987.2")).quantize(Decimal("0.000001"))
    assert Decimal(metered["lines"][0]["aws_cost"]) == (20 * Decimal("0.0000124") + Decimal("92")).quantize(Decimal("0.000001"))
    assert metered["capacity"][0]["source"].startswith("Cost Explorer")


def _with_ms(usage_row, billed_ms):
    from dataclasses import replace

    return replace(usage_row, billed_ms=billed_ms)


def _plans() -> dict:
    from modelfn_infra.billing import PlanPrice

    return {"currency": "USD", "unknown_tenant_plan": "pro",
            "plans": {"free": PlanPrice(Decimal(0), 1000, Decimal(0), {}), "pro": PlanPrice(Decimal(1), 0, Decimal(0), {})}}


def _costs() -> dict:
    units = {"lambda_request": Decimal("0.000001"), "dynamodb_write": Decimal("0.000002"), "rest": Decimal("0.00001")}
    return {"units": units, "gb_second": {"x86_64": Decimal("0.00002")},
            "per_request": {"lambda_request": Decimal(1), "dynamodb_write": Decimal(1)}, "per_trigger": {"rest": {"rest": Decimal(1)}}}


def _ce_result(hours: dict[str, str]) -> dict:
    groups = [{"Keys": [kind], "Metrics": {"UsageQuantity": {"Amount": amount, "Unit": "Hrs"}}} for kind, amount in hours.items()]
    return {"ResultsByTime": [{"TimePeriod": {"Start": "2026-11-01", "End": "2026-12-01"}, "Total": {},
                               "Groups": groups, "Estimated": False}], "DimensionValueAttributes": []}
