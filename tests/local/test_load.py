"""Bounded load and fault runs in CI (smaller than ``make load``; RELIABILITY.md has the full run's figures)."""

from __future__ import annotations

import pytest

from modelfn_infra.load import run

from ..conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.load]


def test_load_and_fault_runs(digits_store):
    report = run(requests=2_000, clients=4, fault_requests=1_500, model_dir=digits_store / "digits" / "1",
                 template=REPO / "template.yaml", deadline_s=240)
    load, fault = report.load, report.fault
    print("load", load, "\nfault", fault)
    assert load["requests"] == 2_000 and load["errors"] == 0
    assert load["rss_growth_mb"] < 30, "the function processes grew: a leak"
    assert fault["killed_processes"] == 1
    assert fault["errors"] <= fault["killed_processes"], "at most the one in-flight request per killed process may fail"
    assert fault["requests_after_recovery"] > 0 and fault["failed_after_recovery"] == 0
