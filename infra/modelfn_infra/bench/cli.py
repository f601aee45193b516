"""``modelfn bench`` and ``modelfn tune``: their arguments and what they print.

    modelfn bench [MODEL ...] [--quick] [--json FILE] [--report BENCHMARKS.md]
    modelfn tune NAME [--p99-ms X] [--write] [--store models] [--json FILE] [--plot FILE.png]

Heavy imports (numpy, matplotlib, the local runtime) happen only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

BENCH_HELP = """Measure every benchmark model (digits, small-cnn, mobilenet-v2, resnet50; fp32 and -int8) through the real
handler, in process and through the local runtime, against bare onnxruntime and a TensorFlow SavedModel handler on
the same events; write BENCHMARKS.md with PNG plots. Models are exported once into --cache. A full run takes tens of
minutes on 2 cores: use `nice -n 10`; --quick measures the small models with tiny counts."""

TUNE_HELP = """Power tuning: measure the model's warm batch-1 latency through the handler at each thread count this
machine gives (1,769 MB of Lambda memory per vCPU, up to 6), derive duration and cost per 1M requests at each memory size
for x86_64 and arm64 (infra/pricing/aws.yaml), and recommend memory_mb: the cheapest size meeting --p99-ms and AWS Lambda
Power Tuning's balanced choice. Sizes with whole vCPUs this machine has are measured; fractional vCPU shares are scaled
by CPU time (duration = max(wall, cpu / share)); more threads than cores are extrapolated with Amdahl's law."""


def add_bench_parser(commands) -> None:
    bench = commands.add_parser("bench", help="benchmark models against bare onnxruntime and TensorFlow; write BENCHMARKS.md",
                                description=BENCH_HELP)
    bench.add_argument("models", nargs="*", metavar="MODEL", help="models or variants to measure (default: all; --quick: small)")
    bench.add_argument("--quick", action="store_true", help="tiny counts and the small models only (tests, a first look)")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write every figure as JSON")
    bench.add_argument("--report", type=Path, default=Path("BENCHMARKS.md"), help="the markdown report (default BENCHMARKS.md)")
    bench.add_argument("--figures", type=Path, help="where the PNGs go (default: benchmarks/figures next to the report)")
    bench.add_argument("--cache", type=Path, default=Path(".modelfn") / "bench", help="exported models (default .modelfn/bench)")
    bench.add_argument("--code", type=Path, help="the functions/inference directory to measure (default: this checkout's)")
    bench.add_argument("--build-dir", type=Path, default=Path(".aws-sam") / "build", help="`modelfn build` output, for sizes")
    bench.add_argument("--aws-costs", type=Path, default=Path("infra") / "pricing" / "aws.yaml", help="AWS cost model")
    bench.add_argument("--no-local", action="store_true", help="skip the local runtime (RIE) measurements")
    bench.add_argument("--no-tune", action="store_true", help="skip thread-count tuning and the cost section")
    bench.add_argument("--from-json", type=Path, metavar="FILE",
                       help="measure nothing: render the report again from a run's --json file (costs re-derived)")
    bench.set_defaults(func=_bench)


def add_tune_parser(commands) -> None:
    tune = commands.add_parser("tune", help="power tuning: latency and cost per memory size; recommend memory_mb",
                               description=TUNE_HELP)
    tune.add_argument("name", metavar="NAME", help="a model of the catalog")
    tune.add_argument("--p99-ms", type=float, help="latency target: the cheapest size whose p99 meets it")
    tune.add_argument("--write", action="store_true", help="put the chosen memory_mb into the catalog and re-render the template")
    tune.add_argument("--choose", choices=("cheapest", "balanced"),
                      help="which recommendation --write uses (default: cheapest with --p99-ms, else balanced)")
    tune.add_argument("--store", type=Path, default=Path("models"), help="model store holding NAME/VERSION (default models)")
    tune.add_argument("--catalog", default="infra/catalog.yaml")
    tune.add_argument("--template", default="template.yaml")
    tune.add_argument("--aws-costs", type=Path, default=Path("infra") / "pricing" / "aws.yaml", help="AWS cost model")
    tune.add_argument("--code", type=Path, help="the functions/inference directory to measure (default: this checkout's)")
    tune.add_argument("--budget", type=float, default=3.0, metavar="SECONDS", help="timed requests per thread count, in seconds")
    tune.add_argument("--min-requests", type=int, default=30)
    tune.add_argument("--json", type=Path, metavar="FILE", help="also write the result as JSON")
    tune.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw cost and duration against memory")
    tune.set_defaults(func=_tune)


