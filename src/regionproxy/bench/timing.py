"""Per-call times of fast calls (a cache hit: a few microseconds), for the
benchmark scripts (``benchmarks/bench_cache.py``, ``benchmarks/bench_fleet.py``).

A clock read costs a good part of such a call, so calls are timed in
batches of ``BATCH`` and each batch's time divided among its calls; the
figure is the median over batches. Each batch is timed twice: wall time
(``perf_counter_ns``: what a caller waits) and this thread's CPU time
(``thread_time_ns``: the call's own work, steadier on a shared machine,
where another process may take the core mid-batch; the lab's proxy
threads and servers are not counted).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BATCH", "PerCall", "median_us", "per_call"]

BATCH = 50  # calls per timed batch: the clock's own cost is spread over them
WARM_UP = 200  # calls before timing (at most ``count``)


@dataclass(frozen=True, slots=True)
class PerCall:
    """Median microseconds per call: wall and this thread's CPU."""

    wall_us: float
    cpu_us: float


def per_call(call: Callable[[], object], count: int, batch: int = BATCH) -> PerCall:
    """Time ``count`` calls of ``call`` (at least 5 batches), after a warm-up."""
    for _ in range(min(count, WARM_UP)):
        call()
    wall, cpu = [], []
    for _ in range(max(count // batch, 5)):
        started, cpu_started = time.perf_counter_ns(), time.thread_time_ns()
        for _ in range(batch):
            call()
        cpu_ended, ended = time.thread_time_ns(), time.perf_counter_ns()
        wall.append((ended - started) / batch / 1000)
        cpu.append((cpu_ended - cpu_started) / batch / 1000)
    return PerCall(statistics.median(wall), statistics.median(cpu))


def median_us(call: Callable[[], object], count: int, batch: int = BATCH) -> float:
    """Median wall microseconds per call (see :func:`per_call`)."""
    return per_call(call, count, batch).wall_us
