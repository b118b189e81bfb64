"""Counters and recent latencies kept from events, for ``session.status()``
and the status page.

:class:`SessionStats` is a listener. Latency percentiles cover a sliding
time window (the last 60 s by default), so a region that stopped answering
does not keep showing the latency it had before its outage; the window is
part of the JSON. Failovers, poison requests and missing replicas are
aggregated by what they have in common, with a count and first/last time,
so the first failovers of an outage stay visible behind the later ones.
Memory is bounded: samples per region and groups per table are capped.

Counting is deferred, and so off the call path: the listener appends
``(time received, event)`` to a deque (thread-safe without a lock) and the
events are counted in batches under the lock, by the thread whose append
makes :data:`COUNT_EVERY`, or by a reader first. Every call sends two
events here, and after botocore's work has evicted the caches, taking the
lock and counting one event cost 1.4 us (an append 0.4 us), measured with
``benchmarks/bench_overhead.py``'s canned endpoint in mind: it was a fifth
of what the session adds to a call. The append is all the listener does
(events it does not count are skipped when counted), and the two events
every call sends (``CallFinished``, ``OperationFinished``) are counted in
the batch loop itself, without a call per event: together a third less
work per event (instruction counts, ``valgrind --tool=callgrind``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from regionproxy._dynamodb.operations import CONTROL, READ, WRITE
from regionproxy._forks import reset_after_fork
from regionproxy.events import (
    CALLER_ERROR,
    FAILED,
    FAULT,
    OK,
    CacheLookup,
    CallFinished,
    ConsistencyDowngraded,
    Event,
    FailedOver,
    Hedged,
    OperationFinished,
    PoisonRequest,
    RegionDemoted,
    ReplicaMissing,
)

LATENCY_WINDOW = 60.0  # seconds
MAX_SAMPLES = 4096  # per region: under heavy traffic the window holds the most recent ones
MAX_GROUPS = 50  # per table (failovers, poison requests, missing replicas)
KINDS = (READ, WRITE, CONTROL)
COUNT_EVERY = 256  # events waiting to be counted, at most (and what arrives meanwhile)


@dataclass
class _RegionCounts:
    calls: int = 0
    errors: int = 0
    caller_errors: int = 0
    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))  # (at, seconds)
    last_fault: str | None = None


class _Groups:
    """Events aggregated by a key: count, first and last time, and per-key
    extras; at most ``limit`` keys, the least recently seen dropped first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._groups: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()

    def add(self, key: Hashable, at: float, fields: dict[str, Any]) -> dict[str, Any]:
        self.total += 1
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = {**fields, "count": 0, "first_at": at, "last_at": at}
            if len(self._groups) > self.limit:
                self._groups.popitem(last=False)
        self._groups.move_to_end(key)
        group["count"] += 1
        group["last_at"] = max(group["last_at"], at)
        return group

    def json(self) -> dict[str, Any]:
        # Most recently seen first; copies, so the caller may keep them.
        groups = [
            {name: value.copy() if isinstance(value, dict | list) else value for name, value in group.items()}
            for group in reversed(self._groups.values())
        ]
        return {"total": self.total, "groups": groups}


