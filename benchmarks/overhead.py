"""Warm handler overhead: a 1-sample REST JSON request through ``app.lambda_handler`` against bare ``session.run``.

Both run in this process on the same ONNX Runtime session (the handler's), interleaved in blocks so machine
noise hits both alike. Reports p50/p90 of each and the handler's overhead (p50 handler - p50 bare); with
``--profile``, a cProfile of the handler path (top functions by own time) shows where the overhead goes.

    .venv/bin/python benchmarks/overhead.py                  # digits from models/ (exported if missing)
    .venv/bin/python benchmarks/overhead.py --profile
    .venv/bin/python benchmarks/overhead.py --code /tmp/before/functions/inference   # another checkout
    .venv/bin/python benchmarks/overhead.py --breakdown      # also each stage of the request path, timed alone

``--requests``, ``--warmup`` and ``--stage-samples`` bound the run (tests smoke-run it with tiny counts).
"""

from __future__ import annotations

import argparse
import base64
import copy
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from coldstart import EVENT, ensure_model  # noqa: E402


class Context:
    aws_request_id = "warm"
    function_name = "DigitsFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:DigitsFunction"

    def get_remaining_time_in_millis(self) -> int:
        return 10000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def p50(call, n: int = 5000, warmup: int = 300) -> float:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return round(statistics.median(samples), 1)


def breakdown(handler, event, body, feeds, output_names, context, samples: int = 5000) -> dict[str, float]:
    """Each stage of the REST JSON request path, timed alone: where the handler's overhead goes."""
    import app
    from modelfn_runtime.http import Headers, HttpRequest
    from modelfn_runtime.metering import UsageRecord
    from modelfn_runtime.protocols import oip
    from modelfn_runtime.protocols.oip_routes import INFER
    from modelfn_runtime.triggers import pick

    service, model = handler.SERVICE, handler.SERVICE.model
    raw = json.dumps(body).encode()
    request = HttpRequest("POST", INFER.path_for(model.card.name), Headers({"content-type": "application/json"}), body=raw,
                          trigger="rest")
    infer = oip.decode_infer(request, model.card)
    results = model.run(infer.inputs)
    usage = UsageRecord("r", model.card.name, model.card.version, "rest", "infer", 200, 1, len(raw), 200, 0.1, tenant="k1")
    stage = functools.partial(p50, n=samples, warmup=min(300, samples))

    class NoMeter:
        def record(self, usage) -> None:
            pass

        def flush(self) -> None:
            pass

    stages = {
        "bare session.run": stage(lambda: model.session.run(output_names, feeds)),
        "ModelSession.run (validates against the card)": stage(lambda: model.run(feeds)),
        "json.loads of the request body": stage(lambda: json.loads(raw)),
        "oip.decode_infer (JSON -> numpy)": stage(lambda: oip.decode_infer(request, model.card)),
        "oip.encode_infer (numpy -> JSON)": stage(lambda: oip.encode_infer(model.card, infer, results)),
        "triggers.pick + REST adapter (event -> HttpRequest)": stage(lambda: pick(event).request(event)),
        "service.handle, real meter (one EMF + usage line)": stage(lambda: service.handle(request)),
        "EmfMeter.record alone": stage(lambda: service.meter.record(usage)),
    }
    real_meter, service.meter = service.meter, NoMeter()
    try:
        stages["service.handle, no-op meter"] = stage(lambda: service.handle(request))
        stages["app.lambda_handler, no-op meter"] = stage(lambda: app.lambda_handler(event, context))
    finally:
        service.meter = real_meter
    stages["app.lambda_handler (everything)"] = stage(lambda: app.lambda_handler(event, context))
    return stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000, help="timed requests per path")
    parser.add_argument("--warmup", type=int, default=500, help="untimed requests per path before timing")
    parser.add_argument("--stage-samples", type=int, default=5000, help="timed calls per stage with --breakdown")
    parser.add_argument("--store", type=Path, default=REPO / "models")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--code", type=Path, default=REPO / "functions" / "inference",
                        help="the functions/inference directory to measure (e.g. another checkout's, for before/after)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--breakdown", action="store_true", help="also time each stage of the request path alone")
    args = parser.parse_args(argv)

    model_dir = ensure_model(args.store)
    os.environ.update(MODEL_NAME="digits", MODEL_VERSION="1", MODEL_URI=str(model_dir), MODELFN_MODELS="digits",
                      POWERTOOLS_SERVICE_NAME="modelfn", POWERTOOLS_METRICS_NAMESPACE="modelfn", POWERTOOLS_LOG_LEVEL="WARNING")
    sys.path.insert(0, str(args.code.resolve()))
    import numpy as np

    import app
    from modelfn_runtime import handler

    event = json.loads(EVENT.read_text())
    body = json.loads(base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"])
    session = handler.SERVICE.model.session
    feeds = {"pixels": np.asarray(body["inputs"][0]["data"], np.float32).reshape(1, 64)}
    output_names = [o.name for o in session.get_outputs()]
    context = Context()
    devnull = open(os.devnull, "w")
    real_stdout = sys.stdout

    def handler_call() -> None:
        app.lambda_handler(copy.copy(event), context)

    def bare_call() -> None:
        session.run(output_names, feeds)

    sys.stdout = devnull  # the EMF metric lines the handler prints per invocation
    try:
        for _ in range(args.warmup):
            handler_call()
            bare_call()
        timings: dict[str, list[float]] = {"bare session.run": [], "handler (REST JSON)": []}
        block = min(200, max(1, args.requests))
        for _ in range(max(1, args.requests // block)):
            for name, call in (("bare session.run", bare_call), ("handler (REST JSON)", handler_call)):
                samples = timings[name]
                for _ in range(block):
                    started = time.perf_counter_ns()
                    call()
                    samples.append((time.perf_counter_ns() - started) / 1000)
        stages: dict[str, float] = {}
        if args.breakdown:
            stages = breakdown(handler, event, body, feeds, output_names, context, args.stage_samples)
        profile_text = ""
        if args.profile:
            import cProfile
            import io
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(min(2000, max(1, args.requests))):
                handler_call()
            profiler.disable()
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(25)
            profile_text = stream.getvalue()
    finally:
        sys.stdout = real_stdout

    print(f"warm latency, digits, 1 sample, {args.requests} requests per path (µs; {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}; code {args.code})")
    results = {}
    for name, samples in timings.items():
        results[name] = {"p50_us": round(statistics.median(samples), 1), "p90_us": round(percentile(samples, 0.9), 1)}
        print(f"  {name:<22} p50 {results[name]['p50_us']:>8.1f}   p90 {results[name]['p90_us']:>8.1f}")
    overhead = results["handler (REST JSON)"]["p50_us"] - results["bare session.run"]["p50_us"]
    results["overhead_p50_us"] = round(overhead, 1)
    print(f"  handler overhead p50: {overhead:.1f} µs (target <= 50 µs)")
    if stages:
        print("  stages alone (p50 µs, each timed by itself):")
        for name, value in stages.items():
            print(f"    {name:<52} {value:>8.1f}")
        results["stages_p50_us"] = stages
    if profile_text:
        print(profile_text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
