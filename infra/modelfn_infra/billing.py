"""Usage reports and bills: the usage table (written by the functions' meter) x prices x the AWS cost model.

``UsageReader`` reads the table the meter fills (``modelfn_runtime.usage``); ``PriceTable`` and
``AwsCosts`` load ``infra/pricing/prices.yaml`` and ``infra/pricing/aws.yaml``; ``make_bill`` turns one
calendar month of usage into one line per tenant and model with requests, items, GB-seconds, AWS
cost, price and margin. Money is ``Decimal`` throughout; a tenant's amount due is rounded to cents.

How the free allowance is applied: each tenant's billable requests (status below 400) of the month
are taken day by day (then by model name), and the first ``free_requests`` of them are free.

Example:
    >>> rows = UsageReader("modelfn-usage").month("2026-11")                     # doctest: +SKIP
    >>> bill = make_bill("2026-11", rows, tenants={}, prices=PriceTable.load(), costs=AwsCosts.load())  # doctest: +SKIP
    >>> print(render_bill(bill, "table"))                                         # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from modelfn_runtime.usage import COUNTER_FIELDS, KEY_SEPARATOR, MONTH_INDEX, TRIGGER_PREFIX, UNTENANTED, usage_key

from .capacity import Fleet, FleetCost, ManagedPrices, share_out
from .money import non_negative
from .tenants import Tenant

DEFAULT_PRICES = Path("infra/pricing/prices.yaml")
DEFAULT_AWS_COSTS = Path("infra/pricing/aws.yaml")
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
CENT = Decimal("0.01")
MB_MS_PER_GB_SECOND = Decimal(1024 * 1000)


class BillingError(ValueError):
    """Usage, prices or arguments cannot make a bill; the message names the fix."""


@dataclass(frozen=True)
class UsageRow:
    """One item of the usage table: a tenant's use of one model version on one UTC day."""

    tenant: str
    model: str
    version: str
    day: str
    requests: int = 0
    items: int = 0
    billed_ms: int = 0
    mb_ms: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    memory_mb: int = 0
    architecture: str = "x86_64"
    by_trigger: dict[str, int] = field(default_factory=dict)

    @property
    def gb_seconds(self) -> Decimal:
        return Decimal(self.mb_ms) / MB_MS_PER_GB_SECOND

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> "UsageRow":
        """From a DynamoDB item in the low-level attribute-value format."""
        plain = {name: next(iter(value.values())) for name, value in item.items()}
        day, model, version = plain["usage_key"].split(KEY_SEPARATOR, 2)
        return cls(
            tenant=plain["tenant"],
            model=model,
            version=version,
            day=day,
            **{name: int(plain.get(name, 0)) for name in COUNTER_FIELDS},
            memory_mb=int(plain.get("memory_mb", 0)),
            architecture=plain.get("architecture", "x86_64"),
            by_trigger={name[len(TRIGGER_PREFIX):]: int(value) for name, value in plain.items() if name.startswith(TRIGGER_PREFIX)},
        )


class UsageReader:
    """Reads the usage table: by tenant and date range (the table's key) or by month (its month index)."""

    def __init__(self, table: str, client: Any = None) -> None:
        import boto3

        self.table = table
        self.client = client or boto3.client("dynamodb")

    def month(self, month: str) -> list[UsageRow]:
        check_month(month)
        rows = self._query(
            IndexName=MONTH_INDEX,
            KeyConditionExpression="#month = :month",
            ExpressionAttributeNames={"#month": "month"},
            ExpressionAttributeValues={":month": {"S": month}},
        )
        return sorted(rows, key=lambda r: (r.day, r.tenant, r.model, r.version))

    def query(self, tenant: str | None = None, model: str | None = None, start: date | None = None, end: date | None = None) -> list[UsageRow]:
        """Rows of ``start``..``end`` (inclusive; default: this month so far), optionally of one tenant or model."""
        end = end or datetime.now(timezone.utc).date()
        start = start or end.replace(day=1)
        if start > end:
            raise BillingError(f"--from {start} is after --to {end}; swap them")
        low, high = start.isoformat(), usage_key(end.isoformat(), "~", "")  # "~" sorts after every model name
        if tenant:
            rows = self._query(
                KeyConditionExpression="tenant = :tenant AND usage_key BETWEEN :low AND :high",
                ExpressionAttributeValues={":tenant": {"S": tenant}, ":low": {"S": low}, ":high": {"S": high}},
            )
        else:
            rows = []
            for month in months_between(start, end):
                rows += self._query(
                    IndexName=MONTH_INDEX,
                    KeyConditionExpression="#month = :month AND usage_key BETWEEN :low AND :high",
                    ExpressionAttributeNames={"#month": "month"},
                    ExpressionAttributeValues={":month": {"S": month}, ":low": {"S": low}, ":high": {"S": high}},
                )
        return sorted((r for r in rows if model in (None, r.model)), key=lambda r: (r.day, r.tenant, r.model, r.version))

    def _query(self, **kwargs: Any) -> list[UsageRow]:
        pages = self.client.get_paginator("query").paginate(TableName=self.table, **kwargs)
        return [UsageRow.from_item(item) for page in pages for item in page["Items"]]


