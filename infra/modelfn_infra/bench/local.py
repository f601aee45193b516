"""The same models through the local runtime: SAM's API Gateway emulation in front of the real Lambda RIE
and ``awslambdaric`` running the function (``modelfn local start-api``'s ``LocalApp``, no Docker).

One template is rendered for the benchmark's models (``render_template`` of a catalog holding them, at
``BENCH_MEMORY_MB``), served on 127.0.0.1 with API-key checks off (as ``sam local start-api`` and
``modelfn_infra.load`` do: the serving path is measured), and for each model:

* **cold**: the first request's wall time (RIE start, runtime init, first invoke) and the RIE's own init
  duration and peak memory (its REPORT line);
* **latency**: ``local_requests`` sequential requests, batch 1, OIP JSON and binary, one keep-alive client;
* **throughput**: ``throughput_requests`` JSON batch-1 requests from 1 and from 2 client threads (2 warm
  sandboxes at most, as ``--max-sandboxes 2``), after a warm-up that starts the second sandbox;
* slow models send fewer requests: at most what a time budget allows (:func:`counts`).

Example:
    >>> figures = measure_local(variants, configs, Settings.quick(), scratch, CODE)   # doctest: +SKIP
    >>> figures["digits"]["throughput"]["2"]["throughput_rps"]                        # doctest: +SKIP
    61.3
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

from ..catalog import Catalog, ModelEntry, dump_template, render_template
from ..load import Tally, drive, summary
from .measure import BENCH_MEMORY_MB, Settings, Variant

CLIENTS = (1, 2)
DEADLINE_S = 600
LOCAL_BUDGET_FACTOR = 8
"""A local series may take this many times the in-process budget per config (HTTP and the RIE cost more)."""


def bench_template(variants: list[Variant], code: Path, scratch: Path) -> Path:
    """A template serving exactly the benchmark's models, code from ``code``."""
    entries = [ModelEntry(v.name, "1", memory_mb=BENCH_MEMORY_MB, timeout_s=60, reserved_concurrency=None, snapstart=False)
               for v in variants]
    template = render_template(Catalog(entries), code_uri=str(code))
    path = scratch / "template.yaml"
    path.write_text(dump_template(template))
    return path


def request_of(config: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    """Path, body and headers of a config's event, as an HTTP client sends them."""
    event = json.loads(Path(config["event"]).read_text())
    body = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode()
    keep = ("Content-Type", "Accept", "Inference-Header-Content-Length")
    return event["path"], body, {key: value for key, value in event["headers"].items() if key in keep}


def first_request(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[float, int]:
    request = urllib.request.Request(url + path, data=body, headers=headers, method="POST")
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=DEADLINE_S) as response:
        response.read()
        status = response.status
    return (time.perf_counter() - started) * 1000, status


def sequential(url: str, path: str, body: bytes, headers: dict[str, str], requests: int) -> dict[str, Any]:
    """Latency of ``requests`` requests from one client, one after another."""
    import numpy as np

    tally = Tally()
    drive(url, body, requests=requests, clients=1, deadline_s=DEADLINE_S, tally=tally, path=path, headers=headers)
    latencies = np.asarray(tally.latencies_ms or [0.0])
    p50, p90, p99 = (round(float(v), 2) for v in np.percentile(latencies, [50, 90, 99]))
    return {"n": len(tally.statuses), "errors": sum(1 for s in tally.statuses if s != 200), "p50": p50, "p90": p90, "p99": p99}


def throughput(url: str, path: str, body: bytes, headers: dict[str, str], requests: int, clients: int) -> dict[str, Any]:
    drive(url, body, requests=clients * 4, clients=clients, deadline_s=DEADLINE_S, tally=Tally(), path=path, headers=headers)
    tally = Tally()
    started = time.monotonic()
    drive(url, body, requests=requests, clients=clients, deadline_s=DEADLINE_S, tally=tally, path=path, headers=headers)
    return summary(tally, time.monotonic() - started)


def counts(url: str, path: str, body: bytes, headers: dict[str, str], settings: Settings) -> tuple[int, int]:
    """Requests for the latency and the throughput series: the settings' counts, fewer for slow models (the
    time budget over one warm request's time, at least ``settings.min_n``)."""
    one_ms, _ = first_request(url, path, body, headers)
    affordable = int(settings.budget_s * LOCAL_BUDGET_FACTOR * 1000 / max(one_ms, 0.1))
    return (max(settings.min_n, min(settings.local_requests, affordable)),
            max(settings.min_n, min(settings.throughput_requests, affordable)))


def measure_one(app: Any, url: str, variant: Variant, configs: list[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    by_label = {c["label"]: c for c in configs}
    path, body, headers = request_of(by_label["json b1"])
    cold_ms, status = first_request(url, path, body, headers)
    report = getattr(app.runtime, "last_report", None)
    figures: dict[str, Any] = {
        "cold_first_request_ms": round(cold_ms, 2), "cold_status": status,
        "init_duration_ms": getattr(report, "init_duration_ms", None), "latency": {}, "throughput": {},
    }
    latency_n, throughput_n = counts(url, path, body, headers, settings)
    for label in ("json b1", "binary b1"):
        if label in by_label:
            figures["latency"][label] = sequential(url, *request_of(by_label[label]), latency_n)
    for clients in CLIENTS:
        figures["throughput"][str(clients)] = throughput(url, path, body, headers, throughput_n, clients)
    report = getattr(app.runtime, "last_report", None)
    figures["max_memory_used_mb"] = getattr(report, "max_memory_used_mb", None)
    return figures


def measure_local(variants: list[Variant], configs: dict[str, list[dict[str, Any]]], settings: Settings, scratch: Path,
                  code: Path, log=print) -> dict[str, Any]:
    """Every variant through the local API; ``{variant: figures}`` (an ``error`` entry where one failed)."""
    from ..local.commands import LocalApp

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    template = bench_template(variants, code, scratch)
    results: dict[str, Any] = {}
    with open(os.devnull, "w") as quiet, LocalApp(template, model_store=variants[0].model_dir.parents[1], log_stream=quiet,
                                                 parameter_overrides={"ModelBucket": "unused"}, max_sandboxes=max(CLIENTS)) as app:
        server = app.serve_api(port=0, api_keys=False)
        try:
            for variant in variants:
                try:
                    results[variant.name] = measure_one(app, server.url, variant, configs[variant.name], settings)
                except OSError as error:
                    results[variant.name] = {"error": f"{type(error).__name__}: {error}"}
                log(f"  {variant.name}: local runtime done")
        finally:
            server.stop()
    return results
