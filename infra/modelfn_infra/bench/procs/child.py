"""The measuring process of ``modelfn bench`` and ``modelfn tune``: one fresh interpreter per measurement.

Run as a script, ``python child.py SPEC.json RESULT.json``; it imports only the standard library until the
measurement starts, then exactly what the measured variant imports:

* ``handler``: the function's own code (``app.lambda_handler`` from ``spec["code"]``) answering API Gateway REST
  events, as Lambda's Python runtime calls it; nothing of modelfn_infra, the exporter or TensorFlow;
* ``bare``: ``onnxruntime`` alone (the floor: an InferenceSession and ``session.run``);
* ``tf``: the TensorFlow SavedModel handler of ``tf_handler.py``.

Modes (``spec["mode"]``):

* ``cold``: start to first response, with monotonic timestamps of each phase (the parent adds the spawn time);
  ``InferenceSession.__init__`` is timed by wrapping it (public onnxruntime API), so session creation is
  told apart from the function's other init work without reaching into the function's modules;
* ``warm``: per request config, warm-up, then requests timed one by one (wall: ``perf_counter_ns``; CPU of the
  whole process, all threads: ``process_time_ns``, read outside the wall interval). With ``spec["bare"]`` the
  handler's calls are interleaved in blocks with bare ``session.run`` on the same tensors and with the stdlib
  decode of the same body (``json.loads`` or ``base64.b64decode``), so machine noise hits all alike.
"""

import time

STARTED = time.monotonic()  # the first statement: interpreter start-up ends here

import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

QUANTILES = list(range(1, 100))


class Context:
    """The Lambda context object a handler receives (the fields the runtime reads)."""

    aws_request_id = "bench"

    def __init__(self, function_name: str, memory_mb: int) -> None:
        self.function_name = function_name
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def read_json(path: str):
    with open(path, "rb") as handle:
        return json.loads(handle.read())


def body_bytes(event: dict) -> bytes:
    raw = event["body"]
    return base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()


