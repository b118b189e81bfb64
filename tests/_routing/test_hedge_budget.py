"""The hedge budget: at most a fraction of the recent reads are hedged, plus
one; a refunded hedge is taken back; reads and hedges leave the window."""

from __future__ import annotations

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
    receipt = budget.take()
    assert [receipt is not None, budget.spend(), budget.spend()] == [True, True, False]  # 0.1 x 10 + 1
    budget.refund(receipt)
    assert budget.spend() is True
    assert budget.spend() is False
