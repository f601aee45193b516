"""Bounded load and fault runs against the local API on 127.0.0.1: the figures in RELIABILITY.md.

``python -m modelfn_infra.load`` (``make load``) exports the digits model, serves the repository's template
with ``LocalApp`` and runs:

* **load**: a fixed number of client threads send a fixed number of requests (and stop at a deadline, whatever
  happens): throughput, p50/p99 latency, errors, and the resident memory of the function processes after a
  warm-up and at the end (growth over the run: a leak shows here);
* **fault**: the same load while the function's runtime process is killed (SIGKILL) part-way: how many
  requests failed (one in-flight request per kill may), and that none failed after the recovery.

``--api-keys`` runs both with API Gateway's emulated key check, usage plan and quota count on (the clients send a
tenant's key; its plan is left unthrottled, its quota still counted, so the run measures the work keys add per
request rather than the plan's 50 requests/s); ``--metering`` also has the functions meter each tenant's requests
into a usage table (DynamoDB: moto's server on 127.0.0.1), as ``make demo`` serves.

Every server binds 127.0.0.1; every run is bounded in requests and seconds and stops by itself.

Example:
    >>> figures = load(url, requests=2000, clients=4, deadline_s=120)     # doctest: +SKIP
    >>> figures["errors"], figures["p99_ms"]                              # doctest: +SKIP
    (0, 9.8)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from modelfn_runtime import environment as names

from .local.sandbox import _children

PATH = "/v2/models/digits/infer"
RECOVERY_S = 3.0
RECOVERY_REQUESTS = 100
"""Requests sent after the recovery window when the fault run itself ended inside it."""


@dataclass
class Tally:
    """What the clients saw, in order of completion."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    finished_at: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, latency_ms: float, status: int) -> None:
        with self.lock:
            self.latencies_ms.append(latency_ms)
            self.statuses.append(status)
            self.finished_at.append(time.monotonic())


def infer_body(rows: int = 1) -> bytes:
    pixels = np.linspace(0, 16, 64 * rows, dtype=np.float32).reshape(rows, 64)
    return json.dumps({"inputs": [{"name": "pixels", "shape": [rows, 64], "datatype": "FP32", "data": pixels.ravel().tolist()}]}).encode()


def drive(url: str, body: bytes, *, requests: int, clients: int, deadline_s: float, tally: Tally, sent: list[int] | None = None,
          path: str = PATH, headers: dict[str, str] | None = None) -> None:
    """``clients`` threads with one keep-alive connection each send ``requests`` POSTs in all, or stop at the deadline."""
    target = urlparse(url)
    headers = headers or {"Content-Type": "application/json"}
    counter = sent if sent is not None else [0]
    counter_lock = threading.Lock()
    stop_at = time.monotonic() + deadline_s

    def client() -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        while time.monotonic() < stop_at:
            with counter_lock:
                if counter[0] >= requests:
                    break
                counter[0] += 1
            started = time.perf_counter()
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                status = 599  # no answer at all
            tally.add((time.perf_counter() - started) * 1000, status)
        connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=deadline_s + 60)


SERVICE_PIDS: set[int] = set()
"""Processes under this one that are not functions (moto's server with the usage table): not counted as theirs."""


