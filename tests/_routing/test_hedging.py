"""Hedged reads: the delay, the first success winning, the budget as the
hedger spends and refunds it, and demotion of a region that keeps losing
(the budget's own counting is in ``test_hedge_budget.py``).

The two sides are plain functions that block on events, so the tests decide
which side answers first; no sockets, no sleeps on the timed path.
"""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError

from regionproxy._config.policies import HedgePolicy
from regionproxy._dynamodb.calls import Call
from regionproxy._routing.hedging import Hedger
from regionproxy.errors import AllRegionsFailed
from regionproxy.events import CallFinished, Hedged, Hooks
from tests.support import FakeClock

PLAN = ("eu-west-3", "us-east-1")
GET = Call("GetItem", {"TableName": "t", "Key": {"pk": {"S": "a"}}})
PUT = Call("PutItem", {"TableName": "t", "Item": {"pk": {"S": "a"}}})


def test_p95_delay_follows_observed_latency_within_floor_and_ceiling():
    hooks = Hooks()
    hedger = Hedger(HedgePolicy(delay="p95", floor=0.01, ceiling=0.5), hooks, longest_call=5)
    assert hedger.delay("eu-west-3") == 0.5  # nothing observed yet: the ceiling
    for n in range(100):
        hooks.emit(CallFinished("eu-west-3", "GetItem", "read", 0.020 + n / 10_000, "ok"))
    assert hedger.delay("eu-west-3") == pytest.approx(0.0295, abs=0.0011)
    for _ in range(256):
        hooks.emit(CallFinished("eu-west-3", "GetItem", "read", 0.001, "ok"))
    assert hedger.delay("eu-west-3") == 0.01  # the floor
    hedger.close()


class Sides:
    """The preferred side blocks until released; the hedge answers at once."""

    def __init__(self, primary_result=None, hedge_result=None, release_on_hedge=False, hedge_blocks=False):
        self.release = threading.Event()
        self.release_on_hedge = release_on_hedge
        self.hedge_blocks = hedge_blocks
        self.hedge_release = threading.Event()
        self.primary_result = primary_result or ({"from": "primary"}, PLAN[0])
        self.hedge_result = hedge_result or ({"from": "hedge"}, PLAN[1])
        self.plans = []

    def __call__(self, call, plan, side=None):
        self.plans.append(plan)
        if side is not None:
            side.region = plan[0]
        if plan == PLAN:
            assert self.release.wait(10)
            return _result(self.primary_result)
        if self.release_on_hedge:
            self.release.set()  # the preferred side answers only once the hedge is out
        if self.hedge_blocks:
            assert self.hedge_release.wait(10)  # ...and before the hedge does
        return _result(self.hedge_result)


def _result(value):
    if isinstance(value, BaseException):
        raise value
    return value


def _hedger(events, **policy):
    return Hedger(HedgePolicy(**{"delay": 0.01, "budget": 1.0, **policy}), Hooks([events.append]), longest_call=10)


def test_slow_preferred_region_loses_to_the_hedge():
    events = []
    hedger, sides = _hedger(events), Sides()
    try:
        assert hedger.run(GET, PLAN, sides) == ({"from": "hedge"}, PLAN[1])
        assert sides.plans == [PLAN, PLAN[1:]]
        assert [e.outcome for e in events if isinstance(e, Hedged)] == ["won"]
    finally:
        sides.release.set()
        hedger.close()


def test_fast_preferred_region_sends_no_hedge():
    events = []
    hedger, sides = _hedger(events, delay=5.0), Sides()
    sides.release.set()
    assert hedger.run(GET, PLAN, sides) == ({"from": "primary"}, PLAN[0])
    assert sides.plans == [PLAN]
    assert [e for e in events if isinstance(e, Hedged)] == []
    hedger.close()


def test_failed_hedge_waits_for_the_preferred_region():
    events = []
    failure = AllRegionsFailed("GetItem", {PLAN[1]: RuntimeError("down")})
    sides = Sides(hedge_result=failure, release_on_hedge=True)
    hedger = _hedger(events)
    assert hedger.run(GET, PLAN, sides) == ({"from": "primary"}, PLAN[0])
    assert [e.outcome for e in events if isinstance(e, Hedged)] == ["lost"]
    hedger.close()


def _caller_error(code="AccessDeniedException"):
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "GetItem")


def _after_the_hedge(hedger, answer):
    """A preferred side that gives ``answer`` (a result, or an error to
    raise) only once the hedge side has ended: the hedge's outcome is in
    before it, every time."""
    from regionproxy.testing.lab import wait_for

    futures = _recording_pool(hedger)

    def attempt(call, plan, side):
        side.region = plan[0]
        if plan != PLAN:
            return _result(answer[1])
        assert wait_for(lambda: len(futures) == 2 and futures[1].done(), timeout=10)
        return _result(answer[0])

    return attempt


