"""The hedge budget: at most a fraction of the recent reads are hedged, on
top of a floor of hedges per second (or plus one without a floor); a
refunded hedge is taken back; a provisional hedge (its preferred side still
waiting) is held apart from the spent ones; reads and hedges leave the window."""

from __future__ import annotations

import pytest

import regionproxy as rp
from regionproxy._routing.hedge_budget import HedgeBudget
from tests.support import FakeClock


def test_budget_allows_the_fraction_of_recent_reads_plus_one():
    clock = FakeClock()
    budget = HedgeBudget(0.1, 10, clock=clock)
    for _ in range(20):
        budget.read()
    assert [budget.spend() for _ in range(4)] == [True, True, True, False]  # 0.1 x 20 + 1


def test_budget_forgets_reads_and_hedges_older_than_its_window():
    clock = FakeClock()
    budget = HedgeBudget(0.1, 10, clock=clock)
    for _ in range(20):
        budget.read()
    while budget.spend():
        pass
    clock.now += 11
    budget.read()
    assert budget.spend() is True  # the idle allowance is back
    assert budget.spend() is False


def test_budget_takes_back_a_refunded_hedge():
    budget = HedgeBudget(0.1, 10, clock=FakeClock())
    for _ in range(10):
        budget.read()
    receipt, other = budget.take(), budget.take()
    assert [receipt is not None, other is not None, budget.take()] == [True, True, None]  # 0.1 x 10 + 1 in flight
    budget.refund(receipt)
    budget.settle(other)
    assert budget.spend() is True
    assert budget.spend() is False  # the settled one and this one


def test_the_floor_allows_hedges_per_second_with_no_reads_counted():
    budget = HedgeBudget(0.1, 10, min_per_second=2, clock=FakeClock())
    assert [budget.spend() for _ in range(21)] == [True] * 20 + [False]  # 2/s x 10 s, and no "plus one"


def test_the_fraction_comes_on_top_of_the_floor():
    budget = HedgeBudget(0.1, 10, min_per_second=1, clock=FakeClock())
    for _ in range(50):
        budget.read()
    assert sum(budget.spend() for _ in range(40)) == 15  # 1/s x 10 s + 0.1 x 50


def test_provisional_hedges_refunded_spend_nothing():
    # A blackhole: every hedge's preferred side times out, every hedge is
    # given back; while they wait they do not spend the budget.
    clock = FakeClock()
    budget = HedgeBudget(0.1, 10, min_per_second=1, clock=clock)
    receipts = [budget.take() for _ in range(10)]
    assert all(receipt is not None for receipt in receipts)
    for receipt in receipts:
        budget.refund(receipt)
    assert [budget.spend() for _ in range(11)] == [True] * 10 + [False]


def test_provisional_hedges_in_flight_are_bounded_by_the_allowance():
    budget = HedgeBudget(0.1, 10, min_per_second=1, clock=FakeClock())
    receipts = [budget.take() for _ in range(11)]
    assert [receipt is not None for receipt in receipts] == [True] * 10 + [False]


def test_a_settled_hedge_is_spent_and_a_late_refund_does_not_give_it_back():
    budget = HedgeBudget(0.1, 10, min_per_second=0.1, clock=FakeClock())  # one hedge over the window
    receipt = budget.take()
    budget.settle(receipt)  # its preferred side answered: an extra request
    budget.refund(receipt)
    assert budget.take() is None


def test_a_provisional_hedge_nobody_settles_counts_as_spent_after_hold():
    clock = FakeClock()
    budget = HedgeBudget(0.1, 10, min_per_second=0.1, hold=3, clock=clock)
    receipt = budget.take()
    assert receipt is not None and budget.take() is None  # one in flight: the whole allowance
    clock.now += 4
    assert budget.take() is None  # now spent, within the window
    budget.refund(receipt)  # too late: it stays spent
    assert budget.take() is None
    clock.now += 10
    assert budget.take() is not None  # the spent one has left the window


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(-1, id="negative"),
        pytest.param(float("nan"), id="nan"),
        pytest.param("3", id="text"),
        pytest.param(True, id="bool"),
        pytest.param(1001, id="too-many"),
    ],
)
def test_a_bad_min_per_second_is_a_config_error(value):
    with pytest.raises(rp.ConfigError) as caught:
        rp.HedgePolicy(min_per_second=value)
    assert caught.value.setting == "min_per_second"
