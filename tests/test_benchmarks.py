"""The benchmark scripts run and print their figures (no timing asserted here:
speed is shown by running them, not by timed tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_overhead_benchmark_prints_a_row_per_surface_and_operation():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_overhead.py"), "--calls", "10", "--target", "canned"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for operation in ("GetItem", "PutItem", "Query"):
        for surface in ("boto3 client", "session.client", "boto3 Table", "session.table"):
            row = next(line for line in out.splitlines() if line.startswith(f"{operation:<9} {surface:<15}"))
            median, p99, ratio, added = row[25:].split()
            assert float(median) > 0 and float(p99) >= float(median) and ratio.endswith("x")
