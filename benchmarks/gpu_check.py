"""GPU check: the modelfn handler on MobileNetV2 and ResNet50 with onnxruntime-gpu, against bare onnxruntime-gpu.

One command on a CUDA machine with onnxruntime-gpu 1.31 and the CUDA 13 + cuDNN 9 nvidia-* wheels (the GPU image's
set, no Docker), from the repository root:

    PYTHONPATH=functions/inference:export python3 benchmarks/gpu_check.py           # writes docs/gpu.md + JSON
    PYTHONPATH=functions/inference:export python3 benchmarks/gpu_check.py --dry-run --markdown /tmp/gpu.md

For each model it reports, as JSON and as the results section of docs/gpu.md:

* the provider the runtime chose (``ModelSession.load(preference="auto")``) and what ``modelfn_runtime.cuda``
  preloaded (the CUDA libraries, the driver, the devices);
* whether the model is informative (its outputs vary with the input: the weights are random, with BatchNorm
  statistics calibrated on random batches, so no constant-output head makes parity vacuous) and GPU/CPU agreement:
  max |GPU - CPU| over a batch of 8 against ``--tolerance`` (1e-4 by default; the check fails above it);
* median latency of batches of 1, 8 and 64 through the handler (``app.lambda_handler`` with an API Gateway REST
  event carrying a binary OIP request; batches over Lambda's 6 MB synchronous limit go the way large batches go
  in production, as an S3/SQS job's chunk through the service) against bare ``session.run`` with I/O binding on
  the same session: the service's overhead, target <= 5 % at b8;
* process start to first prediction in a fresh process (import, session creation, warm-up, first request), target:
  <= 1 s without the warm-up; and the GPU memory that one process holds (NVML, else nvidia-smi).

``--dry-run`` runs every step on the CPU provider with small images and few repetitions (a test smoke-runs it), so
the one run on a GPU exercises nothing new but CUDA. Models are built with torch/torchvision where they are
installed (the GPU machine), else with Keras through modelfn's own exporter. Nothing is downloaded.

Runtime features the check measures but the runtime does not have yet are named in the report's ``runtime``
section; ``Runtime`` below is the small interface the check is written against and says what the runtime must
provide (``ModelSession.warm_up``, I/O binding in ``ModelSession.run``, ``gpu_mem_limit``).
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BATCHES = (1, 8, 64)
MODELS = ("mobilenet", "resnet")
DOCS_BEGIN, DOCS_END = "<!-- gpu-check:begin -->", "<!-- gpu-check:end -->"
SYNC_LIMIT = 6 * 1024 * 1024


# ---------------------------------------------------------------------------------------------------- models
def build_model(kind: str, size: int, store: Path, builder: str) -> Path:
    """Build ``kind`` (mobilenet or resnet) for ``size`` x ``size`` images into ``store/kind/1``; returns the directory."""
    if builder == "auto":
        try:
            import torchvision  # noqa: F401

            builder = "torch"
        except ImportError:
            builder = "keras"
    return (_build_torch if builder == "torch" else _build_keras)(kind, size, store / kind / "1")


def _build_torch(kind: str, size: int, directory: Path) -> Path:
    import torch
    import torchvision

    from modelfn_runtime.modelcard import Artifact, ModelCard, TensorSpec

    torch.manual_seed(0)
    model = {"mobilenet": torchvision.models.mobilenet_v2, "resnet": torchvision.models.resnet50}[kind](weights=None)
    for module in model.modules():  # calibrated BatchNorm statistics: outputs follow the input (no constant head)
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(6):
            model(torch.rand(16, 3, size, size))
    model.eval()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.onnx"
    kwargs = dict(input_names=["pixels"], output_names=["logits"], opset_version=17,
                  dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}})
    try:
        torch.onnx.export(model, torch.rand(1, 3, size, size), str(path), dynamo=False, **kwargs)
    except TypeError:
        torch.onnx.export(model, torch.rand(1, 3, size, size), str(path), **kwargs)
    raw = path.read_bytes()
    ModelCard(
        name=kind, version="1", created="2026-12-01T00:00:00Z",
        artifact=Artifact("model.onnx", hashlib.sha256(raw).hexdigest(), len(raw)), opset=17,
        producers={"torch": torch.__version__}, inputs=[TensorSpec("pixels", "FP32", [-1, 3, size, size])],
        outputs=[TensorSpec("logits", "FP32", [-1, 1000])], parity={}, source={"kind": "torchvision"},
    ).write(directory / "modelcard.json")
    return directory


def _build_keras(kind: str, size: int, directory: Path) -> Path:
    import keras

    from modelfn_export import export_model

    keras.utils.set_random_seed(0)
    application = {"mobilenet": keras.applications.MobileNetV2, "resnet": keras.applications.ResNet50}[kind]
    model = application(weights=None, input_shape=(size, size, 3), classifier_activation=None)
    for layer in model.layers:  # the last batch's statistics become the moving ones: outputs follow the input
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(np.random.default_rng(0).random((16, size, size, 3), dtype=np.float32), training=True)
    # TensorFlow and ONNX differ by up to ~2e-3 on these random-weight logits (float reassociation in 50 layers);
    # the check's own GPU/CPU parity is measured on the ONNX model, so this gate only has to catch a broken conversion
    export_model(model, kind, version="1", out=str(directory.parent.parent), atol=1e-2, rtol=1e-2)
    return directory


# ---------------------------------------------------------------------------------------------------- the runtime
class Runtime:
    """What the check needs from modelfn_runtime, and which of it the runtime has (``features``).

    The runtime must provide, for the GPU half of issue 17 (the check falls back and says so while it does not):

    * ``ModelSession.warm_up(batch_sizes) -> float`` (ms), called at init by ``handler.load_service`` and kept as
      ``model.warm_up_ms``: one run per batch size so the first request does not pay kernel selection;
    * I/O binding inside ``ModelSession.run`` on CUDA for batches >= ``model.io_binding_threshold`` (measured);
    * ``gpu_mem_limit`` per process from the accelerator memory and the per-environment concurrency, reported as
      ``model.gpu_mem_limit`` (bytes), with ``arena_extend_strategy=kSameAsRequested``.
    """

    def __init__(self) -> None:
        from modelfn_runtime import cuda
        from modelfn_runtime.session import ModelSession

        self.session_type = ModelSession
        self.preload = cuda.REPORT
        self.features = {
            "warm_up": "runtime" if hasattr(ModelSession, "warm_up") else "absent: the check warms up itself",
            "io_binding": "runtime" if hasattr(ModelSession, "io_binding_threshold") else "absent: session.run copies",
            "gpu_mem_limit": "runtime" if hasattr(ModelSession, "gpu_mem_limit") else "absent: the arena grows freely",
        }

    def load(self, model_dir: Path, preference: str):
        return self.session_type.load(model_dir, preference=preference)

    def warm_up(self, model, batches: tuple[int, ...] = BATCHES) -> float:
        """The runtime's warm-up when it has one, else one ``model.run`` per batch size; milliseconds."""
        if hasattr(model, "warm_up"):
            return float(model.warm_up(batches))
        started = time.perf_counter()
        for batch in batches:
            model.run({spec.name: example(spec, batch) for spec in model.card.inputs})
        return (time.perf_counter() - started) * 1000