@pytest.mark.parametrize("code", ["AccessDeniedException", "ValidationException", "ResourceNotFoundException"])
def test_a_caller_error_from_the_hedge_waits_for_the_preferred_side(code):
    # An IAM policy scoped to the local table, an index the replica lacks:
    # the hedge region's answer, not the read's, while the local one works.
    events = []
    hedger = _hedger(events)
    try:
        attempt = _after_the_hedge(hedger, (({"from": "primary"}, PLAN[0]), _caller_error(code)))
        assert hedger.run(GET, PLAN, attempt) == ({"from": "primary"}, PLAN[0])
        assert [e.outcome for e in events if isinstance(e, Hedged)] == ["lost"]
    finally:
        hedger.close()


def test_a_caller_error_from_the_hedge_is_the_answer_once_the_preferred_side_fails():
    events = []
    hedger = _hedger(events)
    denied = _caller_error()
    try:
        attempt = _after_the_hedge(hedger, (AllRegionsFailed("GetItem", {PLAN[0]: TimeoutError("read timeout")}), denied))
        with pytest.raises(ClientError) as caught:
            hedger.run(GET, PLAN, attempt)
        assert caught.value is denied
        assert [e.outcome for e in events if isinstance(e, Hedged)] == ["won"]
        assert "hedges=0, provisional=0" in repr(hedger.budget)  # the read's only answer: given back
    finally:
        hedger.close()


def test_a_caller_error_from_the_preferred_side_is_the_answer():
    events = []
    error = _caller_error("ValidationException")
    sides = Sides(primary_result=error, hedge_blocks=True)
    sides.release.set()
    hedger = _hedger(events, delay=5.0)
    try:
        with pytest.raises(ClientError) as caught:
            hedger.run(GET, PLAN, sides)
        assert caught.value is error
    finally:
        sides.hedge_release.set()
        hedger.close()


def _loop_with(preferred, hedge_region, attempts=2):
    from regionproxy._routing.attempts import AttemptLoop

    replicas = {PLAN[0]: _Replica(PLAN[0], preferred), PLAN[1]: _Replica(PLAN[1], hedge_region)}
    loop = AttemptLoop(replicas, Hooks(), attempts=attempts, sleep=lambda seconds: None)
    loop.hedger = _hedger([])
    return loop, replicas


def test_after_the_hedges_caller_error_the_preferred_side_retries_its_region_and_answers():
    from regionproxy.testing.lab import wait_for

    denied = _caller_error()
    answers = iter([_server_error(), {"Item": {"from": {"S": PLAN[0]}}}])

    def preferred():
        assert wait_for(lambda: loop.replicas[PLAN[1]].calls == 1 and len(futures) == 2 and futures[1].done(), timeout=10)
        return _result(next(answers))

    def hedge_region():
        raise denied

    loop, replicas = _loop_with(preferred, hedge_region)
    futures = _recording_pool(loop.hedger)
    try:
        assert loop.run(GET, PLAN) == ({"Item": {"from": {"S": PLAN[0]}}}, PLAN[0])
        assert (replicas[PLAN[0]].calls, replicas[PLAN[1]].calls) == (2, 1)
    finally:
        loop.hedger.close()


def test_after_the_hedges_caller_error_a_failing_preferred_side_does_not_ask_the_hedge_region_again():
    # The hedge region has answered this read: asking it again from the
    # preferred side would only send the read twice. Its 5xx was the
    # preferred region's (another region answered), not a poison request.
    from regionproxy.testing.lab import wait_for

    denied = _caller_error()

    def preferred():
        assert wait_for(lambda: len(futures) == 2 and futures[1].done(), timeout=10)
        raise _server_error()

    def hedge_region():
        raise denied

    loop, replicas = _loop_with(preferred, hedge_region)
    futures = _recording_pool(loop.hedger)
    try:
        with pytest.raises(ClientError) as caught:
            loop.run(GET, PLAN)
        assert caught.value is denied
        assert (replicas[PLAN[0]].calls, replicas[PLAN[1]].calls) == (2, 1)
        assert replicas[PLAN[0]].breaker.failures == 2  # both its 5xx attempts: charged, not a poison request
    finally:
        loop.hedger.close()


def test_both_sides_failing_raises_the_preferred_sides_error():
    events = []
    primary_failure = AllRegionsFailed("GetItem", {PLAN[0]: RuntimeError("a"), PLAN[1]: RuntimeError("b")})
    sides = Sides(
        primary_result=primary_failure,
        hedge_result=AllRegionsFailed("GetItem", {PLAN[1]: RuntimeError("b")}),
        release_on_hedge=True,
    )
    hedger = _hedger(events)
    with pytest.raises(AllRegionsFailed) as caught:
        hedger.run(GET, PLAN, sides)
    assert caught.value is primary_failure
    assert [e.outcome for e in events if isinstance(e, Hedged)] == ["failed"]
    hedger.close()


