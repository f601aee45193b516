"""benchmarks/gpu_check.py runs every step but CUDA here (--dry-run), so its one run on a GPU machine works first time."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from ..conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def load_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_dry_run_exercises_the_whole_check_on_cpu(tmp_path):
    out, page = tmp_path / "gpu.json", tmp_path / "gpu.md"
    page.write_text("# GPU functions\n\nkept text\n\n<!-- gpu-check:begin -->\nold results\n<!-- gpu-check:end -->\n\nafter\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("functions/inference", "export", "infra")),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--builder", "keras", "--store", str(tmp_path / "store"),
                             "--json", str(out), "--markdown", str(page)], env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["models"]) == {"mobilenet", "resnet"} and report["dry_run"]
    assert report["runtime"]["warm_up"].startswith(("runtime", "absent")), "each runtime feature says whether it is there"
    for name, model in report["models"].items():
        assert model["provider"] == "CPUExecutionProvider"
        assert model["informative"]["ok"] and model["informative"]["distinct_top1_of_32"] > 1, f"{name}: a constant head"
        assert model["parity"]["ok"] and model["parity"]["tolerance"] == 1e-4
        routes = {model["latency_ms"][f"b{size}"]["route"].split(" (")[0] for size in (1, 8, 64)}
        assert routes == {"REST event", "S3/SQS job chunk"}, "both handler routes ran (the job one above the limit)"
        for size in (1, 8, 64):
            row = model["latency_ms"][f"b{size}"]
            assert row["handler"] > 0 and row["bare_io_binding"] > 0
        cold = model["cold_start"]
        assert "error" not in cold, cold
        assert 0 < cold["init_s"] < cold["start_to_first_prediction_s"] and cold["provider"] == "CPUExecutionProvider"
        assert cold["gpu_memory"]["how"].startswith("unavailable")
    text = page.read_text()
    assert text.startswith("# GPU functions\n\nkept text") and text.rstrip().endswith("after") and "old results" not in text
    assert "| resnet | 64 |" in text and "Dry run on CPU" in text


def test_nvidia_smi_compute_apps_parse():
    check = load_check()
    listed = "4242, 1536\n77, 20480\n[N/A], 3\n"
    assert check.parse_compute_apps(listed) == {4242: 1536.0, 77: 20480.0}
    assert check.gpu_memory(os.getpid(), None)["mb"] is None, "no driver here: said, not invented"