def example(spec, batch: int, seed: int = 0) -> np.ndarray:
    shape = [batch if dim == -1 else dim for dim in spec.shape]
    return np.random.default_rng(seed + batch).random(shape, dtype=np.float32)


# ---------------------------------------------------------------------------------------------------- requests
class Context:
    aws_request_id = "gpu-check"
    function_name = "GpuCheckFunction"
    memory_limit_in_mb = 16384
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:GpuCheckFunction"

    def get_remaining_time_in_millis(self) -> int:
        return 60000


def binary_request(name: str, array: np.ndarray) -> tuple[dict[str, str], bytes]:
    raw = np.ascontiguousarray(array).tobytes()
    header = json.dumps({"inputs": [{"name": name, "shape": list(array.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True}}, separators=(",", ":")).encode()
    return {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header))}, header + raw


def rest_event(model: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    event = copy.deepcopy(json.loads((REPO / "events" / "rest-infer-binary.json").read_text()))
    event.update(path=f"/v2/models/{model}/infer", resource=f"/v2/models/{model}/{{proxy+}}", isBase64Encoded=True,
                 body=base64.b64encode(body).decode(), headers={**event["headers"], **headers},
                 multiValueHeaders={**event.get("multiValueHeaders", {}), **{k: [v] for k, v in headers.items()}})
    event.setdefault("pathParameters", {})["proxy"] = "infer"
    return event


def decode_binary(body: bytes, header_length: int) -> np.ndarray:
    header = json.loads(body[:header_length])
    (output,) = header["outputs"]
    return np.frombuffer(body[header_length:], np.float32).reshape(output["shape"])


def handler_path(model_name: str, input_name: str, batch: np.ndarray, limit: int = SYNC_LIMIT) -> tuple[str, Callable[[], np.ndarray]]:
    """One request through the handler: a REST event when it fits Lambda's synchronous limit, else a job's chunk."""
    import app
    from modelfn_runtime import handler
    from modelfn_runtime.http import Headers, HttpRequest

    headers, body = binary_request(input_name, batch)
    if len(base64.b64encode(body)) + 2048 <= limit:
        event = rest_event(model_name, headers, body)

        def call() -> np.ndarray:
            response = app.lambda_handler(event, Context())
            assert response["statusCode"] == 200, response.get("body", "")[:300]
            raw = base64.b64decode(response["body"])
            return decode_binary(raw, int(_header(response, "Inference-Header-Content-Length")))

        return "REST event (app.lambda_handler)", call
    request = HttpRequest("POST", f"/v2/models/{model_name}/infer", Headers({k.lower(): v for k, v in headers.items()}),
                          body=body, trigger="s3", request_id="gpu-check")

    def job_chunk() -> np.ndarray:
        response = handler.SERVICE.handle(request)
        assert response.status == 200, response.body[:300]
        return decode_binary(response.body, int(response.headers["Inference-Header-Content-Length"]))

    return "S3/SQS job chunk (service.handle): over the 6 MB synchronous limit", job_chunk


def _header(response: dict[str, Any], name: str) -> str:
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return headers[name.lower()]


def bare_io_binding(session, input_name: str, output_names: list[str], batch: np.ndarray) -> Callable[[], np.ndarray]:
    """Bare onnxruntime: bind the host batch (copied to the device in the run) and the outputs back to the host."""
    binding = session.io_binding()

    def call() -> np.ndarray:
        binding.bind_cpu_input(input_name, batch)
        for name in output_names:
            binding.bind_output(name)
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    return call


def median_ms(call: Callable[[], Any], runs: int, warm: int = 3) -> float:
    for _ in range(warm):
        call()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 3)


