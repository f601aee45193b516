"""The ``modelfn`` command line.

    modelfn export SOURCE --name NAME ...        TensorFlow/Keras -> verified ONNX artifact + model card
    modelfn push NAME[/VERSION] --bucket B       upload an exported model to S3
    modelfn template render|check                catalog (infra/catalog.yaml) -> template.yaml
    modelfn local invoke LOGICAL_ID -e EVENT     run one function through the Lambda RIE, no Docker
    modelfn local start-api [--port 3000]        API Gateway + the functions on 127.0.0.1

Subcommands import their heavy dependencies only when they run, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    _add_template_parser(commands)
    _add_local_parser(commands)
    return parser


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
    common(start)
    start.set_defaults(func=_local_start_api)


def _local_invoke(args: argparse.Namespace) -> int:
    from .local.commands import invoke

    return invoke(args)


def _local_start_api(args: argparse.Namespace) -> int:
    from .local.commands import start_api

    return start_api(args)


def _fail(message: str, status: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
