"""The benchmarks keep running as the code moves: each is smoke-run with tiny counts (no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .toy_model import write_digits_like_model

REPO = Path(__file__).resolve().parents[2]


def test_overhead_breakdown_runs(tmp_path):
    write_digits_like_model(tmp_path / "store" / "digits" / "1")
    report = tmp_path / "overhead.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL")}
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "overhead.py"), "--store", str(tmp_path / "store"), "--requests", "20",
         "--warmup", "2", "--stage-samples", "3", "--breakdown", "--json", str(report)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert {"bare session.run", "handler (REST JSON)", "overhead_p50_us"} <= set(figures)
    stages = figures["stages_p50_us"]
    assert {"oip.decode_infer (JSON -> numpy)", "triggers.pick + REST adapter (event -> HttpRequest)",
            "app.lambda_handler (everything)"} <= set(stages)
    assert all(value > 0 for value in stages.values())


def test_codecs_benchmark_runs(tmp_path):
    write_digits_like_model(tmp_path / "store" / "digits" / "1")
    report = tmp_path / "codecs.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL")}
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "codecs.py"), "--store", str(tmp_path / "store"), "--elements", "640",
         "--repeats", "2", "--json", str(report)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert set(figures["requests"]) == {"OIP JSON infer", "TF Serving instances", "TF Serving inputs", "OIP binary infer"}
    assert set(figures["responses"]) == {"OIP JSON output", "TF Serving predictions", "OIP binary output"}
    rows = [row for group in ("requests", "responses") for row in figures[group].values()]
    assert all(row["ratio"] > 0 and row["reference"] > 0 for row in rows)
