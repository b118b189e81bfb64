"""What regionproxy costs per call, side by side with raw boto3, in one process.

A thin entry point: the work is in ``regionproxy.bench.overhead``, which
``regionproxy bench overhead`` also runs (with JSON, markdown and plots).
This script prints the per-call table, against (a) the near-free canned
endpoint in another process (client-side cost only) and (b) a lab region
(moto in a subprocess, behind the fault proxy). Target: session median at
most 1.05x raw boto3's.

    python benchmarks/bench_overhead.py [--calls N] [--target lab|canned|both]
"""

from __future__ import annotations

import argparse
import sys

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