def test_spent_budget_sends_no_hedge_and_says_so():
    sides = Sides()
    events = []

    def listener(event):  # the preferred side answers only once the hedge was refused
        events.append(event)
        if isinstance(event, Hedged):
            sides.release.set()

    hedger = Hedger(HedgePolicy(delay=0.01, budget=0.01, min_per_second=0), Hooks([listener]), longest_call=10)
    hedger.budget.spend()  # the idle allowance, taken
    assert hedger.run(GET, PLAN, sides) == ({"from": "primary"}, PLAN[0])
    assert sides.plans == [PLAN]
    assert [e.outcome for e in events if isinstance(e, Hedged)] == ["refused"]
    hedger.close()


def test_writes_are_never_hedged_by_the_attempt_loop():
    from regionproxy._routing.attempts import AttemptLoop

    class Slow:
        def __init__(self, region):
            from regionproxy._config.policies import BreakerPolicy
            from regionproxy._regions.breaker import RegionBreaker

            self.region = region
            self.breaker = RegionBreaker(region, BreakerPolicy(), Hooks())
            self.calls = 0

        def call(self, operation, params):
            self.calls += 1
            return {}

    replicas = {region: Slow(region) for region in PLAN}
    events = []
    loop = AttemptLoop(replicas, Hooks([events.append]), attempts=1)
    loop.hedger = _hedger(events, delay=0.001)
    loop.hedger.run = lambda *args: pytest.fail("a write reached the hedger")  # noqa: ARG005
    assert loop.run(PUT, PLAN) == ({}, PLAN[0])
    assert (replicas[PLAN[0]].calls, replicas[PLAN[1]].calls) == (1, 0)


def test_a_region_that_keeps_losing_to_the_hedge_is_tried_last_for_a_while():
    events, clock = [], FakeClock()
    hedger = Hedger(
        HedgePolicy(delay=0.01, budget=1.0, demote_after=2, demote_for=5.0),
        Hooks([events.append]),
        longest_call=10,
        clock=clock,
    )
    sides = Sides()
    try:
        assert hedger.order(PLAN) == PLAN
        hedger.run(GET, PLAN, sides)
        assert hedger.order(PLAN) == PLAN  # one win is not a pattern
        hedger.run(GET, PLAN, sides)
        assert hedger.order(PLAN) == (PLAN[1], PLAN[0])  # slow: tried last, still a fallback
        assert [e.region for e in events if type(e).__name__ == "RegionDemoted"] == [PLAN[0]]
        clock.now += 5.1
        assert hedger.order(PLAN) == PLAN  # and back after demote_for
    finally:
        sides.release.set()
        hedger.close()


def test_a_hedge_the_preferred_region_wins_resets_the_count():
    events = []
    hedger = _hedger(events, demote_after=2)
    slow = Sides()
    beaten = Sides(release_on_hedge=True, hedge_blocks=True)  # answers once the hedge is out, before it
    try:
        hedger.run(GET, PLAN, slow)
        assert hedger.run(GET, PLAN, beaten) == ({"from": "primary"}, PLAN[0])
        hedger.run(GET, PLAN, slow)
        assert [e.outcome for e in events if isinstance(e, Hedged)] == ["won", "lost", "won"]
        assert hedger.order(PLAN) == PLAN  # not two in a row
    finally:
        slow.release.set()
        beaten.hedge_release.set()
        hedger.close()


def test_demotion_can_be_turned_off():
    events = []
    hedger = _hedger(events, demote_after=0)
    sides = Sides()
    try:
        for _ in range(5):
            hedger.run(GET, PLAN, sides)
        assert hedger.order(PLAN) == PLAN
    finally:
        sides.release.set()
        hedger.close()


def test_both_sides_run_in_the_callers_context():
    import contextvars

    request = contextvars.ContextVar("request", default=None)
    seen = []

    class Remembering(Sides):
        def __call__(self, call, plan, side=None):
            seen.append((plan, request.get()))
            return super().__call__(call, plan, side)

    events = []
    hedger, sides = _hedger(events), Remembering()
    token = request.set("request-1")
    try:
        hedger.run(GET, PLAN, sides)
        assert sorted(seen) == sorted([(PLAN, "request-1"), (PLAN[1:], "request-1")])
    finally:
        request.reset(token)
        sides.release.set()
        hedger.close()


def test_a_call_that_never_answers_is_a_region_error_not_a_bare_timeout():
    events = []
    hedger = Hedger(HedgePolicy(delay=0.01, budget=0.01, min_per_second=0), Hooks([events.append]), longest_call=0.05)
    hedger.budget.spend()  # no hedge: only the preferred side, which never answers
    sides = Sides()
    try:
        with pytest.raises(AllRegionsFailed) as caught:
            hedger.run(GET, PLAN, sides)
        assert isinstance(caught.value.errors[PLAN[0]], TimeoutError)
    finally:
        sides.release.set()
        hedger.close()


def test_every_read_counts_toward_the_budget_even_with_one_region_to_try():
    from regionproxy._routing.attempts import AttemptLoop

    replicas = {PLAN[0]: _Replica(PLAN[0], lambda: {"Item": {}})}
    loop = AttemptLoop(replicas, Hooks(), attempts=1)
    loop.hedger = _hedger([])
    for _ in range(30):
        loop.run(GET, PLAN[:1])
    assert "reads=30" in repr(loop.hedger.budget)
    loop.hedger.close()


