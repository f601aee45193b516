"""Execution provider choice and thread sizing for the Lambda environment.

The onnxruntime-gpu wheel lists CUDA and TensorRT providers even on a machine without a GPU, and lists
TensorRT even where libnvinfer is missing; either way a session logs an "EP Error" and retries without
them. So a GPU provider is offered only when the CUDA driver really reports a device, TensorRT only when
libnvinfer loads, and the session's own ``get_providers()`` says which provider actually runs.

CUDA runs with TF32 matrix math off (``use_tf32=0``): with it on (onnxruntime's default) outputs drift
from the parity-checked CPU answers by up to 2e-2 (measured on an H200, MobileNetV2), with it off by
about 1e-5. ``MODELFN_CUDA_TF32=1`` turns it back on for speed.

On Lambda Managed Instances every concurrent request of an execution environment is its own process with its own
session on the same GPU, so each process caps its CUDA arena (``gpu_mem_limit``) at its share of the accelerator
memory less the CUDA context it cannot cap (``gpu_mem_limit_bytes``, from ``MODELFN_ACCELERATOR_MEMORY_GIB`` and
``MODELFN_ENVIRONMENT_CONCURRENCY``, which the template sets). The catalog checks the same budget before deploying,
with ``estimated_gpu_bytes`` (one rule, here).

Example:
    >>> requested_providers("cpu")
    ['CPUExecutionProvider']
"""

from __future__ import annotations

import ctypes
import math
import os

import onnxruntime as ort

from .environment import ACCELERATOR_MEMORY_GIB, CUDA_TF32, ENVIRONMENT_CONCURRENCY

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
TENSORRT_LIBRARIES = ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so")
CPU_PROVIDER = "CPUExecutionProvider"
PREFERENCES = ("auto", "cpu", "cuda", "tensorrt")

GIB = 2**30
CUDA_PROCESS_OVERHEAD_BYTES = 640 * 2**20
"""GPU memory a process holds outside ONNX Runtime's arena: the CUDA context and the cuBLAS/cuDNN handles and
workspaces. An estimate (NVIDIA's CUDA 12/13 contexts take 300-600 MiB on Ampere/Hopper, plus cuDNN 9's handle), not
a measurement: ``benchmarks/gpu_check.py`` measures "GPU memory per process" on a real GPU and is the authority."""
GPU_BYTES_PER_ARTIFACT_BYTE = 3
"""Arena bytes per byte of ``model.onnx``, an estimate: the weights on the device, their copy while the session
initialises, and activations of a serving batch (convolutional models at b64 need about as much again as their
weights). A model card gives the artifact's size (``artifact.bytes``)."""

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


def estimated_gpu_bytes(artifact_bytes: int) -> int:
    """GPU memory one process serving a model of ``artifact_bytes`` is expected to hold (the rule the catalog checks).

    Example:
        >>> round(estimated_gpu_bytes(100 * 2**20) / 2**20)     # a 100 MiB model.onnx
        940
    """
    return CUDA_PROCESS_OVERHEAD_BYTES + GPU_BYTES_PER_ARTIFACT_BYTE * artifact_bytes


def gpu_mem_limit_bytes(environ: dict[str, str] | None = None) -> int | None:
    """This process's cap on ONNX Runtime's CUDA arena: its share of the accelerator memory
    (``MODELFN_ACCELERATOR_MEMORY_GIB`` / ``MODELFN_ENVIRONMENT_CONCURRENCY``) less the CUDA context; None (no cap)
    where the function has no accelerator memory set. Bad values raise ValueError naming the variable.

    Example:
        >>> gpu_mem_limit_bytes({"MODELFN_ACCELERATOR_MEMORY_GIB": "12", "MODELFN_ENVIRONMENT_CONCURRENCY": "4"}) // 2**20
        2432
    """
    environ = os.environ if environ is None else environ
    raw_memory, raw_concurrency = environ.get(ACCELERATOR_MEMORY_GIB, ""), environ.get(ENVIRONMENT_CONCURRENCY, "") or "1"
    if not raw_memory:
        return None
    try:
        memory, concurrency = float(raw_memory), int(raw_concurrency)
    except ValueError:
        raise ValueError(f"{ACCELERATOR_MEMORY_GIB}={raw_memory!r} / {ENVIRONMENT_CONCURRENCY}={raw_concurrency!r} must be "
                         "numbers (GiB, processes); the template sets them from the catalog") from None
    if memory <= 0 or concurrency < 1:
        raise ValueError(f"{ACCELERATOR_MEMORY_GIB} must be > 0 and {ENVIRONMENT_CONCURRENCY} >= 1; fix the catalog entry")
    share = int(memory * GIB) // concurrency - CUDA_PROCESS_OVERHEAD_BYTES
    if share <= 0:
        raise ValueError(f"{concurrency} processes cannot share {memory:g} GiB of GPU memory (each needs at least "
                         f"{CUDA_PROCESS_OVERHEAD_BYTES // 2**20} MiB for its CUDA context); lower environment_concurrency")
    return share


def provider_options(names: list[str], environ: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Per-provider options, aligned with ``names`` (``InferenceSession(provider_options=...)``): CUDA with TF32 off
    unless asked for, and this process's arena cap where the function has accelerator memory set."""
    environ = os.environ if environ is None else environ
    cuda = {"use_tf32": "1" if environ.get(CUDA_TF32) == "1" else "0"}
    limit = gpu_mem_limit_bytes(environ)
    if limit is not None:
        cuda.update({"gpu_mem_limit": str(limit), "arena_extend_strategy": "kSameAsRequested"})
    return [dict(cuda) if name == "CUDAExecutionProvider" else {} for name in names]


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
