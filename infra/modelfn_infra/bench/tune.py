"""Power tuning: latency at each thread count Lambda gives, turned into duration and cost per 1M requests at
each memory size, and the ``memory_mb`` to choose.

**What is measured.** The real handler answers a batch-1 OIP JSON REST event in a fresh process, for each
thread count this machine can give: the process is pinned to that many cores (``sched_setaffinity``) and told
the memory of exactly that many vCPUs (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` = 1,769 MB x N), so the runtime sizes
ONNX Runtime's thread pool as it does in Lambda. Per request: wall time (p50, p99) and the CPU time of the
whole process (all threads), and the process's peak RSS.

**How each memory size is derived** (Lambda gives ``share = memory / 1,769`` vCPUs of CPU time, on
``threads = ceil(share)`` visible vCPUs, at most 6, and the runtime runs that many threads):

* ``duration = max(wall(threads), cpu(threads) / share)``: the request cannot finish faster than with whole
  cores, nor use more CPU time than the share grants (below 1,769 MB a function gets a fraction of one vCPU);
  p99 is scaled by the same factor as p50. ``wall`` is the quiet wall time, at most the CPU time (a CPU-bound
  request keeps a thread busy; wall time beyond its CPU time was spent waiting for a CPU another process held,
  :func:`quiet_wall`), and the result says how busy the machine was (``contention``);
* basis ``measured``: ``threads`` was measured and the share is whole (1,769 MB, 3,538 MB, ...);
  ``scaled``: ``threads`` was measured, the share is fractional; ``extrapolated``: more threads than this
  machine has cores: wall time from Amdahl's law fitted to the 1- and 2-thread measurements
  (``wall(t) = wall(1) x (1 - p + p / t)``), or as at the most threads measured when 2 threads gained nothing;
  CPU time as at the most threads measured;
* cost per 1M requests = 1M x (billed ms / 1000 x memory / 1024 x the GB-second price + the request price), the
  prices of ``infra/pricing/aws.yaml`` for x86_64 and arm64. arm64 durations are the x86_64 ones: this machine
  cannot measure Graviton; measure there before choosing arm64 for speed;
* sizes below the measured peak RSS plus ``HEADROOM`` cannot hold the function and are never recommended.

**What is recommended.** ``cheapest``: the lowest cost whose p99 meets ``--p99-ms`` (no target: the lowest cost);
``balanced``: AWS Lambda Power Tuning's balanced strategy, the lowest ``0.5 x cost / max cost + 0.5 x duration /
max duration`` (among the sizes meeting the target).

Example:
    >>> sizing = LambdaSizing.load("infra/pricing/aws.yaml")
    >>> sizing.threads(1024), sizing.threads(1769), sizing.threads(10240)
    (1, 1, 6)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..billing import AwsCosts
from . import bodies
from .measure import Variant, handler_env, spawn

HEADROOM = 1.15
"""A memory size must exceed the measured peak RSS by 15 %: Lambda stops a function at its memory size."""
ARCHITECTURES = ("x86_64", "arm64")
BALANCED_WEIGHT = 0.5
BUSY = 1.2
"""Wall time above this multiple of CPU time at one thread means other processes held the CPU during the run."""


def busy_note(factor: float) -> str:
    return (f"warning: the machine was busy (wall time {factor:.1f}x the CPU time at one thread): durations use the CPU-bound "
            "bound min(wall, cpu), and the gain from more threads cannot be measured under contention; rerun on a quiet machine")


@dataclass(frozen=True)
class LambdaSizing:
    """How Lambda turns memory into CPU and bills duration (``lambda_sizing`` in infra/pricing/aws.yaml)."""

    mb_per_vcpu: int
    max_vcpus: int
    min_memory_mb: int
    max_memory_mb: int
    billing_granularity_ms: int
    sizes: tuple[int, ...]
    as_of: str

    @classmethod
    def load(cls, path: str | Path) -> "LambdaSizing":
        data = (yaml.safe_load(Path(path).read_text()) or {}).get("lambda_sizing")
        if not data:
            raise ValueError(f"{path} has no lambda_sizing section; `modelfn tune` needs its memory-to-vCPU figures")
        return cls(int(data["mb_per_vcpu"]), int(data["max_vcpus"]), int(data["min_memory_mb"]), int(data["max_memory_mb"]),
                   int(data["billing_granularity_ms"]), tuple(int(m) for m in data["tune_memory_mb"]), str(data.get("as_of", "")))

    def share(self, memory_mb: int) -> float:
        return min(memory_mb / self.mb_per_vcpu, float(self.max_vcpus))

    def threads(self, memory_mb: int) -> int:
        return max(1, min(self.max_vcpus, math.ceil(memory_mb / self.mb_per_vcpu)))


def measure_threads(variant: Variant, event: str, threads: list[int], scratch: Path, code: Path, *, budget_s: float,
                    min_n: int, max_n: int, warmup: int, sizing: LambdaSizing) -> dict[int, dict[str, Any]]:
    """Warm batch-1 JSON latency of the handler pinned to each thread count; ``{threads: figures}``."""
    measured = {}
    for count in threads:
        spec = {"mode": "warm", "variant": "handler", "code": str(code), "bare": False, "function": variant.function,
                "model_dir": str(variant.model_dir.resolve()), "memory_mb": sizing.mb_per_vcpu * count,
                "samples": str(variant.samples), "input": variant.input_name, "affinity": list(range(count)),
                "budget_s": budget_s, "min_n": min_n, "max_n": max_n, "warmup": warmup,
                "configs": [{"label": "json b1", "event": event, "codec": "json", "rows": 1}]}
        result, _ = spawn(spec, scratch, handler_env(variant, code, memory_mb=sizing.mb_per_vcpu * count))
        figures = result["configs"]["json b1"]["handler"]
        measured[count] = {key: figures[key] for key in ("p50", "p90", "p99", "cpu_p50", "n")}
        measured[count]["peak_rss_mb"] = result["peak_rss_mb"]
    return measured


def measurable_threads(sizing: LambdaSizing) -> list[int]:
    """Thread counts this machine can give whole cores to (at most Lambda's maximum)."""
    return list(range(1, min(len(os.sched_getaffinity(0)), sizing.max_vcpus) + 1))


def quiet_wall(figures: dict[str, Any], key: str) -> float:
    """Wall time (``key``: p50 or p99) less the time spent waiting for a CPU another process held: a CPU-bound
    request keeps at least one thread busy, so on a quiet machine its wall time is at most its CPU time; on a busy
    one the excess is someone else's work. Scaled by the p50's excess."""
    scale = min(1.0, figures["cpu_p50"] / figures["p50"]) if figures["p50"] else 1.0
    return figures[key] * scale


def contention(measured: dict[int, dict[str, Any]]) -> float:
    """Wall over CPU time at the fewest threads measured: about 1 on a quiet machine, more when others ran."""
    figures = measured[min(measured)]
    return figures["p50"] / figures["cpu_p50"] if figures["cpu_p50"] else 1.0


def wall_at(measured: dict[int, dict[str, Any]], threads: int, key: str) -> tuple[float, str]:
    """Quiet wall time (``key``: p50 or p99) at ``threads``: measured, or Amdahl-extrapolated from 1 and 2 threads."""
    if threads in measured:
        return quiet_wall(measured[threads], key), "measured"
    most = max(measured)
    if 1 in measured and 2 in measured and quiet_wall(measured[2], key) < quiet_wall(measured[1], key):
        one, two = quiet_wall(measured[1], key), quiet_wall(measured[2], key)
        parallel = min(1.0, 2 * (1 - two / one))
        return one * (1 - parallel + parallel / threads), f"extrapolated (Amdahl, p={parallel:.2f})"
    return quiet_wall(measured[most], key), f"extrapolated (no speed-up measured: as at {most} thread(s))"


def predict(measured: dict[int, dict[str, Any]], sizing: LambdaSizing, memory_mb: int) -> dict[str, Any]:
    """Duration p50/p99 at ``memory_mb`` and how it was obtained."""
    share, threads = sizing.share(memory_mb), sizing.threads(memory_mb)
    p50, basis = wall_at(measured, threads, "p50")
    p99, _ = wall_at(measured, threads, "p99")
    cpu = measured[threads]["cpu_p50"] if threads in measured else measured[max(measured)]["cpu_p50"]
    duration = max(p50, cpu / share)
    if basis == "measured" and abs(share - threads) > 1e-9:
        basis = f"scaled (CPU share {share:.2f} vCPU)"
    return {"memory_mb": memory_mb, "vcpus": round(share, 3), "threads": threads, "p50_ms": duration,
            "p99_ms": p99 * duration / p50 if p50 else p99, "basis": basis}


def cost_per_million(duration_ms: float, memory_mb: int, architecture: str, costs: AwsCosts, sizing: LambdaSizing) -> float:
    """USD per 1M requests: billed duration (rounded up to the granularity) x GB-seconds price + request price."""
    step = sizing.billing_granularity_ms
    billed_s = math.ceil(duration_ms / step) * step / 1000
    per_request = billed_s * memory_mb / 1024 * float(costs.gb_second[architecture]) + float(costs.units["lambda_request"])
    return per_request * 1_000_000


def power_table(measured: dict[int, dict[str, Any]], sizing: LambdaSizing, costs: AwsCosts) -> list[dict[str, Any]]:
    """One row per memory size: duration, basis, cost per 1M requests per architecture, whether it fits."""
    peak = max(m["peak_rss_mb"] for m in measured.values())
    rows = []
    for memory_mb in sizing.sizes:
        row = predict(measured, sizing, memory_mb)
        row["billed_ms"] = math.ceil(row["p50_ms"] / sizing.billing_granularity_ms) * sizing.billing_granularity_ms
        row["fits"] = memory_mb >= peak * HEADROOM
        for architecture in ARCHITECTURES:
            row[f"cost_{architecture}"] = cost_per_million(row["p50_ms"], memory_mb, architecture, costs, sizing)
        rows.append(row)
    return rows


def recommend(rows: list[dict[str, Any]], p99_ms: float | None, architecture: str = "x86_64") -> dict[str, Any]:
    """The cheapest size meeting the target and the balanced choice (None where no size qualifies), with why."""
    cost = f"cost_{architecture}"
    fitting = [row for row in rows if row["fits"]]
    eligible = [row for row in fitting if p99_ms is None or row["p99_ms"] <= p99_ms]
    if not eligible:
        why = "no size holds the function's peak memory" if not fitting else (
            f"no size meets p99 <= {p99_ms:g} ms (fastest: {min(r['p99_ms'] for r in fitting):.1f} ms)")
        return {"cheapest": None, "balanced": None, "why": why, "architecture": architecture}
    cheapest = min(eligible, key=lambda row: (row[cost], row["p50_ms"]))
    max_cost = max(row[cost] for row in eligible)
    max_duration = max(row["p50_ms"] for row in eligible)
    balanced = min(eligible, key=lambda row: BALANCED_WEIGHT * row[cost] / max_cost
                   + (1 - BALANCED_WEIGHT) * row["p50_ms"] / max_duration)
    return {"cheapest": cheapest["memory_mb"], "balanced": balanced["memory_mb"], "architecture": architecture,
            "why": f"{len(eligible)} of {len(rows)} sizes hold the function" + (f" and meet p99 <= {p99_ms:g} ms" if p99_ms else "")}


def tune_variant(variant: Variant, event: str, scratch: Path, code: Path, costs: AwsCosts, sizing: LambdaSizing, *,
                 p99_ms: float | None, budget_s: float, min_n: int, max_n: int, warmup: int) -> dict[str, Any]:
    """Measure, derive every size, recommend: the whole tuning result as JSON-ready data."""
    measured = measure_threads(variant, event, measurable_threads(sizing), scratch, code, budget_s=budget_s,
                               min_n=min_n, max_n=max_n, warmup=warmup, sizing=sizing)
    return derive({"model": variant.name, "p99_target_ms": p99_ms, "measured": {str(t): m for t, m in measured.items()}},
                  costs, sizing)


def derive(result: dict[str, Any], costs: AwsCosts, sizing: LambdaSizing) -> dict[str, Any]:
    """``result`` (model, target, measured figures per thread count) with every size's row and the recommendation;
    also how to re-derive a saved result with other prices."""
    measured = {int(t): m for t, m in result["measured"].items()}
    rows = power_table(measured, sizing, costs)
    p99_ms = result.get("p99_target_ms")
    return {
        **result, "peak_rss_mb": max(m["peak_rss_mb"] for m in measured.values()), "rows": rows,
        "contention": round(contention(measured), 2),
        "recommendation": {arch: recommend(rows, p99_ms, arch) for arch in ARCHITECTURES},
        "prices_as_of": costs.as_of, "sizing_as_of": sizing.as_of,
    }


def tune_event(variant: Variant, scratch: Path, rows: int = 1) -> str:
    """A batch-``rows`` OIP JSON REST event for the variant, from its samples (or generated from its card)."""
    if variant.samples.is_file():
        tensors = {variant.input_name: bodies.batch_of(np.load(variant.samples), rows)}
    else:
        tensors = bodies.generated_inputs(variant.card, rows)
    body, headers = bodies.oip_json(tensors)
    path = scratch / f"{variant.name}-tune-b{rows}.json"
    path.write_text(json.dumps(bodies.rest_event(variant.name, body, headers)))
    return str(path)


def render(result: dict[str, Any]) -> str:
    """The tuning result as a terminal table with the recommendation."""
    lines = [f"power tuning of {result['model']} (batch 1, OIP JSON, through app.lambda_handler); measured at "
             f"{', '.join(result['measured'])} thread(s); peak RSS {result['peak_rss_mb']:.0f} MB",
             f"{'memory MB':>9} {'vCPU':>5} {'thr':>3} {'p50 ms':>8} {'p99 ms':>8} {'$/1M x86':>9} {'$/1M arm':>9}  basis"]
    for row in result["rows"]:
        fits = "" if row["fits"] else "  (below peak memory)"
        lines.append(f"{row['memory_mb']:>9} {row['vcpus']:>5.2f} {row['threads']:>3} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
                     f"{row['cost_x86_64']:>9.3f} {row['cost_arm64']:>9.3f}  {row['basis']}{fits}")
    for arch, choice in result["recommendation"].items():
        if choice["cheapest"] is None:
            lines.append(f"{arch}: no recommendation: {choice['why']}")
        else:
            lines.append(f"{arch}: cheapest {choice['cheapest']} MB, balanced {choice['balanced']} MB ({choice['why']})")
    lines.append(f"cost = Lambda duration (1 ms steps) + request price, prices as of {result['prices_as_of']}; arm64 "
                 "assumes x86_64 durations (not measured here)")
    if result.get("contention", 1.0) > BUSY:
        lines.append(busy_note(result["contention"]))
    return "\n".join(lines)