def function_rss_mb() -> float:
    """Resident memory of every process under this one (the RIE and the function runtimes), in MB."""
    total_kb = 0
    for pid in _children(os.getpid()):
        if pid in SERVICE_PIDS:
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def summary(tally: Tally, seconds: float) -> dict[str, Any]:
    latencies = np.array(tally.latencies_ms) if tally.latencies_ms else np.zeros(1)
    errors = sum(1 for status in tally.statuses if status != 200)
    return {
        "requests": len(tally.statuses),
        "errors": errors,
        "seconds": round(seconds, 2),
        "throughput_rps": round(len(tally.statuses) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "max_ms": round(float(latencies.max()), 2),
    }


def load(url: str, *, requests: int = 10_000, clients: int = 4, warmup: int = 500, deadline_s: float = 600,
         headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The load run: warm-up, then ``requests`` requests from ``clients`` clients; figures as a dict."""
    body = infer_body()
    drive(url, body, requests=warmup, clients=clients, deadline_s=deadline_s, tally=Tally(), headers=headers)
    rss_before = function_rss_mb()
    tally = Tally()
    started = time.monotonic()
    drive(url, body, requests=requests, clients=clients, deadline_s=deadline_s, tally=tally, headers=headers)
    figures = summary(tally, time.monotonic() - started)
    rss_after = function_rss_mb()
    figures.update(clients=clients, rss_before_mb=round(rss_before, 1), rss_after_mb=round(rss_after, 1),
                   rss_growth_mb=round(rss_after - rss_before, 1))
    return figures


def fault(url: str, app: Any, *, requests: int = 2_000, clients: int = 4, kill_after: int = 500, deadline_s: float = 300,
          headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Load while the runtime process of one warm sandbox is SIGKILLed after ``kill_after`` requests."""
    body = infer_body()
    tally, sent = Tally(), [0]
    worker = threading.Thread(target=drive, args=(url, body), kwargs=dict(
        requests=requests, clients=clients, deadline_s=deadline_s, tally=tally, sent=sent, headers=headers), daemon=True)
    started = time.monotonic()
    worker.start()
    while len(tally.statuses) < kill_after and worker.is_alive():
        time.sleep(0.01)
    killed = []
    for pid in app.runtime.sandbox_pids[:1]:
        for child in _children(pid):  # the runtime process under the RIE, mid-request
            os.kill(child, signal.SIGKILL)
            killed.append(child)
    killed_at = time.monotonic()
    worker.join(timeout=deadline_s + 60)
    if killed and tally.finished_at and tally.finished_at[-1] <= killed_at + RECOVERY_S:
        # the run outpaced the recovery window (a fast machine): send a few more once the window has passed, so
        # that recovery is always observed rather than silently absent
        time.sleep(max(0.0, killed_at + RECOVERY_S + 0.1 - time.monotonic()))
        drive(url, body, requests=RECOVERY_REQUESTS, clients=clients, deadline_s=deadline_s, tally=tally, sent=sent,
              headers=headers)
    figures = summary(tally, time.monotonic() - started)
    failed_at = [at for at, status in zip(tally.finished_at, tally.statuses) if status != 200]
    # recovered: finished more than RECOVERY_S after the kill (a fresh sandbox starts in about a second)
    recovered = [status for at, status in zip(tally.finished_at, tally.statuses) if at > killed_at + RECOVERY_S]
    figures.update(
        killed_processes=len(killed),
        failed_after_recovery=sum(1 for status in recovered if status != 200),
        requests_after_recovery=len(recovered),
        failures_seconds_after_kill=[round(at - killed_at, 2) for at in failed_at],
    )
    return figures


@dataclass
class Report:
    load: dict[str, Any]
    fault: dict[str, Any]


def export_digits(store: Path) -> Path:
    from modelfn_export import export_model

    export_model("modelfn_infra.digits:build_model", "digits", version="1", out=str(store))
    return store / "digits" / "1"


def run(*, requests: int, clients: int, fault_requests: int, model_dir: Path | None = None,
        template: str | Path = "template.yaml", deadline_s: float = 600, api_keys: bool = False,
        metering: bool = False) -> Report:
    """Export (unless ``model_dir``), serve the template locally, and run the load and the fault runs."""
    import logging

    from .local.commands import LocalApp

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access line per request on the console
    with tempfile.TemporaryDirectory(prefix="modelfn-load-") as scratch, ExitStack() as stack:
        model_dir = model_dir or export_digits(Path(scratch) / "store")
        log = stack.enter_context(open(os.devnull, "w"))
        env: dict[str, Any] = {"DigitsFunction": {names.MODEL_URI: str(model_dir)}}
        if metering:
            env["Parameters"] = stack.enter_context(usage_table())
        app = stack.enter_context(LocalApp(template, env_vars=env, parameter_overrides={"ModelBucket": "unused"},
                                           log_stream=log, max_sandboxes=clients))
        tenants = Path(scratch) / "tenants.json"
        server = app.serve_api(port=0, api_keys=api_keys, tenants=tenants)
        stack.callback(server.stop)
        headers = {"Content-Type": "application/json", **(unthrottled_key(server, tenants) if api_keys else {})}
        load_figures = load(server.url, requests=requests, clients=clients, deadline_s=deadline_s, headers=headers)
        fault_figures = fault(server.url, app, requests=fault_requests, clients=clients, kill_after=fault_requests // 4,
                              deadline_s=deadline_s, headers=headers)
    return Report({**load_figures, "api_keys": api_keys, "metering": metering}, fault_figures)


@contextmanager
def usage_table() -> Iterator[dict[str, str]]:
    """moto's DynamoDB on 127.0.0.1 with the usage table the functions meter into, in a process of its own (moto is
    pure Python: in this process its work on the aggregator's transactions would take the GIL from the API server
    being measured, where deployed the aggregator is another function and DynamoDB another service); yields the
    template parameters that point the functions at it. The sandboxes inherit the endpoint variable; the moto
    process is stopped, by its PID, however the run ends."""
    import subprocess

    from modelfn_runtime.usage import USAGE_TABLE_ENV

    from .demo import USAGE_TABLE, create_usage_table
    from .local.commands import DEFAULT_REGION, FAKE_CREDENTIALS
    from .local.sandbox import free_port, wait_listening

    for name, value in {"AWS_DEFAULT_REGION": DEFAULT_REGION, **FAKE_CREDENTIALS}.items():
        os.environ.setdefault(name, value)  # moto's, never real ones (LocalApp sets the same for the sandboxes)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    SERVICE_PIDS.add(server.pid)
    previous = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://127.0.0.1:{port}"
    try:
        if not wait_listening(port, lambda: server.poll() is None, deadline_s=60, interval_s=0.1):
            raise RuntimeError(f"moto's server (exit status {server.poll()}) did not listen on port {port} within 60 s")
        create_usage_table()
        yield {USAGE_TABLE_ENV: USAGE_TABLE}  # LocalApp then runs the log subscription into the aggregator
    finally:
        if previous is None:
            os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        else:
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = previous
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        SERVICE_PIDS.discard(server.pid)


def unthrottled_key(server: Any, tenants_file: Path) -> dict[str, str]:
    """A tenant on the template's most generous plan, that plan's throttle lifted for this run (its quota still
    counted); the ``x-api-key`` header that sends its key."""
    from .tenants import LocalTenants

    gate = server.gate
    plan = max(gate.plans.values(), key=lambda limits: (limits.rate_limit, limits.quota or float("inf")))
    gate.plans[plan.name] = replace(plan, rate_limit=1e9, burst_limit=10**9, quota=10**12)
    tenant = LocalTenants(tenants_file, gate.plans).create("load", plan.name)
    return {"x-api-key": tenant.key}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bounded load and fault runs against the local API on 127.0.0.1.")
    parser.add_argument("--requests", type=int, default=10_000, help="requests in the load run (after a 500-request warm-up)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads (and warm sandboxes at most)")
    parser.add_argument("--fault-requests", type=int, default=2_000, help="requests in the fault run")
    parser.add_argument("--deadline", type=float, default=600, help="seconds each run may take at most")
    parser.add_argument("--model-dir", type=Path, help="an exported digits/1 directory (default: export one now)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--api-keys", action="store_true", help="API keys, usage plan and quota counting on")
    parser.add_argument("--metering", action="store_true", help="the functions meter per tenant into a moto usage table")
    args = parser.parse_args(argv)
    report = run(requests=args.requests, clients=args.clients, fault_requests=args.fault_requests,
                 model_dir=args.model_dir, deadline_s=args.deadline, api_keys=args.api_keys, metering=args.metering)
    text = json.dumps(asdict(report), indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    ok = (report.load["errors"] == 0 and report.fault["failed_after_recovery"] == 0
          and report.fault["errors"] <= report.fault["killed_processes"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
