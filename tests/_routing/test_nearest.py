"""Nearest healthy region (issue 20): each region's EWMA latency estimate,
remote regions tried nearest first within the latency window (configured
order breaking ties), and a demotion ended early by a probe back within it."""

from __future__ import annotations

import pytest

from regionproxy._config.policies import HedgePolicy
from regionproxy._routing.hedging import Hedger
from regionproxy._routing.nearest import LatencyEstimates, nearest_first
from regionproxy.events import FAULT, OK, PROBE, PROBE_KIND, CallFinished, Hooks
from tests.support import FakeClock

A, B, C, D = "eu-west-3", "eu-central-1", "us-east-1", "ap-south-1"
PLAN = (A, B, C)


def test_the_estimate_is_the_first_sample_then_an_ewma():
    estimates = LatencyEstimates(alpha=0.2)
    estimates.add(B, 0.100)
    assert estimates.estimate(B) == pytest.approx(0.100)
    estimates.add(B, 0.200)
    assert estimates.estimate(B) == pytest.approx(0.120)
    assert estimates.latest(B) == pytest.approx(0.200)
    assert estimates.estimate(C) is None


def test_successful_attempts_and_probes_feed_the_estimate_and_faults_do_not():
    estimates = LatencyEstimates()
    estimates(CallFinished(B, "GetItem", "read", 0.05, OK, None))
    estimates(CallFinished(C, PROBE, PROBE_KIND, 0.02, OK, None))
    estimates(CallFinished(C, "GetItem", "read", 1.0, FAULT, "read_timeout"))  # a timeout's duration is not a latency
    assert estimates.snapshot() == {B: pytest.approx(0.05), C: pytest.approx(0.02)}


@pytest.mark.parametrize(
    ("estimates", "expected"),
    [
        pytest.param({}, PLAN, id="nothing-known-configured-order"),
        pytest.param({B: 0.009, C: 0.084}, PLAN, id="the-list-matches-the-round-trips"),
        pytest.param({B: 0.300, C: 0.084}, (A, C, B), id="second-slower-than-third"),
        pytest.param({B: 0.090, C: 0.084}, PLAN, id="within-the-window-configured-order"),
        pytest.param({A: 0.500, B: 0.300, C: 0.084}, (A, C, B), id="the-first-stays-first-however-slow"),
        pytest.param({B: 0.300}, PLAN, id="an-unmeasured-region-counts-as-near"),
    ],
)
def test_remote_regions_are_tried_nearest_first_within_the_window(estimates, expected):
    assert nearest_first(PLAN, estimates, 0.015) == expected


def test_farther_regions_come_nearest_first_after_the_near_ones():
    plan = (A, B, C, D)
    assert nearest_first(plan, {B: 0.5, C: 0.3, D: 0.05}, 0.015) == (A, D, C, B)


def test_two_regions_are_never_reordered():
    assert nearest_first((A, B), {B: 9.0}, 0.015) == (A, B)


def _demoted_hedger(estimates, clock):
    hedger = Hedger(
        HedgePolicy(delay=0.01, demote_after=1, demote_for=5.0),
        Hooks(),
        longest_call=10,
        estimates=estimates,
        latency_window=0.015,
        clock=clock,
    )
    hedger._judge(A)  # one hedge won against A: demoted
    return hedger


def test_a_demotion_ends_early_once_a_probe_shows_the_region_back_within_the_window():
    clock, estimates = FakeClock(), LatencyEstimates()
    estimates.add(B, 0.095)
    estimates.add(A, 0.400)  # the brownout
    hedger = _demoted_hedger(estimates, clock)
    try:
        assert hedger.order((A, B)) == (B, A)
        clock.now += 1  # well within demote_for
        assert hedger.order((A, B)) == (B, A)  # still slow
        estimates.add(A, 0.020)  # a probe after the brownout healed
        assert hedger.order((A, B)) == (A, B)  # back first, long before demote_for ran out
    finally:
        hedger.close()


def test_without_estimates_a_demotion_lasts_demote_for():
    clock = FakeClock()
    hedger = _demoted_hedger(None, clock)
    try:
        clock.now += 1
        assert hedger.order((A, B)) == (B, A)
    finally:
        hedger.close()


def test_a_fast_answer_from_before_the_demotion_does_not_end_it():
    clock, estimates = FakeClock(), LatencyEstimates()
    estimates.add(B, 0.095)
    estimates.add(A, 0.020)  # before the brownout: the slow answers have not come in yet
    hedger = _demoted_hedger(estimates, clock)
    try:
        assert hedger.order((A, B)) == (B, A)
    finally:
        hedger.close()
