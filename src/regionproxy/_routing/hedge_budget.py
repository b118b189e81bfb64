"""What hedged reads keep count of: the budget of hedges, and each region's
recent latency (for a ``"p95"`` hedge delay).

Both are fed from many threads at once: the budget under its own lock, the
latencies by atomic deque appends. :mod:`regionproxy._routing.hedging` uses them.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from regionproxy._forks import reset_after_fork
from regionproxy.events import OK, PROBE, CallFinished, Event

_SAMPLES = 256  # recent successful latencies kept per region, for "p95"
_BUCKET = 1.0  # seconds per budget bucket


class HedgeBudget:
    """Hedges allowed: at most ``fraction`` of the reads of the last
    ``window`` seconds, plus one. Counted in one-second buckets.

    :param fraction: the share of reads that may be hedged.
    :param window: seconds counted.
    :param clock: monotonic seconds; tests pass a fake one.
    """

    def __init__(self, fraction: float, window: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.fraction = fraction
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: deque[list[float]] = deque()  # [start, reads, hedges]
        reset_after_fork(self)

    def __repr__(self) -> str:
        reads, hedges = self._totals()
        return f"HedgeBudget(fraction={self.fraction}, window={self.window}, reads={reads:g}, hedges={hedges:g})"

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def read(self) -> None:
        """Count one read."""
        with self._lock:
            self._bucket()[1] += 1

    def spend(self) -> bool:
        """Take one hedge if the budget allows it."""
        return self.take() is not None

    def take(self) -> object | None:
        """Take one hedge if the budget allows it: a receipt for
        :meth:`refund`, or None."""
        with self._lock:
            bucket = self._bucket()
            reads = sum(b[1] for b in self._buckets)
            hedges = sum(b[2] for b in self._buckets)
            if hedges + 1 > self.fraction * reads + 1:
                return None
            bucket[2] += 1
            return bucket

    def refund(self, receipt: object) -> None:
        """Give back the hedge ``receipt`` was given for: it was not an extra
        request after all (the preferred side failed: the hedge was the
        read's only answer). Once its second has left the window there is
        nothing to give back: taking a later hedge off instead would let
        the window hold one more than its share."""
        with self._lock:
            for bucket in self._buckets:
                if bucket is receipt and bucket[2] >= 1:
                    bucket[2] -= 1
                    return

    def _bucket(self) -> list[float]:
        now = self._clock()
        while self._buckets and self._buckets[0][0] <= now - self.window:
            self._buckets.popleft()
        if not self._buckets or now - self._buckets[-1][0] >= _BUCKET:
            self._buckets.append([now, 0.0, 0.0])
        return self._buckets[-1]

    def _totals(self) -> tuple[float, float]:
        with self._lock:
            return sum(b[1] for b in self._buckets), sum(b[2] for b in self._buckets)


class RecentLatency:
    """Listener: each region's recent successful attempt latencies, for a
    ``"p95"`` hedge delay."""

    def __init__(self) -> None:
        self._samples: dict[str, deque[float]] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, CallFinished) and event.outcome == OK and event.operation != PROBE:
            samples = self._samples.get(event.region)
            if samples is None:
                samples = self._samples.setdefault(event.region, deque(maxlen=_SAMPLES))
            samples.append(event.duration)  # deque.append is atomic: no lock

    def p95(self, region: str) -> float | None:
        samples = sorted(self._samples.get(region, ()))
        if len(samples) < 20:
            return None  # too few to say
        return samples[min(len(samples) - 1, math.ceil(0.95 * len(samples)) - 1)]
