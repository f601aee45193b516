"""``modelfn bench``: one run, every figure, one JSON document and the report.

Order of work: export what the cache lacks (:mod:`.cache`), then per model its cold starts, warm latency
and thread-count tuning (:mod:`.measure`, :mod:`.tune`), then every model through the local runtime at once
(:mod:`.local`), artifact sizes, and the ratios (:mod:`.ratios`); :mod:`.report` writes BENCHMARKS.md.

Example:
    >>> results = run_bench(["digits"], quick=True, report=Path("/tmp/B.md"))   # doctest: +SKIP
    >>> results["models"]["digits"]["cold"]["handler"]["median"]["total"]     # doctest: +SKIP
    240.5
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..billing import AwsCosts
from . import machine
from .bodies import REPO
from .cache import DEFAULT_ROOT, CachePaths, ensure
from .measure import CODE, Settings, Variant, cold_starts, describe_variant, make_configs, warm
from .models import base_name, select
from .ratios import ratios
from .tune import LambdaSizing, tune_variant

DEFAULT_BUILD_DIR = Path(".aws-sam") / "build"
DEFAULT_COSTS = Path("infra") / "pricing" / "aws.yaml"


def shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (reports carry no machine's paths)."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(REPO))
    except ValueError:
        return resolved.name


def build_sizes(build_dir: Path) -> dict[str, Any]:
    """Function code and layer sizes from ``modelfn build``'s size report, or why there are none."""
    report = Path(build_dir) / "size-report.json"
    if not report.is_file():
        return {"status": f"not built (no {shown(report)}; run `modelfn build` first)"}
    data = json.loads(report.read_text())
    artifacts = data.get("artifacts", {})
    function = next((f for f in data.get("functions", []) if f.get("serves_model") and f.get("package_type") == "Zip"), None)
    if function is None:
        return {"status": f"{shown(report)} has no Zip model function"}

    def size(name: str) -> dict[str, Any]:
        artifact = artifacts.get(name, {})
        return {"name": name, "zipped_bytes": artifact.get("zipped"), "unzipped_bytes": artifact.get("unzipped")}

    return {"status": "built", "report": shown(report), "function": function["logical_id"], "code": size(function["code"]),
            "layers": [size(name) for name in function.get("layers", [])],
            "unzipped_with_layers_bytes": function.get("unzipped_with_layers")}


def tune_counts(settings: Settings) -> dict[str, Any]:
    return {"budget_s": settings.budget_s, "min_n": settings.min_n, "max_n": settings.max_n, "warmup": settings.warmup}


def measure_variant(variant: Variant, settings: Settings, scratch: Path, code: Path, costs: AwsCosts | None,
                    sizing: LambdaSizing | None, log) -> dict[str, Any]:
    """Cold starts, warm latency and (with ``costs``) tuning of one variant."""
    configs, skipped = make_configs(variant, scratch / "events")
    for label, why in skipped.items():
        log(f"  {variant.name}: {label} skipped: {why}")
    event = next(c["event"] for c in configs if c["label"] == "json b1")
    figures: dict[str, Any] = {"about": describe_variant(variant), "skipped": skipped,
                               "configs": [{k: v for k, v in c.items() if k != "event"} for c in configs]}
    figures["cold"] = cold_starts(variant, event, settings, scratch, code, log)
    figures["warm"] = warm(variant, configs, settings, scratch, code, log)
    if costs is not None and sizing is not None:
        figures["tune"] = tune_variant(variant, event, scratch, code, costs, sizing, p99_ms=None, **tune_counts(settings))
        log(f"  {variant.name}: thread-count tuning done")
    figures["_configs"] = configs  # the local runtime reuses the events; dropped before the JSON is written
    return figures


def run_bench(names: list[str] | None = None, *, quick: bool = False, root: Path = DEFAULT_ROOT, code: Path = CODE,
              local: bool = True, tune: bool = True, build_dir: Path = DEFAULT_BUILD_DIR, costs_path: Path = DEFAULT_COSTS,
              command: str = "modelfn bench", log=print) -> dict[str, Any]:
    """Measure ``names`` (default: every model, or the small ones with ``quick``) and return the results."""
    started, wall = datetime.now(timezone.utc), time.monotonic()
    settings = Settings.quick() if quick else Settings.full()
    chosen = select(names, quick)
    facts = machine.describe()
    for base in dict.fromkeys(base_name(v) for v in chosen):
        ensure(base, root, log)
    paths = CachePaths(Path(root))
    costs = AwsCosts.load(costs_path) if tune else None
    sizing = LambdaSizing.load(costs_path) if tune else None
    models: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="modelfn-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        variants = [Variant.load(name, paths) for name in chosen]
        for variant in variants:
            log(f"measuring {variant.name} ...")
            models[variant.name] = measure_variant(variant, settings, scratch, code, costs, sizing, log)
        if local:
            from .local import measure_local

            log("measuring through the local runtime (RIE) ...")
            try:
                figures = measure_local(variants, {n: m["_configs"] for n, m in models.items()}, settings, scratch, code, log)
            except Exception as error:  # noqa: BLE001 - the in-process figures stay worth reporting
                log(f"  the local runtime failed: {type(error).__name__}: {error}")
                figures = {v.name: {"error": f"{type(error).__name__}: {str(error)[:300]}"} for v in variants}
            for name, local_figures in figures.items():
                models[name]["local"] = local_figures
    for figures in models.values():
        figures.pop("_configs", None)
    facts["load_average_end"] = machine.load_average()
    results = {
        "schema": 1, "command": command, "quick": quick, "started_utc": started.strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.monotonic() - wall, 1), "machine": facts, "settings": asdict(settings),
        "code": shown(code), "build": build_sizes(build_dir), "models": models,
    }
    results["ratios"] = ratios(results)
    return results
