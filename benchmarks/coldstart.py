"""Cold start: a fresh process to its first prediction, through the handler and through bare ONNX Runtime.

Each variant runs ``--runs`` times, alternating, in a fresh interpreter; the report gives the median wall time
(spawn to first prediction printed), the median CPU time (user + system, ``wait4``'s rusage: steadier than the wall
on a shared machine) and the median peak RSS (the child's VmHWM), each with its ratio to bare ONNX Runtime loading
the same model. The handler is invoked directly with the REST JSON sample event and the
model from a local directory (``MODEL_URI``), as in docs/coldstart.md.

    .venv/bin/python benchmarks/coldstart.py                       # digits, exported to models/ if missing
    .venv/bin/python benchmarks/coldstart.py --code /tmp/before    # another checkout's functions/inference
    .venv/bin/python benchmarks/coldstart.py --tensorflow          # also a TF SavedModel handler (slow)
    .venv/bin/python benchmarks/coldstart.py --import-profile      # python -X importtime of the handler, top 15

Variants: ``bare`` (import onnxruntime + numpy, InferenceSession, run), ``handler`` (tracing off, as outside
Lambda and in this benchmark's target), ``handler+xray`` (the environment of a traced Lambda invocation:
the X-Ray SDK is imported at init), and with ``--code`` the same handler from another checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVENT = REPO / "events" / "rest-infer-json.json"

BODY = """
import atexit, base64, json
# peak RSS of this process's own address space (wait4's ru_maxrss would include the parent's at fork time)
atexit.register(lambda: print("VmHWM", [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0]))
def body_of(message):
    body = message["body"]
    return json.loads(base64.b64decode(body) if message.get("isBase64Encoded") else body)
"""

BARE = BODY + """
import sys
import numpy as np, onnxruntime as ort
options = ort.SessionOptions(); options.log_severity_level = 3
session = ort.InferenceSession(sys.argv[1] + "/model.onnx", options, providers=["CPUExecutionProvider"])
pixels = np.asarray(body_of(json.load(open(sys.argv[2])))["inputs"][0]["data"], np.float32).reshape(1, 64)
print(session.run(None, {"pixels": pixels})[0].argmax())
"""

HANDLER = BODY + """
import sys
sys.path.insert(0, sys.argv[3])
import app
class Context:
    aws_request_id = "cold"; function_name = "DigitsFunction"; memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:DigitsFunction"
    def get_remaining_time_in_millis(self): return 10000
probs = body_of(app.lambda_handler(json.load(open(sys.argv[2])), Context()))["outputs"][0]["data"]
print(probs.index(max(probs)))
"""

TENSORFLOW = BODY + """
import sys
import numpy as np, tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
pixels = np.asarray(body_of(json.load(open(sys.argv[2])))["inputs"][0]["data"], np.float32).reshape(1, 64)
print(int(np.argmax(list(model.signatures["serving_default"](tf.constant(pixels)).values())[0].numpy())))
"""


def run_once(script: str, args: list[str], env: dict[str, str]) -> tuple[float, float, list[str], float]:
    """Wall seconds from spawn to exit, peak RSS in MB (the child's VmHWM), its prediction, and the CPU seconds
    (user + system) the child used: on a shared machine the CPU time moves less with other jobs' load than the wall."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", script, *args], stdout=out, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr = process.stderr.read().decode() if process.stderr else ""
        out.seek(0)
        lines = out.read().decode().strip().splitlines()
    if process.returncode != 0:
        raise SystemExit(f"benchmark variant failed:\n{stderr[-2000:]}")
    peak_kb = int(lines[-1].split()[1])
    return wall, peak_kb / 1024, lines[-2:-1], usage.ru_utime + usage.ru_stime  # the prediction: EMF lines come before it


def ensure_model(store: Path) -> Path:
    """digits/1 in ``store``, exported in a child process (this one must stay small: see run_once)."""
    model_dir = store / "digits" / "1"
    if not (model_dir / "model.onnx").is_file():
        print(f"exporting digits/1 into {store} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-c", "import sys; from modelfn_export import export_model; "
                        "export_model('modelfn_infra.digits:build_model', 'digits', version='1', out=sys.argv[1])",
                        str(store)], check=True, capture_output=True)
    return model_dir


def ensure_saved_model(target: Path) -> Path:
    """The same digits network as a TensorFlow SavedModel (the TF way of serving it), for comparison."""
    if not (target / "saved_model.pb").is_file():
        subprocess.run([sys.executable, "-c", "import sys; from modelfn_infra.digits import build_model; "
                        "build_model().export(sys.argv[1], verbose=False)", str(target)], check=True, capture_output=True)
    return target


