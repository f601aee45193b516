"""What this CPU offers int8 inference: the instructions that make ONNX Runtime's int8 kernels pay.

ONNX Runtime's int8 GEMM/conv kernels (MLAS) are faster than fp32 only where the CPU has an int8 dot-product
instruction: x86 VNNI (``avx512_vnni``, or ``avx_vnni`` on client cores) or AMX (``amx_int8``, Sapphire Rapids
and later), Arm's ``asimddp`` (dot product, Graviton2 and later) or ``i8mm`` (Graviton3 and later). Without one
(AVX2-only x86), int8 is often *slower* than fp32: the quantize/dequantize work is added and the arithmetic is
not faster.

Example:
    >>> features = int8_features("flags : fpu avx2 avx512_vnni")
    >>> features["int8_dot_product"]
    ['avx512_vnni']
"""

from __future__ import annotations

import platform
from typing import Any

INT8_INSTRUCTIONS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
"""The /proc/cpuinfo flags of int8 dot-product instructions (x86 VNNI/AMX, Arm dot product / int8 matmul)."""


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def int8_features(cpuinfo: str | None = None) -> dict[str, Any]:
    """``{"model", "machine", "int8_dot_product": [flags]}`` of this CPU (or of the given /proc/cpuinfo text)."""
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    flags: set[str] = set()
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features"):
            flags.update(value.split())
        elif key == "model name" and not model:
            model = value.strip()
    return {"model": model or platform.processor() or "unknown", "machine": platform.machine(),
            "int8_dot_product": [flag for flag in INT8_INSTRUCTIONS if flag in flags]}