def top1(response: dict) -> list[int]:
    """Row-wise argmax of the first output of a JSON response (the answer, to compare variants)."""
    status = response.get("statusCode")
    if status != 200:
        raise RuntimeError(f"the handler answered {status}: {str(response.get('body'))[:600]}")
    output = json.loads(body_bytes(response))["outputs"][0]
    width = output["shape"][-1] if len(output["shape"]) > 1 else len(output["data"])
    data = output["data"]
    return [max(range(width), key=lambda i: data[row * width + i]) for row in range(len(data) // width)]


def make_session(model_dir: str, threads: int):
    """A bare session with the options the runtime documents: intra-op threads = vCPUs, sequential, all
    graph optimizations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(os.path.join(model_dir, "model.onnx"), options, providers=["CPUExecutionProvider"])


def feeds_of(spec: dict, rows: int) -> dict:
    """The request's tensors, rebuilt from the same samples the event was made of."""
    import numpy as np

    samples = np.load(spec["samples"])
    batch = samples[:rows] if rows <= len(samples) else np.resize(samples, (rows, *samples.shape[1:]))
    return {spec["input"]: np.ascontiguousarray(batch, dtype=np.float32)}


def time_sessions(marks: dict) -> None:
    """Wrap ``InferenceSession.__init__``: the first session's start and the seconds spent in all of them."""
    import onnxruntime as ort

    original = ort.InferenceSession.__init__
    marks["session_s"] = 0.0

    def timed(self, *args, **kwargs):
        started = time.monotonic()
        marks.setdefault("session_started", started)
        try:
            original(self, *args, **kwargs)
        finally:
            marks["session_s"] += time.monotonic() - started

    ort.InferenceSession.__init__ = timed


def cold(spec: dict) -> dict:
    """One cold start of ``spec["variant"]``: phase timestamps (monotonic), the answer and the peak RSS."""
    marks = {"started": STARTED}
    event = read_json(spec["event"])
    marks["event_read"] = time.monotonic()  # reading the event file is the benchmark's work, not Lambda's
    variant = spec["variant"]
    if variant == "tf":
        import numpy  # noqa: F401
        import tensorflow  # noqa: F401

        marks["libraries"] = time.monotonic()
        import tf_handler

        tf_handler.load(spec["saved_model"])
        marks["loaded"] = time.monotonic()
        answer = top1(tf_handler.lambda_handler(event, Context("TensorFlowFunction", spec["memory_mb"])))
    elif variant == "handler":
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401

        marks["libraries"] = time.monotonic()
        time_sessions(marks)
        sys.path.insert(0, spec["code"])
        import app

        marks["loaded"] = time.monotonic()
        answer = top1(app.lambda_handler(event, Context(spec["function"], spec["memory_mb"])))
    else:
        answer = bare_first(spec, event, marks)
    marks["first_done"] = time.monotonic()
    return {"marks": marks, "top1": answer, "peak_rss_mb": peak_rss_mb()}


def bare_first(spec: dict, event: dict, marks: dict) -> list[int]:
    """Bare onnxruntime's cold path: import, session, decode the same JSON body, run."""
    import numpy as np
    import onnxruntime  # noqa: F401

    marks["libraries"] = time.monotonic()
    session = make_session(spec["model_dir"], len(os.sched_getaffinity(0)))
    marks["loaded"] = time.monotonic()
    tensors = json.loads(body_bytes(event))["inputs"]
    feeds = {t["name"]: np.asarray(t["data"], np.float32).reshape(t["shape"]) for t in tensors}
    output = session.run(None, feeds)[0]
    return [int(i) for i in output.reshape(len(output), -1).argmax(axis=1)]


def stats(samples_ns: list, cpu_ns: list | None = None) -> dict:
    """Latency figures in milliseconds, with the 1st..99th percentiles for distribution plots."""
    import numpy as np

    values = np.asarray(samples_ns, dtype=np.float64) / 1e6
    figures = {"n": len(values), "mean": float(values.mean()), "min": float(values.min()), "max": float(values.max()),
               "quantiles": [float(v) for v in np.percentile(values, QUANTILES)]}
    figures.update(p50=figures["quantiles"][49], p90=figures["quantiles"][89], p99=figures["quantiles"][98])
    if cpu_ns:
        figures["cpu_p50"] = float(np.median(np.asarray(cpu_ns, dtype=np.float64) / 1e6))
    return figures


def sample_count(calls: dict, spec: dict) -> int:
    """Requests per call for this config: the time budget over one round's cost, within [min_n, max_n]."""
    started = time.perf_counter()
    for call in calls.values():
        call()
    per_round = max(time.perf_counter() - started, 1e-7)
    return int(max(spec["min_n"], min(spec["max_n"], spec["budget_s"] / per_round)))


def interleaved(calls: dict, n: int, block: int = 50) -> tuple[dict, dict]:
    """Each call ``n`` times, in alternating blocks; wall and process CPU nanoseconds per call."""
    wall = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    clock, cpu_clock = time.perf_counter_ns, time.process_time_ns
    while len(wall[next(iter(calls))]) < n:
        for name, call in calls.items():
            for _ in range(min(block, n - len(wall[name]))):
                cpu_start = cpu_clock()
                started = clock()
                call()
                ended = clock()
                cpu[name].append(cpu_clock() - cpu_start)
                wall[name].append(ended - started)
    return wall, cpu


def warm_handler(spec: dict) -> dict:
    """Warm latency of the real handler per config, with bare ``session.run`` and stdlib decoding beside it."""
    import copy

    sys.path.insert(0, spec["code"])
    import app

    context = Context(spec["function"], spec["memory_mb"])
    configs = [dict(c, event=read_json(c["event"])) for c in spec["configs"]]

    def handler_call(event):
        return lambda: app.lambda_handler(copy.copy(event), context)

    peak = None
    for config in configs:  # warm every config (and check its answer) before any bare session exists
        if config.get("probe") and peak is None:
            peak = peak_rss_mb()
        response = app.lambda_handler(copy.copy(config["event"]), context)
        if response.get("statusCode") != 200:
            raise RuntimeError(f"{config['label']}: the handler answered {response.get('statusCode')}: "
                               f"{str(response.get('body'))[:600]}")
        config["response_bytes"] = len(json.dumps(response))
        for _ in range(spec["warmup"]):
            app.lambda_handler(copy.copy(config["event"]), context)
    result = {"peak_rss_mb": peak if peak is not None else peak_rss_mb(), "configs": {}}
    session = make_session(spec["model_dir"], len(os.sched_getaffinity(0))) if spec.get("bare") else None
    for config in configs:
        calls = {"handler": handler_call(config["event"])}
        if session is not None:
            feeds, raw = feeds_of(spec, config["rows"]), config["event"]["body"]
            calls["bare"] = lambda feeds=feeds: session.run(None, feeds)
            body = base64.b64decode(raw)
            if config["codec"] == "binary":
                calls["decode"] = lambda raw=raw: base64.b64decode(raw)
            else:
                calls["decode"] = lambda body=body: json.loads(body)
        wall, cpu = interleaved(calls, sample_count(calls, spec))
        figures = {name: stats(wall[name], cpu[name] if name == "handler" else None) for name in calls}
        result["configs"][config["label"]] = {**figures, "response_bytes": config["response_bytes"]}
    result["peak_rss_mb_with_bare"] = peak_rss_mb()
    return result


def warm_tf(spec: dict) -> dict:
    """Warm latency of the TensorFlow SavedModel handler per config."""
    import tf_handler

    tf_handler.load(spec["saved_model"])
    context = Context("TensorFlowFunction", spec["memory_mb"])
    result = {"configs": {}}
    for config in spec["configs"]:
        event = read_json(config["event"])
        top1(tf_handler.lambda_handler(event, context))
        for _ in range(spec["warmup"]):
            tf_handler.lambda_handler(event, context)
        calls = {"handler": lambda event=event: tf_handler.lambda_handler(event, context)}
        wall, cpu = interleaved(calls, sample_count(calls, spec))
        result["configs"][config["label"]] = {"handler": stats(wall["handler"], cpu["handler"])}
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main() -> int:
    spec = read_json(sys.argv[1])
    if spec.get("affinity"):
        os.sched_setaffinity(0, spec["affinity"])  # before any thread pool exists: what Lambda's vCPUs allow
    if spec["mode"] == "cold":
        result = cold(spec)
    elif spec["variant"] == "tf":
        result = warm_tf(spec)
    else:
        result = warm_handler(spec)
    with open(sys.argv[2], "w") as out:
        json.dump(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
