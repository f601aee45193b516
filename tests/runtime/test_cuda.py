"""modelfn_runtime.cuda: the CUDA libraries of the nvidia-* wheels load at import with onnxruntime-gpu, and one log
line says what the process serves on; with the CPU onnxruntime nothing happens."""

from __future__ import annotations

from modelfn_runtime import cuda


def test_cpu_onnxruntime_loads_nothing_and_says_nothing(capsys):
    assert cuda.preload() == {"device": "CPU"}
    assert capsys.readouterr().out == ""


def report(devices: int, driver: int, loaded: list[str]) -> dict:
    return {"cuda_devices": devices, "cuda_driver": driver, "loaded": loaded}


def test_the_verdict_names_why_a_gpu_image_serves_on_cpu():
    libraries = ["libcublasLt.so.13", "libcudnn.so.9"]
    assert cuda._verdict(report(1, 13000, libraries)) == (True, "CUDA libraries preloaded, 1 CUDA device(s): this GPU image serves on CUDA")
    cases = {
        (0, 0, True): "no NVIDIA driver here",
        (0, 13000, True): "no CUDA device here",
        (1, 12080, True): "the NVIDIA driver runs CUDA 12.8 but onnxruntime-gpu 1.31 needs CUDA 13 (driver R580+)",
        (1, 13000, False): "this image has no CUDA libraries (built with cuda_libraries=False)",
    }
    for (devices, driver, has_libraries), reason in cases.items():
        fields = report(devices, driver, libraries if has_libraries else [])
        usable, message = cuda._verdict(fields)
        assert not usable and message == f"{reason}: this GPU image serves on CPUExecutionProvider"
        assert fields["serves_on"] == "CPUExecutionProvider"
