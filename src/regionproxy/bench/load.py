"""Constant-rate load without coordinated omission, and latency summaries.

A closed loop (send, wait, send again) stops sending while the system under
test stalls, so a one-second stall shows up as one slow request instead of
the hundreds that would have queued behind it: coordinated omission. Here a
scheduler fixes each request's *intended* send time in advance
(``start + i / rate``) and a pool of threads picks them up; latency is
counted from the intended time, so a stall charges every request that
should have been sent during it.

Summaries use HdrHistogram (``hdrhistogram`` package): microsecond values
from 1 us to 120 s, three significant digits.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
_HIGHEST_US = 120_000_000


@dataclass(frozen=True, slots=True)
class Sample:
    """One request of a constant-rate run.

    ``intended``: seconds from the run's start to when it should have been
    sent; ``latency``: seconds from then to its answer (or error);
    ``region``: which region served it, when known; ``error``: the error's
    class name, or None; ``attempts``: how many attempts it took, when known.
    """

    intended: float
    latency: float
    region: str | None = None
    error: str | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def summarize(latencies: Iterable[float]) -> dict[str, float | int]:
    """Count, mean, p50/p90/p99/p99.9 and max of ``latencies`` (seconds),
    in milliseconds, through an HdrHistogram."""
    from hdrh.histogram import HdrHistogram

    histogram = HdrHistogram(1, _HIGHEST_US, 3)
    count = 0
    for seconds in latencies:
        histogram.record_value(min(max(int(seconds * 1e6), 1), _HIGHEST_US))
        count += 1
    if not count:
        return {"count": 0}
    summary: dict[str, float | int] = {"count": count, "mean_ms": round(histogram.get_mean_value() / 1000, 3)}
    for percentile in PERCENTILES:
        summary[f"p{percentile:g}_ms"] = round(histogram.get_value_at_percentile(percentile) / 1000, 3)
    summary["max_ms"] = round(histogram.get_max_value() / 1000, 3)
    return summary


def run_constant_rate(
    call: Callable[[], tuple[str | None, int]],
    *,
    rate: float,
    duration: float,
    workers: int,
    on_tick: Callable[[float], None] | None = None,
    grace: float = 10.0,
    start: float | None = None,
) -> list[Sample]:
    """Call ``call`` ``rate`` times a second for ``duration`` seconds.

    ``call`` returns the region that served it (or None) and the attempts
    it took (0: unknown), and raises on failure. ``workers`` threads send; size it to ``rate`` times the longest
    call, or requests queue (still counted from their intended time).
    ``on_tick(elapsed)`` runs in the scheduler thread between sends (to
    inject faults on a timeline). After the last send, stragglers get
    ``grace`` seconds; any still running then is left out of the samples.
    ``start``: the ``time.perf_counter()`` the schedule counts from (default
    now), so that several streams and a fault timeline share one origin.
    """
    total = max(int(rate * duration), 1)
    interval = 1.0 / rate
    tasks: queue.SimpleQueue[float | None] = queue.SimpleQueue()
    samples: list[Sample] = []
    lock = threading.Lock()
    start = time.perf_counter() if start is None else start

    def work() -> None:
        while (intended := tasks.get()) is not None:
            error = region = None
            attempts = 0
            try:
                region, attempts = call()
            except Exception as caught:  # noqa: BLE001 - every failure is a sample
                error = type(caught).__name__
            sample = Sample(intended, time.perf_counter() - start - intended, region, error, attempts)
            with lock:
                samples.append(sample)

    threads = [threading.Thread(target=work, name=f"load-{n}", daemon=True) for n in range(max(workers, 1))]
    for thread in threads:
        thread.start()
    try:
        for index in range(total):
            intended = index * interval
            while (now := time.perf_counter() - start) < intended:
                if on_tick is not None:
                    on_tick(now)
                time.sleep(min(intended - now, 0.005))
            tasks.put(intended)
        if on_tick is not None:
            on_tick(time.perf_counter() - start)
    finally:
        for _ in threads:
            tasks.put(None)
        deadline = time.monotonic() + grace
        for thread in threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0.0))
    with lock:
        return sorted(samples, key=lambda sample: sample.intended)


def settle() -> None:
    """Before a timed run: collect, then freeze what setup made (the lab,
    the sessions, boto3's models) out of the collector's sight.

    The load generator, the lab's fault proxies and the sessions under test
    share this process, so a full collection of its heap (17-59 ms measured
    in a failover drill, four times in 70 s) stalls every stream and every
    simulated network link at once, and lands in everyone's p99. Frozen,
    collections scan only what the run itself makes. A web app can do the
    same after its imports (``gc.freeze()`` before gunicorn forks workers).
    """
    import gc

    gc.collect()
    gc.freeze()


def workers_for(rate: float, longest_call: float) -> int:
    """Threads enough that ``rate`` calls a second of ``longest_call`` each
    never wait for a free thread (plus headroom), capped at 256."""
    return min(max(math.ceil(rate * longest_call * 1.5) + 4, 8), 256)
