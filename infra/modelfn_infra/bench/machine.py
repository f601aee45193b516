"""The machine a benchmark ran on: CPU, cores, memory, load, and the versions that shape the figures.

Example:
    >>> facts = describe()
    >>> sorted(facts)[:3]
    ['commit', 'cores', 'cpu']
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
PACKAGES = ("onnxruntime", "numpy", "tensorflow-cpu", "keras", "aws-lambda-powertools", "awslambdaric", "aws-sam-cli")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def _commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "-"
    return f"{head}{' (uncommitted changes)' if dirty else ''}" if head else "-"


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (runnable processes): above the core count, runs wait for CPU."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def describe() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": _memory_gib(),
        "architecture": platform.machine(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "versions": {package: _version(package) for package in PACKAGES},
        "commit": _commit(),
        "load_average_start": load_average(),
    }
