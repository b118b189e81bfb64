"""What regionproxy costs per call, side by side with raw boto3, in one process.

A thin entry point: the work is in ``regionproxy.bench.overhead``, which
``regionproxy bench overhead`` also runs (with JSON, markdown and plots).
This script prints the per-call table, against (a) a lab region (moto in a
subprocess, behind the fault proxy) and (b) the near-free canned endpoint
in another process (client-side cost only). Targets: session median at most
1.05x raw boto3's, and at most 10 us added per call at the client floor.

``--target floor`` goes one step further down: botocore's HTTP step
(``BaseClient._make_request``) answers in-process, for raw boto3 and the
session's regional clients alike, so nothing but client-side Python work
is timed (no socket, no other process: steadier on a shared machine).

``--target calls`` times nothing: at the floor, it counts the Python
function calls (and calls into C) one call of each surface makes
(``sys.setprofile``), the same on any machine however loaded, and what the
session's surfaces make beyond their raw baselines.

    python benchmarks/bench_overhead.py [--calls N] [--target lab|canned|floor|calls|both|all]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import boto3

import regionproxy as rp
from regionproxy.bench import overhead
from regionproxy.testing import LocalRegions


def run_canned(count: int) -> None:
    with overhead.canned_endpoint() as endpoint:
        plain, cached = overhead.canned_sessions(endpoint)
        try:
            results = overhead.compare(endpoint, plain, count, cached)
        finally:
            plain.close()
            cached.close()
    overhead.print_rows("(b) near-free canned endpoint in another process (client-side cost)", results, count)


def run_lab(count: int) -> None:
    with LocalRegions(overhead.REGIONS, mode="process", replicate=False) as lab:
        lab.create_table(
            TableName=overhead.TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
        )
        session = lab.session()
        session.client.put_item(TableName=overhead.TABLE, Item=overhead.WIRE_ITEM)
        endpoint = lab.endpoints[overhead.REGIONS[0]]
        results = overhead.compare(endpoint, session, count)
    overhead.print_rows("(a) lab region: moto_server subprocess behind the fault proxy", results, count)


@contextlib.contextmanager
def answered_in_process() -> Iterator[str]:
    """botocore's HTTP step answered with the canned endpoint's answers, in
    this process, for every client (the endpoint URL is never reached)."""
    from botocore.awsrequest import AWSResponse
    from botocore.client import BaseClient

    from regionproxy.bench.canned import BODIES

    http = AWSResponse("http://127.0.0.1:9", 200, {}, None)

    def make_request(self: Any, operation_model: Any, request_dict: Any, request_context: Any) -> tuple[Any, Any]:
        parsed = json.loads(BODIES[operation_model.name])
        parsed["ResponseMetadata"] = {"HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0}
        return http, parsed

    original = BaseClient._make_request
    BaseClient._make_request = make_request
    try:
        yield "http://127.0.0.1:9"  # nothing listens on the discard port: nothing is sent
    finally:
        BaseClient._make_request = original


def run_floor(count: int) -> None:
    with answered_in_process() as endpoint:
        plain, cached = overhead.canned_sessions(endpoint)
        try:
            results = overhead.compare(endpoint, plain, count, cached)
        finally:
            plain.close()
            cached.close()
    overhead.print_rows("(c) the client floor: botocore's HTTP step answered in-process (client-side work only)", results, count)


def _counted(call: Any) -> tuple[int, int]:
    """Python function calls and calls into C that one ``call()`` makes."""
    counts = [0, 0]

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            counts[0] += 1
        elif event == "c_call":
            counts[1] += 1

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return counts[0], counts[1]


def run_calls() -> None:
    with answered_in_process() as endpoint:
        plain, cached = overhead.canned_sessions(endpoint)
        try:
            table = overhead.surfaces(endpoint, plain, cached)
            print("\n== Python calls (and calls into C) per call at the client floor: counted, not timed")
            print(f"{'operation':<9} {'surface':<25} {'python':>7} {'into C':>7}  beyond its baselines (default / as regions)")
            for operation, calls in table.items():
                for call in calls.values():  # warm up: clients, caches, lazily built models
                    for _ in range(30):
                        call()
                counts = {name: _counted(call) for name, call in calls.items()}
                for name, (python, c) in counts.items():
                    baseline = overhead.BASELINES.get(name)
                    beyond = ""
                    if baseline is not None:
                        second = overhead.AS_REGIONS[baseline]
                        beyond = (
                            f"  {python - counts[baseline][0]:+d} / {python - counts[second][0]:+d} python,"
                            f" {c - counts[baseline][1]:+d} / {c - counts[second][1]:+d} into C"
                        )
                    print(f"{operation:<9} {name:<25} {python:>7} {c:>7}{beyond}")
        finally:
            plain.close()
            cached.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--target", choices=("lab", "canned", "floor", "calls", "both", "all"), default="both")
    args = parser.parse_args(argv)
    print(f"regionproxy {rp.__version__}, boto3 {boto3.__version__}, Python {sys.version.split()[0]}")
    if args.target in ("canned", "both", "all"):
        run_canned(args.calls)
    if args.target in ("lab", "both", "all"):
        run_lab(max(args.calls // 4, 1))
    if args.target in ("floor", "all"):
        run_floor(args.calls)
    if args.target in ("calls", "all"):
        run_calls()


if __name__ == "__main__":
    main()
