"""Render the model-zoo figures recorded by ``test_zoo.py`` as the Markdown table in docs/export.md.

Usage::

    rm -f zoo.json
    MODELFN_ZOO_REPORT=zoo.json .venv/bin/python -m pytest tests/export/test_zoo.py
    .venv/bin/python -m tests.export.zoo_table zoo.json      # prints the table

Example:
    >>> print(render([{"model": "m", "kind": "k", "export_s": 1.0, "bytes": 2048, "max_abs_diff": 1e-7,
    ...               "top1_agreement": 1.0, "spread": 2.0, "tolerance": 1e-4, "samples": "generated"}]))
    ... # doctest: +NORMALIZE_WHITESPACE
    | model | what it covers | export (s) | artifact | max abs diff | top-1 agreement | min spread | tolerance | samples |
    |---|---|---:|---:|---:|---:|---:|---:|---|
    | m | k | 1.0 | 2.0 KiB | 1.0e-07 | 1.00 | 2 | 1e-04 | generated |
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .zoo import ZOO

HEADER = (
    "| model | what it covers | export (s) | artifact | max abs diff | top-1 agreement | min spread | tolerance | samples |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---|"
)


def _size(size: int) -> str:
    return f"{size / 1024:.1f} KiB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MiB"


QUANT_HEADER = (
    "| model | quantization | agreement with fp32 | top-1 agreement | size vs fp32 | fp32 ms (1 row / batch) | int8 ms (1 row / batch) "
    "| int8 speedup (1 row / batch) | forced |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---|"
)


def render_quantized(rows: list[dict[str, Any]]) -> str:
    """The quantization table (records written by ``test_zoo_model_quantizes``)."""
    latest = {row["model"]: row for row in rows if "quantization" in row}
    lines = [QUANT_HEADER]
    for name, row in latest.items():
        top1 = row.get("top1_agreement")
        fp32, int8 = (" / ".join(f"{v:.2f}" for v in row["latency_ms"][key].values()) for key in ("fp32", "int8"))
        speedup = " / ".join(f"{v:.2f}x" for v in row.get("speedup", {}).values()) or "n/a"
        lines.append(
            f"| {name.split(' (')[0]} | {row['quantization']} | {row['agreement']:.3f} | "
            f"{'n/a' if top1 is None else f'{top1:.3f}'} | {row['size_ratio']:.2f} | {fp32} | {int8} | {speedup} | "
            f"{'yes' if row['forced'] else 'no'} |"
        )
    return "\n".join(lines)


def render(rows: list[dict[str, Any]]) -> str:
    """The Markdown table, one row per model in zoo order (the last record of a model wins)."""
    latest = {row["model"]: row for row in rows if "quantization" not in row}
    order = [name for name in ZOO if name in latest] + sorted(set(latest) - set(ZOO))
    lines = [HEADER]
    for name in order:
        row = latest[name]
        top1 = row.get("top1_agreement")
        lines.append(
            f"| {name} | {row['kind']} | {row['export_s']:.1f} | {_size(int(row['bytes']))} | "
            f"{row['max_abs_diff']:.1e} | {'n/a' if top1 is None else f'{top1:.2f}'} | {row['spread']:.3g} | "
            f"{row['tolerance']:.0e} | {row['samples']} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.export.zoo_table zoo.json", file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in Path(argv[0]).read_text().splitlines() if line.strip()]
    print(render(rows))
    if any("quantization" in row for row in rows):
        print()
        print(render_quantized(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