def test_no_hedge_while_the_preferred_side_is_already_at_the_next_region():
    # Its own region refused or has an open breaker: a hedge would send the
    # same read to the same region a second time.
    events = []
    hedger = _hedger(events)
    release = threading.Event()
    plans = []

    def attempt(call, plan, side):
        plans.append(plan)
        side.region = plan[1]  # moved on at once
        assert release.wait(10)
        return {"from": "next"}, plan[1]

    original = hedger._answer

    def answer(*args):  # the hedger decided not to hedge: let the side finish
        release.set()
        return original(*args)

    hedger._answer = answer
    try:
        assert hedger.run(GET, PLAN, attempt) == ({"from": "next"}, PLAN[1])
        assert plans == [PLAN]
        assert [e for e in events if isinstance(e, Hedged)] == []
    finally:
        release.set()
        hedger.close()


class _Blocking:
    """The side whose plan starts with ``slow`` blocks until released; the
    other answers at once."""

    def __init__(self, slow):
        self.slow = slow
        self.release = threading.Event()
        self.plans = []

    def __call__(self, call, plan, side=None):
        self.plans.append(plan)
        if plan[0] == self.slow:
            assert self.release.wait(10)
        return {"from": plan[0]}, plan[0]


def test_no_hedge_is_sent_to_a_demoted_region():
    events, clock = [], FakeClock()
    hedger = Hedger(HedgePolicy(delay=0.01, budget=1.0, demote_after=1, demote_for=5.0), Hooks([events.append]), longest_call=10, clock=clock)
    first = _Blocking(PLAN[0])
    try:
        hedger.run(GET, PLAN, first)  # one win demotes PLAN[0]
        plan = hedger.order(PLAN)
        assert plan == (PLAN[1], PLAN[0])
        # The next region is now preferred; even when it is slower than the
        # hedge delay, the demoted one is not asked: it is known to be slower.
        plans = []

        def slow_next(call, plan, side=None):
            plans.append(plan)
            if plan[0] == PLAN[1]:
                time.sleep(0.2)  # ten times the hedge delay
            return {"from": plan[0]}, plan[0]

        assert hedger.run(GET, plan, slow_next) == ({"from": PLAN[1]}, PLAN[1])
        assert plans == [plan]
        assert [e.outcome for e in events if isinstance(e, Hedged)] == ["won"]
    finally:
        first.release.set()
        hedger.close()


def test_a_region_whose_demotion_ended_is_demoted_again_by_one_win():
    events, clock = [], FakeClock()
    hedger = Hedger(HedgePolicy(delay=0.01, budget=1.0, demote_after=3, demote_for=5.0), Hooks([events.append]), longest_call=10, clock=clock)
    slow = _Blocking(PLAN[0])
    fast = _Blocking(None)

    def demotions():
        return [e.region for e in events if type(e).__name__ == "RegionDemoted"]

    try:
        for _ in range(3):
            hedger.run(GET, PLAN, slow)
        assert demotions() == [PLAN[0]]
        clock.now += 5.1
        assert hedger.order(PLAN) == PLAN  # back, on probation
        hedger.run(GET, PLAN, slow)
        assert demotions() == [PLAN[0], PLAN[0]]  # still slow: one win is enough
        clock.now += 5.1
        assert hedger.order(PLAN) == PLAN
        assert hedger.run(GET, PLAN, fast) == ({"from": PLAN[0]}, PLAN[0])  # answered in time: probation over
        hedger.run(GET, PLAN, slow)
        assert demotions() == [PLAN[0], PLAN[0]]  # one win is not a pattern again
    finally:
        slow.release.set()
        hedger.close()


class _Replica:
    def __init__(self, region, answer):
        from regionproxy._config.policies import BreakerPolicy
        from regionproxy._regions.breaker import RegionBreaker

        self.region = region
        self.breaker = RegionBreaker(region, BreakerPolicy(fail_max=100), Hooks())
        self.answer = answer
        self.calls = 0

    def call(self, operation, params):
        self.calls += 1
        return self.answer()


def test_hedge_refunded_when_the_preferred_side_fails_and_the_loser_tries_no_further_region():
    from botocore.exceptions import ReadTimeoutError

    from regionproxy._routing.attempts import AttemptLoop
    from regionproxy.testing.lab import wait_for

    release, finished = threading.Event(), threading.Event()

    def blackholed():
        assert release.wait(10)
        finished.set()
        raise ReadTimeoutError(endpoint_url="http://127.0.0.1:9")

    replicas = {PLAN[0]: _Replica(PLAN[0], blackholed), PLAN[1]: _Replica(PLAN[1], lambda: {"Item": {"v": {"S": "x"}}})}
    events = []
    loop = AttemptLoop(replicas, Hooks([events.append]), attempts=2)
    loop.hedger = _hedger(events, budget=0.01, min_per_second=0)  # the idle allowance: one hedge
    try:
        assert loop.run(GET, PLAN) == ({"Item": {"v": {"S": "x"}}}, PLAN[1])
        assert "hedges=0, provisional=1" in repr(loop.hedger.budget)  # its preferred side still waits
        release.set()  # the preferred region times out now
        assert finished.wait(10)
        assert wait_for(lambda: "hedges=0, provisional=0" in repr(loop.hedger.budget), timeout=10)  # not an extra request
        assert replicas[PLAN[1]].calls == 1  # the losing side did not fail over to it again
        assert replicas[PLAN[0]].calls == 1  # nor retry the timeout
        assert wait_for(lambda: replicas[PLAN[0]].breaker.failures == 1, timeout=10)  # still charged
    finally:
        release.set()
        loop.hedger.close()


