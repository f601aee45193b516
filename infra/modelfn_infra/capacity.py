"""What functions on Lambda Managed Instances cost: instance time x (EC2 On-Demand + 15 % fee), shared out by use.

A GPU function (``accelerator: gpu``) or a ``capacity: managed`` CPU function runs on a capacity provider's EC2
instances. AWS bills those instances for as long as they run, idle or busy (three at least, for AZ resiliency),
plus a 15 % management fee and $0.20 per million requests, and no GB-seconds. So a month's cost of a *fleet*
(one capacity provider and the models on it) is known from its **instance time**, not from the requests:

* ``InstanceHours.from_cost_explorer``: the instance-hours AWS metered, per instance type, from Cost Explorer's
  ``GetCostAndUsage`` (``UsageQuantity`` of the EC2 running-hours usage types), scoped to the fleet by the tag its
  capacity provider propagates to its instances (``PropagateTags``: ``modelfn:fleet``). This is the quantity
  AWS bills, so it is what ``modelfn bill`` uses when it can read it.
* ``InstanceHours.floor_estimate``: without usage records (no Cost Explorer access, a month not closed yet), the
  least the fleet can have cost: its minimum instance count for every hour of the month, marked ``estimate``.
  The capacity provider's min/max execution environments bound the fleet but do not say how long it ran at
  which size (it scales asynchronously on utilization), and its CloudWatch metrics report vCPUs and
  utilization, not instance-hours: neither is a bill.

``share_out`` then gives each bill line of a fleet's models a part of the fleet's cost proportional to its
metered duration (``billed_ms``: the GPU or CPU time it used); a month with no metered duration leaves the whole
cost on an ``(idle capacity)`` line, so the bill's AWS total stays true.

Example:
    >>> prices = ManagedPrices.load()                                              # doctest: +SKIP
    >>> fleet = Fleet("gpu", ("resnet",), "g6.xlarge", minimum_instances=3)         # doctest: +SKIP
    >>> hours = [InstanceHours.floor_estimate(fleet, "2026-11", prices)]            # doctest: +SKIP
    >>> fleet_costs(hours, prices)[0].total                                        # doctest: +SKIP
    Decimal('1999.12...')
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

import yaml

from .money import non_negative

DEFAULT_MANAGED_PRICES = Path("infra/pricing/managed_instances.yaml")
FLEET_TAG = "modelfn:fleet"
"""The tag a capacity provider propagates to its instances (``PropagateTags``), so Cost Explorer can scope them."""
EC2_RUNNING_HOURS = "EC2: Running Hours"
"""Cost Explorer's usage type group of EC2 instance-hours (BoxUsage and the like)."""


class CapacityError(ValueError):
    """Prices or instance time cannot price a fleet; the message names the fix."""


def _decimal(value: Any, where: str) -> Decimal:
    return non_negative(value, where, CapacityError)


@dataclass(frozen=True)
class InstanceType:
    name: str
    hourly: Decimal
    vcpus: int
    memory_gib: int
    gpus: int = 0
    gpu_memory_gib: int = 0


@dataclass(frozen=True)
class ManagedPrices:
    """infra/pricing/managed_instances.yaml: EC2 On-Demand per instance type, the management fee, the request price."""

    instance_types: dict[str, InstanceType]
    management_fee: Decimal
    request: Decimal
    default_minimum_instances: int
    source: str = ""
    as_of: str = ""

    @classmethod
    def load(cls, path: str | Path = DEFAULT_MANAGED_PRICES) -> "ManagedPrices":
        path = Path(path)
        if not path.is_file():
            raise CapacityError(f"{path} does not exist; run from the repository root or pass its path")
        data = yaml.safe_load(path.read_text()) or {}
        types = {}
        for name, raw in (data.get("instance_types") or {}).items():
            where = f"{path}: instance_types.{name}"
            types[name] = InstanceType(name, _decimal(raw.get("hourly"), f"{where}.hourly"), int(raw.get("vcpus", 0)),
                                       int(raw.get("memory_gib", 0)), int(raw.get("gpus", 0)), int(raw.get("gpu_memory_gib", 0)))
        if not types:
            raise CapacityError(f"{path} has no instance_types; add their On-Demand prices (see infra/pricing/managed_instances.yaml)")
        fee = _decimal(data.get("management_fee"), f"{path}: management_fee")
        if fee >= 1:
            raise CapacityError(f"{path}: management_fee is a share of the On-Demand price (0.15 for 15 %), not {fee}")
        return cls(types, fee, _decimal(data.get("request"), f"{path}: request"),
                   int(data.get("default_minimum_instances", 3)), str(data.get("source", "")), str(data.get("as_of", "")))

    def instance(self, name: str) -> InstanceType:
        if name not in self.instance_types:
            raise CapacityError(f"no On-Demand price for instance type {name!r}; add it to instance_types in the "
                                f"managed-instance cost model (known: {', '.join(sorted(self.instance_types))})")
        return self.instance_types[name]


