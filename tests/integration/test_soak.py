"""Soak: threaded reads through one session for a minute while the local
region flaps through every outage mode. Zero reads may fail, the thread
count stays bounded, and traffic returns to the local region at the end.

Slow (about 70 s): ``pytest -m slow``. ``REGIONPROXY_SOAK_SECONDS`` shortens
or lengthens it.
"""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

import regionproxy as rp
from regionproxy.testing import wait_for
from tests.support import LOCAL, TABLE

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("REGIONPROXY_SOAK_SECONDS", "60"))
READERS = 4
KEYS = 50
MAX_READS_PER_READER = 200_000  # a bound in count as well as in time
# Each outage is held, then healed, for this long.
FLAP_SECONDS = 1.5
OUTAGES = [
    pytest.param(("refuse", {}), id="refuse"),
    pytest.param(("blackhole", {}), id="blackhole"),
    pytest.param(("reset", {}), id="reset"),
    pytest.param(("error", {"status": 500, "rate": 1.0}), id="error-500"),
]
# Beyond the readers: the fault proxies' per-connection workers (botocore
# pools at most 10 connections per region) and the lab's own threads.
THREAD_MARGIN = 2 * 10 * 2 + 10


class Readers:
    """``READERS`` threads reading random seeded keys until stopped; each
    failure is kept with its error."""

    def __init__(self, table) -> None:
        self.table = table
        self.reads = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), name=f"soak-{n}") for n in range(READERS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in self._threads), "a reader is stuck"

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        deadline = time.monotonic() + SOAK_SECONDS + 60
        for _ in range(MAX_READS_PER_READER):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            n = rng.randrange(KEYS)
            try:
                if n % 5:
                    item = self.table.get_item(Key={"pk": f"k{n}", "sk": "s"}).get("Item")
                    ok = item is not None and item["v"] == f"value-{n}"
                else:
                    items = self.table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"k{n}"})
                    ok = [item["v"] for item in items["Items"]] == [f"value-{n}"]
                error = None if ok else f"k{n}: wrong answer"
            except Exception as caught:  # noqa: BLE001 - every failure is the finding
                error = f"k{n}: {type(caught).__name__}: {caught}"
            with self._lock:
                self.reads += 1
                if error:
                    self.failures.append(error)


def test_reads_never_fail_while_the_local_region_flaps_for_a_minute(lab):
    for n in range(KEYS):
        lab.client(LOCAL).put_item(TableName=TABLE, Item={"pk": {"S": f"k{n}"}, "sk": {"S": "s"}, "v": {"S": f"value-{n}"}})
    lab.wait_replicated(timeout=30)
    session = lab.session(
        # Generous for the healthy region: a loaded machine can be slow to answer.
        timeouts=rp.Timeouts(connect=0.5, read=2.0, attempts=1),
        breaker=rp.BreakerPolicy(fail_max=2, reset_timeout=1.0),
    )
    table = session.table(TABLE)
    table.get_item(Key={"pk": "k0", "sk": "s"})  # clients created before the baseline
    baseline = threading.active_count()
    readers = Readers(table)
    readers.start()
    peak = baseline
    flaps = 0
    outages = [param.values[0] for param in OUTAGES]
    try:
        end = time.monotonic() + SOAK_SECONDS
        while time.monotonic() < end and flaps < 10_000:
            mode, params = outages[flaps % len(outages)]
            lab.fault(LOCAL, mode, **params)
            for _ in range(2):  # the outage, then the healed region
                step_end = time.monotonic() + FLAP_SECONDS
                while time.monotonic() < step_end:
                    peak = max(peak, threading.active_count())
                    time.sleep(0.1)
                lab.heal(LOCAL)
            flaps += 1
    finally:
        lab.heal(LOCAL)
        readers.stop()

    print(f"soak: {readers.reads} reads, {flaps} flaps, threads {baseline} -> peak {peak}")
    assert readers.failures == [], f"{len(readers.failures)} of {readers.reads} reads failed: {readers.failures[:5]}"
    assert readers.reads > 0 and flaps >= min(4, SOAK_SECONDS / (2 * FLAP_SECONDS) - 1)
    assert session.status()["failovers"]["total"] > 0, "the outages made reads fail over"
    assert peak <= baseline + READERS + THREAD_MARGIN, f"threads grew from {baseline} to {peak}"
    # Traffic returns to the healed local region by itself.
    def gets_served_locally():
        return sum(1 for r in lab.requests(LOCAL) if r.operation == "GetItem" and r.action == "forwarded")

    before = gets_served_locally()
    assert wait_for(
        lambda: table.get_item(Key={"pk": "k1", "sk": "s"}) and gets_served_locally() > before + 3,
        timeout=30,
        interval=0.2,
    ), session.status()["regions"][LOCAL]
    assert wait_for(lambda: threading.active_count() <= baseline + THREAD_MARGIN, timeout=30), "threads were left behind"