def test_a_hedge_whose_preferred_side_answers_later_stays_spent():
    events = []
    hedger = _hedger(events, budget=0.01, min_per_second=0)
    sides = Sides()
    try:
        assert hedger.run(GET, PLAN, sides)[1] == PLAN[1]
    finally:
        sides.release.set()  # the preferred side answers after all: the read was sent twice
    hedger._executor().shutdown(wait=True)  # its answer and the callbacks on it are in
    assert "hedges=1, provisional=0" in repr(hedger.budget)
    hedger.close()


def test_a_region_found_down_not_slow_is_left_to_its_breaker_not_demoted():
    # Hedges win against a blackholed region before its timeouts come in;
    # once its side fails, it is known down, and a demotion would keep reads
    # away from it for demote_for after it heals.
    events, clock = [], FakeClock()
    hedger = Hedger(HedgePolicy(delay=0.01, budget=1.0, demote_after=1, demote_for=60.0), Hooks([events.append]), longest_call=10, clock=clock)
    release = threading.Event()

    def blackholed(call, plan, side=None):
        if plan == PLAN:
            assert release.wait(10)
            raise AllRegionsFailed("GetItem", {PLAN[0]: TimeoutError("read timeout")})
        return {"from": plan[0]}, plan[0]

    try:
        assert hedger.run(GET, PLAN, blackholed) == ({"from": PLAN[1]}, PLAN[1])
        assert hedger.order(PLAN) == (PLAN[1], PLAN[0])  # demoted while its answer is out
        release.set()
        hedger._executor().shutdown(wait=True)  # its side has failed, and said so
        assert hedger.order(PLAN) == PLAN
    finally:
        release.set()
        hedger.close()


def _recording_pool(hedger):
    """The hedger's pool, made to keep the futures it hands out (the
    preferred side's first), so that a side can wait for the other's end."""
    pool = hedger._executor()
    futures, submit = [], pool.submit

    def recording(*args, **kwargs):
        future = submit(*args, **kwargs)
        futures.append(future)
        return future

    pool.submit = recording
    return futures


def test_a_preferred_region_that_failed_before_the_hedge_answered_is_not_demoted():
    # Its side failed while the hedge was out (down, not slow), then the
    # hedge answered: with its own side already done, the refund and the
    # lifting ran first, and the win was counted after them.
    from regionproxy.events import RegionDemoted
    from regionproxy.testing.lab import wait_for

    events = []
    hedger = Hedger(HedgePolicy(delay=0.01, budget=0.01, min_per_second=0, demote_after=1, demote_for=60.0), Hooks([events.append]), longest_call=10)
    futures = _recording_pool(hedger)
    hedge_out = threading.Event()

    def attempt(call, plan, side):
        side.region = plan[0]
        if plan == PLAN:
            assert hedge_out.wait(10)
            raise AllRegionsFailed("GetItem", {PLAN[0]: TimeoutError("read timeout")})
        hedge_out.set()
        assert wait_for(lambda: futures[0].done(), timeout=10)  # the preferred side has failed
        return {"from": plan[0]}, plan[0]

    try:
        assert hedger.run(GET, PLAN, attempt) == ({"from": PLAN[1]}, PLAN[1])
        assert hedger.order(PLAN) == PLAN  # left to its breaker
        assert [e for e in events if isinstance(e, RegionDemoted)] == []
        assert "hedges=0, provisional=0" in repr(hedger.budget)  # the hedge was the read's only answer
    finally:
        hedge_out.set()
        hedger.close()


class _Number(float):
    """A clock reading that runs ``during`` the first time it is compared: a
    thread switch at exactly that point, made deterministic."""

    def __new__(cls, value, during):
        number = super().__new__(cls, value)
        number.during = during
        return number

    def __ge__(self, other):
        during, self.during = self.during, None
        if during is not None:
            during()
        return float(self) >= other