def check_month(month: str) -> None:
    if not MONTH.fullmatch(month):
        raise BillingError(f"month {month[:20]!r} is not YYYY-MM; e.g. --month 2026-11")


def months_between(start: date, end: date) -> list[str]:
    months, day = [], start.replace(day=1)
    while day <= end:
        months.append(day.strftime("%Y-%m"))
        day = (day + timedelta(days=32)).replace(day=1)
    return months


def _decimal(value: Any, where: str) -> Decimal:
    return non_negative(value, where, BillingError)


@dataclass(frozen=True)
class PlanPrice:
    per_1k_requests: Decimal
    free_requests: int
    per_gb_second: Decimal
    models: dict[str, Decimal]

    def per_request(self, model: str) -> Decimal:
        return self.models.get(model, self.per_1k_requests) / 1000


@dataclass(frozen=True)
class PriceTable:
    """What tenants pay, per plan (infra/pricing/prices.yaml)."""

    currency: str
    plans: dict[str, PlanPrice]
    unknown_tenant_plan: str
    source: str = ""
    as_of: str = ""

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PRICES) -> "PriceTable":
        data = _load_yaml(path)
        plans = {}
        for name, raw in (data.get("plans") or {}).items():
            where = f"{path}: plan {name!r}"
            plans[name] = PlanPrice(
                per_1k_requests=_decimal(raw.get("per_1k_requests", 0), f"{where} per_1k_requests"),
                free_requests=int(_decimal(raw.get("free_requests", 0), f"{where} free_requests")),
                per_gb_second=_decimal(raw.get("per_gb_second", 0), f"{where} per_gb_second"),
                models={model: _decimal(price, f"{where} models.{model}") for model, price in (raw.get("models") or {}).items()},
            )
        if not plans:
            raise BillingError(f"{path} has no plans; add a `plans:` section (see infra/pricing/prices.yaml)")
        unknown = data.get("unknown_tenant_plan", "")
        if unknown not in plans:
            raise BillingError(f"{path}: unknown_tenant_plan {unknown!r} must be one of the plans {sorted(plans)}")
        return cls(str(data.get("currency", "USD")), plans, unknown, str(data.get("source", "")), str(data.get("as_of", "")))


@dataclass(frozen=True)
class AwsCosts:
    """What a request costs in AWS (infra/pricing/aws.yaml): unit prices x the units a request uses."""

    units: dict[str, Decimal]
    gb_second: dict[str, Decimal]
    per_request: dict[str, Decimal]
    per_trigger: dict[str, dict[str, Decimal]]
    source: str = ""
    as_of: str = ""

    @classmethod
    def load(cls, path: str | Path = DEFAULT_AWS_COSTS) -> "AwsCosts":
        data = _load_yaml(path)
        units = {name: _decimal(price, f"{path}: units.{name}") for name, price in (data.get("units") or {}).items()}

        def uses(raw: Mapping[str, Any] | None, where: str) -> dict[str, Decimal]:
            unknown = sorted(set(raw or {}) - set(units))
            if unknown:
                raise BillingError(f"{path}: {where} names {unknown}, which are not in `units`; add their prices there")
            return {name: _decimal(count, f"{path}: {where}.{name}") for name, count in (raw or {}).items()}

        return cls(
            units=units,
            gb_second={arch: _decimal(price, f"{path}: gb_second.{arch}") for arch, price in (data.get("gb_second") or {}).items()},
            per_request=uses(data.get("per_request"), "per_request"),
            per_trigger={trigger: uses(raw, f"per_trigger.{trigger}") for trigger, raw in (data.get("per_trigger") or {}).items()},
            source=json.dumps(data.get("source", "")),
            as_of=str(data.get("as_of", "")),
        )

    def cost(self, row: UsageRow) -> Decimal:
        """AWS cost of one usage row: Lambda requests and GB-seconds, the meter's write, each trigger's requests."""
        if row.architecture not in self.gb_second:
            raise BillingError(f"no GB-second price for architecture {row.architecture!r}; add it to gb_second in the cost model")
        return row.gb_seconds * self.gb_second[row.architecture] + self.request_cost(row)

    def request_cost(self, row: UsageRow, lambda_request: Decimal | None = None) -> Decimal:
        """Everything but compute: Lambda requests (at ``lambda_request`` when given: Managed Instances' own price),
        the meter's write, each trigger's requests. A function on Lambda Managed Instances pays this and its share
        of the fleet's instance time instead of GB-seconds."""
        units = {**self.units, "lambda_request": lambda_request} if lambda_request is not None else self.units
        total = row.requests * sum((units[u] * n for u, n in self.per_request.items()), Decimal(0))
        for trigger, count in row.by_trigger.items():
            total += count * sum((units[u] * n for u, n in self.per_trigger.get(trigger, {}).items()), Decimal(0))
        return total


