"""SessionStats: latency over a sliding window, aggregated failovers, the
app's served/failed counters, poison requests and missing replicas; all fed
events directly, with a fake clock."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regionproxy._session.stats import MAX_SAMPLES, SessionStats
from regionproxy.events import (
    CallFinished,
    FailedOver,
    OperationFinished,
    PoisonRequest,
    ReplicaMissing,
)
from tests.support import LOCAL, REGIONS, REMOTE, FakeClock


def call(duration, outcome="ok", region=LOCAL, error=None):
    return CallFinished(region, "GetItem", "read", duration, outcome, error)


def test_percentiles_forget_latency_older_than_the_window():
    clock = FakeClock(now=1000.0)
    stats = SessionStats(REGIONS, window=60, clock=clock)
    for _ in range(100):
        stats(call(0.005))  # before the outage: 5 ms
    clock.now += 61
    for _ in range(3):
        stats(call(0.3, "fault", error="read_timeout"))  # the outage: timeouts
    latency = stats.region(LOCAL)["latency_ms"]
    assert latency == {"p50": 300.0, "p99": 300.0, "samples": 3, "window_s": 60}


def test_a_region_without_recent_calls_shows_no_latency():
    clock = FakeClock(now=1000.0)
    stats = SessionStats(REGIONS, window=60, clock=clock)
    stats(call(0.005))
    clock.now += 60.5
    region = stats.region(LOCAL)
    assert region["latency_ms"]["p50"] is None and region["latency_ms"]["samples"] == 0
    assert region["calls"] == 1, "counters are for the process's lifetime, only latency is windowed"


def test_latency_samples_are_bounded_in_memory():
    stats = SessionStats(REGIONS, clock=FakeClock(now=1000.0))
    for _ in range(MAX_SAMPLES + 50):
        stats(call(0.001))
    assert stats.region(LOCAL)["latency_ms"]["samples"] == MAX_SAMPLES


@given(st.lists(st.tuples(st.floats(0, 30), st.integers(1, 500)), min_size=1, max_size=60))
def test_percentiles_are_those_of_the_calls_inside_the_window(steps):
    clock = FakeClock(now=1000.0)
    stats = SessionStats(REGIONS, window=60, clock=clock)
    seen = []
    for advance, ms in steps:
        clock.now += advance
        stats(call(ms / 1000))
        seen.append((clock.now, ms))
    inside = [ms for at, ms in seen if at >= clock.now - 60]
    latency = stats.region(LOCAL)["latency_ms"]
    p50, p99, n = latency["p50"], latency["p99"], len(inside)
    assert latency["samples"] == n
    assert p50 in inside and p99 in inside
    assert sum(ms <= p50 for ms in inside) >= n / 2 and sum(ms >= p50 for ms in inside) >= n / 2
    assert sum(ms <= p99 for ms in inside) >= 0.99 * n


def test_failovers_are_aggregated_by_route_and_reason_so_the_first_ones_stay_visible():
    stats = SessionStats(REGIONS)
    for at in (1.0, 2.0, 3.0):
        stats(FailedOver("GetItem", LOCAL, REMOTE, "read_timeout", at, "ok"))
    for at in range(4, 104):  # far more than any "recent" table shows
        stats(FailedOver("GetItem", LOCAL, REMOTE, "breaker_open", float(at), "ok"))
    stats(FailedOver("PutItem", LOCAL, REMOTE, "breaker_open", 104.0, "fault"))
    failovers = stats.summary()["failovers"]
    assert failovers["total"] == 104
    assert failovers["groups"] == [
        {"from": LOCAL, "to": REMOTE, "reason": "breaker_open", "count": 101,
         "outcomes": {"ok": 100, "caller_error": 0, "fault": 1}, "first_at": 4.0, "last_at": 104.0},
        {"from": LOCAL, "to": REMOTE, "reason": "read_timeout", "count": 3,
         "outcomes": {"ok": 3, "caller_error": 0, "fault": 0}, "first_at": 1.0, "last_at": 3.0},
    ]  # fmt: skip
    assert stats.failover_count == 104


def test_failover_groups_are_bounded_and_drop_the_least_recent():
    stats = SessionStats(REGIONS, max_groups=2)
    for at, reason in enumerate(("read_timeout", "http_503", "breaker_open")):
        stats(FailedOver("GetItem", LOCAL, REMOTE, reason, float(at)))
    failovers = stats.summary()["failovers"]
    assert [group["reason"] for group in failovers["groups"]] == ["breaker_open", "http_503"]
    assert failovers["total"] == 3


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(OperationFinished("GetItem", "read", "ok", LOCAL, 0.01, 1), {"served": 1}, id="served-locally"),
        pytest.param(
            OperationFinished("GetItem", "read", "ok", REMOTE, 0.3, 2),
            {"served": 1, "served_remote": 1},
            id="served-by-the-remote-region",
        ),
        pytest.param(
            OperationFinished("GetItem", "read", "caller_error", LOCAL, 0.01, 1), {"caller_errors": 1}, id="caller-error"
        ),
        pytest.param(OperationFinished("GetItem", "read", "failed", None, 0.6, 2), {"failed": 1}, id="no-region-served"),
    ],
)
def test_app_operations_are_counted_by_outcome(event, expected):
    stats = SessionStats(REGIONS)
    stats(event)
    zero = {"served": 0, "served_remote": 0, "caller_errors": 0, "failed": 0}
    assert stats.summary()["operations"] == {"read": {**zero, **expected}, "write": zero, "control": zero}


def test_poison_requests_are_aggregated_by_operation_and_error():
    stats = SessionStats(REGIONS)
    stats(PoisonRequest("UpdateItem", (LOCAL, REMOTE), "InternalServerError", 5.0))
    stats(PoisonRequest("UpdateItem", (LOCAL,), "InternalServerError", 9.0))
    poison = stats.summary()["poison_requests"]
    assert poison == {
        "total": 2,
        "groups": [
            {"operation": "UpdateItem", "error": "InternalServerError", "regions": [LOCAL],
             "count": 2, "first_at": 5.0, "last_at": 9.0},
        ],
    }  # fmt: skip


def test_missing_replicas_are_aggregated_by_region_and_table():
    stats = SessionStats(REGIONS)
    for at in (1.0, 2.0):
        stats(ReplicaMissing(REMOTE, "Items", at))
    stats(ReplicaMissing(REMOTE, "Users", 3.0))
    missing = stats.summary()["missing_replicas"]
    assert missing["total"] == 3
    assert [(g["region"], g["table"], g["count"], g["first_at"], g["last_at"]) for g in missing["groups"]] == [
        (REMOTE, "Users", 1, 3.0, 3.0),
        (REMOTE, "Items", 2, 1.0, 2.0),
    ]


def test_summary_is_json_ready_and_a_copy():
    stats = SessionStats(REGIONS)
    stats(FailedOver("GetItem", LOCAL, REMOTE, "read_timeout", 1.0, "fault"))
    stats(PoisonRequest("GetItem", (LOCAL,), "InternalServerError", 1.0))
    summary = stats.summary()
    json.dumps(summary)
    summary["failovers"]["groups"][0]["outcomes"]["fault"] = 99
    summary["poison_requests"]["groups"][0]["regions"].append("x")
    again = stats.summary()
    assert again["failovers"]["groups"][0]["outcomes"]["fault"] == 1
    assert again["poison_requests"]["groups"][0]["regions"] == [LOCAL]


def test_calls_in_regions_the_session_does_not_have_are_not_counted():
    stats = SessionStats(REGIONS)
    stats(call(0.01, region="ap-south-1"))
    assert stats.region(LOCAL)["calls"] == stats.region(REMOTE)["calls"] == 0