def test_another_thread_demoting_a_region_while_order_looks_does_not_break_the_read():
    clock = FakeClock()
    regions = ("eu-west-3", "us-east-1", "ap-south-1")
    hedger = Hedger(HedgePolicy(delay=0.01, budget=1.0, demote_after=1, demote_for=60.0), Hooks(), longest_call=10, clock=clock)
    hedger._judge(regions[0])  # demoted
    real = clock.now

    class Racing(FakeClock):
        def __call__(self):
            # order() reads the clock, then compares each demotion with it:
            # another read's hedge demotes a second region in between.
            return _Number(real, lambda: hedger._judge(regions[1]))

    hedger._clock = Racing()
    try:
        plan = hedger.order(regions)
    finally:
        hedger._clock = clock
    assert sorted(plan) == sorted(regions)  # every region once, whatever the interleaving
    assert plan.index(regions[0]) > plan.index(regions[2])  # the region demoted before still last of those
    hedger.close()


def test_a_hedge_still_queued_when_the_preferred_side_answers_sends_nothing(monkeypatch):
    # A saturated pool (one thread here): the hedge is queued behind other
    # work, and the preferred side answers first; when the hedge's turn comes
    # the read is answered, and sending it anywhere would only add load.
    from regionproxy._routing import hedging
    from regionproxy._routing.attempts import AttemptLoop
    from regionproxy.testing.lab import wait_for

    monkeypatch.setattr(hedging, "_POOL", 1)
    loop = AttemptLoop({}, Hooks(), attempts=1)
    loop.hedger = _hedger([])
    futures = _recording_pool(loop.hedger)  # [preferred side, other work, hedge]
    answered = threading.Event()

    def preferred():
        loop.hedger._executor().submit(answered.wait, 10)  # other work, queued before the hedge
        assert wait_for(lambda: len(futures) == 3, timeout=10)  # the hedge is queued too
        return {"Item": {}}

    loop.replicas = {PLAN[0]: _Replica(PLAN[0], preferred), PLAN[1]: _Replica(PLAN[1], lambda: {"Item": {}})}
    try:
        assert loop.run(GET, PLAN) == ({"Item": {}}, PLAN[0])
        answered.set()  # the other work ends; the hedge's turn
        assert wait_for(lambda: futures[2].done(), timeout=10)
        assert loop.replicas[PLAN[1]].calls == 0
    finally:
        answered.set()
        loop.hedger.close()


