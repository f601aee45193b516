"""`modelfn bench --quick` and `modelfn tune` run end to end on digits with tiny counts.

No speed is asserted (speed targets live in BENCHMARKS.md, never in tests): these check that every figure the
report promises is there and sane, that the three servers answer alike, that the report renders with its
plots, and that `tune --write` edits a copy of the catalog keeping its comments.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest

from modelfn_infra.catalog import Catalog
from modelfn_infra.cli import main

from ..conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> dict:
    """One `modelfn bench digits --quick` run (digits and digits-int8) shared by the tests of this module."""
    out = tmp_path_factory.mktemp("bench")
    args = ["bench", "digits", "--quick", "--cache", str(out / "cache"), "--json", str(out / "bench.json"),
            "--report", str(out / "BENCHMARKS.md"), "--build-dir", str(out / "no-build")]
    assert main(args) == 0
    return {"dir": out, "results": json.loads((out / "bench.json").read_text())}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


def test_json_has_every_figure(quick_run):
    results = quick_run["results"]
    assert results["quick"] is True and set(results["models"]) == {"digits", "digits-int8"}
    assert {"cpu", "cores", "python", "versions", "load_average_start", "load_average_end"} <= set(results["machine"])
    assert results["build"]["status"].startswith("not built")
    for name, model in results["models"].items():
        kinds = {"bare", "handler"} | ({"tf"} if name == "digits" else set())
        assert set(model["cold"]) == kinds
        for cold in model["cold"].values():
            median = cold["median"]
            assert _finite(median["total"]) and _finite(median["interpreter"]) and _finite(median["first request"])
            assert median["total"] == pytest.approx(sum(v for k, v in median.items() if k not in ("total", "peak_rss_mb")), abs=0.1)
        configs = model["warm"]["handler"]["configs"]
        assert {"json b1", "binary b1", "json b8", "binary b8", "json b64", "binary b64",
                "json 150k", "binary 150k", "tfserving 150k"} == set(configs)
        for figures in configs.values():
            for call in ("handler", "bare", "decode"):
                assert _finite(figures[call]["p50"]) and figures[call]["p50"] <= figures[call]["p99"]
                assert len(figures[call]["quantiles"]) == 99
        local = model["local"]
        assert local["cold_status"] == 200 and _finite(local["cold_first_request_ms"])
        assert local["latency"]["json b1"]["errors"] == 0 and local["latency"]["binary b1"]["errors"] == 0
        assert all(local["throughput"][c]["errors"] == 0 and local["throughput"][c]["throughput_rps"] > 0 for c in ("1", "2"))
        tune = model["tune"]
        assert set(tune["measured"]) == {"1", "2"} or set(tune["measured"]) == {"1"}
        assert [row["memory_mb"] for row in tune["rows"]][:2] == [128, 256]
    tf_configs = results["models"]["digits"]["warm"]["tf"]["configs"]
    assert set(tf_configs) == {"json b1", "json b8", "json b64"}


def test_the_three_servers_answer_alike(quick_run):
    """The same request gets the same top-1 class from bare onnxruntime, the handler and TensorFlow."""
    cold = quick_run["results"]["models"]["digits"]["cold"]
    assert cold["bare"]["top1"] == cold["handler"]["top1"] == cold["tf"]["top1"]
    assert all(run["top1"] == cold["bare"]["top1"] for kind in cold.values() for run in kind["runs"])


def test_ratio_rows_carry_the_fast_path_targets(quick_run):
    rows = quick_run["results"]["ratios"]
    digits = {row["id"]: row for row in rows if row["model"] == "digits" and row["target"] is not None}
    assert {"json-150k", "tfserving-150k", "binary-150k", "overhead-1", "cold-vs-bare"} == set(digits)
    assert [digits[i]["target"] for i in ("json-150k", "binary-150k", "overhead-1", "cold-vs-bare")] == [0.5, 2.0, 50.0, 1.25]
    assert all(_finite(row["value"]) and row["met"] in (True, False) for row in digits.values())
    others = {row["id"] for row in rows if row["target"] is None}
    assert {"tf-cold", "tf-rss", "tf-warm", "binary-vs-json", "int8-vs-fp32", "int8-size", "local-vs-inprocess"} <= others


def test_report_renders_with_plots(quick_run):
    report = (quick_run["dir"] / "BENCHMARKS.md").read_text()
    for heading in ("# modelfn benchmarks", "## Fast-path targets", "## Cold start", "## Warm latency", "## Through the local runtime",
                    "## Artifact sizes", "## Memory size and cost", "## Other comparisons", "## Method"):
        assert heading in report
    assert "nice -n 10 modelfn bench digits --quick" in report and "not built" in report
    assert str(REPO) not in report and str(quick_run["dir"]) not in report  # no machine's paths in a committed report
    figures = quick_run["dir"] / "benchmarks" / "figures"
    for name in ("latency-b1.png", "latency-batches.png", "coldstart.png", "cost-memory.png"):
        assert (figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(benchmarks/figures/{name})" in report


def test_tune_writes_memory_into_a_catalog_copy(quick_run, tmp_path, capsys):
    catalog, template = tmp_path / "catalog.yaml", tmp_path / "template.yaml"
    shutil.copy(REPO / "infra" / "catalog.yaml", catalog)
    comments = [line for line in catalog.read_text().splitlines() if line.lstrip().startswith("#")]
    args = ["tune", "digits", "--store", str(quick_run["dir"] / "cache" / "store"), "--catalog", str(catalog),
            "--template", str(template), "--budget", "0.1", "--min-requests", "5", "--json", str(tmp_path / "tune.json"),
            "--write"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "power tuning of digits" in printed and "x86_64: cheapest" in printed
    result = json.loads((tmp_path / "tune.json").read_text())
    chosen = result["recommendation"]["x86_64"]["balanced"]
    assert {m.name: m.memory_mb for m in Catalog.read(catalog).models}["digits"] == chosen
    assert [line for line in catalog.read_text().splitlines() if line.lstrip().startswith("#")] == comments
    assert f"MemorySize: {chosen}" in template.read_text()


def test_tune_names_the_fix_for_a_missing_model(tmp_path, capsys):
    assert main(["tune", "digits", "--store", str(tmp_path), "--catalog", str(REPO / "infra" / "catalog.yaml")]) == 2
    assert "holds no exported model; run `modelfn export" in capsys.readouterr().err


def test_a_saved_run_renders_again(quick_run, tmp_path):
    """--from-json re-derives costs and ratios from a saved run and writes the report without measuring."""
    report = tmp_path / "again" / "BENCHMARKS.md"
    assert main(["bench", "--from-json", str(quick_run["dir"] / "bench.json"), "--report", str(report)]) == 0
    assert "## Fast-path targets" in report.read_text()
    assert (report.parent / "benchmarks" / "figures" / "coldstart.png").is_file()