def base_env(code: Path, model_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA", "LAMBDA_", "_X_AMZN", "POWERTOOLS"))}
    env.update(
        MODEL_NAME="digits", MODEL_VERSION="1", MODEL_URI=str(model_dir), MODELFN_MODELS="digits",
        POWERTOOLS_SERVICE_NAME="modelfn", POWERTOOLS_METRICS_NAMESPACE="modelfn", POWERTOOLS_LOG_LEVEL="WARNING",
        AWS_DEFAULT_REGION="us-east-1", PYTHONDONTWRITEBYTECODE="",
    )
    env.pop("PYTHONPATH", None)
    return env


def traced(env: dict[str, str], code: Path) -> dict[str, str]:
    """What Lambda sets for an actively traced invocation (the daemon address is never reached: UDP, fire and forget)."""
    return {
        **env, "LAMBDA_TASK_ROOT": str(code), "AWS_LAMBDA_FUNCTION_NAME": "DigitsFunction",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000", "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
    }


def import_profile(code: Path, env: dict[str, str], top: int = 15) -> str:
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import app", str(code)],
                            capture_output=True, text=True, env=env)
    rows = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
            rows.append((int(cumulative), name))
    total = next((c for c, n in rows if n == "app"), 0)
    lines = [f"import app: {total / 1000:.0f} ms cumulative; largest top-level imports:"]
    for cumulative, name in sorted((r for r in rows if not r[1].startswith(" ")), reverse=True)[:top]:
        lines.append(f"  {cumulative / 1000:8.1f} ms  {name.strip()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--store", type=Path, default=REPO / "models")
    parser.add_argument("--code", type=Path, help="another functions/inference directory to compare (e.g. before a change)")
    parser.add_argument("--tensorflow", action="store_true", help="also time a TensorFlow SavedModel handler")
    parser.add_argument("--import-profile", action="store_true", help="print the handler's import profile")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    model_dir = ensure_model(args.store)
    code = REPO / "functions" / "inference"
    env = base_env(code, model_dir)
    variants: dict[str, tuple[str, list[str], dict[str, str]]] = {
        "bare onnxruntime": (BARE, [str(model_dir), str(EVENT)], env),
        "handler": (HANDLER, [str(model_dir), str(EVENT), str(code)], env),
        "handler+xray": (HANDLER, [str(model_dir), str(EVENT), str(code)], traced(env, code)),
    }
    if args.code:
        variants["handler (--code)"] = (HANDLER, [str(model_dir), str(EVENT), str(args.code.resolve())], env)
    if args.tensorflow:
        saved = ensure_saved_model(args.store / "digits-savedmodel")
        variants["tensorflow savedmodel"] = (TENSORFLOW, [str(saved), str(EVENT)], env)

    for script, variant_args, variant_env in variants.values():  # warm the page cache once
        run_once(script, variant_args, variant_env)
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    answers: dict[str, set[str]] = {name: set() for name in variants}
    for _ in range(args.runs):
        for name, (script, variant_args, variant_env) in variants.items():
            wall, rss, stdout, cpu = run_once(script, variant_args, variant_env)
            samples[name].append((wall, rss, cpu))
            answers[name].update(stdout)

    bare_wall = statistics.median(w for w, _, _ in samples["bare onnxruntime"])
    bare_cpu = statistics.median(c for _, _, c in samples["bare onnxruntime"])
    results = {}
    print(f"cold start, fresh process to first prediction (digits, median of {args.runs}, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]})")
    print(f"{'variant':<24}{'wall ms':>9}{'peak MB':>9}{'x bare':>8}{'CPU ms':>9}{'x bare':>8}  prediction")
    for name, values in samples.items():
        wall = statistics.median(w for w, _, _ in values)
        rss = statistics.median(r for _, r, _ in values)
        cpu = statistics.median(c for _, _, c in values)
        results[name] = {"wall_ms": round(wall * 1000, 1), "peak_rss_mb": round(rss, 1), "ratio": round(wall / bare_wall, 2),
                         "cpu_ms": round(cpu * 1000, 1), "cpu_ratio": round(cpu / bare_cpu, 2)}
        print(f"{name:<24}{wall * 1000:>9.0f}{rss:>9.0f}{wall / bare_wall:>8.2f}{cpu * 1000:>9.0f}{cpu / bare_cpu:>8.2f}"
              f"  {sorted(answers[name])}")
    if args.import_profile:
        print(import_profile(code, env))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
