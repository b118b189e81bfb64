"""The status page's timeline: buckets, percentiles, the window, marks."""

from __future__ import annotations

from regionproxy._web.timeline import Timeline
from regionproxy.events import BreakerChanged, CallFinished, FailedOver, ReplicationLag

A, B = "eu-west-3", "us-east-1"


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def _call(region, ms, outcome="ok", operation="GetItem"):
    return CallFinished(region, operation, "read", ms / 1000, outcome)


def test_buckets_hold_attempts_errors_and_percentiles_probes_left_out():
    clock = Clock()
    timeline = Timeline([A, B], bucket=15, window=900, clock=clock)
    for ms in range(1, 101):
        timeline(_call(A, ms))
    timeline(_call(A, 5000, "fault"))
    timeline(_call(A, 9999, operation="Probe"))
    clock.now += 15
    timeline(_call(A, 7))
    snap = timeline.snapshot()
    first, second = snap["regions"][A]
    assert (first["calls"], first["errors"], first["p50_ms"], first["p99_ms"]) == (101, 1, 51.0, 100.0)
    assert (second["calls"], second["errors"], second["p50_ms"]) == (1, 0, 7.0)
    assert second["t"] - first["t"] == 15
    assert snap["regions"][B] == []


def test_old_buckets_and_marks_leave_the_window():
    clock = Clock()
    timeline = Timeline([A, B], bucket=15, window=900, clock=clock)
    timeline(_call(A, 3))
    timeline(BreakerChanged(A, "closed", "open", clock.now))
    clock.now += 1000
    timeline(_call(A, 4))
    snap = timeline.snapshot()
    assert [p["p50_ms"] for p in snap["regions"][A]] == [4.0]
    assert snap["marks"] == []


def test_samples_are_bounded():
    timeline = Timeline([A], samples=10, clock=Clock())
    for ms in range(1000):
        timeline(_call(A, ms))
    assert len(timeline._buckets[A][next(iter(timeline._buckets[A]))].durations) == 10
    assert timeline.snapshot()["regions"][A][0]["calls"] == 1000


def test_marks_breakers_evacuations_failovers_collapsed_and_lag_warnings_once():
    clock = Clock()
    timeline = Timeline([A, B], clock=clock)
    timeline(BreakerChanged(A, "closed", "open", clock.now))
    timeline(BreakerChanged(A, "open", "evacuated", clock.now))
    timeline(BreakerChanged(A, "evacuated", "closed", clock.now))
    for _ in range(5):
        timeline(FailedOver("GetItem", A, B, "connection_refused", clock.now))
    for state in ("ok", "lagging", "lagging", "stalled", "ok", "lagging"):
        timeline(ReplicationLag(A, B, 1.0, state, clock.now))
    marks = [(m["region"], m["kind"], m["label"]) for m in timeline.snapshot()["marks"]]
    assert marks == [
        (A, "breaker", "closed -> open"),
        (A, "evacuation", "open -> evacuated"),
        (A, "restore", "evacuated -> closed"),
        (A, "failover", "5 failovers to us-east-1"),
        (B, "lag", "eu-west-3 -> us-east-1 lagging"),
        (B, "lag", "eu-west-3 -> us-east-1 stalled"),
        (B, "lag", "eu-west-3 -> us-east-1 lagging"),
    ]
