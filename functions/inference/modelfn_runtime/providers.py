"""Execution provider choice and thread sizing for the Lambda environment.

The onnxruntime-gpu wheel lists CUDA and TensorRT providers even on a machine without a GPU, and lists
TensorRT even where libnvinfer is missing; either way a session logs an "EP Error" and retries without
them. So a GPU provider is offered only when the CUDA driver really reports a device, TensorRT only when
libnvinfer loads, and the session's own ``get_providers()`` says which provider actually runs.

CUDA runs with TF32 matrix math off (``use_tf32=0``): with it on (onnxruntime's default) outputs drift
from the parity-checked CPU answers by up to 2e-2 (measured on an H200, MobileNetV2), with it off by
about 1e-5. ``MODELFN_CUDA_TF32=1`` turns it back on for speed.

Example:
    >>> requested_providers("cpu")
    ['CPUExecutionProvider']
"""

from __future__ import annotations

import ctypes
import math
import os

import onnxruntime as ort

from .environment import CUDA_TF32

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
TENSORRT_LIBRARIES = ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so")
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
    if "TensorrtExecutionProvider" in available and not tensorrt_available():
        available.discard("TensorrtExecutionProvider")
    wanted = {"auto": GPU_PROVIDERS, "cuda": GPU_PROVIDERS[1:], "tensorrt": GPU_PROVIDERS}[preference]
    gpu = [name for name in wanted if name in available] if cuda_device_count() > 0 else []
    return [*gpu, CPU_PROVIDER]


def tensorrt_available() -> bool:
    """True when TensorRT's runtime library loads (onnxruntime-gpu lists the provider regardless)."""
    for name in TENSORRT_LIBRARIES:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def provider_options(names: list[str]) -> list[dict[str, str]]:
    """Per-provider options, aligned with ``names`` (``InferenceSession(provider_options=...)``)."""
    tf32 = "1" if os.environ.get(CUDA_TF32) == "1" else "0"
    return [{"use_tf32": tf32} if name == "CUDAExecutionProvider" else {} for name in names]


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
