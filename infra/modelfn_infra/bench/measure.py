"""Cold starts and warm latency through the real handler, against bare ONNX Runtime and TensorFlow.

Every figure comes from a fresh child process (``procs/child.py``) started here with the environment a
deployed function gets from the template (``MODEL_NAME``, ``MODEL_URI``, powertools settings; tracing off),
so the benchmark's own imports (the exporter, matplotlib) never weigh on what is measured:

* **cold start**: ``runs`` rounds, each starting bare onnxruntime, the handler and (fp32 models) the TensorFlow
  handler in turn, after one discarded round that warms the page cache. Phases: interpreter start (spawn to the
  child's first statement, on the shared monotonic clock), imports, init (session creation timed inside
  ``InferenceSession.__init__``), and the first request; medians over the rounds.
* **warm**: per request config (batch 1, 8 and 64 as OIP JSON and as the OIP binary extension; configs whose
  event would exceed Lambda's 6 MB payload limit are skipped and say so), the handler interleaved with bare
  ``session.run`` on the same tensors and the stdlib decode of the same body. Small-input models also get
  *probes* of about 150,000 elements (the size of one 224x224x3 image) as OIP JSON, binary and TF Serving JSON.

Example:
    >>> cold = cold_starts([variant], Settings.quick(), scratch, CODE)      # doctest: +SKIP
    >>> cold["digits"]["handler"]["median"]["total"]                        # doctest: +SKIP
    221.7
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelfn_runtime import environment as names

from ..catalog import ModelEntry
from . import bodies
from .cache import CachePaths
from .models import MODELS, base_name, is_int8

CHILD = Path(__file__).with_name("procs") / "child.py"
CODE = bodies.REPO / "functions" / "inference"
BATCHES = (1, 8, 64)
PROBE_ELEMENTS = 150_016
"""The issue's large request: 2,344 digits rows, about one 224x224x3 image (150,528)."""
MAX_BATCH_SIZE = 4096
"""Set in the measured function so the 2,344-row probe passes (the catalog's default allows 1,024 rows)."""
BENCH_MEMORY_MB = 3538
"""Memory the handler is told it has: 2 vCPUs' worth, this machine's cores (tune varies it)."""


@dataclass(frozen=True)
class Settings:
    """How much to measure: ``quick()`` for tests and a first look, ``full()`` for BENCHMARKS.md."""

    cold_runs: int
    cache_round: bool
    """Start each variant once, discarded, before the timed rounds (warms the page cache)."""
    budget_s: float
    """Seconds of timed requests per warm config and call (the count is this over one call's cost)."""
    min_n: int
    max_n: int
    warmup: int
    local_requests: int
    throughput_requests: int

    @classmethod
    def quick(cls) -> "Settings":
        return cls(cold_runs=1, cache_round=False, budget_s=0.2, min_n=8, max_n=200, warmup=2, local_requests=15, throughput_requests=30)

    @classmethod
    def full(cls) -> "Settings":
        return cls(cold_runs=5, cache_round=True, budget_s=2.5, min_n=30, max_n=5000, warmup=10, local_requests=200, throughput_requests=400)


@dataclass
class Variant:
    """One exported model as the benchmark serves it."""

    name: str
    model_dir: Path
    samples: Path
    saved_model: Path | None
    card: dict[str, Any]

    @property
    def base(self) -> str:
        return base_name(self.name)

    @property
    def input_name(self) -> str:
        return self.card["inputs"][0]["name"]

    @property
    def outputs(self) -> list[str]:
        return [output["name"] for output in self.card["outputs"]]

    @property
    def function(self) -> str:
        return ModelEntry(self.name, "1").logical_id

    @classmethod
    def load(cls, name: str, paths: CachePaths) -> "Variant":
        model_dir = paths.model_dir(name)
        card = json.loads((model_dir / "modelcard.json").read_text())
        saved = None if is_int8(name) else paths.saved_model(base_name(name))
        return cls(name, model_dir, paths.samples(base_name(name)), saved, card)


