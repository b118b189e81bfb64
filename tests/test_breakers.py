"""RegionBreaker: pybreaker's states, our admission, a fake clock."""

from __future__ import annotations

import pytest

from regionproxy.breakers import CLOSED, EVACUATED, HALF_OPEN, NORMAL, OPEN, TRIAL, RegionBreaker
from regionproxy.config import BreakerPolicy
from regionproxy.events import BreakerChanged, Hooks


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def events():
    return []


@pytest.fixture
def breaker(clock, events):
    return RegionBreaker("eu-west-3", BreakerPolicy(fail_max=3, reset_timeout=10.0), Hooks([events.append]), clock=clock)


def _fail(breaker, times):
    for _ in range(times):
        breaker.failed(breaker.admit())


def test_closed_breaker_admits_normal_calls(breaker):
    assert breaker.admit() == NORMAL
    assert breaker.state == CLOSED


def test_breaker_opens_after_fail_max_consecutive_faults(breaker):
    _fail(breaker, 2)
    assert breaker.state == CLOSED
    _fail(breaker, 1)
    assert breaker.state == OPEN
    assert breaker.admit() is None


def test_success_resets_the_failure_count(breaker):
    _fail(breaker, 2)
    breaker.succeeded(breaker.admit())
    _fail(breaker, 2)
    assert breaker.state == CLOSED


def test_open_breaker_admits_one_trial_after_reset_timeout(breaker, clock):
    _fail(breaker, 3)
    clock.now += 9.9
    assert breaker.admit() is None
    clock.now += 0.2
    assert breaker.admit() == TRIAL
    assert breaker.state == HALF_OPEN
    assert breaker.admit() is None, "a second caller must not get a trial while one is out"


def test_successful_trial_closes_the_breaker(breaker, clock):
    _fail(breaker, 3)
    clock.now += 10
    breaker.succeeded(breaker.admit())
    assert breaker.state == CLOSED
    assert breaker.admit() == NORMAL


def test_failed_trial_reopens_for_another_reset_timeout(breaker, clock):
    _fail(breaker, 3)
    clock.now += 10
    breaker.failed(breaker.admit())
    assert breaker.state == OPEN
    clock.now += 5
    assert breaker.admit() is None
    clock.now += 5
    assert breaker.admit() == TRIAL


def test_success_threshold_needs_that_many_trials(clock):
    breaker = RegionBreaker("r", BreakerPolicy(fail_max=1, reset_timeout=1, success_threshold=2), Hooks(), clock=clock)
    _fail(breaker, 1)
    clock.now += 1
    breaker.succeeded(breaker.admit())
    assert breaker.state == HALF_OPEN
    breaker.succeeded(breaker.admit())
    assert breaker.state == CLOSED


def test_released_trial_lets_the_next_caller_try(breaker, clock):
    _fail(breaker, 3)
    clock.now += 10
    breaker.released(breaker.admit())
    assert breaker.admit() == TRIAL


def test_state_changes_are_events(breaker, clock, events):
    _fail(breaker, 3)
    clock.now += 10
    breaker.succeeded(breaker.admit())
    assert [(e.old, e.new) for e in events if isinstance(e, BreakerChanged)] == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]
    assert {e.region for e in events} == {"eu-west-3"}


def test_evacuated_breaker_admits_nothing_until_restored(breaker, clock):
    breaker.evacuate()
    assert breaker.state == EVACUATED
    clock.now += 3600
    assert breaker.admit() is None
    breaker.restore()
    assert breaker.state == CLOSED
    assert breaker.admit() == NORMAL


def test_repr_names_region_and_state(breaker):
    assert repr(breaker) == "RegionBreaker('eu-west-3', state='closed', failures=0)"
