"""Scenario ``tail``: a local region with latency spikes, with and without hedging.

The local region answers in its profile round trip, except 5% of requests
which take 200 ms more (the lab's latency fault with ``spike`` and
``spike_rate``). Sessions run side by side at the same constant rate: one
plain, and hedged ones (``hedge=rp.HedgePolicy(...)``: ask the nearest
remote region too when the local one has not answered within the hedge
delay) that differ only in the delay:

- ``hedging, default delay``: ``HedgePolicy()`` as it comes, what a user
  who turns hedging on gets. The targets are judged on this one.
- ``hedging, tuned delay``: 40 ms, a delay tuned to this scenario (four
  times the local median); shown beside, not judged.
- ``hedging, p95 delay``: ``delay="p95"``, the failover drill's setting;
  shown beside, not judged (left out when it is the default).

Reported: p50/p99/p99.9 of each, and the extra requests hedging sent
(hedges / reads). While the session refuses ``HedgePolicy`` (hedged reads
not yet available), the hedged variants are reported as not available and
only the plain one runs.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from regionproxy.bench.lab import TABLE, WIRE_KEY, RegionOfCall, apply_profile, bench_lab
from regionproxy.bench.load import Sample, run_constant_rate, settle, summarize, workers_for
from regionproxy.bench.targets import target

SPIKE = 0.2
SPIKE_RATE = 0.05
# The tuned delay: 40 ms, four times the local median (a spike is 200 ms).
# A hedged spike costs the delay plus the nearest remote round trip, and
# that is where p99 lands, so the delay sets the gain: 50 ms gave 3.0x, at
# the edge of the 3x target. Measured on a loaded 2-core machine: 28 ms
# (twice the local median) spent the whole 10% budget on ordinary requests
# and left p99 as it was; 131 ms (twice a p90) hedged too late (1.3x);
# HedgePolicy's "p95" mode lands inside the spikes when they are 5% of
# requests, so it hedged 5.5% and left p99 as it was. Tuned to meet the
# target, so it is shown beside the default, never judged.
TUNED_DELAY = 0.04
DEFAULT, TUNED, P95 = "hedging, default delay", "hedging, tuned delay", "hedging, p95 delay"
CALIBRATION_CALLS = 40


def hedge_delays() -> dict[str, float | str]:
    """Each hedged variant's delay: the default first (judged), then the
    tuned one and ``"p95"``, each only when it differs from the default."""
    import regionproxy as rp

    default = rp.HedgePolicy().delay
    delays: dict[str, float | str] = {DEFAULT: default}
    for name, delay in ((TUNED, TUNED_DELAY), (P95, "p95")):
        if delay != default:
            delays[name] = delay
    return delays


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
        results["calibrated_local_p50_ms"] = _calibrate(variants["no hedging"][0])
        apply_profile(lab, profile, spike=SPIKE, spike_rate=SPIKE_RATE)
        delays = hedge_delays()
        for name, delay in delays.items():
            listener = RegionOfCall(time.perf_counter)
            try:
                session = lab.session(timeouts=timeouts, listeners=[listener], hedge=rp.HedgePolicy(delay=delay))
            except ConfigError as error:
                results["variants"][name] = {"available": False, "hedge_delay": delay, "reason": str(error)}
                progress(f"tail: {name} not run: {error}")
                continue
            variants[name] = (session.client, listener)
        for name, (client, _) in variants.items():
            # Connections; and for "p95", the 20 latencies it needs before
            # it has a p95 of its own (until then it waits its ceiling).
            for _ in range(25 if delays.get(name) == "p95" else 5):
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

        # What the warm-up counted is not the run's.
        before = {name: listener.counts() for name, (_, listener) in variants.items()}
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
            results["variants"][name] = _variant(gathered.get(name, []), listener, before[name], delays.get(name))
        results["latencies"] = {name: [round(s.latency, 5) for s in samples if s.ok] for name, samples in gathered.items()}
    results["targets"] = targets(results)
    return results


def _variant(samples: list[Sample], listener: RegionOfCall, before: dict[str, Any], delay: float | str | None) -> dict[str, Any]:
    """One variant's figures from its samples and what its listener counted
    since ``before``."""
    served = [s for s in samples if s.ok]
    now = listener.counts()
    operations = now["operations"] - before["operations"]
    hedges = {outcome: count - before["hedges"].get(outcome, 0) for outcome, count in now["hedges"].items()}
    hedges = {outcome: count for outcome, count in hedges.items() if count}
    data: dict[str, Any] = {
        "available": True,
        "hedge_delay": delay,
        "latency": summarize(s.latency for s in served),
        "failed": len(samples) - len(served),
        "served_by": {region: sum(1 for s in served if s.region == region) for region in {s.region for s in served}},
        "attempts": now["attempts"] - before["attempts"],
        "operations": operations,
        "hedges": hedges,
    }
    waited = [delay_s * 1000 for _, delay_s in listener.hedge_delays[before["hedge_delays"] :]]
    if waited:
        data["hedge_delay_waited_ms"] = round(statistics.median(waited), 1)
    # Extra requests: hedges sent per read (Hedged events), or when none
    # are reported, attempts beyond one per operation.
    extra = sum(count for outcome, count in hedges.items() if outcome != "refused") if hedges else max(data["attempts"] - operations, 0)
    data["extra_requests_pct"] = round(100 * extra / operations, 2) if operations else None
    return data


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


def _gain(data: dict[str, Any], p99_plain: float | None) -> tuple[str | None, float | None]:
    """A hedged variant's p99 against the plain one's, as shown, and the
    gain (None when either p99 is missing)."""
    if not data.get("available"):
        return None, None
    p99 = data["latency"].get("p99_ms")
    ratio = p99_plain / p99 if p99_plain and p99 else None
    return f"{p99_plain} / {p99} ms = " + (f"{ratio:.1f}x" if ratio else "n/a"), ratio


def _extra(data: dict[str, Any]) -> str | None:
    extra = data.get("extra_requests_pct") if data.get("available") else None
    return f"{extra}%" if extra is not None else None


def _delay_text(data: dict[str, Any]) -> str:
    delay = data.get("hedge_delay")
    if isinstance(delay, int | float):
        return f"{delay * 1000:g} ms"
    waited = data.get("hedge_delay_waited_ms")
    return f'"{delay}"' + (f" (waited {waited:g} ms)" if waited is not None else "")


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The tail targets, judged on ``HedgePolicy()``'s own delay; the
    tuned and ``"p95"`` variants are shown beside (see
    :mod:`regionproxy.bench.targets`)."""
    variants = result["variants"]
    p99_plain = (variants.get("no hedging", {}).get("latency") or {}).get("p99_ms")
    judged = variants.get(DEFAULT, {})
    judged_on = f"{DEFAULT}: HedgePolicy() as it comes" + (f", delay {_delay_text(judged)}" if judged else "")
    others = {name: variants[name] for name in (TUNED, P95) if name in variants}

    def beside(figure: Any) -> list[tuple[str, str]]:
        shown = [(f"{name}, {_delay_text(data)}", figure(data) or f"not run: {data.get('reason')}") for name, data in others.items()]
        if not judged.get("available"):
            shown.insert(0, (DEFAULT, "not measured: " + (judged.get("reason") or "this run had no default-delay variant")))
        return shown

    gain, ratio = _gain(judged, p99_plain)
    extra = judged.get("extra_requests_pct") if judged.get("available") else None
    return [
        target(
            "p99 under spikes, without / with hedging",
            ">= 3x lower with hedging",
            judged_on,
            gain,
            ratio is not None and ratio >= 3,
            beside(lambda data: _gain(data, p99_plain)[0]),
        ),
        target("extra requests hedging sent", "<= 10%", judged_on, _extra(judged), extra is not None and extra <= 10, beside(_extra)),
    ]
