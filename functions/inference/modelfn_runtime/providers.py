"""Execution provider choice and thread sizing for the Lambda environment.

The onnxruntime-gpu wheel lists CUDA and TensorRT providers even on a machine without a GPU and only
falls back to CPU, with an error log, when a session is created. So a GPU provider is offered only
when the CUDA driver really reports a device, and the session's own ``get_providers()`` says which
provider actually runs.

Example:
    >>> requested_providers("cpu")
    ['CPUExecutionProvider']
"""

from __future__ import annotations

import ctypes
import math
import os

import onnxruntime as ort

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"
PREFERENCES = ("auto", "cpu", "cuda", "tensorrt")

LAMBDA_MB_PER_VCPU = 1769
"""Lambda grants one full vCPU per 1,769 MB of configured memory (up to 6 vCPUs at 10,240 MB)."""


def cuda_device_count() -> int:
    """CUDA devices the driver reports; 0 without a driver or a device."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if libcuda.cuInit(0) != 0 or libcuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def requested_providers(preference: str = "auto") -> list[str]:
    """Providers to ask onnxruntime for, best first, always ending with CPU.

    ``preference`` is ``MODELFN_EXECUTION_PROVIDER``: ``auto`` (a GPU provider when a device works),
    ``cpu``, ``cuda`` or ``tensorrt``.
    """
    if preference not in PREFERENCES:
        raise ValueError(f"MODELFN_EXECUTION_PROVIDER={preference!r} is invalid; use one of {', '.join(PREFERENCES)}")
    if preference == "cpu":
        return [CPU_PROVIDER]
    available = set(ort.get_available_providers())
    wanted = {"auto": GPU_PROVIDERS, "cuda": GPU_PROVIDERS[1:], "tensorrt": GPU_PROVIDERS}[preference]
    gpu = [name for name in wanted if name in available] if cuda_device_count() > 0 else []
    return [*gpu, CPU_PROVIDER]


def available_vcpus() -> int:
    """vCPUs this process may really use: affinity, the cgroup quota, and Lambda's memory-to-CPU ratio."""
    counts = [len(os.sched_getaffinity(0))]
    quota = _cgroup_cpu_quota()
    if quota:
        counts.append(math.ceil(quota))
    memory_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    if memory_mb and memory_mb.isdigit():
        counts.append(max(1, math.ceil(int(memory_mb) / LAMBDA_MB_PER_VCPU)))
    return max(1, min(counts))


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Options sized for one request at a time: intra-op threads = vCPUs, no inter-op parallelism."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or available_vcpus()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The artifact holds only portable optimizations; the hardware-specific ones happen here.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def _cgroup_cpu_quota() -> float | None:
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)
