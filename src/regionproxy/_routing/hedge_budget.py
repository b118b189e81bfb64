"""What hedged reads keep count of: the budget of hedges, and each region's
recent latency (for a ``"p95"`` hedge delay).

The budget (after Finagle's ``RetryBudget``): over the last ``window``
seconds, hedges are allowed up to ``min_per_second x window`` (the floor:
hedges always allowed, however quiet the site) plus ``fraction`` of the
reads counted. Without the floor a site that reads a few times a second
has a budget of two or three hedges, and a blackhole spends them before a
single one can be given back: every later read waits a full read timeout.

A hedge is *provisional* while its preferred side is still waiting: until
that side ends, nobody knows whether the hedge was an extra request (the
preferred side answers: a brownout) or the read's only answer (it fails:
a blackhole, and the hedge is refunded). Provisional hedges are held
apart from the spent ones, each kind against the same allowance, so a
blackhole, whose hedges are all refunded in the end, does not spend the
budget while it waits for its timeouts. A provisional hedge becomes a
spent one when its preferred side answers (:meth:`HedgeBudget.settle`);
one that nothing settles in ``hold`` seconds (the longest a call can take)
is counted as spent, so the budget never leaks. The rule bounds the extra
requests: at most the allowance spent over the window, plus at most the
allowance in flight.

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


class _Receipt:
    """One hedge taken: provisional until settled, refunded or held too long."""

    __slots__ = ("taken",)

    def __init__(self, taken: float) -> None:
        self.taken = taken


class HedgeBudget:
    """Hedges allowed over the last ``window`` seconds: ``min_per_second x
    window`` plus ``fraction`` of the reads. Counted in one-second buckets;
    provisional hedges (their preferred side still waiting) apart.

    :param fraction: the share of reads that may be hedged.
    :param window: seconds counted.
    :param min_per_second: hedges per second always allowed (the floor).
    :param hold: seconds a hedge may stay provisional; then it counts as spent.
    :param clock: monotonic seconds; tests pass a fake one.
    """

    def __init__(
        self,
        fraction: float,
        window: float,
        *,
        min_per_second: float = 0.0,
        hold: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fraction = fraction
        self.window = window
        self.min_per_second = min_per_second
        self.hold = hold
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: deque[list[float]] = deque()  # [start, reads, hedges spent]
        self._provisional: dict[_Receipt, None] = {}  # oldest first
        reset_after_fork(self)

    def __repr__(self) -> str:
        reads, hedges, provisional = self._totals()
        return (
            f"HedgeBudget(fraction={self.fraction}, window={self.window}, min_per_second={self.min_per_second},"
            f" reads={reads:g}, hedges={hedges:g}, provisional={provisional})"
        )

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        # The parent's hedges in flight end in the parent: nothing here
        # settles or refunds them, and they are no load of this process.
        self._provisional = {}

    def read(self) -> None:
        """Count one read."""
        with self._lock:
            self._bucket()[1] += 1

    def spend(self) -> bool:
        """Take one hedge and count it spent at once, if the budget allows it."""
        receipt = self.take()
        if receipt is None:
            return False
        self.settle(receipt)
        return True

    def take(self) -> object | None:
        """Take one provisional hedge if the budget allows it: a receipt for
        :meth:`settle` or :meth:`refund`, or None."""
        with self._lock:
            now = self._clock()
            self._bucket(now)
            self._expire_provisional(now)
            allowance = self._allowance()
            if sum(b[2] for b in self._buckets) + 1 > allowance or len(self._provisional) + 1 > allowance:
                return None
            receipt = _Receipt(now)
            self._provisional[receipt] = None
            return receipt

    def settle(self, receipt: object) -> None:
        """The hedge ``receipt`` was given for was an extra request (its
        preferred side answered too): count it spent, now."""
        with self._lock:
            if receipt in self._provisional:  # not refunded, nor expired (spent already)
                del self._provisional[receipt]  # type: ignore[arg-type]
                self._bucket()[2] += 1

    def refund(self, receipt: object) -> None:
        """Give back the hedge ``receipt`` was given for: it was not an extra
        request after all (the preferred side failed: the hedge was the
        read's only answer). A hedge already counted as spent (held too
        long) stays spent: taking another off instead would let the window
        hold one more than its share."""
        with self._lock:
            self._provisional.pop(receipt, None)  # type: ignore[call-overload]

    def _allowance(self) -> float:
        reads = sum(b[1] for b in self._buckets)
        # Without a floor, one hedge is allowed on top: an idle app can hedge too.
        return self.min_per_second * self.window + self.fraction * reads + (0 if self.min_per_second else 1)

    def _expire_provisional(self, now: float) -> None:
        """Under the lock: a hedge nothing settled in ``hold`` is spent."""
        while self._provisional:
            receipt = next(iter(self._provisional))
            if receipt.taken > now - self.hold:
                break
            del self._provisional[receipt]
            self._bucket(now)[2] += 1

    def _bucket(self, now: float | None = None) -> list[float]:
        now = self._clock() if now is None else now
        while self._buckets and self._buckets[0][0] <= now - self.window:
            self._buckets.popleft()
        if not self._buckets or now - self._buckets[-1][0] >= _BUCKET:
            self._buckets.append([now, 0.0, 0.0])
        return self._buckets[-1]

    def _totals(self) -> tuple[float, float, int]:
        with self._lock:
            return sum(b[1] for b in self._buckets), sum(b[2] for b in self._buckets), len(self._provisional)


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
