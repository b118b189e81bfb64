"""What ``regionproxy serve`` (the sidecar) costs an app, beside boto3
straight to the region, and whether issue 18's targets are met: the
sidecar adds under 0.5 ms to a call's median (no cache), a cached GetItem
through it answers in under 0.5 ms, and it serves at least 3,000 cached
GetItem/s on 2 cores.

The scenario itself is ``regionproxy bench sidecar``
(:mod:`regionproxy.bench.sidecar`: the clients, the lab, the targets); this
script runs it and prints the figures and the verdicts, as the other
scripts here print theirs. Run it on a quiet machine: the latency margins
are a tenth of a millisecond.

    python benchmarks/bench_sidecar.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from regionproxy._cli.main import main


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and shorter loads (about 25 s)")
    parser.add_argument("--out", help="where results.json, results.md and the plot go (default: a temporary directory)")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-sidecar-"))
    code = main(["bench", "sidecar", *(["--quick"] if args.quick else []), "--out", str(out)])
    if code == 0:
        print((out / "results.md").read_text())
    return code


if __name__ == "__main__":
    sys.exit(run())