def _reproduce(args: argparse.Namespace) -> str:
    """The command line that repeats this run (paths of outputs left out)."""
    flags = [flag for flag, on in (("--quick", args.quick), ("--no-local", args.no_local), ("--no-tune", args.no_tune)) if on]
    return " ".join(["nice -n 10 modelfn bench", *args.models, *flags])


def _bench(args: argparse.Namespace) -> int:
    from .measure import CODE
    from .run import run_bench

    if args.from_json:
        return _report(args, _rerender(args))
    try:
        results = run_bench(args.models or None, quick=args.quick, root=args.cache, code=args.code or CODE,
                            local=not args.no_local, tune=not args.no_tune, build_dir=args.build_dir,
                            costs_path=args.aws_costs, command=_reproduce(args), log=lambda line: print(line, file=sys.stderr))
    except (ValueError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ValueError) else 1
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return _report(args, results)


def _rerender(args: argparse.Namespace) -> dict:
    """A saved run's results with costs, recommendations and ratios derived again (new prices, a fixed rule)."""
    from ..billing import AwsCosts
    from .ratios import ratios
    from .tune import LambdaSizing, derive

    results = json.loads(args.from_json.read_text())
    costs, sizing = AwsCosts.load(args.aws_costs), LambdaSizing.load(args.aws_costs)
    for model in results["models"].values():
        if model.get("tune"):
            model["tune"] = derive(model["tune"], costs, sizing)
    results["ratios"] = ratios(results)
    return results


def _report(args: argparse.Namespace, results: dict) -> int:
    from .report import write

    figures = args.figures or args.report.parent / "benchmarks" / "figures"
    write(results, args.report, figures)
    print(f"wrote {args.report} and its plots in {figures}")
    for row in results["ratios"]:
        if row["target"] is not None:
            verdict = "met" if row["met"] else "MISSED"
            print(f"  item {row['item']} {row['model']}: {row['what']}: {row['value']:g} {row['unit']} "
                  f"(target <= {row['target']:g}) {verdict}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from ..billing import AwsCosts
    from ..catalog import Catalog, CatalogError
    from .catalog_memory import set_memory
    from .measure import CODE, Variant
    from .tune import LambdaSizing, render, tune_event, tune_variant

    try:
        entry = {e.name: e for e in Catalog.read(args.catalog).models}.get(args.name)
        if entry is None:
            raise CatalogError(f"{args.catalog} has no model {args.name!r}; add it with `modelfn catalog add {args.name}`")
        model_dir = args.store / entry.name / entry.version
        if not (model_dir / "modelcard.json").is_file():
            raise CatalogError(f"{model_dir} holds no exported model; run `modelfn export SOURCE --name {entry.name} "
                               f"--version {entry.version}` (or pass --store)")
        card = json.loads((model_dir / "modelcard.json").read_text())
        with tempfile.TemporaryDirectory(prefix="modelfn-tune-") as scratch_dir:
            scratch = Path(scratch_dir)
            variant = Variant(entry.name, model_dir, scratch / "no-samples.npy", None, card)
            result = tune_variant(variant, tune_event(variant, scratch), scratch, args.code or CODE, AwsCosts.load(args.aws_costs),
                                  LambdaSizing.load(args.aws_costs), p99_ms=args.p99_ms, budget_s=args.budget,
                                  min_n=args.min_requests, max_n=100_000, warmup=5)
    except (CatalogError, ValueError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    if args.plot:
        from .plots import cost_memory

        cost_memory({"models": {entry.name: {"tune": result}}}, args.plot)
        print(f"wrote {args.plot}")
    if args.write:
        return _write_memory(args, entry, result, set_memory)
    return 0


def _write_memory(args: argparse.Namespace, entry, result: dict, set_memory) -> int:
    choice = result["recommendation"][entry.architecture]
    which = args.choose or ("cheapest" if args.p99_ms is not None else "balanced")
    memory = choice[which]
    if memory is None:
        print(f"error: nothing written: {choice['why']}", file=sys.stderr)
        return 1
    previous = set_memory(args.catalog, args.template, entry.name, memory)
    print(f"{args.catalog}: {entry.name} memory_mb {previous} -> {memory} ({which}, {entry.architecture}); wrote {args.template}")
    return 0