@dataclass(frozen=True)
class Fleet:
    """One capacity provider and the models whose functions run on it (the catalog's ``accelerator: gpu`` or
    ``capacity: managed`` entries); ``instance_type`` is what an estimate assumes it runs."""

    name: str
    models: tuple[str, ...]
    instance_type: str
    minimum_instances: int | None = None


@dataclass(frozen=True)
class InstanceHours:
    """Instance time of one fleet on one instance type over a month; ``source`` says where it came from."""

    fleet: str
    instance_type: str
    hours: Decimal
    source: str

    @classmethod
    def floor_estimate(cls, fleet: Fleet, month: str, prices: ManagedPrices, *, through: date | None = None) -> "InstanceHours":
        """The fleet's minimum instance count for every hour of ``month`` (up to ``through``, inclusive, if given)."""
        year, number = (int(part) for part in month.split("-"))
        first = date(year, number, 1)
        last = first.replace(day=calendar.monthrange(year, number)[1])
        if through is not None:
            last = min(last, through)
        days = max(0, (last - first).days + 1)
        instances = fleet.minimum_instances if fleet.minimum_instances is not None else prices.default_minimum_instances
        prices.instance(fleet.instance_type)  # an unknown type fails here, naming the fix
        return cls(fleet.name, fleet.instance_type, Decimal(instances * days * 24), "estimate: minimum instances all month")

    @classmethod
    def from_cost_explorer(cls, fleet: str, month: str, client: Any = None) -> list["InstanceHours"]:
        """Metered instance-hours of ``fleet``'s instances in ``month``, per instance type (Cost Explorer)."""
        if client is None:
            import boto3

            client = boto3.client("ce")
        year, number = (int(part) for part in month.split("-"))
        start = date(year, number, 1)
        end = (start + timedelta(days=32)).replace(day=1)
        response = client.get_cost_and_usage(
            TimePeriod={"Start": start.isoformat(), "End": end.isoformat()},
            Granularity="MONTHLY",
            Metrics=["UsageQuantity"],
            Filter={"And": [{"Tags": {"Key": FLEET_TAG, "Values": [fleet]}},
                            {"Dimensions": {"Key": "USAGE_TYPE_GROUP", "Values": [EC2_RUNNING_HOURS]}}]},
            GroupBy=[{"Type": "DIMENSION", "Key": "INSTANCE_TYPE"}],
        )
        hours: dict[str, Decimal] = {}
        for period in response.get("ResultsByTime", []):
            for group in period.get("Groups", []):
                usage = group["Metrics"]["UsageQuantity"]
                if usage.get("Unit", "Hrs") not in ("Hrs", "Hours"):
                    raise CapacityError(f"Cost Explorer reported {usage.get('Unit')!r} for {group['Keys']}; expected hours")
                hours[group["Keys"][0]] = hours.get(group["Keys"][0], Decimal(0)) + _decimal(usage["Amount"], "UsageQuantity")
        return [cls(fleet, kind, amount, "Cost Explorer: metered instance-hours") for kind, amount in sorted(hours.items())]


