"""What per-tenant metering costs: a request's CPU for its one metering line (``EmfMeter.record``, to /dev/null),
and, off the request path, the usage aggregator's time per delivery against a DynamoDB server (moto on 127.0.0.1:
much slower than DynamoDB, an upper bound).

    .venv/bin/python benchmarks/metering.py [--requests 20000] [--deliveries 20] [--events 50]

Reports figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
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
from modelfn_runtime.metering import EmfMeter, UsageRecord  # noqa: E402
from modelfn_runtime.usage import UsageAggregator, encode_delivery  # noqa: E402

RECORD = UsageRecord("r", "digits", "1", "rest", "infer", 200, 4, 1024, 200, 3.2, tenant="k1abc23def")


def record_us(requests: int) -> float:
    """Median of 5 runs of ``requests`` records, per record."""
    devnull = open(os.devnull, "w")
    meter = EmfMeter(stream=lambda: devnull, memory_mb=1024)
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(requests):
            meter.record(RECORD)
        runs.append((time.perf_counter() - started) / requests * 1e6)
    return statistics.median(runs)


def lines(count: int, tenants: int = 5) -> list[str]:
    out = io.StringIO()
    meter = EmfMeter(stream=lambda: out, memory_mb=1024)
    for index in range(count):
        meter.record(UsageRecord(f"r{index}", "digits", "1", "rest", "infer", 200, 1, 300, 200, 0.4, tenant=f"t{index % tenants}"))
    return out.getvalue().splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--deliveries", type=int, default=20)
    parser.add_argument("--events", type=int, default=50, help="log events per delivery")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    print(f"EmfMeter.record (one line, written and flushed): {record_us(args.requests):8.2f} us per request")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        properties = usage_table_resource()["Properties"]
        client = boto3.client("dynamodb", endpoint_url=endpoint)
        client.create_table(TableName="t", **{k: properties[k] for k in
                                              ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")})
        aggregator = UsageAggregator("t", client=client)
        batch = lines(args.events)
        timings, transactions = [], 0
        for index in range(args.deliveries):
            event = encode_delivery("/aws/lambda/DigitsFunction", "s",
                                    [(f"{index * args.events + i:056d}", 0, line) for i, line in enumerate(batch)])
            started = time.perf_counter()
            transactions += aggregator.handle(event).transactions
            timings.append((time.perf_counter() - started) * 1000)
        print(f"aggregator, {args.events} events per delivery, moto DynamoDB on 127.0.0.1: p50 {statistics.median(timings):.1f} ms "
              f"per delivery ({statistics.median(timings) / args.events:.2f} ms per event), "
              f"{transactions} transactions for {args.deliveries} deliveries")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
