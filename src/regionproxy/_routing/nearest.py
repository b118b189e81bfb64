"""Nearest healthy region: each region's latency estimate, and the order
remote regions are tried in.

A list of regions is a guess made once; round trips change. Each region
keeps an exponentially weighted moving average of the latency of its
successful attempts and health probes (``alpha`` 0.2, as MongoDB's server
selection keeps its round-trip estimate; the first sample is taken as it
is). A read's plan keeps its first region (the local one, or the region a
read must follow), which stays first while it is healthy and not demoted
(its breaker and :mod:`regionproxy._routing.hedging` decide that); the
remote regions after it are tried nearest first, by these rules
(:func:`nearest_first`):

- the regions whose estimate is within ``latency_window`` of the best
  estimate among them (MongoDB's ``localThresholdMS``) are equally near:
  the configured order breaks the tie, so a list that matches the round
  trips is kept as it is;
- regions farther than that come after them, nearest first (the
  configured order breaking exact ties);
- a region with no estimate yet (never answered) counts as within the
  window: until it has been measured, the configured order is the guess.

With two regions there is nothing to reorder: the read path then does no
work at all. The estimate also ends a demotion early: a demoted region
whose latest sample (a probe, a trial read) is back within the window of
the region that replaced it, and taken after the demotion began (a fast
answer from before the slowness proves nothing), is lifted (see :meth:`~regionproxy._routing.hedging.Hedger.order`).

Updated from many threads without a lock: each update is one dict
assignment of a float (a race loses one sample, harmlessly).
"""

from __future__ import annotations

from collections.abc import Iterable

from regionproxy.events import OK, CallFinished, Event

ALPHA = 0.2


class LatencyEstimates:
    """Listener: each region's EWMA latency (seconds) of successful attempts
    and probes, and its latest sample.

    :param alpha: the weight of a new sample.
    """

    def __init__(self, alpha: float = ALPHA) -> None:
        self.alpha = alpha
        self._estimates: dict[str, float] = {}
        self._latest: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"LatencyEstimates({ {region: round(value * 1000, 1) for region, value in self._estimates.items()} })"

    def __call__(self, event: Event) -> None:
        self.record(event)

    def record(self, event: Event) -> None:
        """The listener the session registers (a bound method: one call
        per event, two per DynamoDB call, so :meth:`add` is inline)."""
        if isinstance(event, CallFinished) and event.outcome == OK:
            region, seconds = event.region, event.duration
            previous = self._estimates.get(region)
            self._estimates[region] = seconds if previous is None else previous + self.alpha * (seconds - previous)
            self._latest[region] = seconds
            self._counts[region] = self._counts.get(region, 0) + 1

    def add(self, region: str, seconds: float) -> None:
        """Count one successful attempt or probe of ``region``."""
        previous = self._estimates.get(region)
        self._estimates[region] = seconds if previous is None else previous + self.alpha * (seconds - previous)
        self._latest[region] = seconds
        self._counts[region] = self._counts.get(region, 0) + 1

    def estimate(self, region: str) -> float | None:
        """Seconds, or None before the region has answered."""
        return self._estimates.get(region)

    def latest(self, region: str) -> float | None:
        """The latest sample's seconds, or None."""
        return self._latest.get(region)

    def samples(self, region: str) -> int:
        """How many samples of ``region`` have been counted (to tell a
        sample taken after a moment from one taken before it)."""
        return self._counts.get(region, 0)

    def snapshot(self) -> dict[str, float]:
        """Every estimate now (one C call: no other thread runs during it)."""
        return self._estimates.copy()


def nearest_first(plan: tuple[str, ...], estimates: dict[str, float], window: float) -> tuple[str, ...]:
    """``plan`` with its first region kept first and the others nearest
    first (the rules are in this module's docstring)."""
    rest = plan[1:]
    if len(rest) < 2:
        return plan
    known = [estimates[region] for region in rest if region in estimates]
    if not known:
        return plan
    limit = min(known) + window
    near = [region for region in rest if estimates.get(region, limit) <= limit]
    far = sorted(
        (region for region in rest if region not in near), key=lambda region: estimates[region]
    )  # stable: configured order on ties
    ordered = (plan[0], *near, *far)
    return plan if ordered == plan else ordered


def within_window(region: str, others: Iterable[str], estimates: LatencyEstimates, window: float) -> bool:
    """Whether ``region``'s latest sample is within ``window`` of the best
    estimate of ``others`` (False when either is unknown)."""
    latest = estimates.latest(region)
    best = min((value for other in others if (value := estimates.estimate(other)) is not None), default=None)
    return latest is not None and best is not None and latest <= best + window
