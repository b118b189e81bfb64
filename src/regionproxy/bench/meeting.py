"""What one request pays for meeting a dead local region, measured apart
from the failover drill.

In the drill only the few requests before the breaker opens meet an
outage, and they share the machine with three streams and the fault being
applied. Here, requests that meet it (a breaker that never opens)
alternate with requests served by the remote region directly (the local
one evacuated), one at a time, each region's round trip held steady; the
difference of the medians is the cost of meeting it. These figures are
steadier than the drill's but friendlier than what a user meets: they are
shown beside the drill's in the targets table, and the targets are judged
on the drill's (:mod:`regionproxy.bench.targets`).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from regionproxy.bench.lab import TABLE, WIRE_KEY, apply_profile
from regionproxy.bench.load import settle


def meeting_cost(
    lab: Any, profile: Any, timeouts: Any, samples: tuple[int, int, int], progress: Any, *, hedge_delay: float | str
) -> list[dict[str, Any]]:
    """What one request pays for meeting a dead local region: for ``refuse``
    and ``blackhole`` (without and with hedging), requests that meet it (the
    breaker never opens) alternate with requests served by the remote region
    directly (the local one evacuated). Latencies in ms."""
    import regionproxy as rp

    local = profile.local
    never_open = rp.BreakerPolicy(fail_max=1000, reset_timeout=3600)
    plain = lab.session(breaker=never_open, timeouts=timeouts)
    # Hedged: every request that meets the outage may hedge (budget 1.0) and
    # the region is never demoted, so each one meets it afresh.
    hedged = lab.session(breaker=never_open, timeouts=timeouts, hedge=rp.HedgePolicy(delay=hedge_delay, budget=1.0, demote_after=0))
    # Each region's round trip held steady (no jitter): the remote round
    # trip is in both the met and the direct requests, and its jitter over
    # a few samples would swamp the few milliseconds measured here.
    steady = {region: latency.delay for region, latency in profile.regions.items() if region in lab.regions}
    _hold(lab, steady)
    for _ in range(40):  # connections, and enough latencies for a p95 delay
        for session in (plain, hedged):
            session.client.get_item(TableName=TABLE, Key=WIRE_KEY)
    settle()
    rows = []
    for fault, session, count, label in (
        ("refuse", plain, samples[0], "no hedging"),
        ("blackhole", plain, samples[1], "no hedging"),
        ("blackhole", hedged, samples[2], "hedging"),
    ):
        progress(f"failover: meeting {fault} ({label}), {count} requests")
        delay = session.hedge_delay(local)
        lab.fault(local, fault)
        met, direct = [], []
        for _ in range(count):
            met.append(_timed(session))
            session.evacuate(local)
            direct.append(_timed(session))
            session.restore(local)
        lab.heal(local)
        _hold(lab, steady)
        direct_ms = statistics.median(direct)
        rows.append(
            {
                "fault": fault,
                "hedging": label,
                "requests": count,
                "hedge_delay_ms": round(delay * 1000, 1) if delay is not None else None,
                "met_p50_ms": round(statistics.median(met), 1),
                "met_max_ms": round(max(met), 1),
                "direct_p50_ms": round(direct_ms, 1),
                "added_p50_ms": round(statistics.median(met) - direct_ms, 1),
                "added_max_ms": round(max(met) - direct_ms, 1),
            }
        )
    apply_profile(lab, profile)
    return rows


def _hold(lab: Any, delays: dict[str, float]) -> None:
    for region, delay in delays.items():
        lab.fault(region, "latency", delay=delay, jitter=0.0)


def _timed(session: Any) -> float:
    started = time.perf_counter()
    session.client.get_item(TableName=TABLE, Key=WIRE_KEY)
    return (time.perf_counter() - started) * 1000
