"""What regionproxy costs per call, side by side with raw boto3, in one process.

Surfaces compared, the same calls interleaved round-robin so that drift in
the machine hits every surface alike:

- ``boto3 client``          boto3.client("dynamodb")            (baseline)
- ``session.client``        RegionSession(...).client, no cache
- ``boto3 Table``           boto3.resource("dynamodb").Table     (baseline for tables)
- ``session.table``         RegionSession(...).table, no cache

Against (a) a lab region (moto in a subprocess, behind the fault proxy) and
(b) a near-free canned endpoint in another process, which leaves only the
client-side cost. Targets: session median at most 1.05x raw boto3's, and at
most 30 us added per call against the near-free endpoint.

    python benchmarks/bench_overhead.py [--calls N] [--target lab|canned|both]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import boto3
from botocore.config import Config

import regionproxy as rp
from regionproxy.testing import LocalRegions
from regionproxy.testing.lab import CREDENTIALS

REGIONS = ["eu-west-3", "us-east-1"]
TABLE = "Bench"
KEY = {"pk": "bench", "sk": "item"}
WIRE_KEY = {"pk": {"S": "bench"}, "sk": {"S": "item"}}
ITEM = {**KEY, "payload": "x" * 200, "n": 42}
WIRE_ITEM = {**WIRE_KEY, "payload": {"S": "x" * 200}, "n": {"N": "42"}}


def surfaces(endpoint: str, session: rp.RegionSession) -> dict[str, dict[str, Callable[[], object]]]:
    boto = boto3.session.Session(**CREDENTIALS)
    config = Config(retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=0.5, read_timeout=1.0)
    raw = boto.client("dynamodb", region_name=REGIONS[0], endpoint_url=endpoint, config=config)
    resource_table = boto.resource("dynamodb", region_name=REGIONS[0], endpoint_url=endpoint, config=config).Table(TABLE)
    client, table = session.client, session.table(TABLE)
    query = {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "bench"}}}
    from boto3.dynamodb.conditions import Key

    return {
        "GetItem": {
            "boto3 client": lambda: raw.get_item(TableName=TABLE, Key=WIRE_KEY),
            "session.client": lambda: client.get_item(TableName=TABLE, Key=WIRE_KEY),
            "boto3 Table": lambda: resource_table.get_item(Key=KEY),
            "session.table": lambda: table.get_item(Key=KEY),
        },
        "PutItem": {
            "boto3 client": lambda: raw.put_item(TableName=TABLE, Item=WIRE_ITEM),
            "session.client": lambda: client.put_item(TableName=TABLE, Item=WIRE_ITEM),
            "boto3 Table": lambda: resource_table.put_item(Item=ITEM),
            "session.table": lambda: table.put_item(Item=ITEM),
        },
        "Query": {
            "boto3 client": lambda: raw.query(TableName=TABLE, **query),
            "session.client": lambda: client.query(TableName=TABLE, **query),
            "boto3 Table": lambda: resource_table.query(KeyConditionExpression=Key("pk").eq("bench")),
            "session.table": lambda: table.query(KeyConditionExpression=Key("pk").eq("bench")),
        },
    }


def measure(calls: dict[str, Callable[[], object]], count: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm up: clients, connections, caches
        for _ in range(20):
            call()
    deadline = time.monotonic() + 120  # bounded in time as well as count
    for _ in range(count):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - started)
        if time.monotonic() > deadline:
            break
    return samples


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(title: str, endpoint: str, session: rp.RegionSession, count: int) -> None:
    print(f"\n== {title}: {count} calls per surface and operation, interleaved")
    print(f"{'operation':<9} {'surface':<15} {'median us':>10} {'p99 us':>10} {'vs baseline':>12} {'added us':>9}")
    for operation, calls in surfaces(endpoint, session).items():
        samples = measure(calls, count)
        medians = {name: statistics.median(values) for name, values in samples.items()}
        for name, values in samples.items():
            baseline = medians["boto3 client" if "client" in name else "boto3 Table"]
            ratio = medians[name] / baseline
            added = (medians[name] - baseline) * 1e6
            print(
                f"{operation:<9} {name:<15} {medians[name] * 1e6:>10.1f} {percentile(values, 0.99) * 1e6:>10.1f}"
                f" {ratio:>11.3f}x {added:>9.1f}"
            )
        raw_vs_table = (medians["session.table"] - medians["boto3 client"]) * 1e6
        print(f"{operation:<9} {'(session.table vs boto3 client: +' + format(raw_vs_table, '.1f') + ' us)'}")


def run_lab(count: int) -> None:
    with LocalRegions(REGIONS, mode="process", replicate=False) as lab:
        lab.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
        )
        session = lab.session()
        session.client.put_item(TableName=TABLE, Item=WIRE_ITEM)
        report("(a) lab region: moto_server subprocess behind the fault proxy", lab.endpoints[REGIONS[0]], session, count)


def run_canned(count: int) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "regionproxy.bench.canned", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        endpoint = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        session = rp.RegionSession(
            REGIONS,
            endpoints={region: endpoint for region in REGIONS},
            boto3_session=boto3.session.Session(**CREDENTIALS),
        )
        report("(b) near-free canned endpoint in another process (client-side cost)", endpoint, session, count)
        session.close()
    finally:
        server.terminate()
        server.wait(5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--target", choices=("lab", "canned", "both"), default="both")
    args = parser.parse_args(argv)
    print(f"regionproxy {rp.__version__}, boto3 {boto3.__version__}, Python {sys.version.split()[0]}")
    if args.target in ("canned", "both"):
        run_canned(args.calls)
    if args.target in ("lab", "both"):
        run_lab(max(args.calls // 4, 1))


if __name__ == "__main__":
    main()
