"""CUDA for onnxruntime-gpu from PyPI's nvidia-* wheels: loaded when the runtime imports onnxruntime, said in one log line.

The GPU image (Dockerfile.gpu) carries onnxruntime-gpu in /opt/python and, beside it, the CUDA 13 + cuDNN 9
runtime libraries of the nvidia-* wheels (/opt/python/nvidia/cu13/lib, /opt/python/nvidia/cudnn/lib). They have
no RPATH that onnxruntime's CUDA provider could follow and the Lambda base image has no system CUDA, so
``onnxruntime.preload_dlls()`` loads them by path before any session opens (from beside onnxruntime, else from
wherever ``sys.path`` has them); the provider then finds
libcublasLt.so.13, libcudnn.so.9 and the rest already loaded. ``session.py`` imports this module, so this
happens once per process at init (on Lambda Managed Instances every concurrent request has its own process).

With the CPU onnxruntime (Zip functions, the CPU image) ``preload`` returns at once and logs nothing. With
onnxruntime-gpu it logs one line: the CUDA libraries loaded, the driver's CUDA version and the device count; where
no device works (a laptop, CI, ``sam local``) it says that this GPU image serves on CPUExecutionProvider, and the
"model loaded" line that follows names that provider.

Example:
    >>> REPORT["device"] in ("CPU", "GPU")
    True
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import sys
import time
from pathlib import Path

import onnxruntime as ort

from .observability import logger

CUDA_13_DRIVER = 13000
"""``cuDriverGetVersion()`` of a driver that runs CUDA 13 (R580 or newer); onnxruntime-gpu 1.31 is built for CUDA 13.0."""


def driver_cuda_version() -> int:
    """The CUDA version the NVIDIA driver supports (1000 * major + 10 * minor); 0 without a driver."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    version = ctypes.c_int(0)
    return version.value if libcuda.cuDriverGetVersion(ctypes.byref(version)) == 0 else 0


def loaded_nvidia_libraries() -> list[str]:
    """File names of the shared libraries from an ``nvidia/`` wheel directory mapped into this process."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    return sorted({line.rsplit("/", 1)[-1] for line in maps.splitlines() if "/nvidia/" in line and ".so" in line})


def nvidia_libraries() -> Path | None:
    """The ``nvidia/`` directory of the nvidia-* wheels for this onnxruntime-gpu's CUDA major version: beside
    onnxruntime (the GPU image), else anywhere on ``sys.path`` (an environment that installed them elsewhere)."""
    from onnxruntime.capi.build_and_package_info import cuda_version

    major = str(cuda_version).split(".")[0]
    for site in (Path(ort.__file__).resolve().parent.parent, *map(Path, sys.path)):
        if (site / "nvidia" / f"cu{major}" / "lib").is_dir():
            return site / "nvidia" / f"cu{major}" / "lib"
    return None


def preload() -> dict:
    """Load the nvidia-* wheels' CUDA libraries for onnxruntime-gpu (when both are installed) and log the outcome."""
    report: dict = {"device": ort.get_device()}
    if report["device"] != "GPU":
        return report  # the CPU onnxruntime: nothing to load, nothing to say
    from .providers import cuda_device_count

    started = time.perf_counter()
    cuda_lib = nvidia_libraries()
    report.update(onnxruntime=ort.__version__, cuda_libraries="absent", loaded=[])
    if cuda_lib is not None:
        cudnn_lib = cuda_lib.parent.parent / "cudnn" / "lib"
        output = io.StringIO()
        with contextlib.redirect_stdout(output):  # preload_dlls prints its failures; they belong in the one log line
            ort.preload_dlls(cuda=True, cudnn=False, msvc=False, directory=str(cuda_lib))
            if cudnn_lib.is_dir():
                ort.preload_dlls(cuda=False, cudnn=True, msvc=False, directory=str(cudnn_lib))
        report.update(cuda_libraries=str(cuda_lib.parent.parent), loaded=loaded_nvidia_libraries(),
                      preload_output=output.getvalue().strip()[-600:])
    report.update(cuda_driver=driver_cuda_version(), cuda_devices=cuda_device_count(),
                  preload_ms=round((time.perf_counter() - started) * 1000, 1))
    usable, message = _verdict(report)
    report["verdict"] = message
    (logger.info if usable else logger.warning)(message, **report)
    return report


def _verdict(report: dict) -> tuple[bool, str]:
    """Whether CUDA can serve here, and the log message that says so (or why not)."""
    usable = report["cuda_devices"] > 0 and report["cuda_driver"] >= CUDA_13_DRIVER and bool(report["loaded"])
    report["serves_on"] = "CUDAExecutionProvider" if usable else "CPUExecutionProvider"
    if usable:
        return True, f"CUDA libraries preloaded, {report['cuda_devices']} CUDA device(s): this GPU image serves on CUDA"
    if report["cuda_devices"] == 0:
        reason = "no CUDA device here" if report["cuda_driver"] else "no NVIDIA driver here"
    elif report["cuda_driver"] < CUDA_13_DRIVER:
        major, minor = divmod(report["cuda_driver"] // 10, 100)
        reason = f"the NVIDIA driver runs CUDA {major}.{minor} but onnxruntime-gpu 1.31 needs CUDA 13 (driver R580+)"
    else:
        reason = "this image has no CUDA libraries (built with cuda_libraries=False)"
    return False, f"{reason}: this GPU image serves on CPUExecutionProvider"


REPORT = preload()
