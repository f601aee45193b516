"""What per-tenant metering costs a request: CPU of ``record`` and ``flush``, and a flush's round trip to a
DynamoDB server (moto on 127.0.0.1: slower than DynamoDB in-region, so an upper bound for the round trip).

    .venv/bin/python benchmarks/metering.py [--invocations 2000]

Reports per-invocation figures (one request per invocation, as an API call is); nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import time

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    os.environ.setdefault(_name, "testing")

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from modelfn_infra.catalog import usage_table_resource  # noqa: E402
from modelfn_infra.local.sandbox import free_port  # noqa: E402
from modelfn_runtime.metering import UsageRecord  # noqa: E402
from modelfn_runtime.usage import UsageMeter  # noqa: E402

RECORD = UsageRecord("r", "digits", "1", "rest", "infer", 200, 4, 1024, 200, 3.2, tenant="k1abc23def")


class NullClient:
    def update_item(self, **kwargs) -> None:
        pass


def per_call_us(meter: UsageMeter, invocations: int, *, flush: bool) -> float:
    with contextlib.redirect_stdout(io.StringIO()):  # the tenant EMF lines
        started = time.perf_counter()
        for _ in range(invocations):
            meter.record(RECORD)
            if flush:
                meter.flush()
    return (time.perf_counter() - started) / invocations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invocations", type=int, default=2000)
    n = parser.parse_args().invocations
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access-log line per request
    print(f"record only:                      {per_call_us(UsageMeter('t', client=NullClient(), memory_mb=1024), n, flush=False):8.1f} us")
    print(f"record + flush (no network):      {per_call_us(UsageMeter('t', client=NullClient(), memory_mb=1024), n, flush=True):8.1f} us")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        properties = usage_table_resource()["Properties"]
        boto3.client("dynamodb", endpoint_url=endpoint).create_table(
            TableName="t", **{k: properties[k] for k in ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")})
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        meter = UsageMeter("t", memory_mb=1024, timeout_s=5)  # the meter's own client and config
        timings = []
        with contextlib.redirect_stdout(io.StringIO()):
            for _ in range(min(n, 500)):
                meter.record(RECORD)
                started = time.perf_counter()
                meter.flush()
                timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        print(f"flush to moto DynamoDB (127.0.0.1): p50 {statistics.median(timings):.2f} ms, "
              f"p99 {timings[int(len(timings) * 0.99) - 1]:.2f} ms over {len(timings)} invocations, failures {meter.failures}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
