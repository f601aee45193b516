"""Large tensors through the handler: JSON and binary requests against the standard library doing the least it could.

Issue 14's codec targets, each a ratio measured in this one run, on the same body (digits model, batch sized so
the input holds ``--elements`` FP32 values: 150,016 = 2,344 × 64 by default, one 224×224×3 image's worth):

* OIP JSON infer through ``app.lambda_handler`` (REST event) <= 0.5 × stdlib ``json.loads`` of the body;
* TF Serving ``instances`` and ``inputs`` through the handler <= 0.5 × ``json.loads`` of the body;
* OIP binary extension: handler minus bare ``session.run`` <= 2 × ``base64.b64decode`` of the event's body;
* response encoding of a large output (``--elements`` FP32 values): ``oip.encode_infer`` / TF Serving's
  ``encode_predict`` + ``HttpResponse.json`` <= 0.5 × stdlib ``json.dumps`` of the same values, and binary
  output <= 2 × ``base64.b64encode`` of its bytes.

Calls are interleaved (handler, reference, handler, ...) so machine noise hits both alike; each ratio is given for
the medians and for the fastest calls ("best"), which other jobs on a shared machine disturb least.

    .venv/bin/python benchmarks/codecs.py                       # digits from models/ (exported if missing)
    .venv/bin/python benchmarks/codecs.py --repeats 30 --json codecs.json
    .venv/bin/python benchmarks/codecs.py --code /tmp/before/functions/inference   # another checkout

``--elements`` and ``--repeats`` bound the run (tests smoke-run it with tiny counts).
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from coldstart import EVENT, ensure_model  # noqa: E402
from overhead import Context  # noqa: E402

FEATURES = 64  # digits' input width


def interleaved(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median ms of each call, the calls taking turns ``repeats`` times (after one untimed round); ``NAME best``: the
    fastest call, which moves less than the median when other jobs load a shared machine."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(repeats + 1):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            if round_:
                samples[name].append((time.perf_counter() - started) * 1000)
    figures = {name: round(statistics.median(values), 3) for name, values in samples.items()}
    figures.update({f"{name} best": round(min(values), 3) for name, values in samples.items()})
    return figures


def rest_event(path: str, body: bytes, headers: dict[str, str] | None = None, binary: bool = False) -> dict:
    event = json.loads(EVENT.read_text())
    event["path"] = path
    event["requestContext"]["path"] = f"/Prod{path}"
    event["headers"] = {**event["headers"], **(headers or {})}
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    event["body"] = base64.b64encode(body).decode("ascii") if binary else body.decode("utf-8")
    event["isBase64Encoded"] = binary
    return event


def request_cases(rows, np) -> dict[str, tuple[dict, Callable[[], object]]]:
    """Each request kind: its REST event and the stdlib reference it is compared with."""
    flat = rows.reshape(-1).tolist()
    nested = rows.tolist()
    oip = json.dumps({"inputs": [{"name": "pixels", "shape": list(rows.shape), "datatype": "FP32", "data": flat}]}).encode()
    instances = json.dumps({"instances": nested}).encode()
    columns = json.dumps({"inputs": nested}).encode()
    header = json.dumps({"inputs": [{"name": "pixels", "shape": list(rows.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": rows.nbytes}}],
                         "outputs": [{"name": "probs", "parameters": {"binary_data": True}}]}).encode()
    binary = header + rows.tobytes()
    binary_event = rest_event("/v2/models/digits/infer", binary, {"Content-Type": "application/octet-stream",
                                                                   "Inference-Header-Content-Length": str(len(header))}, True)
    return {
        "OIP JSON infer": (rest_event("/v2/models/digits/infer", oip), lambda: json.loads(oip)),
        "TF Serving instances": (rest_event("/v1/models/digits:predict", instances), lambda: json.loads(instances)),
        "TF Serving inputs": (rest_event("/v1/models/digits:predict", columns), lambda: json.loads(columns)),
        "OIP binary infer": (binary_event, lambda: base64.b64decode(binary_event["body"])),
    }


def measure_requests(app, session, rows, np, repeats: int) -> dict[str, dict[str, float]]:
    context = Context()
    feeds = {"pixels": rows}
    figures = {}
    for name, (event, reference) in request_cases(rows, np).items():
        response = app.lambda_handler(copy.copy(event), context)
        if response["statusCode"] != 200:
            raise SystemExit(f"{name}: the handler answered {response['statusCode']}: {response['body'][:300]}")
        times = interleaved({"handler": lambda event=event: app.lambda_handler(copy.copy(event), context), "reference": reference,
                             "session.run": lambda: session.run(None, feeds)}, repeats)
        if "binary" in name:
            overhead, best = times["handler"] - times["session.run"], times["handler best"] - times["session.run best"]
            figures[name] = {**times, "handler - session.run": round(overhead, 3),
                             "ratio": round(overhead / times["reference"], 2),
                             "ratio best": round(best / times["reference best"], 2), "target": 2.0,
                             "reference is": "base64.b64decode of the event body"}
        else:
            figures[name] = {**times, "ratio": round(times["handler"] / times["reference"], 2),
                             "ratio best": round(times["handler best"] / times["reference best"], 2), "target": 0.5,
                             "reference is": "json.loads of the body"}
    return figures


def measure_encoding(card, rows, np, repeats: int) -> dict[str, dict[str, float]]:
    from modelfn_runtime.http import HttpResponse
    from modelfn_runtime.protocols import oip, tfserving

    outputs = {"probs": rows}
    as_json = oip.InferRequest(inputs={"pixels": rows})
    as_binary = oip.InferRequest(inputs={"pixels": rows}, binary_by_default=True)
    rows_request = tfserving.PredictRequest(inputs={"pixels": rows}, row_format=True)
    figures = {}
    for name, call, reference, target, what in (
        ("OIP JSON output", lambda: oip.encode_infer(card, as_json, outputs),
         lambda: json.dumps({"outputs": [{"data": rows.reshape(-1).tolist()}]}).encode(), 0.5, "json.dumps of the values"),
        ("TF Serving predictions", lambda: HttpResponse.json(200, tfserving.encode_predict(rows_request, outputs)),
         lambda: json.dumps({"predictions": rows.tolist()}).encode(), 0.5, "json.dumps of the values"),
        ("OIP binary output", lambda: base64.b64encode(oip.encode_infer(card, as_binary, outputs).body),
         lambda: base64.b64encode(rows.tobytes()), 2.0, "base64.b64encode of the tensor bytes"),
    ):
        times = interleaved({"encode": call, "reference": reference}, repeats)
        figures[name] = {**times, "ratio": round(times["encode"] / times["reference"], 2),
                         "ratio best": round(times["encode best"] / times["reference best"], 2), "target": target,
                         "reference is": what}
    return figures


def verdict(median: float, best: float, target: float) -> str:
    if median <= target and best <= target:
        return ""
    return "  MISSED" if best > target else "  missed at the median only"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elements", type=int, default=150_016, help="FP32 values per request (a multiple of 64)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per path")
    parser.add_argument("--store", type=Path, default=REPO / "models")
    parser.add_argument("--code", type=Path, default=REPO / "functions" / "inference")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    batch = max(1, args.elements // FEATURES)
    model_dir = ensure_model(args.store)
    os.environ.update(MODEL_NAME="digits", MODEL_VERSION="1", MODEL_URI=str(model_dir), MODELFN_MODELS="digits",
                      MODELFN_MAX_BATCH_SIZE=str(max(batch, 1024)), POWERTOOLS_SERVICE_NAME="modelfn",
                      POWERTOOLS_METRICS_NAMESPACE="modelfn", POWERTOOLS_LOG_LEVEL="WARNING")
    sys.path.insert(0, str(args.code.resolve()))
    import numpy as np

    import app
    from modelfn_runtime import handler

    rows = np.random.default_rng(14).random((batch, FEATURES), dtype=np.float32)
    devnull, real_stdout = open(os.devnull, "w"), sys.stdout
    sys.stdout = devnull  # the EMF metric lines the handler prints per invocation
    try:
        figures = {"requests": measure_requests(app, handler.SERVICE.model.session, rows, np, args.repeats),
                   "responses": measure_encoding(handler.SERVICE.model.card, rows, np, args.repeats)}
    finally:
        sys.stdout = real_stdout
    figures["setup"] = {"elements": batch * FEATURES, "shape": [batch, FEATURES], "repeats": args.repeats,
                        "cpus": os.cpu_count(), "python": sys.version.split()[0], "code": str(args.code)}
    print(f"large tensors, digits, {batch}×{FEATURES} FP32 ({batch * FEATURES} elements), median of {args.repeats} "
          f"interleaved calls (ms; {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; code {args.code})")
    for group in ("requests", "responses"):
        for name, row in figures[group].items():
            measured = row.get("handler - session.run", row.get("handler", row.get("encode")))
            print(f"  {name:<24} {measured:>9.2f} ms vs {row['reference']:>8.2f} ms {row['reference is']:<38} "
                  f"ratio {row['ratio']:>5.2f}, best {row['ratio best']:>5.2f} (target <= {row['target']})"
                  f"{verdict(row['ratio'], row['ratio best'], row['target'])}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
