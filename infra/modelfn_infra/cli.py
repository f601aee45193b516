"""The ``modelfn`` command line.

    modelfn export SOURCE --name NAME ...        TensorFlow/Keras -> verified ONNX artifact + model card
    modelfn push NAME[/VERSION] --bucket B       upload an exported model to S3
    modelfn catalog add NAME [--version V]       serve an exported version: edit the catalog, render template.yaml
    modelfn template render|check                catalog (infra/catalog.yaml) -> template.yaml
    modelfn local invoke LOGICAL_ID -e EVENT     run one function through the Lambda RIE, no Docker
    modelfn local start-api [--port 3000]        API Gateway + the functions on 127.0.0.1
    modelfn build                                lean python3.12 artifacts + ONNX Runtime layer, size-checked
    modelfn deploy [--dry-run]                   sam deploy of the build with samconfig.toml
    modelfn promote NAME VERSION                 serve another model version (a canary deployment)
    modelfn tenants create|list|revoke           API keys attached to usage plans (tiers)
    modelfn usage [--tenant T] [--from D --to D] metered usage per tenant, model and day
    modelfn bill --month YYYY-MM [--plot F.png]  requests, GB-seconds, AWS cost, price and margin per tenant and model
                 [--fleet NAME:TYPE:MODELS]     (Managed Instances models: by instance time instead of GB-seconds)
    modelfn evaluate NAME --data FILE.npz        accuracy, precision/recall/F1, confusion matrix, latency of an endpoint
    modelfn bench [MODEL...] [--quick]           latency, cold start, memory vs bare onnxruntime and TensorFlow -> BENCHMARKS.md
    modelfn tune NAME [--p99-ms X] [--write]     cost per 1M requests at each memory size; recommend memory_mb

Subcommands import their heavy dependencies only when they run, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelfn_runtime import environment as names  # names only: no dependencies

from .tenants import DEFAULT_LOCAL_TENANTS  # a light module: boto3 is imported only when a command runs

DEFAULT_CATALOG = "infra/catalog.yaml"
DEFAULT_TEMPLATE = "template.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelfn", description="Model as a Service on AWS Lambda + API Gateway.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    from modelfn_export.cli import add_export_parser, add_push_parser

    add_export_parser(commands)
    add_push_parser(commands)
    _add_catalog_parser(commands)
    _add_template_parser(commands)
    _add_local_parser(commands)
    _add_release_parsers(commands)
    _add_billing_parsers(commands)
    _add_evaluate_parser(commands)
    _add_bench_parsers(commands)
    return parser


def _add_catalog_parser(commands) -> None:
    catalog = commands.add_parser("catalog", help="edit the model catalog (infra/catalog.yaml)")
    actions = catalog.add_subparsers(title="actions", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="serve an exported model version: add or update its catalog entry, then render template.yaml"
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("--version", default=None, help="version to serve (default: the newest in the store)")
    add.add_argument("--store", default="models", metavar="DIR", help="local model store (default models)")
    add.add_argument("--catalog", default=DEFAULT_CATALOG)
    add.add_argument("--template", default=DEFAULT_TEMPLATE)
    add.add_argument("--no-render", action="store_true", help="edit the catalog only")
    add.set_defaults(func=_catalog_add)


def _catalog_add(args: argparse.Namespace) -> int:
    from .catalog import CatalogError, rendered
    from .catalog_edit import add_model

    try:
        change = add_model(args.catalog, args.name, args.version, store=args.store)
        if not args.no_render:
            Path(args.template).write_text(rendered(args.catalog))
    except (CatalogError, OSError) as error:
        return _fail(str(error))
    entry = change.entry
    if change.previous is None:
        print(f"{args.catalog}: added {entry.name} version {entry.version}")
    elif change.previous != entry.version:
        was = f" (was {change.previous})" if change.previous else ""
        print(f"{args.catalog}: {entry.name} now serves version {entry.version}{was}")
    else:
        print(f"{args.catalog}: {entry.name} already serves version {entry.version}")
    if not args.no_render:
        print(f"wrote {args.template}")
    if not change.in_store:
        print(f"note: {args.store}/{entry.name}/{entry.version} is not in the local store; `modelfn local start-api` needs it "
              f"there (or --parameter-overrides ModelBucket=BUCKET after `modelfn push`)")
    print(f"next: modelfn local start-api   (or: modelfn push {entry.name}/{entry.version} --bucket BUCKET --prefix models/ "
          "&& sam build && sam deploy)")
    return 0


def _add_evaluate_parser(commands) -> None:
    from .evaluate import add_evaluate_parser

    add_evaluate_parser(commands)


def _add_bench_parsers(commands) -> None:
    from .bench.cli import add_bench_parser, add_tune_parser

    add_bench_parser(commands)
    add_tune_parser(commands)


def _add_template_parser(commands) -> None:
    template = commands.add_parser("template", help="render template.yaml from the model catalog, or check drift")
    actions = template.add_subparsers(title="actions", metavar="ACTION", required=True)
    for name, func, help_text in [
        ("render", _template_render, "write template.yaml from the catalog"),
        ("check", _template_check, "exit 1 when template.yaml is not what the catalog renders"),
    ]:
        action = actions.add_parser(name, help=help_text)
        action.add_argument("--catalog", default=DEFAULT_CATALOG)
        action.add_argument("--template", default=DEFAULT_TEMPLATE)
        action.set_defaults(func=func)


def _template_render(args: argparse.Namespace) -> int:
    from .catalog import CatalogError, rendered

    try:
        Path(args.template).write_text(rendered(args.catalog))
    except (CatalogError, OSError) as error:
        return _fail(str(error))
    print(f"wrote {args.template} from {args.catalog}")
    return 0


def _template_check(args: argparse.Namespace) -> int:
    from .catalog import CatalogError, drift

    try:
        problem = drift(args.catalog, args.template)
    except (CatalogError, OSError) as error:
        return _fail(str(error))
    if problem:
        return _fail(problem, status=1)
    print(f"{args.template} matches {args.catalog}")
    return 0


def _add_local_parser(commands) -> None:
    local = commands.add_parser("local", help="run functions and the API locally through the Lambda RIE (no Docker)")
    actions = local.add_subparsers(title="actions", metavar="ACTION", required=True)

    def common(action: argparse.ArgumentParser) -> None:
        action.add_argument("-t", "--template", default=DEFAULT_TEMPLATE)
        action.add_argument("-n", "--env-vars", help="JSON file of environment overrides, as for `sam local`")
        action.add_argument(
            "--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE", help="template parameter values"
        )
        action.add_argument("--python", default=sys.executable, help="interpreter that runs the functions")
        action.add_argument(
            "--moto", action="store_true",
            help="serve AWS from a moto server on 127.0.0.1: the template's buckets, queues and tables are created and "
            "events/data/ is copied into the data bucket (what the S3, SQS and async sample events name)",
        )

    invoke = actions.add_parser("invoke", help="invoke one function with an event file and print its response")
    invoke.add_argument("function", metavar="LOGICAL_ID")
    invoke.add_argument("-e", "--event", required=True, help="event JSON file ('-' for stdin)")
    common(invoke)
    invoke.set_defaults(func=_local_invoke)

    start = actions.add_parser("start-api", help="serve the template's API on 127.0.0.1")
    start.add_argument("-p", "--port", type=int, default=3000)
    start.add_argument(
        "--idle-shutdown", type=float, default=3600, metavar="SECONDS", help="stop after this long without requests (0: never)"
    )
    start.add_argument("--max-sandboxes", type=int, default=2, help="warm processes per function at most")
    start.add_argument("--tenants", default=str(DEFAULT_LOCAL_TENANTS), metavar="FILE",
                       help="local tenants and their API keys (`modelfn tenants create ... --local`)")
    start.add_argument("--no-api-keys", action="store_true",
                       help="skip API-key checks, throttling and quotas (as `sam local start-api` does)")
    common(start)
    start.set_defaults(func=_local_start_api)


def _local_invoke(args: argparse.Namespace) -> int:
    from .local.commands import invoke

    return invoke(args)


def _local_start_api(args: argparse.Namespace) -> int:
    from .local.commands import start_api

    return start_api(args)


def _add_release_parsers(commands) -> None:
    build = commands.add_parser("build", help="build lean, size-checked artifacts for python3.12 (no python3.12 needed)")
    build.add_argument("-t", "--template", default=DEFAULT_TEMPLATE)
    build.add_argument("-b", "--build-dir", default=".aws-sam/build", help="where sam package/deploy look (default)")
    build.add_argument("--model-store", help=f"bake models from this store into Image functions (else they read {names.MODEL_URI})")
    build.add_argument("--base-image", help="replace the Dockerfile's Lambda base image (Image functions)")
    build.set_defaults(func=_build)

    deploy = commands.add_parser("deploy", help="sam deploy of the build, configured by samconfig.toml")
    deploy.add_argument("--dry-run", action="store_true", help="print the change set offline; send nothing to AWS")
    deploy.add_argument("--against", metavar="TEMPLATE", help="with --dry-run: a deployed template to diff against")
    deploy.add_argument("-t", "--template", help="built template (default .aws-sam/build/template.yaml)")
    deploy.add_argument("--config-file", default="samconfig.toml")
    deploy.add_argument("--config-env", default="default")
    deploy.add_argument("--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE")
    deploy.set_defaults(func=_deploy)

    promote = commands.add_parser("promote", help="serve another version of a model (deployed as a canary)")
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument("--store", help="local model store or s3://bucket/prefix that must hold NAME/VERSION")
    promote.add_argument("--catalog", default=DEFAULT_CATALOG)
    promote.add_argument("--template", default=DEFAULT_TEMPLATE)
    promote.set_defaults(func=_promote)


def _build(args: argparse.Namespace) -> int:
    from .build import BuildError, build, size_report

    try:
        result = build(args.template, args.build_dir, model_store=args.model_store, base_image=args.base_image)
    except BuildError as error:
        return _fail(str(error), status=1)
    except OSError as error:
        return _fail(str(error))
    print(size_report(result))
    print(f"built {result.template}; next: `modelfn deploy --dry-run`, then `modelfn deploy`")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from .deploy import DeployError, deploy

    try:
        return deploy(args)
    except DeployError as error:
        return _fail(str(error))


def _promote(args: argparse.Namespace) -> int:
    from .catalog import CatalogError
    from .deploy import DeployError, promote

    try:
        previous = promote(args.catalog, args.template, args.name, args.version, store=args.store)
    except (CatalogError, DeployError, OSError) as error:
        return _fail(str(error))
    print(f"{args.name}: version {previous} -> {args.version} in {args.catalog}; {args.template} re-rendered")
    print("next: `modelfn build && modelfn deploy` publishes a new function version and CodeDeploy shifts the "
          "live alias to it (canary/linear per the catalog), rolling back if its alarms fire")
def _add_billing_parsers(commands) -> None:
    def where(action: argparse.ArgumentParser) -> None:
        action.add_argument("--stack", default="modelfn", help="the deployed stack's name (usage plans are <stack>-<plan>)")
        action.add_argument("--local", action="store_true", help="the local API's tenants (a file) instead of API Gateway")
        action.add_argument("--tenants", default=str(DEFAULT_LOCAL_TENANTS), metavar="FILE", help="local tenants file (with --local)")
        action.add_argument("-t", "--template", default=DEFAULT_TEMPLATE, help="template whose usage plans the local API uses")

    def table(action: argparse.ArgumentParser) -> None:
        action.add_argument("--table", help=f"usage table (default: ${names.USAGE_TABLE}, else <stack>-usage)")
        action.add_argument("--format", choices=("table", "csv", "json"), default="table")

    tenants = commands.add_parser("tenants", help="create, list, rotate and revoke tenants (API keys on usage plans)")
    actions = tenants.add_subparsers(title="actions", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key for NAME on a plan and print it (once)")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--plan", required=True, help="usage plan, e.g. free or pro (infra/catalog.yaml usage_plans)")
    create.add_argument("--principal", help="auth iam: the tenant's IAM user or role ARN; auth jwt: the value of the "
                        "token's tenant claim (default: the tenant's name)")
    where(create)
    create.set_defaults(func=_tenants_create)
    listing = actions.add_parser("list", help="list tenants: id, name, plan, enabled, created, key age, principal")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    where(listing)
    listing.set_defaults(func=_tenants_list)
    revoke = actions.add_parser("revoke", help="detach a tenant's key from its plan and disable it")
    revoke.add_argument("name", metavar="NAME_OR_ID")
    where(revoke)
    revoke.set_defaults(func=_tenants_revoke)
    rotate = actions.add_parser("rotate", help="issue a new key for a tenant and revoke the old one after a grace period")
    rotate.add_argument("name", metavar="NAME_OR_ID")
    rotate.add_argument("--grace-hours", type=float, default=24.0, help="how long the old key keeps working (default 24; 0: now)")
    where(rotate)
    rotate.set_defaults(func=_tenants_rotate)
    sweep = actions.add_parser("sweep", help="revoke rotated-out keys whose grace period has ended (run it on a schedule)")
    where(sweep)
    sweep.set_defaults(func=_tenants_sweep)
    token = actions.add_parser("token", help="auth jwt, local API only: sign an access token for a tenant with the local issuer")
    token.add_argument("name", metavar="NAME_OR_ID")
    token.add_argument("--ttl-s", type=int, default=3600, help="lifetime in seconds (default 3600)")
    where(token)
    token.set_defaults(func=_tenants_token)

    usage = commands.add_parser("usage", help="metered usage per tenant, model and day")
    usage.add_argument("--tenant", help="tenant name or id")
    usage.add_argument("--model")
    usage.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="first day (default: the 1st of --to's month)")
    usage.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="last day, inclusive (default: today, UTC)")
    where(usage)
    table(usage)
    usage.set_defaults(func=_usage)

    bill = commands.add_parser("bill", help="a month's bill: per tenant and model, requests, GB-seconds, AWS cost, price, margin")
    bill.add_argument("--month", required=True, metavar="YYYY-MM")
    bill.add_argument("--plot", metavar="FILE.png", help="also draw daily requests per tenant into this PNG")
    bill.add_argument("--prices", default="infra/pricing/prices.yaml", help="price table")
    bill.add_argument("--aws-costs", default="infra/pricing/aws.yaml", help="AWS cost model")
    bill.add_argument("--fleet", action="append", default=[], metavar="NAME:INSTANCE_TYPE:MODEL[,MODEL][:MIN]",
                      help="models on a Lambda Managed Instances capacity provider (GPU or capacity: managed): priced by "
                           "instance time, not GB-seconds (repeatable)")
    bill.add_argument("--instance-time", choices=("cost-explorer", "estimate"), default="cost-explorer",
                      help="fleets' instance-hours: metered (Cost Explorer, tag modelfn:fleet) or the minimum-instances estimate")
    bill.add_argument("--managed-prices", default="infra/pricing/managed_instances.yaml", help="Managed Instances cost model")
    where(bill)
    table(bill)
    bill.set_defaults(func=_bill)


def _directory(args: argparse.Namespace):
    from .tenants import ApiGatewayTenants, LocalTenants

    if args.local:
        from .local.apikeys import plans_from_template

        return LocalTenants(args.tenants, plans_from_template(_local_resources(args)))
    return ApiGatewayTenants(stack=args.stack)


def _local_resources(args: argparse.Namespace) -> dict:
    import yaml

    return yaml.safe_load(Path(args.template).read_text()).get("Resources") or {}


def _billing_errors():
    from botocore.exceptions import BotoCoreError, ClientError

    from .billing import BillingError
    from .capacity import CapacityError
    from .tenants import TenantError

    return (BillingError, CapacityError, TenantError, BotoCoreError, ClientError, OSError)


def _tenants_create(args: argparse.Namespace) -> int:
    try:
        directory = _directory(args)
        directory.sweep()
        principal = args.principal
        mode = _local_mode(args) if args.local else None
        if mode == "iam" and principal is None:  # the local principal, named so the bill can map it back
            from .tenants import LOCAL_ACCOUNT

            principal = f"arn:aws:iam::{LOCAL_ACCOUNT}:user/{args.name}"
        tenant = directory.create(args.name, args.plan, principal)
    except _billing_errors() as error:
        return _fail(str(error))
    print(f"created tenant {tenant.name} (id {tenant.id}) on plan {tenant.plan}"
          + (f", principal {tenant.principal}" if tenant.principal else ""))
    print(f"API key (shown once; give it to the tenant): {tenant.key}")
    print(f"the tenant sends it on every model request: curl -H 'x-api-key: {tenant.key}' ...")
    if mode == "iam":
        found = directory.sigv4_credentials(tenant.id)
        print(f"local SigV4 credentials (sign for service execute-api; see README): AWS_ACCESS_KEY_ID={found.access_key_id} "
              f"AWS_SECRET_ACCESS_KEY={found.secret_access_key}")
    elif mode == "jwt":
        print(f"local access token: `modelfn tenants token {tenant.name} --local` (send 'Authorization: Bearer <token>')")
    return 0


def _local_mode(args: argparse.Namespace) -> str:
    from .local.credentials import AuthSettings

    return AuthSettings.from_template(_local_resources(args)).mode


def _tenants_list(args: argparse.Namespace) -> int:
    import json

    try:
        tenants = _directory(args).list()
    except _billing_errors() as error:
        return _fail(str(error))
    if args.format == "json":
        print(json.dumps([{**t.public(), "key_age_days": t.age_days()} for t in tenants], indent=2))
        return 0
    print(f"{'name':<24} {'id':<12} {'plan':<8} {'enabled':<8} {'created':<21} {'key age':<8} principal / expires")
    for t in tenants:
        extra = " ".join(part for part in (t.principal or "", f"expires {t.expires}" if t.expires and t.enabled else "") if part)
        print(f"{t.name:<24} {t.id:<12} {t.plan:<8} {'yes' if t.enabled else 'no':<8} {t.created:<21} "
              f"{str(t.age_days()) + ' d':<8} {extra}".rstrip())
    return 0


def _tenants_revoke(args: argparse.Namespace) -> int:
    try:
        tenant = _directory(args).revoke(args.name)
    except _billing_errors() as error:
        return _fail(str(error))
    print(f"revoked tenant {tenant.name} (id {tenant.id}): its key no longer passes; its usage stays on the bill")
    return 0


def _tenants_rotate(args: argparse.Namespace) -> int:
    try:
        directory = _directory(args)
        directory.sweep()
        new, old = directory.rotate(args.name, args.grace_hours)
    except _billing_errors() as error:
        return _fail(str(error))
    print(f"rotated tenant {new.name}: new key id {new.id} on plan {new.plan}")
    print(f"new API key (shown once; give it to the tenant): {new.key}")
    if old.enabled:
        print(f"the old key (id {old.id}) keeps working until {old.expires}; then `modelfn tenants sweep` (also run by "
              "every tenants command) revokes it")
    else:
        print(f"the old key (id {old.id}) is revoked now")
    return 0


def _tenants_sweep(args: argparse.Namespace) -> int:
    try:
        revoked = _directory(args).sweep()
    except _billing_errors() as error:
        return _fail(str(error))
    for tenant in revoked:
        print(f"revoked rotated-out key {tenant.id} of tenant {tenant.name} (grace ended {tenant.expires})")
    print(f"{len(revoked)} key(s) revoked")
    return 0


def _tenants_token(args: argparse.Namespace) -> int:
    from .local.credentials import AuthSettings
    from .local.issuer import ISSUER_DIRECTORY, LocalIssuer
    from .tenants import find

    if not args.local:
        return _fail("tokens of a deployed API come from its issuer (Cognito or your OIDC provider); "
                     "`modelfn tenants token` signs local tokens only: add --local")
    try:
        settings = AuthSettings.from_template(_local_resources(args))
        if settings.mode != "jwt":
            return _fail(f"{args.template} is in auth mode {settings.mode}, not jwt; set auth: {{mode: jwt, issuer: ..., "
                         "audience: ...}} in infra/catalog.yaml and run `modelfn template render`")
        tenant = find(_directory(args).list(), args.name)
        issuer = LocalIssuer(Path(args.tenants).parent / ISSUER_DIRECTORY)
        print(issuer.token(tenant.principal or tenant.name, issuer=settings.issuer, audience=settings.audience,
                           claim=settings.tenant_claim, ttl_s=args.ttl_s))
    except _billing_errors() as error:
        return _fail(str(error))
    return 0


def _usage_table(args: argparse.Namespace) -> str:
    import os

    from modelfn_runtime.environment import USAGE_TABLE

    return args.table or os.environ.get(USAGE_TABLE) or f"{args.stack}-usage"


def _usage(args: argparse.Namespace) -> int:
    from datetime import date

    from .billing import BillingError, UsageReader, render_usage

    try:
        start = date.fromisoformat(args.start) if args.start else None
        end = date.fromisoformat(args.end) if args.end else None
    except ValueError as error:
        return _fail(f"{error}: give dates as YYYY-MM-DD, e.g. --from 2026-11-01 --to 2026-11-30")
    try:
        tenants = _directory(args).list()
        names = {t.id: t.name for t in tenants}
        reader = UsageReader(_usage_table(args))
        if args.tenant:
            matched = [t for t in tenants if args.tenant in (t.id, t.name)]
            ids = sorted({args.tenant, *(t.id for t in matched), *(t.name for t in matched)})  # key ids and named work
            rows = sorted((row for tenant_id in ids for row in reader.query(tenant_id, args.model, start, end)),
                          key=lambda r: (r.day, r.tenant, r.model, r.version))
        else:
            rows = reader.query(None, args.model, start, end)
        print(render_usage(rows, names, args.format))
    except (BillingError, *_billing_errors()) as error:
        return _fail(str(error))
    return 0


def _bill(args: argparse.Namespace) -> int:
    from .billing import AwsCosts, PriceTable, UsageReader, make_bill, plot_daily, render_bill, tenant_index

    try:
        prices, costs = PriceTable.load(args.prices), AwsCosts.load(args.aws_costs)
        tenants = tenant_index(_directory(args).list())
        rows = UsageReader(_usage_table(args)).month(args.month)
        capacity = _capacity(args) if args.fleet else None
        print(render_bill(make_bill(args.month, rows, tenants, prices, costs, capacity), args.format))
        if args.plot:
            path = plot_daily(rows, args.month, {key: t.name for key, t in tenants.items()}, args.plot)
            print(f"wrote {path}", file=sys.stderr)
    except _billing_errors() as error:
        return _fail(str(error))
    return 0


def _capacity(args: argparse.Namespace):
    """The bill's Lambda Managed Instances fleets and their instance time (see capacity.py)."""
    from .billing import Capacity, check_month
    from .capacity import ManagedPrices, fleet_costs, instance_time, parse_fleet

    check_month(args.month)
    prices = ManagedPrices.load(args.managed_prices)
    fleets = tuple(parse_fleet(spec) for spec in args.fleet)
    hours = instance_time(fleets, args.month, prices, args.instance_time)
    return Capacity(fleets, tuple(fleet_costs(hours, prices)), prices)


def _fail(message: str, status: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
