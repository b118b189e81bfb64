"""Scenario ``tail``: a local region with latency spikes, with and without hedging.

The local region answers in its profile round trip, except 5% of requests
which take 200 ms more (the lab's latency fault with ``spike`` and
``spike_rate``). Two sessions run side by side at the same constant rate:
one plain, one with ``hedge=rp.HedgePolicy(delay=...)``, which asks the
nearest remote region too when the local one has not answered within the
hedge delay. Reported: p50/p99/p99.9 of each, and the extra requests
hedging sent (hedges / reads). While the session refuses ``HedgePolicy``
(hedged reads not yet available), the hedged variant is reported as not
available and only the plain one runs.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from regionproxy.bench.lab import TABLE, WIRE_KEY, RegionOfCall, apply_profile, bench_lab
from regionproxy.bench.load import Sample, run_constant_rate, settle, summarize, workers_for

SPIKE = 0.2
SPIKE_RATE = 0.05
# The hedge delay: 40 ms, four times the local median (a spike is 200 ms).
# A hedged spike costs the delay plus the nearest remote round trip, and
# that is where p99 lands, so the delay sets the gain: 50 ms gave 3.0x, at
# the edge of the 3x target. Measured on a loaded 2-core machine: 28 ms
# (twice the local median) spent the whole 10% budget on ordinary requests
# and left p99 as it was; 131 ms (twice a p90) hedged too late (1.3x);
# HedgePolicy's "p95" mode lands inside the spikes when they are 5% of
# requests, so it hedged 5.5% and left p99 as it was.
HEDGE_DELAY = 0.04
CALIBRATION_CALLS = 40


def run(size: Any, profile: Any, out: Any, progress: Any) -> dict[str, Any]:
    import regionproxy as rp
    from regionproxy.errors import ConfigError

    local, remote = profile.local, profile.nearest_remote()
    rate, seconds = size.tail_rate, size.tail_seconds
    progress(f"tail: {local} (local, {SPIKE_RATE:.0%} of requests +{SPIKE * 1000:g} ms) + {remote}, {rate:g} req/s, {seconds:g} s")
    results: dict[str, Any] = {
        "scenario": "tail",
        "regions": [local, remote],
        "spike_ms": SPIKE * 1000,
        "spike_rate": SPIKE_RATE,
        "rate": rate,
        "seconds": seconds,
        "variants": {},
    }
    # Patient timeouts: a spike is slow, not dead, and must not open a breaker.
    timeouts = rp.Timeouts(connect=1.0, read=2.0)
    with bench_lab([local, remote], profile, mode=size.lab_mode) as lab:
        variants: dict[str, tuple[Any, RegionOfCall]] = {}
        plain = RegionOfCall(time.perf_counter)
        variants["no hedging"] = (lab.session(timeouts=timeouts, listeners=[plain]).client, plain)
        results["hedge_delay"] = HEDGE_DELAY
        results["calibrated_local_p50_ms"] = _calibrate(variants["no hedging"][0])
        apply_profile(lab, profile, spike=SPIKE, spike_rate=SPIKE_RATE)
        hedged = RegionOfCall(time.perf_counter)
        try:
            session = lab.session(timeouts=timeouts, listeners=[hedged], hedge=rp.HedgePolicy(delay=HEDGE_DELAY))
            variants["hedging"] = (session.client, hedged)
        except ConfigError as error:
            results["variants"]["hedging"] = {"available": False, "reason": str(error)}
            progress(f"tail: hedging not run: {error}")
        for client, _ in variants.values():
            for _ in range(5):
                client.get_item(TableName=TABLE, Key=WIRE_KEY)
        gathered: dict[str, list[Sample]] = {}
        settle()
        start = time.perf_counter() + 0.1
        workers = workers_for(rate, SPIKE + 0.5)

        def stream(name: str, client: Any, listener: RegionOfCall) -> None:
            def call() -> tuple[str | None, int]:
                listener.take()
                client.get_item(TableName=TABLE, Key=WIRE_KEY)
                return listener.take()

            gathered[name] = run_constant_rate(call, rate=rate, duration=seconds, workers=workers, start=start)

        before = {name: (listener.operations, listener.attempts) for name, (_, listener) in variants.items()}
        threads = [
            threading.Thread(target=stream, args=(name, client, listener), name=f"tail-{name}")
            for name, (client, listener) in variants.items()
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + seconds + 30
        while any(thread.is_alive() for thread in threads) and time.monotonic() < deadline:
            for thread in threads:
                thread.join(timeout=max(min(seconds / 4, 10.0), 0.5))
            progress(f"tail: {min(time.perf_counter() - start, seconds):.0f}/{seconds:g} s")
        for name, (_, listener) in variants.items():
            samples = gathered.get(name, [])
            served = [s for s in samples if s.ok]
            operations = listener.operations - before[name][0]
            data: dict[str, Any] = {
                "available": True,
                "latency": summarize(s.latency for s in served),
                "failed": len(samples) - len(served),
                "served_by": {region: sum(1 for s in served if s.region == region) for region in {s.region for s in served}},
                "attempts": listener.attempts - before[name][1],
                "operations": operations,
                "hedges": dict(listener.hedges),
            }
            # Extra requests: hedges sent per read (Hedged events), or when
            # none are reported, attempts beyond one per operation.
            extra = listener.hedges_sent if listener.hedges else max(data["attempts"] - operations, 0)
            data["extra_requests_pct"] = round(100 * extra / operations, 2) if operations else None
            results["variants"][name] = data
        results["latencies"] = {name: [round(s.latency, 5) for s in samples if s.ok] for name, samples in gathered.items()}
    results["targets"] = _targets(results)
    return results


def _calibrate(client: Any) -> float:
    """The median of sequential GetItems to the local region, in ms, before
    the spikes start (a reference for the hedge delay)."""
    for _ in range(5):
        client.get_item(TableName=TABLE, Key=WIRE_KEY)
    seconds = []
    for _ in range(CALIBRATION_CALLS):
        started = time.perf_counter()
        client.get_item(TableName=TABLE, Key=WIRE_KEY)
        seconds.append(time.perf_counter() - started)
    return round(sorted(seconds)[len(seconds) // 2] * 1000, 1)


def _targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    plain = results["variants"]["no hedging"]["latency"]
    hedged = results["variants"].get("hedging", {})
    if not hedged.get("available"):
        value = f"without hedging p99 {plain.get('p99_ms')} ms; with: not measured: {hedged.get('reason')}"
        return [{"figure": "p99 under spikes, hedging vs not", "target": ">= 3x lower, <= 10% extra requests", "value": value, "met": None}]
    p99_plain, p99_hedged = plain.get("p99_ms"), hedged["latency"].get("p99_ms")
    ratio = p99_plain / p99_hedged if p99_plain and p99_hedged else None
    extra = hedged.get("extra_requests_pct")
    return [
        {
            "figure": "p99 under spikes, without / with hedging",
            "target": ">= 3x lower with hedging",
            "value": f"{p99_plain} / {p99_hedged} ms = {ratio:.1f}x" if ratio else "n/a",
            "met": ratio is not None and ratio >= 3,
        },
        {
            "figure": "extra requests hedging sent",
            "target": "<= 10%",
            "value": f"{extra}%",
            "met": extra is not None and extra <= 10,
        },
    ]