@dataclass(frozen=True)
class Capacity:
    """The month's Lambda Managed Instances: which models run on which fleet, and what each fleet's instances cost
    (see capacity.py). Their rows are priced by instance time instead of GB-seconds."""

    fleets: tuple[Fleet, ...]
    costs: tuple[FleetCost, ...]
    prices: ManagedPrices

    def fleet_of(self, model: str) -> Fleet | None:
        return next((fleet for fleet in self.fleets if model in fleet.models), None)


@dataclass
class BillLine:
    tenant_id: str
    tenant: str
    plan: str
    model: str
    requests: int = 0
    billable: int = 0
    free: int = 0
    items: int = 0
    gb_seconds: Decimal = Decimal(0)
    aws_cost: Decimal = Decimal(0)
    price: Decimal = Decimal(0)
    instance_cost: Decimal = Decimal(0)
    """The part of ``aws_cost`` that is this line's share of a Managed Instances fleet (0 for Lambda functions)."""

    @property
    def margin(self) -> Decimal:
        return self.price - self.aws_cost


@dataclass
class Bill:
    month: str
    currency: str
    lines: list[BillLine]
    capacity: list[FleetCost] = field(default_factory=list)

    def due(self) -> dict[str, Decimal]:
        """Amount due per tenant, rounded to cents."""
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for line in self.lines:
            totals[line.tenant] += line.price
        return {tenant: total.quantize(CENT, ROUND_HALF_UP) for tenant, total in totals.items()}

    def totals(self) -> BillLine:
        total = BillLine("", "TOTAL", "", "")
        for line in self.lines:
            for name in ("requests", "billable", "free", "items", "gb_seconds", "aws_cost", "price"):
                setattr(total, name, getattr(total, name) + getattr(line, name))
        return total


def make_bill(
    month: str,
    rows: Iterable[UsageRow],
    tenants: Mapping[str, Tenant],
    prices: PriceTable,
    costs: AwsCosts,
    capacity: Capacity | None = None,
) -> Bill:
    """One line per tenant and model for ``month`` (rows of other months are ignored).

    ``tenants`` maps tenant ids (API key ids) and names to tenants (see ``tenant_index``); usage under a
    tenant's name (an S3 prefix, an SQS message's tenant), under its principal (iam, Cognito) and under each of its key
    ids (rotation) is one tenant, billed on its current key's line; a metered tenant that is none of these
    is billed at ``unknown_tenant_plan``; untenanted work (``-``) is listed at price 0. Models on a Lambda
    Managed Instances fleet (``capacity``) cost their requests plus a share of the fleet's instance time.
    """
    check_month(month)
    by_tenant: dict[str, list[UsageRow]] = defaultdict(list)
    for row in rows:
        if row.day.startswith(month + "-"):
            known = tenants.get(row.tenant)  # work named by the tenant's name joins its API key's usage
            known = tenants.get(known.name, known) if known else None  # a rotated tenant's keys are one tenant
            by_tenant[known.id if known else row.tenant].append(row)
    lines: list[BillLine] = []
    for tenant_id in sorted(by_tenant):
        tenant = tenants.get(tenant_id)
        name = tenant.name if tenant else ("(untenanted)" if tenant_id == UNTENANTED else tenant_id)
        plan_name = tenant.plan if tenant else ("-" if tenant_id == UNTENANTED else prices.unknown_tenant_plan)
        if tenant and plan_name not in prices.plans:
            raise BillingError(f"tenant {name!r} is on plan {plan_name!r}, which has no prices; add it to the price table")
        plan = prices.plans.get(plan_name)
        allowance = plan.free_requests if plan else 0
        per_model: dict[str, BillLine] = {}
        for row in sorted(by_tenant[tenant_id], key=lambda r: (r.day, r.model, r.version)):
            line = per_model.setdefault(row.model, BillLine(tenant_id, name, plan_name, row.model))
            free = min(allowance, row.ok)
            allowance -= free
            line.requests += row.requests
            line.free += free
            line.billable += row.ok - free if plan else 0  # untenanted work is nobody's to pay
            line.items += row.items
            line.gb_seconds += row.gb_seconds
            managed = capacity is not None and capacity.fleet_of(row.model) is not None
            line.aws_cost += costs.request_cost(row, capacity.prices.request) if managed else costs.cost(row)
            if plan:
                line.price += (row.ok - free) * plan.per_request(row.model) + row.gb_seconds * plan.per_gb_second
        lines += [per_model[model] for model in sorted(per_model)]
    if capacity is None:
        return Bill(month, prices.currency, lines)
    return _with_capacity(Bill(month, prices.currency, lines, list(capacity.costs)), by_tenant, capacity)


