"""GPU check of the runtime's provider choice: run on a CUDA machine with onnxruntime-gpu installed.

    PYTHONPATH=functions/inference python3 benchmarks/gpu_check.py --out gpu.json [--model DIR]

Without ``--model`` it builds MobileNetV2 with torch (random weights, BatchNorm statistics calibrated on random
batches, a logits head: outputs depend on the input) and writes a model card for it. It reports, as JSON:

* what ``providers.requested_providers("auto")`` picks and whether TensorRT's library loads;
* whether opening the session through ``ModelSession.load`` printed an "EP Error" (onnxruntime's fallback when
  a listed provider cannot start), and the same for a session that naively asks for every listed provider;
* GPU vs CPU outputs (max abs diff) with CUDA's TF32 off (modelfn's default) and on;
* median latency for batches of 1, 8 and 64 on CUDA and on CPU (all cores).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_mobilenet(directory: Path) -> Path:
    import torch
    import torchvision

    from modelfn_runtime.modelcard import Artifact, ModelCard, TensorSpec

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(weights=None)
    # Random weights with default BatchNorm statistics give (nearly) the same logits for every input, which would
    # make any parity figure vacuous: calibrate the statistics on random batches so the outputs follow the input.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(6):
            model(torch.rand(16, 3, 224, 224))
    model.eval()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.onnx"
    example = torch.rand(1, 3, 224, 224)
    kwargs = dict(input_names=["pixels"], output_names=["logits"], opset_version=17,
                  dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}})
    try:
        torch.onnx.export(model, example, str(path), dynamo=False, **kwargs)
    except TypeError:
        torch.onnx.export(model, example, str(path), **kwargs)
    raw = path.read_bytes()
    ModelCard(
        name="mobilenet", version="1", created="2026-11-28T00:00:00Z",
        artifact=Artifact("model.onnx", hashlib.sha256(raw).hexdigest(), len(raw)), opset=17,
        producers={"torch": torch.__version__}, inputs=[TensorSpec("pixels", "FP32", [-1, 3, 224, 224])],
        outputs=[TensorSpec("logits", "FP32", [-1, 1000])], parity={}, source={"kind": "torchvision"},
    ).write(directory / "modelcard.json")
    return directory


@contextlib.contextmanager
def captured():
    """Everything printed to stdout/stderr at the Python and the file-descriptor level."""
    buffer = io.StringIO()
    with tempfile.TemporaryFile("w+") as raw:
        saved = os.dup(1), os.dup(2)
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(raw.fileno(), 1), os.dup2(raw.fileno(), 2)
        try:
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                yield buffer
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
            raw.seek(0)
            buffer.write(raw.read())


def latency_ms(session, name: str, batch: np.ndarray, runs: int = 30) -> float:
    for _ in range(3):
        session.run(None, {name: batch})
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, {name: batch})
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model directory (model.onnx + modelcard.json); default: build MobileNetV2")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args()

    import onnxruntime as ort

    from modelfn_runtime import providers
    from modelfn_runtime.session import ModelSession

    model_dir = args.model or build_mobilenet(Path(tempfile.mkdtemp()) / "mobilenet" / "1")
    report: dict = {"onnxruntime": ort.__version__, "available": ort.get_available_providers(),
                    "cuda_devices": providers.cuda_device_count(), "tensorrt_library": providers.tensorrt_available(),
                    "requested_auto": providers.requested_providers("auto")}
    with captured() as log:
        gpu = ModelSession.load(model_dir, preference="auto")
    report["modelfn_session"] = {"provider": gpu.provider, "threads": gpu.threads, "ep_error": "EP Error" in log.getvalue()}
    with captured() as log:
        naive = ort.InferenceSession(str(model_dir / "model.onnx"), providers=ort.get_available_providers())
    report["naive_session"] = {"providers": naive.get_providers(), "ep_error": "EP Error" in log.getvalue(),
                               "log": log.getvalue()[-400:]}
    cpu = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    spec = gpu.card.inputs[0]
    rng = np.random.default_rng(0)
    shape = [8 if dim == -1 else dim for dim in spec.shape]
    x = rng.random(shape, dtype=np.float32)
    reference = cpu.run(None, {spec.name: x})[0]
    ours = gpu.run({spec.name: x})[gpu.card.outputs[0].name]
    tf32 = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CUDAExecutionProvider"],
                                provider_options=[{"use_tf32": "1"}]) if "CUDAExecutionProvider" in ort.get_available_providers() else None
    report["parity"] = {
        "output_spread": float(reference.std(axis=0).mean()),  # how much outputs vary across inputs
        "distinct_top1": int(len(set(reference.argmax(1).tolist()))),
        "max_abs_diff_tf32_off": float(np.abs(ours - reference).max()),
        "max_abs_diff_tf32_on": float(np.abs(tf32.run(None, {spec.name: x})[0] - reference).max()) if tf32 else None,
        "top1_agreement_tf32_off": float((ours.argmax(1) == reference.argmax(1)).mean()),
    }
    report["latency_ms"] = {}
    for batch_size in (1, 8, 64):
        batch = rng.random([batch_size if dim == -1 else dim for dim in spec.shape], dtype=np.float32)
        report["latency_ms"][f"b{batch_size}"] = {"modelfn_gpu": latency_ms(gpu.session, spec.name, batch),
                                                  "cpu": latency_ms(cpu, spec.name, batch, runs=10)}
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
