"""The ``regionproxy`` command: ``regionproxy demo`` and ``regionproxy lab``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

DEMO_REGIONS = ["eu-west-3", "us-east-1"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="regionproxy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    lab = commands.add_parser("lab", help="start a local multi-region lab and print its endpoints")
    lab.add_argument("--regions", nargs="+", default=DEMO_REGIONS, help="region names, local first")
    demo = commands.add_parser("demo", help="the main job: the Flask blog over a local two-region lab")
    demo.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port)")
    for command in (lab, demo):
        command.add_argument("--for", dest="duration", type=float, default=None, help="stop after SECONDS")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from regionproxy.demo import run

        return run(args.port, args.duration)
    return run_lab(args.regions, args.duration)


def run_lab(regions: list[str], duration: float | None) -> int:
    from regionproxy.testing import LocalRegions

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalRegions(regions) as lab:
        print("regionproxy lab: one moto server per region behind a fault proxy")
        for region, endpoint in lab.endpoints.items():
            print(f"  {region:<16} {endpoint}")
        print("Stop with Ctrl-C." if duration is None else f"Stopping in {duration:g} s.", flush=True)
        try:
            stop.wait(duration)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
