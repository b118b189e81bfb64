"""Latency and errors over time, for the status page's charts.

:class:`Timeline` listens to the session's events and keeps, per region,
the last ``window`` seconds (15 minutes) in ``bucket``-second buckets: the
app's attempts (``CallFinished``, probes left out), how many were faults,
and a bounded sample of their durations (p50 and p99 are taken from it).
Beside them it keeps marks on the same time axis: breaker changes,
failovers (one mark per region and bucket, with a count), evacuations and
restorations, and replication-lag warnings (a pair entering ``lagging`` or
``stalled``, once per entry).

Rules: memory is bounded (buckets by the window, samples per bucket, marks
by count); the lock guards the data only, a snapshot sorts its copies
outside it; wall-clock time from an injected clock, so tests move time.
The status page draws the snapshot as inline SVG itself (no library).
"""

from __future__ import annotations

import collections
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from regionproxy.events import FAULT, PROBE, BreakerChanged, CallFinished, Event, FailedOver, ReplicationLag

WINDOW, BUCKET, SAMPLES, MARKS = 900.0, 15.0, 256, 400
WARNING_STATES = frozenset({"lagging", "stalled"})


@dataclass
class _Bucket:
    calls: int = 0
    errors: int = 0
    durations: list[float] = field(default_factory=list)


class Timeline:
    """Per-region latency, errors and marks over the last ``window`` seconds."""

    def __init__(
        self,
        regions: Iterable[str],
        *,
        window: float = WINDOW,
        bucket: float = BUCKET,
        samples: int = SAMPLES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.regions = tuple(regions)
        self.window, self.bucket, self.samples = float(window), float(bucket), int(samples)
        self._clock = clock
        self._lock = threading.Lock()
        self._rng = random.Random(0)
        self._buckets: dict[str, dict[int, _Bucket]] = {region: {} for region in self.regions}
        self._marks: collections.deque[dict[str, Any]] = collections.deque(maxlen=MARKS)
        self._failover_marks: dict[tuple[str, int], dict[str, Any]] = {}
        self._lag_states: dict[tuple[str, str], str] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, CallFinished):
            if event.operation != PROBE and event.region in self._buckets:
                self._record(event.region, event.duration, event.outcome == FAULT)
        elif isinstance(event, BreakerChanged):
            kind = "evacuation" if event.new == "evacuated" else "restore" if event.old == "evacuated" else "breaker"
            self._mark(event.region, kind, f"{event.old} -> {event.new}")
        elif isinstance(event, FailedOver):
            self._failover(event.from_region, event.to_region)
        elif isinstance(event, ReplicationLag):
            self._lag(event)

    # -- recording ------------------------------------------------------------

    def _index(self, now: float) -> int:
        return math.floor(now / self.bucket)

    def _record(self, region: str, duration: float, fault: bool) -> None:
        now = self._clock()
        index = self._index(now)
        with self._lock:
            buckets = self._buckets[region]
            bucket = buckets.get(index)
            if bucket is None:
                bucket = buckets[index] = _Bucket()
                self._prune(buckets, index)
            bucket.calls += 1
            bucket.errors += fault
            if len(bucket.durations) < self.samples:
                bucket.durations.append(duration)
            else:  # reservoir: each attempt of the bucket equally likely kept
                slot = self._rng.randrange(bucket.calls)
                if slot < self.samples:
                    bucket.durations[slot] = duration

    def _prune(self, buckets: dict[int, _Bucket], index: int) -> None:
        oldest = index - math.ceil(self.window / self.bucket)
        for stale in [i for i in buckets if i < oldest]:
            del buckets[stale]

    def _mark(self, region: str, kind: str, label: str) -> None:
        with self._lock:
            self._marks.append({"t": self._clock(), "region": region, "kind": kind, "label": label})

    def _failover(self, source: str, target: str) -> None:
        now = self._clock()
        key = (source, self._index(now))
        with self._lock:
            mark = self._failover_marks.get(key)
            if mark is not None:  # (if it left the deque, the update is unseen: harmless)
                mark["count"] += 1
                mark["label"] = f"{mark['count']} failovers to {target}"
                return
            if len(self._failover_marks) > MARKS:
                self._failover_marks.clear()
            mark = {"t": now, "region": source, "kind": "failover", "label": f"1 failover to {target}", "count": 1}
            self._failover_marks[key] = mark
            self._marks.append(mark)

    def _lag(self, event: ReplicationLag) -> None:
        pair = (event.source, event.replica)
        with self._lock:
            before = self._lag_states.get(pair)
            self._lag_states[pair] = event.state
        if event.state in WARNING_STATES and before != event.state:
            self._mark(event.replica, "lag", f"{event.source} -> {event.replica} {event.state}")

    # -- reading --------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: per region, one point per bucket with attempts
        (``calls``, ``errors``, ``p50_ms``, ``p99_ms``), and the marks."""
        now = self._clock()
        start = now - self.window
        with self._lock:
            copies = {
                region: [(index, b.calls, b.errors, list(b.durations)) for index, b in sorted(buckets.items())]
                for region, buckets in self._buckets.items()
            }
            marks = [dict(mark) for mark in self._marks if mark["t"] >= start]
        regions = {}
        for region, buckets in copies.items():
            points = []
            for index, calls, errors, durations in buckets:
                t = index * self.bucket
                if t + self.bucket < start:
                    continue
                durations.sort()
                points.append(
                    {
                        "t": t,
                        "calls": calls,
                        "errors": errors,
                        "p50_ms": _ms(_quantile(durations, 0.50)),
                        "p99_ms": _ms(_quantile(durations, 0.99)),
                    }
                )
            regions[region] = points
        for mark in marks:
            mark.pop("count", None)
        return {"now": now, "window_s": self.window, "bucket_s": self.bucket, "regions": regions, "marks": marks}


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