def _with_capacity(bill: Bill, by_tenant: dict[str, list[UsageRow]], capacity: Capacity) -> Bill:
    """Add each fleet's instance cost to its models' lines by metered duration; unused capacity gets its own line."""
    durations: dict[tuple[str, str], int] = defaultdict(int)
    for tenant_id, rows in by_tenant.items():
        for row in rows:
            durations[(tenant_id, row.model)] += row.billed_ms
    shares, idle = share_out(capacity.costs, capacity.fleets, durations)
    for line in bill.lines:
        share = shares.get((line.tenant_id, line.model), Decimal(0))
        line.instance_cost += share
        line.aws_cost += share
    for fleet, amount in sorted(idle.items()):
        bill.lines.append(BillLine(UNTENANTED, "(idle capacity)", "-", f"fleet {fleet}", aws_cost=amount, instance_cost=amount))
    return bill


BILL_COLUMNS = ("tenant", "tenant_id", "plan", "model", "requests", "free", "billable", "items", "gb_seconds", "aws_cost", "price", "margin")


def _cells(line: BillLine) -> dict[str, Any]:
    return {
        "tenant": line.tenant,
        "tenant_id": line.tenant_id,
        "plan": line.plan,
        "model": line.model,
        "requests": line.requests,
        "free": line.free,
        "billable": line.billable,
        "items": line.items,
        "gb_seconds": line.gb_seconds.quantize(Decimal("0.001"), ROUND_HALF_UP),
        "aws_cost": line.aws_cost.quantize(Decimal("0.000001"), ROUND_HALF_UP),
        "price": line.price.quantize(Decimal("0.000001"), ROUND_HALF_UP),
        "margin": line.margin.quantize(Decimal("0.000001"), ROUND_HALF_UP),
    }


