"""The arithmetic of `modelfn tune` and the catalog edit of `--write`, without measuring anything."""

from __future__ import annotations

import pytest

from modelfn_infra.bench.catalog_memory import set_memory
from modelfn_infra.bench.models import select
from modelfn_infra.bench.tune import LambdaSizing, contention, cost_per_million, power_table, predict, recommend
from modelfn_infra.billing import AwsCosts
from modelfn_infra.catalog import Catalog, CatalogError
from modelfn_infra.catalog_edit import set_key

from ..conftest import REPO

COSTS = REPO / "infra" / "pricing" / "aws.yaml"


@pytest.fixture(scope="module")
def sizing() -> LambdaSizing:
    return LambdaSizing.load(COSTS)


def measured(p1: float = 10.0, p2: float = 6.0, cpu1: float = 10.0, cpu2: float = 11.0, rss: float = 150.0) -> dict:
    return {1: {"p50": p1, "p99": 2 * p1, "cpu_p50": cpu1, "peak_rss_mb": rss},
            2: {"p50": p2, "p99": 2 * p2, "cpu_p50": cpu2, "peak_rss_mb": rss}}


def test_lambda_sizing_follows_the_vcpu_rule(sizing):
    assert (sizing.mb_per_vcpu, sizing.max_vcpus, sizing.billing_granularity_ms) == (1769, 6, 1)
    assert [sizing.threads(m) for m in (128, 1769, 1770, 3538, 5307, 10240)] == [1, 1, 2, 2, 3, 6]
    assert sizing.sizes[0] == 128 and sizing.sizes[-1] == 10240


def test_predict_measures_scales_and_extrapolates(sizing):
    figures = measured()
    at_one = predict(figures, sizing, 1769)
    assert at_one["basis"] == "measured" and at_one["p50_ms"] == pytest.approx(10.0)
    quarter = predict(figures, sizing, 1769 // 4)  # a quarter of a vCPU: the CPU time needs four times as long
    assert quarter["basis"].startswith("scaled") and quarter["p50_ms"] == pytest.approx(10.0 / (442 / 1769))
    assert quarter["p99_ms"] == pytest.approx(quarter["p50_ms"] * 2)
    two = predict(figures, sizing, 3538)
    assert two["basis"] == "measured" and two["p50_ms"] == pytest.approx(6.0)
    six = predict(figures, sizing, 10240)  # Amdahl: p = 2 * (1 - 6/10) = 0.8
    assert six["basis"].startswith("extrapolated") and six["threads"] == 6
    amdahl = 10.0 * (0.2 + 0.8 / 6)
    assert six["p50_ms"] == pytest.approx(max(amdahl, 11.0 / (10240 / 1769)))


def test_a_busy_machine_counts_cpu_time_not_waiting(sizing):
    """Wall time beyond the CPU time was spent waiting for another process's CPU: the quiet bound is used."""
    busy = measured(p1=30.0, cpu1=10.0, p2=40.0, cpu2=16.0)  # other processes held the cores
    assert contention(busy) == pytest.approx(3.0)
    assert predict(busy, sizing, 1769)["p50_ms"] == pytest.approx(10.0)
    assert predict(busy, sizing, 1769)["p99_ms"] == pytest.approx(60.0 / 3)
    assert predict(busy, sizing, 3538)["p50_ms"] == pytest.approx(16.0)
    assert contention(measured()) == pytest.approx(1.0)


def test_cost_per_million_bills_whole_milliseconds(sizing):
    costs = AwsCosts.load(COSTS)
    # 99.2 ms bills as 100 ms: 1M x (0.1 s x 1 GB x $0.0000166667 + $0.0000002)
    assert cost_per_million(99.2, 1024, "x86_64", costs, sizing) == pytest.approx(1.66667 + 0.2, rel=1e-5)
    assert cost_per_million(99.2, 1024, "arm64", costs, sizing) < cost_per_million(99.2, 1024, "x86_64", costs, sizing)


def test_recommend_cheapest_meeting_the_target_and_balanced(sizing):
    rows = power_table(measured(rss=300.0), sizing, AwsCosts.load(COSTS))
    assert [r["memory_mb"] for r in rows if not r["fits"]] == [128, 256]  # 300 MB peak + 15 % headroom
    free = recommend(rows, None)
    eligible = [r for r in rows if r["fits"]]
    assert free["cheapest"] == min(eligible, key=lambda r: (r["cost_x86_64"], r["p50_ms"]))["memory_mb"]
    assert free["balanced"] in [r["memory_mb"] for r in eligible]
    tight = recommend(rows, 13.0)  # p99 = 2 x p50 must stay under 13 ms: p50 <= 6.5 ms, 2 threads or more
    chosen = next(r for r in rows if r["memory_mb"] == tight["cheapest"])
    assert chosen["p99_ms"] <= 13.0 and chosen["threads"] >= 2
    impossible = recommend(rows, 0.001)
    assert impossible["cheapest"] is None and "no size meets" in impossible["why"]


CATALOG = """# the catalog
models:
  - name: digits   # the demo
    version: "1"
    memory_mb: 1024   # keep this comment
    timeout_s: 10
  - name: other
    version: "2"
"""


def test_set_key_keeps_comments_and_inserts_missing_keys():
    edited = set_key(CATALOG, "digits", "memory_mb", "2048")
    assert "    memory_mb: 2048   # keep this comment\n" in edited
    assert edited.replace("2048", "1024") == CATALOG
    inserted = set_key(CATALOG, "other", "memory_mb", "512")
    assert inserted.endswith('  - name: other\n    memory_mb: 512\n    version: "2"\n')
    with pytest.raises(CatalogError, match="no entry for 'missing'"):
        set_key(CATALOG, "missing", "memory_mb", "512")


def test_set_memory_validates_then_renders(tmp_path):
    catalog, template = tmp_path / "catalog.yaml", tmp_path / "template.yaml"
    catalog.write_text((REPO / "infra" / "catalog.yaml").read_text())
    before = catalog.read_text()
    assert set_memory(catalog, template, "digits", 1769) == 1024
    after = catalog.read_text()
    assert [line for line in before.splitlines() if line.lstrip().startswith("#")] == \
        [line for line in after.splitlines() if line.lstrip().startswith("#")]
    assert {m.name: m.memory_mb for m in Catalog.read(catalog).models}["digits"] == 1769
    assert "MemorySize: 1769" in template.read_text()
    with pytest.raises(CatalogError, match="memory_mb must be between"):
        set_memory(catalog, template, "digits", 64)
    assert catalog.read_text() == after  # a refused edit writes nothing


def test_select_names():
    assert select(None, quick=True) == ["digits", "digits-int8", "small-cnn", "small-cnn-int8"]
    assert len(select(None, quick=False)) == 8
    assert select(["resnet50-int8", "digits"], quick=False) == ["resnet50-int8", "digits", "digits-int8"]
    with pytest.raises(ValueError, match="unknown benchmark model 'mnist'"):
        select(["mnist"], quick=True)
