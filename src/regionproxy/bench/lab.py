"""A lab for benchmark scenarios: the ``Bench`` table, seeded and replicated,
each region behind the latency of a :class:`~regionproxy.bench.profiles.LatencyProfile`.

moto runs in subprocesses (``mode="process"``) so that its CPU is not the
benchmark's; the ``smoke`` size uses in-process servers, which start faster.
Latency is injected per request by the lab's fault proxy (this kernel has no
``netem``, and moto closes the connection after every answer, so a
per-packet delay would add a connect round trip to every call).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from regionproxy.bench.profiles import LatencyProfile
from regionproxy.events import PROBE_KIND

TABLE = "Bench"
WIRE_KEY = {"pk": {"S": "bench"}, "sk": {"S": "item"}}
WIRE_ITEM = {**WIRE_KEY, "payload": {"S": "x" * 200}, "n": {"N": "42"}}
KEY_SCHEMA = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
}


@contextlib.contextmanager
def bench_lab(regions: list[str], profile: LatencyProfile, *, mode: str = "process") -> Iterator[Any]:
    """A started lab over ``regions`` with the ``Bench`` item in each and
    the profile's round trip on every request to each region."""
    from regionproxy.testing import LocalRegions

    with LocalRegions(regions, mode=mode, seed=1) as lab:
        lab.create_table(TableName=TABLE, **KEY_SCHEMA)
        lab.client(regions[0], direct=True).put_item(TableName=TABLE, Item=WIRE_ITEM)
        lab.wait_replicated(timeout=15)
        apply_profile(lab, profile)
        yield lab


def apply_profile(lab: Any, profile: LatencyProfile, **extra: Any) -> None:
    """Put each lab region behind its profile round trip (plus ``extra``
    latency settings, e.g. spikes, for the first region)."""
    for index, region in enumerate(lab.regions):
        latency = profile.regions[region]
        params = {"delay": latency.delay, "jitter": latency.jitter}
        if index == 0:
            params.update(extra)
        lab.fault(region, "latency", **params)


class RegionOfCall:
    """A session listener that remembers, per thread, which region served
    the thread's last operation (``OperationFinished.region``), and every
    breaker change and hedge, stamped with ``clock()``."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self.breakers: list[tuple[float, str, str, str]] = []
        self.hedges: dict[str, int] = {}
        self.hedge_delays: list[tuple[float, float]] = []  # (at, delay) of each hedge sent
        self.attempts = 0
        self.operations = 0

    def __call__(self, event: Any) -> None:
        name = type(event).__name__
        if name == "OperationFinished":
            self._local.last = (event.region, event.attempts)
            with self._lock:
                self.operations += 1
        elif name == "CallFinished" and event.kind != PROBE_KIND:
            with self._lock:
                self.attempts += 1
        elif name == "BreakerChanged":
            with self._lock:
                self.breakers.append((self._clock(), event.region, event.old, event.new))
        elif name == "Hedged":  # hedged reads (HedgePolicy), when the session has them
            with self._lock:
                self.hedges[event.outcome] = self.hedges.get(event.outcome, 0) + 1
                if event.outcome != "refused":
                    self.hedge_delays.append((self._clock(), event.delay))

    def take(self) -> tuple[str | None, int]:
        """The region and attempts of this thread's last operation, once."""
        last = getattr(self._local, "last", (None, 0))
        self._local.last = (None, 0)
        return last

    def counts(self) -> dict[str, Any]:
        """What has been counted so far: operations, attempts, hedges by
        outcome, and how many hedge delays were recorded; taken before a
        timed run so that the warm-up's counts can be left out."""
        with self._lock:
            return {
                "operations": self.operations,
                "attempts": self.attempts,
                "hedges": dict(self.hedges),
                "hedge_delays": len(self.hedge_delays),
            }
