"""Hooks deliver events; a failing listener never fails the call."""

from __future__ import annotations

import logging

import pytest

from regionproxy._session.stats import SessionStats
from regionproxy.events import CallFinished, FailedOver, Hooks

EVENT = CallFinished("eu-west-3", "GetItem", "read", 0.004, "ok")


def test_every_listener_gets_every_event_in_order():
    seen = []
    hooks = Hooks([lambda e: seen.append(("a", e))])
    hooks.add(lambda e: seen.append(("b", e)))
    hooks.emit(EVENT)
    assert seen == [("a", EVENT), ("b", EVENT)]


def test_a_failing_listener_is_logged_and_skipped(caplog):
    seen = []

    def broken(event):
        raise RuntimeError("listener bug")

    hooks = Hooks([broken, seen.append])
    with caplog.at_level(logging.ERROR, logger="regionproxy"):
        hooks.emit(EVENT)
    assert seen == [EVENT]
    assert "listener" in caplog.text


def test_removed_listener_gets_nothing():
    seen = []
    hooks = Hooks([seen.append])
    hooks.remove(seen.append)
    hooks.emit(EVENT)
    assert seen == []


def test_events_are_frozen():
    with pytest.raises(AttributeError):
        EVENT.region = "us-east-1"  # type: ignore[misc]


def test_stats_count_calls_faults_and_percentiles():
    stats = SessionStats(("eu-west-3",))
    for ms in range(1, 101):
        stats(CallFinished("eu-west-3", "GetItem", "read", ms / 1000, "ok"))
    stats(CallFinished("eu-west-3", "GetItem", "read", 0.3, "fault", "read_timeout"))
    stats(FailedOver("GetItem", "eu-west-3", "us-east-1", "read_timeout", 0.0))
    region = stats.region("eu-west-3")
    assert (region["calls"], region["errors"], region["last_error"]) == (101, 1, "read_timeout")
    assert region["latency_ms"]["p50"] == pytest.approx(51, abs=1)
    assert region["latency_ms"]["p99"] == pytest.approx(100, abs=1)
    assert stats.failover_count == 1


def test_adding_a_listener_twice_delivers_each_event_once():
    seen = []
    hooks = Hooks()
    hooks.add(seen.append)
    hooks.add(seen.append)
    hooks.emit(EVENT)
    assert seen == [EVENT]


def test_emit_each_delivers_as_emit_would_one_event_after_the_other():
    other = FailedOver("GetItem", "eu-west-3", "us-east-1", "read_timeout", 0.0)
    seen, by_emit = [], []

    def broken(event):
        raise RuntimeError("listener bug")

    each = Hooks([lambda e: seen.append(("a", e)), broken, lambda e: seen.append(("b", e))])
    each.emit_each(EVENT, other)
    one = Hooks([lambda e: by_emit.append(("a", e)), broken, lambda e: by_emit.append(("b", e))])
    one.emit(EVENT)
    one.emit(other)
    assert seen == by_emit == [("a", EVENT), ("b", EVENT), ("a", other), ("b", other)]


def test_a_record_built_the_quick_way_is_the_record():
    built = CallFinished.build("eu-west-3", "GetItem", "read", 0.004, "ok")
    assert type(built) is CallFinished and built == EVENT and hash(built) == hash(EVENT) and repr(built) == repr(EVENT)
    with pytest.raises(AttributeError):
        built.region = "us-east-1"  # type: ignore[misc]