def clean_env() -> dict[str, str]:
    """This process's environment without anything Lambda, powertools or modelfn would read."""
    prefixes = ("AWS_LAMBDA", "LAMBDA_", "_X_AMZN", "AWS_XRAY", "POWERTOOLS", "MODELFN_", "MODEL_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.pop("PYTHONPATH", None)
    env.update(AWS_DEFAULT_REGION=env.get("AWS_DEFAULT_REGION", "us-east-1"), TF_CPP_MIN_LOG_LEVEL="2",
               CUDA_VISIBLE_DEVICES="")
    return env


def handler_env(variant: Variant, code: Path, memory_mb: int = BENCH_MEMORY_MB) -> dict[str, str]:
    """What the template gives a model function (no usage table: nothing to meter against offline; tracing off)."""
    env = clean_env()
    env.update({
        names.MODEL_NAME: variant.name, names.MODEL_VERSION: "1", names.MODEL_URI: str(variant.model_dir.resolve()),
        names.MODELS: variant.name, names.MAX_BATCH_SIZE: str(MAX_BATCH_SIZE), names.PAYLOAD_LOG_RATE: "0.0",
        "POWERTOOLS_SERVICE_NAME": "modelfn", "POWERTOOLS_METRICS_NAMESPACE": "modelfn", "POWERTOOLS_LOG_LEVEL": "INFO",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb), "PYTHONPATH": str(code),
    })
    return env