def interleaved(calls: dict[str, Callable[[], Any]], runs: int, blocks: int = 5) -> dict[str, float]:
    """Median of each call, measured in alternating blocks so that machine noise hits all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(blocks):
        for name, call in calls.items():
            samples[name].append(median_ms(call, max(1, runs // blocks)))
    return {name: round(statistics.median(values), 3) for name, values in samples.items()}


# ---------------------------------------------------------------------------------------------------- one model
def check_model(runtime: Runtime, model_dir: Path, preference: str, runs: int, tolerance: float,
                limit: int = SYNC_LIMIT) -> dict[str, Any]:
    """Provider, informativeness, GPU/CPU agreement and latency of one model through the handler and bare."""
    import onnxruntime as ort

    from modelfn_runtime import handler

    os.environ.update(MODEL_NAME=model_dir.parent.name, MODEL_VERSION="1", MODEL_URI=str(model_dir),
                      MODELFN_MODELS=model_dir.parent.name, MODELFN_EXECUTION_PROVIDER=preference, MODELFN_USAGE_TABLE="")
    handler.SERVICE = handler.load_service()  # the handler's documented replacement hook: this model, this provider
    model = handler.SERVICE.model
    warm_up_ms = runtime.warm_up(model)
    spec, output = model.card.inputs[0], model.card.outputs[0].name
    cpu = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    x = example(spec, 8, seed=1)
    reference = cpu.run([output], {spec.name: x})[0]
    route, call = handler_path(model.card.name, spec.name, x, limit)
    ours = call()
    diff = float(np.abs(ours - reference).max())
    report: dict[str, Any] = {
        "provider": model.provider, "threads": model.threads, "warm_up_ms": round(warm_up_ms, 1),
        "input": spec.shape, "informative": informative(cpu, spec, output),
        "parity": {"max_abs_diff": diff, "tolerance": tolerance, "ok": diff <= tolerance,
                   "top1_agreement": float((ours.argmax(1) == reference.argmax(1)).mean())},
        "latency_ms": {},
    }
    for size in BATCHES:
        batch = example(spec, size, seed=2)
        route, through_handler = handler_path(model.card.name, spec.name, batch, limit)
        bare = bare_io_binding(model.session, spec.name, [output], batch)
        timed = interleaved({"handler": through_handler, "bare_io_binding": bare}, runs)
        overhead = (timed["handler"] - timed["bare_io_binding"]) / timed["bare_io_binding"] * 100
        report["latency_ms"][f"b{size}"] = {**timed, "overhead_pct": round(overhead, 1), "route": route}
    report["latency_ms"]["target_b8_overhead_pct"] = 5.0
    report["latency_ms"]["b8_ok"] = report["latency_ms"]["b8"]["overhead_pct"] <= 5.0
    return report


def informative(session, spec, output: str) -> dict[str, Any]:
    """Do the outputs depend on the input? Spread across 32 random inputs and how many distinct top-1 classes."""
    logits = session.run([output], {spec.name: example(spec, 32, seed=3)})[0]
    spread, distinct = float(logits.std(axis=0).mean()), int(len(set(logits.argmax(1).tolist())))
    return {"output_spread": spread, "distinct_top1_of_32": distinct, "ok": spread > 1e-3 and distinct > 1}


# ---------------------------------------------------------------------------------------------------- a fresh process
CHILD_FLAG = "--child"


def cold_start(model_dir: Path, preference: str) -> dict[str, Any]:
    """Process start to first prediction, and the GPU memory one serving process holds, in a fresh interpreter."""
    env = {**os.environ, "MODEL_NAME": model_dir.parent.name, "MODEL_VERSION": "1", "MODEL_URI": str(model_dir),
           "MODELFN_MODELS": model_dir.parent.name, "MODELFN_EXECUTION_PROVIDER": preference, "MODELFN_USAGE_TABLE": "",
           "GPU_CHECK_T0": repr(time.time())}
    result = subprocess.run([sys.executable, __file__, CHILD_FLAG], env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        return {"error": result.stderr[-1500:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def child() -> int:
    """Run in the fresh process: import the handler (init), warm up, answer one b1 request, read GPU memory."""
    started = float(os.environ["GPU_CHECK_T0"])
    before = device_memory_used()
    import app  # noqa: F401 - init: preload, session creation (and the runtime's warm-up, when it has one)
    from modelfn_runtime import handler

    initialised = time.time()
    model = handler.SERVICE.model
    runtime = Runtime()
    warm_up_ms = getattr(model, "warm_up_ms", None)
    if warm_up_ms is None:
        warm_up_ms = runtime.warm_up(model)
    warmed = time.time()
    spec = model.card.inputs[0]
    _, call = handler_path(model.card.name, spec.name, example(spec, 1, seed=4))
    call()
    answered = time.time()
    memory = gpu_memory(os.getpid(), before)
    print(json.dumps({
        "provider": model.provider, "init_s": round(initialised - started, 3), "warm_up_s": round(warmed - initialised, 3),
        "runtime_warm_up_ms": getattr(model, "warm_up_ms", None), "first_prediction_ms": round((answered - warmed) * 1000, 1),
        "start_to_first_prediction_s": round(answered - started, 3),
        "without_warm_up_s": round(answered - started - warm_up_ms / 1000, 3), "target_without_warm_up_s": 1.0,
        "ok": answered - started - warm_up_ms / 1000 <= 1.0, "gpu_memory": memory,
    }))
    return 0


def device_memory_used() -> int | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).used)
    except Exception:  # noqa: BLE001 - no NVML, no driver, no device: the report says so
        return None


def gpu_memory(pid: int, used_before: int | None) -> dict[str, Any]:
    """GPU memory of ``pid``: NVML's per-process figure, else nvidia-smi's, plus the device's growth since start."""
    growth = None
    if used_before is not None and (now := device_memory_used()) is not None:
        growth = round((now - used_before) / 2**20, 1)
    try:
        import pynvml

        pynvml.nvmlInit()
        for process in pynvml.nvmlDeviceGetComputeRunningProcesses(pynvml.nvmlDeviceGetHandleByIndex(0)):
            if process.pid == pid and process.usedGpuMemory is not None:
                return {"mb": round(process.usedGpuMemory / 2**20, 1), "how": "NVML per process", "device_growth_mb": growth}
    except Exception:  # noqa: BLE001 - fall through to nvidia-smi
        pass
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, timeout=30).stdout
        mb = parse_compute_apps(listed).get(pid)
        if mb is not None:
            return {"mb": mb, "how": "nvidia-smi per process", "device_growth_mb": growth}
    how = "device growth (NVML)" if growth is not None else "unavailable: no NVIDIA driver (NVML) or nvidia-smi here"
    return {"mb": growth, "how": how, "device_growth_mb": growth}