@dataclass(frozen=True)
class FleetCost:
    fleet: str
    instance_type: str
    hours: Decimal
    source: str
    ec2: Decimal
    management_fee: Decimal

    @property
    def total(self) -> Decimal:
        return self.ec2 + self.management_fee

    def as_json(self) -> dict[str, Any]:
        money = Decimal("0.000001")  # as the bill's aws_cost
        return {"fleet": self.fleet, "instance_type": self.instance_type, "instance_hours": str(self.hours),
                "source": self.source, "ec2": str(self.ec2.quantize(money)),
                "management_fee": str(self.management_fee.quantize(money)), "total": str(self.total.quantize(money))}


def fleet_costs(hours: Iterable[InstanceHours], prices: ManagedPrices) -> list[FleetCost]:
    """EC2 On-Demand and the management fee of each fleet's instance time."""
    costs = []
    for item in hours:
        ec2 = item.hours * prices.instance(item.instance_type).hourly
        costs.append(FleetCost(item.fleet, item.instance_type, item.hours, item.source, ec2, ec2 * prices.management_fee))
    return costs


def share_out(costs: Iterable[FleetCost], fleets: Iterable[Fleet], durations: dict[tuple[str, str], int]) -> tuple[
        dict[tuple[str, str], Decimal], dict[str, Decimal]]:
    """Split each fleet's cost over (tenant, model) keys by their metered ``billed_ms``.

    Returns the share per key and, per fleet, the cost nobody's duration carried (a month with no metered use)."""
    by_fleet: dict[str, Decimal] = {}
    for cost in costs:
        by_fleet[cost.fleet] = by_fleet.get(cost.fleet, Decimal(0)) + cost.total
    shares: dict[tuple[str, str], Decimal] = {}
    idle: dict[str, Decimal] = {}
    for fleet in fleets:
        total = by_fleet.get(fleet.name, Decimal(0))
        keys = {key: ms for key, ms in durations.items() if key[1] in fleet.models and ms > 0}
        used = sum(keys.values())
        if not used:
            if total:
                idle[fleet.name] = total
            continue
        for key, ms in keys.items():
            shares[key] = shares.get(key, Decimal(0)) + total * ms / used
    unknown = sorted(set(by_fleet) - {fleet.name for fleet in fleets})
    if unknown:
        raise CapacityError(f"instance time for fleets {unknown} that no model runs on; name their models (--fleet NAME=MODEL,...)")
    return shares, idle


INSTANCE_TIME_SOURCES = ("cost-explorer", "estimate")


def parse_fleet(spec: str) -> Fleet:
    """``NAME:INSTANCE_TYPE:MODEL[,MODEL...][:MIN_INSTANCES]``, e.g. ``gpu:g6.xlarge:resnet,mobilenet:3``."""
    parts = spec.split(":")
    if len(parts) not in (3, 4) or not all(parts[:3]):
        raise CapacityError(f"--fleet {spec!r} is not NAME:INSTANCE_TYPE:MODEL[,MODEL...][:MIN_INSTANCES], "
                            "e.g. gpu:g6.xlarge:resnet,mobilenet:3")
    minimum = None
    if len(parts) == 4:
        if not parts[3].isdigit():
            raise CapacityError(f"--fleet {spec!r}: MIN_INSTANCES must be a whole number, not {parts[3]!r}")
        minimum = int(parts[3])
    return Fleet(parts[0], tuple(m for m in parts[2].split(",") if m), parts[1], minimum)


def instance_time(fleets: Iterable[Fleet], month: str, prices: ManagedPrices, source: str = "cost-explorer",
                  client: Any = None) -> list[InstanceHours]:
    """Each fleet's instance-hours in ``month``: metered by Cost Explorer, or the minimum-instances estimate."""
    if source not in INSTANCE_TIME_SOURCES:
        raise CapacityError(f"--instance-time {source!r} is not one of {list(INSTANCE_TIME_SOURCES)}")
    hours: list[InstanceHours] = []
    for fleet in fleets:
        if source == "estimate":
            hours.append(InstanceHours.floor_estimate(fleet, month, prices))
            continue
        metered = InstanceHours.from_cost_explorer(fleet.name, month, client)
        if not metered:
            raise CapacityError(
                f"Cost Explorer has no EC2 instance-hours tagged {FLEET_TAG}={fleet.name} in {month}: activate {FLEET_TAG} "
                "as a cost allocation tag (it applies from then on), or bill with --instance-time estimate"
            )
        hours += metered
    return hours