def spawn(spec: dict[str, Any], scratch: Path, env: dict[str, str], timeout_s: float = 1800) -> tuple[dict[str, Any], float]:
    """Run one child with ``spec``; its result and the monotonic time just before it was spawned."""
    scratch.mkdir(parents=True, exist_ok=True)
    stamp = f"{os.getpid()}-{time.monotonic_ns()}"
    spec_path, out_path = scratch / f"spec-{stamp}.json", scratch / f"result-{stamp}.json"
    spec_path.write_text(json.dumps(spec))
    spawned = time.monotonic()
    process = subprocess.run([sys.executable, str(CHILD), str(spec_path), str(out_path)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout_s)
    spec_path.unlink(missing_ok=True)
    if process.returncode != 0:
        raise RuntimeError(f"benchmark child ({spec.get('mode')} {spec.get('variant')}) failed:\n"
                           f"{process.stderr.decode(errors='replace')[-3000:]}")
    result = json.loads(out_path.read_text())
    out_path.unlink()
    return result, spawned


def make_configs(variant: Variant, scratch: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The warm request configs (events written under ``scratch``) and the ones skipped, with why."""
    scratch.mkdir(parents=True, exist_ok=True)
    samples = np.load(variant.samples)
    per_row = math.prod(samples.shape[1:])
    wanted = [(f"{codec} b{rows}", codec, rows, False) for rows in BATCHES for codec in ("json", "binary")]
    probe_rows = math.ceil(PROBE_ELEMENTS / per_row)
    if probe_rows > max(BATCHES):
        wanted += [(f"{codec} 150k", codec, probe_rows, True) for codec in ("json", "binary", "tfserving")]
    configs, skipped = [], {}
    for label, codec, rows, probe in wanted:
        tensors = {variant.input_name: bodies.batch_of(samples, rows)}
        if codec == "binary":
            body, headers = bodies.oip_binary(tensors, variant.outputs)
        elif codec == "tfserving":
            body, headers = bodies.tfserving_json(tensors)
        else:
            body, headers = bodies.oip_json(tensors)
        event = bodies.rest_event(variant.name, body, headers, "tfserving" if codec == "tfserving" else "oip")
        size = bodies.event_bytes(event)
        if size > bodies.LAMBDA_PAYLOAD_LIMIT:
            skipped[label] = f"the event is {size / 2**20:.1f} MB, over Lambda's 6 MB synchronous payload limit"
            continue
        path = scratch / f"{variant.name}-{label.replace(' ', '-')}.json"
        path.write_text(json.dumps(event))
        configs.append({"label": label, "codec": codec, "rows": rows, "probe": probe, "event": str(path),
                        "elements": rows * per_row, "body_bytes": len(body)})
    return configs, skipped


def phases(kind: str, marks: dict[str, float], spawned: float) -> dict[str, float]:
    """Milliseconds per cold-start phase from a child's monotonic marks."""
    ms = {"interpreter": marks["started"] - spawned, "imports": marks["libraries"] - marks["event_read"]}
    init = marks["loaded"] - marks["libraries"]
    if kind == "handler":
        session = marks.get("session_s", 0.0)
        ms["function init (excl. session)"] = init - session
        ms["session creation"] = session
    else:
        ms["model load" if kind == "tf" else "session creation"] = init
    ms["first request"] = marks["first_done"] - marks["loaded"]
    figures = {name: round(value * 1000, 2) for name, value in ms.items()}
    figures["total"] = round(sum(ms.values()) * 1000, 2)
    return figures


def cold_spec(kind: str, variant: Variant, event: str, code: Path) -> tuple[dict[str, Any], dict[str, str]]:
    spec = {"mode": "cold", "variant": kind, "event": event, "code": str(code), "function": variant.function,
            "model_dir": str(variant.model_dir.resolve()), "memory_mb": BENCH_MEMORY_MB,
            "saved_model": str(variant.saved_model.resolve()) if variant.saved_model else None}
    return spec, handler_env(variant, code) if kind == "handler" else clean_env()


def cold_starts(variant: Variant, event: str, settings: Settings, scratch: Path, code: Path, log=print) -> dict[str, Any]:
    """Cold starts of bare onnxruntime, the handler and (fp32) TensorFlow, alternating; medians per phase."""
    kinds = ["bare", "handler"] + (["tf"] if variant.saved_model else [])
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    first = 0 if settings.cache_round else 1
    for round_number in range(first, settings.cold_runs + 1):
        for kind in kinds:
            spec, env = cold_spec(kind, variant, event, code)
            result, spawned = spawn(spec, scratch, env)
            if round_number:  # round 0 only warms the page cache
                runs[kind].append({**phases(kind, result["marks"], spawned), "peak_rss_mb": result["peak_rss_mb"],
                                   "top1": result["top1"]})
        log(f"  {variant.name}: cold start round {round_number}/{settings.cold_runs} done")
    summary = {}
    for kind, values in runs.items():
        keys = [key for key in values[0] if key != "top1"]
        summary[kind] = {"runs": values, "median": {key: round(statistics.median(v[key] for v in values), 2) for key in keys},
                         "top1": values[0]["top1"]}
    return summary


def warm(variant: Variant, configs: list[dict[str, Any]], settings: Settings, scratch: Path, code: Path,
         log=print) -> dict[str, Any]:
    """Warm latency per config: the handler with bare session.run and decoding beside it, then TensorFlow."""
    common = {"mode": "warm", "samples": str(variant.samples.resolve()), "input": variant.input_name,
              "model_dir": str(variant.model_dir.resolve()), "function": variant.function, "memory_mb": BENCH_MEMORY_MB,
              "budget_s": settings.budget_s, "min_n": settings.min_n, "max_n": settings.max_n, "warmup": settings.warmup}
    spec = {**common, "variant": "handler", "code": str(code), "bare": True, "configs": configs}
    handler, _ = spawn(spec, scratch, handler_env(variant, code))
    log(f"  {variant.name}: warm handler + bare onnxruntime done ({len(configs)} configs)")
    result = {"handler": handler, "tf": None}
    if variant.saved_model is not None:
        tf_configs = [c for c in configs if c["codec"] == "json" and not c["probe"]]
        spec = {**common, "variant": "tf", "saved_model": str(variant.saved_model.resolve()), "configs": tf_configs}
        result["tf"], _ = spawn(spec, scratch, clean_env())
        log(f"  {variant.name}: warm TensorFlow SavedModel handler done")
    return result


def describe_variant(variant: Variant) -> dict[str, Any]:
    """What the report says about a variant: its model, input, size and (int8) quantization evidence."""
    card = variant.card
    spec = MODELS[variant.base]
    quantization = card.get("quantization") or {}
    return {
        "base": variant.base, "int8": is_int8(variant.name), "description": spec.description,
        "input": card["inputs"][0], "outputs": card["outputs"], "model_bytes": card["artifact"]["bytes"],
        "parity": {key: card.get("parity", {}).get(key) for key in ("max_abs_diff", "top1_agreement", "informative")},
        "quantization": ({key: quantization.get(key) for key in ("mode", "agreement", "threshold", "forced")}
                         if quantization.get("mode", "none") != "none" else None),
    }