def parse_compute_apps(text: str) -> dict[int, float]:
    """``nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits`` -> {pid: MiB}."""
    apps = {}
    for line in text.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and parts[1].replace(".", "", 1).isdigit():
            apps[int(parts[0])] = float(parts[1])
    return apps


# ---------------------------------------------------------------------------------------------------- the report
def environment() -> dict[str, Any]:
    import onnxruntime as ort

    from modelfn_runtime import providers

    info: dict[str, Any] = {"onnxruntime": f"{ort.__version__} ({ort.get_device()})", "python": sys.version.split()[0],
                            "available_providers": ort.get_available_providers(), "cuda_devices": providers.cuda_device_count()}
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        info.update(gpu=name.decode() if isinstance(name, bytes) else name, driver=str(pynvml.nvmlSystemGetDriverVersion()))
    except Exception:  # noqa: BLE001
        info.update(gpu=None, driver=None)
    return info


def render_markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [DOCS_BEGIN, f"### {'Dry run on CPU (no GPU)' if report['dry_run'] else 'Run on ' + str(env.get('gpu'))}, "
             f"{report['date']}", "",
             f"onnxruntime {env['onnxruntime']}, Python {env['python']}, driver {env.get('driver')}; "
             f"CUDA preload: {report['preload'].get('serves_on', 'n/a (CPU onnxruntime)')}; runtime features: "
             + ", ".join(f"{k} {v}" for k, v in report["runtime"].items()) + ".", ""]
    lines += ["| model | input | provider | informative (spread, distinct top-1/32) | max abs GPU-CPU (tolerance) | "
              "start to 1st prediction, without warm-up (target <= 1 s) | GPU memory per process |", "|---|---|---|---|---|---|---|"]
    for name, model in report["models"].items():
        info, parity, cold = model["informative"], model["parity"], model["cold_start"]
        memory = cold.get("gpu_memory", {})
        lines.append(f"| {name} | {model['input']} | {model['provider']} | {info['output_spread']:.3g}, {info['distinct_top1_of_32']} | "
                     f"{parity['max_abs_diff']:.2g} ({parity['tolerance']:g}) {'ok' if parity['ok'] else 'FAIL'} | "
                     f"{cold.get('start_to_first_prediction_s')} s, {cold.get('without_warm_up_s')} s | "
                     f"{memory.get('mb')} MiB ({memory.get('how')}) |")
    lines += ["", "| model | batch | handler ms (p50) | bare session.run + I/O binding ms | overhead | handler route |",
              "|---|---|---|---|---|---|"]
    for name, model in report["models"].items():
        for size in BATCHES:
            row = model["latency_ms"][f"b{size}"]
            lines.append(f"| {name} | {size} | {row['handler']} | {row['bare_io_binding']} | {row['overhead_pct']} % | {row['route']} |")
    lines += ["", f"Target: service overhead <= 5 % at b8 ({'met' if all(m['latency_ms']['b8_ok'] for m in report['models'].values()) else 'not met'}). "
              f"Command: `{report['command']}`.", DOCS_END]
    return "\n".join(lines)