class SessionStats:
    """Counts calls, faults, app operations, failovers, poison requests,
    missing replicas and cache lookups from events.

    :param regions: the session's regions, local first; events about any
        other region are not counted per region.
    :param window: seconds of latency samples the percentiles cover.
    :param clock: monotonic seconds, for the latency window; tests pass a fake one.
    :param max_groups: at most this many failover, poison and missing-replica groups each.
    """

    def __init__(
        self,
        regions: tuple[str, ...],
        *,
        window: float = LATENCY_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        max_groups: int = MAX_GROUPS,
        recent_failovers: int = 20,
    ) -> None:
        self.window = window
        self._clock = clock
        self._local = regions[0] if regions else None
        self._lock = threading.Lock()
        self._regions = {region: _RegionCounts() for region in regions}
        self._operations = {kind: {"served": 0, "served_remote": 0, "caller_errors": 0, "failed": 0} for kind in KINDS}
        self._failovers = _Groups(max_groups)
        self._poison = _Groups(max_groups)
        self._missing = _Groups(max_groups)
        self._downgraded = _Groups(max_groups)  # strongly consistent reads served by another region (issue 20)
        # The last few failovers one by one, for the "recent" list that
        # session.status() adds: the groups keep no single event. Counts come
        # from the groups alone (failover_count, summary()).
        self._recent: deque[FailedOver] = deque(maxlen=recent_failovers)
        self._cache_hits = 0
        self._cache_misses = 0
        self._hedges: dict[str, int] = {"won": 0, "lost": 0, "failed": 0, "refused": 0, "demotions": 0}
        self._pending: deque[tuple[float, Event]] = deque()
        reset_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a thread of the parent's may have held it

    @property
    def failover_count(self) -> int:
        with self._counted():
            return self._failovers.total

    def recent_failovers(self) -> list[FailedOver]:
        """The last few failovers, oldest first."""
        with self._counted():
            return list(self._recent)

    def record(self, event: Event) -> None:
        """Receive one event (the listener: register ``stats.record``, a
        bound method, which Python calls for less than an instance's
        ``__call__``; calling the instance does the same)."""
        pending = self._pending
        pending.append((self._clock(), event))
        if len(pending) >= COUNT_EVERY:
            with self._counted():
                pass

    __call__ = record

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """Hold the lock with every event received so far counted."""
        with self._lock:
            pending, handlers = self._pending, self._HANDLERS
            regions, operations, local = self._regions, self._operations, self._local
            # At most what is there now: appends go on meanwhile. The two
            # events of every call are counted here, inline; the rest by
            # their handlers, and events not named there not at all.
            for _ in range(len(pending)):
                at, event = pending.popleft()
                kind = type(event)
                if kind is CallFinished:
                    counts = regions.get(event.region)
                    if counts is None:
                        continue  # a region this session does not have
                    counts.calls += 1
                    counts.samples.append((at, event.duration))
                    if event.outcome == FAULT:
                        counts.errors += 1
                        counts.last_fault = event.error
                    elif event.outcome != OK:
                        counts.caller_errors += 1
                elif kind is OperationFinished:
                    operation = operations.get(event.kind)
                    if operation is None:
                        continue
                    if event.outcome == OK:
                        operation["served"] += 1
                        if event.region != local:
                            operation["served_remote"] += 1
                    elif event.outcome == CALLER_ERROR:
                        operation["caller_errors"] += 1
                    elif event.outcome == FAILED:
                        operation["failed"] += 1
                else:
                    handler = handlers.get(kind)
                    if handler is not None:
                        handler(self, at, event)
            yield

    # -- counting, under the lock (CallFinished and OperationFinished: _counted) --

    def _cache_lookup(self, at: float, event: CacheLookup) -> None:
        if event.hit:
            self._cache_hits += 1
        else:
            self._cache_misses += 1

    def _failed_over(self, at: float, event: FailedOver) -> None:
        key = (event.from_region, event.to_region, event.reason)
        fields = {"from": event.from_region, "to": event.to_region, "reason": event.reason}
        self._recent.append(event)
        group = self._failovers.add(key, event.at, {**fields, "outcomes": {OK: 0, CALLER_ERROR: 0, FAULT: 0}})
        group["outcomes"][event.outcome] = group["outcomes"].get(event.outcome, 0) + 1

    def _poison_request(self, at: float, event: PoisonRequest) -> None:
        fields = {"operation": event.operation, "error": event.error}
        group = self._poison.add((event.operation, event.error), event.at, fields)
        group["regions"] = list(event.regions)  # the latest request's

    def _replica_missing(self, at: float, event: ReplicaMissing) -> None:
        self._missing.add((event.region, event.table), event.at, {"region": event.region, "table": event.table})

    def _hedged(self, at: float, event: Hedged) -> None:
        self._hedges[event.outcome] = self._hedges.get(event.outcome, 0) + 1

    def _region_demoted(self, at: float, event: RegionDemoted) -> None:
        self._hedges["demotions"] += 1

    def _consistency_downgraded(self, at: float, event: ConsistencyDowngraded) -> None:  # issue 20
        self._downgraded.add(
            (event.from_region, event.to_region, event.tables),
            event.at,
            {"from": event.from_region, "to": event.to_region, "tables": list(event.tables)},
        )

    # Events not named here nor counted in _counted (BreakerChanged,
    # CacheDropped) are not counted: the status page reads breaker state and
    # cache size from their owners.
    _HANDLERS: ClassVar[dict[type, Callable[[SessionStats, float, Any], None]]] = {
        CacheLookup: _cache_lookup,
        FailedOver: _failed_over,
        PoisonRequest: _poison_request,
        ReplicaMissing: _replica_missing,
        Hedged: _hedged,
        RegionDemoted: _region_demoted,
        ConsistencyDowngraded: _consistency_downgraded,
    }

    def _expire(self, counts: _RegionCounts, now: float) -> None:
        samples, oldest = counts.samples, now - self.window
        while samples and samples[0][0] < oldest:
            samples.popleft()

    def region(self, region: str) -> dict[str, Any]:
        """One region's counters and its latency over the window (JSON-ready)."""
        with self._counted():
            counts = self._regions[region]
            self._expire(counts, self._clock())
            ordered = sorted(duration for _, duration in counts.samples)
            return {
                "calls": counts.calls,
                "errors": counts.errors,
                "caller_errors": counts.caller_errors,
                "last_error": counts.last_fault,
                "latency_ms": {
                    "p50": _percentile(ordered, 0.50),
                    "p99": _percentile(ordered, 0.99),
                    "samples": len(ordered),
                    "window_s": self.window,
                },
            }

    def summary(self) -> dict[str, Any]:
        """Everything not per region, JSON-ready, for ``session.status()``:
        ``failovers``, ``operations``, ``poison_requests``, ``missing_replicas``,
        ``hedges`` (hedged reads by outcome), ``consistency_downgraded``
        (strongly consistent reads of an MREC table served by another region)."""
        with self._counted():
            return {
                "latency_window_s": self.window,
                "failovers": self._failovers.json(),
                "operations": {kind: dict(counts) for kind, counts in self._operations.items()},
                "poison_requests": self._poison.json(),
                "missing_replicas": self._missing.json(),
                "hedges": dict(self._hedges),
                "consistency_downgraded": self._downgraded.json(),
            }

    def cache(self) -> dict[str, Any]:
        with self._counted():
            lookups = self._cache_hits + self._cache_misses
            return {
                "hits": self._cache_hits,
                "misses": self._cache_misses,
                "hit_ratio": round(self._cache_hits / lookups, 4) if lookups else None,
            }


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return round(ordered[index] * 1000, 3)