def _server_error(operation="GetItem"):
    return ClientError({"Error": {"Code": "InternalServerError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, operation)


def test_a_server_error_on_the_side_that_lost_is_charged_to_its_region():
    # The hedge answered the very request the preferred region answered with
    # a 5xx: that 5xx was the region's, as when the read fails over.
    from regionproxy._routing.attempts import AttemptLoop

    answered = threading.Event()

    def failing():
        assert answered.wait(10)
        raise _server_error()

    replicas = {PLAN[0]: _Replica(PLAN[0], failing), PLAN[1]: _Replica(PLAN[1], lambda: {"Item": {}})}
    loop = AttemptLoop(replicas, Hooks([lambda e: answered.set() if isinstance(e, Hedged) else None]), attempts=1)
    loop.hedger = _hedger([])
    try:
        assert loop.run(GET, PLAN) == ({"Item": {}}, PLAN[1])
    finally:
        answered.set()
    loop.hedger._executor().shutdown(wait=True)  # the losing side has ended
    assert replicas[PLAN[0]].breaker.failures == 1
    assert replicas[PLAN[1]].calls == 1
    loop.hedger.close()


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(_server_error(), id="server-error"),
        pytest.param(
            ClientError({"Error": {"Code": "ResourceNotFoundException"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "GetItem"),
            id="replica-missing",
        ),
    ],
)
def test_what_only_the_hedge_region_says_wrong_is_not_the_reads_answer(error):
    # The preferred region is slow, not wrong: the hedge region's 5xx (or its
    # missing replica) is that region's trouble, and the read waits for the
    # preferred side instead of failing with it.
    from regionproxy._routing.attempts import AttemptLoop
    from regionproxy.testing.lab import wait_for

    loop = AttemptLoop({}, Hooks(), attempts=1)
    loop.hedger = _hedger([])
    futures = _recording_pool(loop.hedger)

    def hedge_region():
        raise error

    def slow():
        # Answers once the hedge side has ended. Should the hedger not have
        # looked at the hedge alone by then, this test passes as if fixed:
        # the race can only make it pass, never fail.
        assert wait_for(lambda: len(futures) == 2 and futures[1].done(), timeout=10)
        return {"Item": {"from": {"S": PLAN[0]}}}

    loop.replicas = {PLAN[0]: _Replica(PLAN[0], slow), PLAN[1]: _Replica(PLAN[1], hedge_region)}
    try:
        assert loop.run(GET, PLAN) == ({"Item": {"from": {"S": PLAN[0]}}}, PLAN[0])
    finally:
        loop.hedger.close()


def _not_found():
    return ClientError({"Error": {"Code": "ResourceNotFoundException"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "GetItem")


def _hedged_loop(events, answers):
    """An attempt loop over ``answers`` (region -> answer function), hedged
    after 10 ms, its events in ``events``; and the futures of its sides."""
    from regionproxy._routing.attempts import AttemptLoop

    loop = AttemptLoop({region: _Replica(region, answer) for region, answer in answers.items()}, Hooks([events.append]), attempts=1)
    loop.hedger = _hedger([])
    return loop, _recording_pool(loop.hedger)


def _missing(events):
    from regionproxy.events import ReplicaMissing

    return [(e.region, e.table) for e in events if isinstance(e, ReplicaMissing)]


def test_a_table_missing_everywhere_reports_no_missing_replica_in_the_hedge_region():
    from regionproxy.testing.lab import wait_for

    events = []

    def preferred():
        assert wait_for(lambda: len(futures) == 2 and futures[1].done(), timeout=10)  # after the hedge's answer
        raise _not_found()

    def hedge_region():
        raise _not_found()

    loop, futures = _hedged_loop(events, {PLAN[0]: preferred, PLAN[1]: hedge_region})
    try:
        with pytest.raises(ClientError) as caught:
            loop.run(GET, PLAN)
        assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    finally:
        loop.hedger._executor().shutdown(wait=True)
    assert _missing(events) == []
    loop.hedger.close()


def test_a_hedge_regions_missing_replica_is_reported_once_the_preferred_region_answers():
    from regionproxy.testing.lab import wait_for

    events = []

    def preferred():
        assert wait_for(lambda: len(futures) == 2 and futures[1].done(), timeout=10)
        assert _missing(events) == []  # held: the table may be missing here too
        return {"Item": {}}

    def hedge_region():
        raise _not_found()

    loop, futures = _hedged_loop(events, {PLAN[0]: preferred, PLAN[1]: hedge_region})
    try:
        assert loop.run(GET, PLAN) == ({"Item": {}}, PLAN[0])
    finally:
        loop.hedger._executor().shutdown(wait=True)
    assert _missing(events) == [(PLAN[1], "t")]
    loop.hedger.close()


def test_a_hedge_regions_missing_replica_is_reported_when_the_next_hedge_region_answers():
    third = "ap-south-1"
    events, release = [], threading.Event()

    def preferred():
        assert release.wait(10)
        return {"Item": {"from": {"S": PLAN[0]}}}

    def hedge_region():
        raise _not_found()

    loop, _ = _hedged_loop(events, {PLAN[0]: preferred, PLAN[1]: hedge_region, third: lambda: {"Item": {}}})
    try:
        assert loop.run(GET, (*PLAN, third)) == ({"Item": {}}, third)
        assert _missing(events) == [(PLAN[1], "t")]
    finally:
        release.set()
        loop.hedger._executor().shutdown(wait=True)
    assert _missing(events) == [(PLAN[1], "t")]  # once, however the preferred side ends
    loop.hedger.close()


def test_a_missing_replica_the_losing_hedge_meets_after_the_answer_is_still_reported():
    events, hedge_started, answered = [], threading.Event(), threading.Event()

    def preferred():
        assert hedge_started.wait(10)
        return {"Item": {}}

    def hedge_region():
        hedge_started.set()
        assert answered.wait(10)  # its answer comes after the read's
        raise _not_found()

    loop, _ = _hedged_loop(events, {PLAN[0]: preferred, PLAN[1]: hedge_region})
    try:
        assert loop.run(GET, PLAN) == ({"Item": {}}, PLAN[0])
    finally:
        answered.set()
        loop.hedger._executor().shutdown(wait=True)
    assert _missing(events) == [(PLAN[1], "t")]
    loop.hedger.close()


def test_a_refund_after_its_hedge_left_the_window_frees_no_other_hedge():
    clock = FakeClock()
    hedger = Hedger(HedgePolicy(delay=0.01, budget=0.1, window=10, min_per_second=0), Hooks(), longest_call=100, clock=clock)
    release = threading.Event()

    def blackholed(call, plan, side):
        side.region = plan[0]
        if plan == PLAN:
            assert release.wait(10)
            raise AllRegionsFailed("GetItem", {PLAN[0]: TimeoutError("read timeout")})
        return {"from": plan[0]}, plan[0]

    try:
        assert hedger.run(GET, PLAN, blackholed)[1] == PLAN[1]  # the idle allowance, spent
        clock.now += 11  # that hedge has left the window
        for _ in range(10):
            hedger.budget.read()
        assert [hedger.budget.spend() for _ in range(3)] == [True, True, False]  # 0.1 x 10 + 1
        release.set()  # the old hedge's preferred side fails now: its refund is due
        hedger._executor().shutdown(wait=True)
        assert hedger.budget.spend() is False  # the refund did not take back a hedge of this window
    finally:
        release.set()
        hedger.close()


def test_an_answer_from_the_next_region_does_not_clear_the_preferred_regions_probation():
    # The preferred side failed over at once (its region refused) and the
    # next region answered in time: the region on probation answered nothing.
    events, clock = [], FakeClock()
    hedger = Hedger(HedgePolicy(delay=0.01, budget=1.0, demote_after=3, demote_for=5.0), Hooks([events.append]), longest_call=10, clock=clock)
    slow = _Blocking(PLAN[0])

    def refused(call, plan, side=None):
        side.region = plan[-1]
        return {"from": plan[-1]}, plan[-1]

    try:
        for _ in range(3):
            hedger.run(GET, PLAN, slow)
        clock.now += 5.1
        assert hedger.order(PLAN) == PLAN  # back, on probation
        assert hedger.run(GET, PLAN, refused) == ({"from": PLAN[1]}, PLAN[1])
        hedger.run(GET, PLAN, slow)
        assert [e.region for e in events if type(e).__name__ == "RegionDemoted"] == [PLAN[0], PLAN[0]]
    finally:
        slow.release.set()
        hedger.close()


def test_a_side_abandoned_while_it_waits_to_retry_does_not_retry():
    from regionproxy._routing.attempts import AttemptLoop
    from regionproxy.testing.lab import wait_for

    sleeping, answered = threading.Event(), threading.Event()

    def backoff(seconds):  # the preferred side waits to retry its 5xx; the hedge answers meanwhile
        sleeping.set()
        assert answered.wait(10)

    def hedge_region():
        assert sleeping.wait(10)
        return {"Item": {}}

    def failing():
        assert wait_for(lambda: len(futures) == 2, timeout=10)  # once the hedge is out
        raise _server_error()

    replicas = {PLAN[0]: _Replica(PLAN[0], failing), PLAN[1]: _Replica(PLAN[1], hedge_region)}
    hooks = Hooks([lambda e: answered.set() if isinstance(e, Hedged) else None])
    loop = AttemptLoop(replicas, hooks, attempts=2, sleep=backoff)
    loop.hedger = _hedger([])
    futures = _recording_pool(loop.hedger)
    try:
        assert loop.run(GET, PLAN) == ({"Item": {}}, PLAN[1])
    finally:
        answered.set()
    loop.hedger._executor().shutdown(wait=True)  # the preferred side has ended
    assert replicas[PLAN[0]].calls == 1
    loop.hedger.close()


def test_when_a_demotion_ends_one_read_tries_the_region_and_the_rest_keep_it_last():
    # Every read that arrives before the trial is decided would otherwise go
    # to the slow region too, and pay the hedge delay.
    events, clock = [], FakeClock()
    hedger = Hedger(HedgePolicy(delay=0.01, budget=1.0, demote_after=1, demote_for=5.0), Hooks([events.append]), longest_call=10, clock=clock)
    slow, fast = _Blocking(PLAN[0]), _Blocking(None)
    try:
        hedger.run(GET, PLAN, slow)
        clock.now += 5.1
        assert hedger.order(PLAN) == PLAN  # this read is the trial
        assert hedger.order(PLAN) == (PLAN[1], PLAN[0])  # the others wait for it
        assert hedger.order(PLAN) == (PLAN[1], PLAN[0])
        assert hedger.run(GET, PLAN, fast) == ({"from": PLAN[0]}, PLAN[0])  # the trial: answered in time
        assert hedger.order(PLAN) == PLAN  # back for everyone
        hedger.run(GET, PLAN, slow)  # slow again: demoted by one win (demote_after=1)
        clock.now += 5.1
        assert hedger.order(PLAN) == PLAN  # the trial...
        hedger.run(GET, PLAN, slow)  # ...still slow: demoted again
        assert hedger.order(PLAN) == (PLAN[1], PLAN[0])
        clock.now += 5.1
        assert hedger.order(PLAN) == PLAN  # a trial that decided nothing (never run)...
        assert hedger.order(PLAN) == (PLAN[1], PLAN[0])
        clock.now += 5.1
        assert hedger.order(PLAN) == PLAN  # ...is followed by another when the renewed time is up
    finally:
        slow.release.set()
        hedger.close()


def test_a_demoted_region_that_reads_do_not_prefer_is_hedged_to_again_when_its_time_is_up():
    # Demoted while it was preferred (the local region's breaker was open,
    # say); afterwards reads prefer another region and only hedge to it. Its
    # end of demotion cannot be tried by a read, so it must simply end.
    events, clock = [], FakeClock()
    hedger = Hedger(HedgePolicy(delay=0.01, budget=1.0, demote_after=1, demote_for=5.0), Hooks([events.append]), longest_call=10, clock=clock)
    reversed_plan = (PLAN[1], PLAN[0])
    slow_second, slow_first = _Blocking(PLAN[1]), _Blocking(PLAN[0])
    try:
        hedger.run(GET, reversed_plan, slow_second)  # a hedge won against PLAN[1]: demoted
        assert hedger.order(reversed_plan) == PLAN
        clock.now += 5.1
        assert hedger.order(PLAN) == PLAN
        assert hedger.run(GET, PLAN, slow_first) == ({"from": PLAN[1]}, PLAN[1])  # hedged to it again
        assert [(e.to_region, e.outcome) for e in events if isinstance(e, Hedged)] == [(PLAN[0], "won"), (PLAN[1], "won")]
    finally:
        slow_second.release.set()
        slow_first.release.set()
        hedger.close()