def write_docs(path: Path, section: str) -> None:
    """Replace the results section between the markers (the rest of the page stays as written)."""
    text = path.read_text() if path.exists() else f"# GPU check\n\n{DOCS_BEGIN}\n{DOCS_END}\n"
    if DOCS_BEGIN in text and DOCS_END in text:
        head, rest = text.split(DOCS_BEGIN, 1)
        text = head + section + rest.split(DOCS_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU provider, small and quick (no GPU)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--image-size", type=int, help="input height and width (default 224; --dry-run: 32)")
    parser.add_argument("--runs", type=int, help="timed runs per batch and path (default 50; --dry-run: 5)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max |GPU - CPU| on the logits (default 1e-4)")
    parser.add_argument("--builder", choices=("auto", "torch", "keras"), default="auto")
    parser.add_argument("--store", type=Path, help="model store to build into (default: a temporary directory)")
    parser.add_argument("--sync-limit", type=int, help="request bytes above which a batch goes the job route (default: "
                                                        "Lambda's 6 MB; --dry-run: 512 kB, so that route runs too)")
    parser.add_argument("--json", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--markdown", type=Path, help="page whose results section to write (default: docs/gpu.md; "
                                                      "--dry-run: none)")
    args = parser.parse_args(argv)
    preference = "cpu" if args.dry_run else "auto"
    size, runs = args.image_size or (32 if args.dry_run else 224), args.runs or (5 if args.dry_run else 50)
    store = args.store or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    runtime = Runtime()
    report: dict[str, Any] = {"dry_run": args.dry_run, "date": time.strftime("%Y-%m-%d"), "environment": environment(),
                              "preload": runtime.preload, "runtime": runtime.features, "models": {},
                              "command": "python3 benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    for kind in args.models:
        model_dir = build_model(kind, size, store, args.builder)
        limit = args.sync_limit or (512 * 1024 if args.dry_run else SYNC_LIMIT)
        report["models"][kind] = check_model(runtime, model_dir, preference, runs, args.tolerance, limit)
        report["models"][kind]["cold_start"] = cold_start(model_dir, preference)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    markdown = args.markdown or (None if args.dry_run else REPO / "docs" / "gpu.md")
    if markdown:
        write_docs(markdown, render_markdown(report))
    print(json.dumps(report, indent=2, default=str))
    failed = [k for k, m in report["models"].items() if not (m["parity"]["ok"] and m["informative"]["ok"]) or "error" in m["cold_start"]]
    if failed:
        print(f"gpu check FAILED for {failed}: see parity, informative and cold_start above", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(child() if CHILD_FLAG in sys.argv[1:] else main())
