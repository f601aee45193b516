"""The report's PNGs (matplotlib, Agg): latency distributions, latency against batch size, the cold-start
breakdown, and cost and duration against memory size.

Example:
    >>> paths = draw_all(results, Path("benchmarks/figures"))          # doctest: +SKIP
    >>> sorted(p.name for p in paths)                                  # doctest: +SKIP
    ['coldstart.png', 'cost-memory.png', 'latency-b1.png', 'latency-batches.png']
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

QUANTILES = list(range(1, 100))
SERIES = (("handler", "json", "modelfn handler, JSON"), ("handler", "binary", "modelfn handler, binary"),
          ("bare", "json", "bare session.run"), ("tf", "json", "TensorFlow handler, JSON"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(count: int, width: float = 4.2, height: float = 3.2):
    plt = _pyplot()
    columns = min(count, 4)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), dpi=90, squeeze=False)
    for extra in axes.flat[count:]:
        extra.set_visible(False)
    return plt, figure, list(axes.flat)


def _style(axis, title: str, xlabel: str, ylabel: str, *, logx: bool = False, logy: bool = False) -> None:
    if logx:
        axis.set_xscale("log")
    if logy:
        axis.set_yscale("log")
    axis.set_title(title, fontsize=9)
    axis.set_xlabel(xlabel, fontsize=8)
    axis.set_ylabel(ylabel, fontsize=8)
    axis.grid(True, alpha=0.3)


def _figures(model: dict[str, Any], kind: str, config: str) -> dict[str, Any] | None:
    warm = model["warm"]
    source = warm.get("tf") if kind == "tf" else warm["handler"]
    call = "bare" if kind == "bare" else "handler"
    try:
        return source["configs"][config][call]
    except (KeyError, TypeError):
        return None


def latency_distributions(results: dict[str, Any], path: Path) -> Path:
    """Per model, the distribution (1st..99th percentile) of warm batch-1 latency of each variant."""
    models = results["models"]
    plt, figure, axes = _grid(len(models))
    for axis, (name, model) in zip(axes, models.items()):
        for kind, codec, label in SERIES:
            figures = _figures(model, kind, f"{codec} b1")
            if figures:
                axis.plot(figures["quantiles"], QUANTILES, label=label)
        _style(axis, f"{name}, batch 1", "latency (ms, log)", "percentile", logx=True)
    axes[0].legend(fontsize=7)
    figure.suptitle("Warm latency distributions (in process, same events)", fontsize=10)
    return _save(plt, figure, path)


def latency_batches(results: dict[str, Any], path: Path) -> Path:
    """Per model, p50 latency against batch size for each variant."""
    models = results["models"]
    plt, figure, axes = _grid(len(models))
    for axis, (name, model) in zip(axes, models.items()):
        for kind, codec, label in SERIES:
            points = [(rows, f["p50"]) for rows in (1, 8, 64) if (f := _figures(model, kind, f"{codec} b{rows}"))]
            if points:
                axis.plot(*zip(*points), marker="o", label=label)
        _style(axis, name, "batch size", "p50 (ms)", logx=True, logy=True)
    axes[0].legend(fontsize=7)
    figure.suptitle("Warm p50 latency against batch size", fontsize=10)
    return _save(plt, figure, path)


PHASES = ("interpreter", "imports", "function init (excl. session)", "session creation", "model load", "first request")


def coldstart(results: dict[str, Any], path: Path) -> Path:
    """Stacked bars of each cold-start phase's median per model and variant; right: without TensorFlow, to scale."""
    plt = _pyplot()
    bars = [(f"{name} · {kind}", figures["median"]) for name, model in results["models"].items()
            for kind, figures in (model.get("cold") or {}).items()]
    panels = [("all variants", bars), ("onnxruntime variants (zoom)", [b for b in bars if not b[0].endswith("· tf")])]
    figure, axes = plt.subplots(1, 2, figsize=(13, 0.35 * len(bars) + 1.8), dpi=90)
    for axis, (title, shown) in zip(axes, panels):
        left = [0.0] * len(shown)
        for phase in PHASES:
            widths = [median.get(phase, 0.0) for _, median in shown]
            if any(widths):
                axis.barh([label for label, _ in shown], widths, left=left, label=phase)
                left = [a + b for a, b in zip(left, widths)]
        axis.invert_yaxis()
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("ms from spawn to first response (median)", fontsize=8)
        axis.tick_params(axis="y", labelsize=7)
        axis.grid(True, axis="x", alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    figure.suptitle("Cold start breakdown: bare onnxruntime, modelfn handler, TensorFlow handler", fontsize=10)
    return _save(plt, figure, path)


def cost_memory(results: dict[str, Any], path: Path) -> Path | None:
    """Per model, cost per 1M requests (x86_64, arm64) and p50 duration against memory size."""
    tuned = {name: model["tune"] for name, model in results["models"].items() if model.get("tune")}
    if not tuned:
        return None
    plt, figure, axes = _grid(len(tuned))
    for axis, (name, tune) in zip(axes, tuned.items()):
        memory = [row["memory_mb"] for row in tune["rows"]]
        axis.plot(memory, [row["cost_x86_64"] for row in tune["rows"]], marker=".", label="$ per 1M, x86_64")
        axis.plot(memory, [row["cost_arm64"] for row in tune["rows"]], marker=".", label="$ per 1M, arm64")
        too_small = [row["memory_mb"] for row in tune["rows"] if not row["fits"]]
        if too_small:
            axis.axvspan(min(memory), max(too_small), color="grey", alpha=0.15, label="below peak memory")
        twin = axis.twinx()
        axis.plot([], [], color="black", linestyle="--", label="p50 duration (right)")
        twin.plot(memory, [row["p50_ms"] for row in tune["rows"]], color="black", linestyle="--")
        twin.set_ylabel("p50 duration (ms)", fontsize=8)
        twin.set_yscale("log")
        _style(axis, name, "memory (MB, log)", "USD per 1M requests", logx=True)
    axes[0].legend(fontsize=7, loc="upper center")
    figure.suptitle("Cost and duration against Lambda memory size (1-2 threads measured, the rest derived)", fontsize=10)
    return _save(plt, figure, path)


def _save(plt, figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)
    return path


def draw_all(results: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Every plot into ``directory``; ``{kind: path}`` (cost only when the run tuned)."""
    drawn = {
        "latency": latency_distributions(results, directory / "latency-b1.png"),
        "batches": latency_batches(results, directory / "latency-batches.png"),
        "coldstart": coldstart(results, directory / "coldstart.png"),
    }
    cost = cost_memory(results, directory / "cost-memory.png")
    if cost is not None:
        drawn["cost"] = cost
    return drawn
