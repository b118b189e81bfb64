"""How long readiness takes to say "fail" after the local region dies.

Runs on the lab with the session's and the middleware's defaults
(``Timeouts(connect=0.5, read=1.0)``, ``probe_interval=2.0``): for each
fault (``refuse``, ``blackhole``), with no traffic and with one read every
100 ms, it injects the fault at a random point of the probe cycle and
measures the time until ``/readyz``'s answer (the monitor's readiness)
turns to fail. Prints one row per case: min, median, max over ``--runs``.

    python benchmarks/bench_detection.py --runs 5
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time

import regionproxy as rp
from regionproxy._regions.health import FAIL, PASS, HealthMonitor
from regionproxy.testing import LocalRegions

LOCAL, REMOTE = "eu-west-3", "us-east-1"
TABLE = "Detect"
SCHEMA = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
}


def _wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def detect(lab: LocalRegions, fault: str, traffic: bool, rng: random.Random) -> float:
    session = lab.session().prepare()  # the defaults
    monitor = HealthMonitor(session)  # probe_interval 2.0, as the middleware's default
    monitor.start()
    stop = threading.Event()

    def reads() -> None:
        for _ in range(600):  # bounded: at most 60 s of reads
            if stop.is_set():
                return
            try:
                session.client.get_item(TableName=TABLE, Key={"pk": {"S": "k"}})
            except rp.RegionProxyError:
                pass
            stop.wait(0.1)

    reader = threading.Thread(target=reads, daemon=True)
    try:
        if not _wait(lambda: monitor.readiness().status == PASS, 30):
            raise RuntimeError("the lab never became ready")
        if traffic:
            reader.start()
        time.sleep(rng.uniform(0, monitor.interval))  # anywhere in the probe cycle
        lab.fault(LOCAL, fault)
        started = time.monotonic()
        if not _wait(lambda: monitor.readiness().status == FAIL, 30):
            raise RuntimeError(f"readiness never failed after {fault}")
        return time.monotonic() - started
    finally:
        stop.set()
        if reader.is_alive():
            reader.join(timeout=5)
        monitor.stop()
        lab.heal()
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(1)
    with LocalRegions([LOCAL, REMOTE]) as lab:
        lab.create_table(TableName=TABLE, **SCHEMA)
        print(f"{'fault':10} {'traffic':8} {'min s':>6} {'median s':>9} {'max s':>6}   (defaults, {args.runs} runs)")
        for fault in ("refuse", "blackhole"):
            for traffic in (False, True):
                times = [detect(lab, fault, traffic, rng) for _ in range(args.runs)]
                label = "10 rps" if traffic else "none"
                print(
                    f"{fault:10} {label:8} {min(times):6.2f} {statistics.median(times):9.2f} {max(times):6.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