def render_bill(bill: Bill, fmt: str = "table") -> str:
    """The bill as an aligned table, CSV (one row per line) or JSON (lines, totals, amount due per tenant)."""
    rows = [_cells(line) for line in bill.lines]
    if fmt == "json":
        return json.dumps(
            {
                "month": bill.month,
                "currency": bill.currency,
                "lines": rows,
                "totals": {k: v for k, v in _cells(bill.totals()).items() if k not in ("tenant", "tenant_id", "plan", "model")},
                "due": bill.due(),
                "capacity": [cost.as_json() for cost in bill.capacity],
            },
            indent=2,
            default=str,
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=BILL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    if fmt != "table":
        raise BillingError(f"format {fmt!r} is not one of table, csv, json")
    if not rows:
        return f"no metered usage in {bill.month}"
    totals = _cells(bill.totals())
    text = _table([*rows, {**totals, "tenant_id": "", "plan": "", "model": ""}], BILL_COLUMNS, rule_before_last=True)
    due = "\n".join(f"  {tenant:<24} {bill.currency} {amount}" for tenant, amount in sorted(bill.due().items()))
    return f"bill for {bill.month} ({bill.currency})\n{text}\namount due per tenant (rounded to cents):\n{due}{_capacity_text(bill)}"


def _capacity_text(bill: Bill) -> str:
    """The Lambda Managed Instances fleets behind the aws_cost of their models' lines."""
    if not bill.capacity:
        return ""
    rows = [{"fleet": c.fleet, "instance_type": c.instance_type, "instance_hours": c.hours.quantize(Decimal("0.01")),
             "ec2": c.ec2.quantize(Decimal("0.01")), "fee": c.management_fee.quantize(Decimal("0.01")),
             "total": c.total.quantize(Decimal("0.01")), "source": c.source} for c in bill.capacity]
    columns = ("fleet", "instance_type", "instance_hours", "ec2", "fee", "total", "source")
    return ("\nLambda Managed Instances (instance time, shared by metered duration; in aws_cost above):\n"
            + _table(rows, columns))


USAGE_COLUMNS = ("day", "tenant", "model", "version", "requests", "ok", "client_errors", "server_errors", "items", "gb_seconds", "request_bytes", "response_bytes")


def render_usage(rows: list[UsageRow], names: Mapping[str, str], fmt: str = "table") -> str:
    """Usage rows (one per tenant, model version and day) as a table, CSV or JSON; tenants shown by name."""
    cells = [
        {
            **{column: getattr(row, column) for column in USAGE_COLUMNS if column not in ("tenant", "gb_seconds")},
            "tenant": names.get(row.tenant, row.tenant),
            "gb_seconds": row.gb_seconds.quantize(Decimal("0.001"), ROUND_HALF_UP),
        }
        for row in rows
    ]
    if fmt == "json":
        return json.dumps(cells, indent=2, default=str)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=USAGE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(cells)
        return out.getvalue()
    if fmt != "table":
        raise BillingError(f"format {fmt!r} is not one of table, csv, json")
    return _table(cells, USAGE_COLUMNS) if cells else "no metered usage in that range"


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...], rule_before_last: bool = False) -> str:
    text = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in text)) for i, c in enumerate(columns)]
    numeric = [all(_is_number(r[i]) for r in text) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)).rstrip()

    lines = [line(list(columns)), line(["-" * w for w in widths])] + [line(r) for r in text]
    if rule_before_last:
        lines.insert(len(lines) - 1, line(["-" * w for w in widths]))
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return text == ""
    return True


def plot_daily(rows: Iterable[UsageRow], month: str, names: Mapping[str, str], path: str | Path) -> Path:
    """A PNG of daily requests per tenant in ``month`` (stacked bars, one colour per tenant)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_month(month)
    first = date.fromisoformat(month + "-01")
    days = [(first + timedelta(days=i)) for i in range(31) if (first + timedelta(days=i)).month == first.month]
    daily: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        if row.day.startswith(month + "-"):
            daily[names.get(row.tenant, row.tenant)][row.day] += row.requests
    figure, axes = plt.subplots(figsize=(10, 4.5), dpi=100)
    bottom = [0] * len(days)
    for tenant in sorted(daily):
        heights = [daily[tenant].get(day.isoformat(), 0) for day in days]
        axes.bar([day.day for day in days], heights, bottom=bottom, label=tenant)
        bottom = [b + h for b, h in zip(bottom, heights)]
    axes.set_title(f"modelfn: requests per day and tenant, {month}")
    axes.set_xlabel("day of month (UTC)")
    axes.set_ylabel("requests")
    axes.set_xticks([day.day for day in days])
    axes.tick_params(axis="x", labelsize=7)
    if daily:
        axes.legend(title="tenant", fontsize=8)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, format="png")
    plt.close(figure)
    return path


def tenant_index(tenants: Iterable[Tenant]) -> dict[str, Tenant]:
    """Tenants by id, by name and by principal (ids win), as ``make_bill`` looks up the metered tenant: a key id
    (api_key, jwt with the Lambda authorizer), an IAM principal (iam) or a token's tenant claim (jwt with Cognito)."""
    from modelfn_runtime.identity import principal_of

    tenants = list(tenants)
    index = {t.name: t for t in sorted(tenants, key=lambda t: t.enabled)}  # an enabled tenant wins its name
    for tenant in sorted(tenants, key=lambda t: (t.enabled, t.created)):  # the newest enabled key wins its principal
        if tenant.principal:
            index[tenant.principal] = index[principal_of(tenant.principal)] = tenant
    index.update({t.id: t for t in tenants})
    return index


def _load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise BillingError(f"{path} does not exist; run from the repository root or pass its path")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise BillingError(f"{path} is not a YAML mapping")
    return data
