"""Per-region counters and recent latencies, kept from events.

:class:`SessionStats` is a listener; ``RegionSession.status()`` reads it.
Latency percentiles come from a window of the most recent calls per region,
so they describe now, not the process's lifetime.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from regionproxy.events import FAULT, OK, BreakerChanged, CacheLookup, CallFinished, Event, FailedOver

WINDOW = 512


@dataclass
class _RegionCounts:
    calls: int = 0
    errors: int = 0
    caller_errors: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    last_fault: str | None = None
    last_ok_duration: float | None = None


class SessionStats:
    """Counts calls, faults, failovers and cache lookups from events."""

    def __init__(self, regions: tuple[str, ...], *, recent_failovers: int = 20) -> None:
        self._lock = threading.Lock()
        self._regions = {region: _RegionCounts() for region in regions}
        self.failovers: deque[FailedOver] = deque(maxlen=recent_failovers)
        self.failover_count = 0
        self.breaker_changes: deque[BreakerChanged] = deque(maxlen=recent_failovers)
        self.cache_hits = 0
        self.cache_misses = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, CallFinished):
            self._call_finished(event)
        elif isinstance(event, FailedOver):
            with self._lock:
                self.failovers.append(event)
                self.failover_count += 1
        elif isinstance(event, BreakerChanged):
            with self._lock:
                self.breaker_changes.append(event)
        elif isinstance(event, CacheLookup):
            with self._lock:
                if event.hit:
                    self.cache_hits += 1
                else:
                    self.cache_misses += 1

    def _call_finished(self, event: CallFinished) -> None:
        counts = self._regions.get(event.region)
        if counts is None:
            return
        with self._lock:
            counts.calls += 1
            counts.latencies.append(event.duration)
            if event.outcome == FAULT:
                counts.errors += 1
                counts.last_fault = event.error
            elif event.outcome == OK:
                counts.last_ok_duration = event.duration
            else:
                counts.caller_errors += 1

    def region(self, region: str) -> dict[str, Any]:
        with self._lock:
            counts = self._regions[region]
            ordered = sorted(counts.latencies)
            return {
                "calls": counts.calls,
                "errors": counts.errors,
                "caller_errors": counts.caller_errors,
                "last_error": counts.last_fault,
                "latency_ms": {
                    "p50": _percentile(ordered, 0.50),
                    "p99": _percentile(ordered, 0.99),
                    "window": len(ordered),
                },
            }

    def cache(self) -> dict[str, Any]:
        with self._lock:
            lookups = self.cache_hits + self.cache_misses
            return {
                "hits": self.cache_hits,
                "misses": self.cache_misses,
                "hit_ratio": round(self.cache_hits / lookups, 4) if lookups else None,
            }


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return round(ordered[index] * 1000, 3)
