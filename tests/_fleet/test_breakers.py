"""SharedBreakers against a real redis-server: several members (each its own
link and breakers, as gunicorn workers are) of one fleet, one fake clock for
the breakers' reset timeouts."""

from __future__ import annotations

import pytest

from regionproxy._config.policies import BreakerPolicy
from regionproxy._fleet.breakers import SharedBreakers
from regionproxy._fleet.link import FleetLink
from regionproxy._regions.breaker import CLOSED, EVACUATED, NORMAL, OPEN, TRIAL, RegionBreaker
from regionproxy.events import BreakerChanged, Hooks
from regionproxy.testing import wait_for
from tests.support import LOCAL, REGIONS

POLICY = BreakerPolicy(fail_max=3, reset_timeout=10.0)
LINK = {"timeout": 0.2, "retry": 0.05, "retry_max": 0.2, "ping_after": 0.3, "poll": 0.05}


class Member:
    """One process of the fleet: a link, a breaker per region, the sharing."""

    def __init__(self, url, clock, *, policy=POLICY, trial_seconds=30.0):
        self.events = []
        hooks = Hooks([self.events.append])
        self.breakers = {region: RegionBreaker(region, policy, hooks, clock=clock) for region in REGIONS}
        self.link = FleetLink(url, "test", clock=clock, **LINK)
        self.shared = SharedBreakers(self.link, self.breakers, hooks, trial_seconds=trial_seconds, clock=clock)

    def join(self):
        self.link.start()
        assert wait_for(lambda: self.link.connected, timeout=10)
        self.shared.sync()
        return self

    @property
    def local(self):
        return self.breakers[LOCAL]

    def fail(self, times=1):
        for _ in range(times):
            self.local.failed(self.local.admit())


@pytest.fixture
def fleet(redis, clock):
    members = []

    def join(**options):
        member = Member(redis.url, clock, **options).join()
        members.append(member)
        return member

    yield join
    for member in members:
        member.link.close()


def test_fail_max_counts_the_faults_of_the_whole_fleet(fleet):
    a, b, c = fleet(), fleet(), fleet()
    a.fail()
    b.fail()
    assert {a.local.state, b.local.state, c.local.state} == {CLOSED}
    c.fail()  # the fleet's third fault: one each
    assert c.local.state == OPEN
    assert wait_for(lambda: a.local.state == OPEN and b.local.state == OPEN)


def test_an_opening_reaches_every_member_timed_from_when_it_opened(fleet, clock):
    a, b = fleet(), fleet()
    a.fail(3)
    assert wait_for(lambda: b.local.state == OPEN)
    assert b.local.opened_at == a.local.opened_at
    assert any(isinstance(e, BreakerChanged) and e.new == OPEN for e in b.events)  # announced there too


def test_a_member_that_starts_later_reads_the_open_breaker(fleet):
    a = fleet()
    a.fail(3)
    late = fleet()
    assert late.local.state == OPEN


def test_one_trial_per_region_per_fleet_and_its_success_closes_every_breaker(fleet, clock):
    a, b, c = fleet(), fleet(), fleet()
    a.fail(3)
    assert wait_for(lambda: b.local.state == OPEN and c.local.state == OPEN)
    clock.now += POLICY.reset_timeout
    assert a.local.admit() == TRIAL
    assert b.local.admit() is None and c.local.admit() is None  # the fleet's trial is out
    assert wait_for(lambda: b.shared.status()["trials"].get(LOCAL, {}).get("member") == a.link.member)
    a.local.succeeded(TRIAL)
    assert a.local.state == CLOSED
    assert wait_for(lambda: b.local.state == CLOSED and c.local.state == CLOSED)
    assert b.local.admit() == NORMAL


def test_a_failed_trial_reopens_every_breaker_for_a_new_reset_timeout(fleet, clock):
    a, b = fleet(), fleet()
    a.fail(3)
    assert wait_for(lambda: b.local.state == OPEN)
    clock.now += POLICY.reset_timeout
    ticket = b.local.admit()
    assert ticket == TRIAL
    assert a.local.admit() is None
    b.local.failed(ticket)
    assert wait_for(lambda: a.local.opened_at == b.local.opened_at == clock.now)
    clock.now += POLICY.reset_timeout - 1
    assert a.local.admit() is None and b.local.admit() is None  # a new reset timeout for all
    clock.now += 1
    assert a.local.admit() == TRIAL  # the reservation was given back with the verdict


def test_a_trial_holder_that_dies_holds_the_fleet_only_until_its_reservation_expires(fleet, clock, redis):
    a, b = fleet(trial_seconds=0.3), fleet(trial_seconds=0.3)
    a.fail(3)
    assert wait_for(lambda: b.local.state == OPEN)
    clock.now += POLICY.reset_timeout
    assert a.local.admit() == TRIAL
    a.link.close()  # dies with the trial out
    assert b.local.admit() is None

    def trial_for_b():
        clock.now += 1  # b waits no longer than the reservation said it would last
        return b.local.admit() == TRIAL

    assert wait_for(trial_for_b, timeout=10)


def test_evacuation_reaches_every_member_and_one_that_starts_later(fleet):
    a, b = fleet(), fleet()
    assert a.shared.evacuate(LOCAL, by="ops@example")
    assert a.local.state == EVACUATED
    assert wait_for(lambda: b.local.state == EVACUATED)
    late = fleet()
    assert late.local.state == EVACUATED
    assert late.shared.status()["actions"][LOCAL]["by"] == "ops@example"
    assert b.shared.restore(LOCAL, by="someone else")
    assert wait_for(lambda: a.local.state == CLOSED and late.local.state == CLOSED)
    assert a.shared.status()["actions"][LOCAL]["action"] == "restore"


def test_an_evacuation_is_not_undone_by_another_members_trial(fleet, clock):
    """pybreaker's Redis storage undid an evacuation with a half-open trial."""
    a, b = fleet(), fleet()
    b.fail(3)
    a.shared.evacuate(LOCAL, by="ops")
    assert wait_for(lambda: b.local.state == EVACUATED)
    clock.now += POLICY.reset_timeout * 10
    assert b.local.admit() is None and a.local.admit() is None
    assert a.local.state == b.local.state == EVACUATED


def test_while_redis_is_away_each_member_counts_and_tries_alone(fleet, redis, clock):
    a, b = fleet(), fleet()
    redis.kill()
    assert wait_for(lambda: not a.link.connected and not b.link.connected, timeout=10)
    a.fail(3)
    assert a.local.state == OPEN and b.local.state == CLOSED
    b.fail(3)
    clock.now += POLICY.reset_timeout
    assert a.local.admit() == TRIAL and b.local.admit() == TRIAL  # no fleet to reserve with


def test_an_evacuation_made_while_redis_is_away_reaches_the_fleet_when_it_is_back(fleet, redis):
    a, b = fleet(), fleet()
    redis.kill()
    assert wait_for(lambda: not a.link.connected, timeout=10)
    assert a.shared.evacuate(LOCAL, by="ops") is False  # not sent yet
    assert a.local.state == EVACUATED and b.local.state == CLOSED
    redis.start()
    assert wait_for(lambda: b.local.state == EVACUATED, timeout=10)
    assert a.local.state == EVACUATED  # not undone by what Redis (not) kept


def test_an_evacuation_redis_lost_is_asserted_again(fleet, redis):
    a, b = fleet(), fleet()
    a.shared.evacuate(LOCAL, by="ops")
    assert wait_for(lambda: b.local.state == EVACUATED)
    redis.restart()  # no persistence: the fleet's keys are gone
    assert wait_for(lambda: a.link.reconnects >= 1 and b.link.reconnects >= 1, timeout=10)
    late = fleet()
    assert late.local.state == EVACUATED
    assert a.local.state == b.local.state == EVACUATED


def test_a_restore_made_while_a_member_was_away_reaches_it_when_it_is_back(fleet, redis):
    a, b = fleet(), fleet()
    a.shared.evacuate(LOCAL, by="ops")
    assert wait_for(lambda: b.local.state == EVACUATED)
    b.link.close()
    b2 = Member(redis.url, b.local._clock)  # the same process back: it kept its state
    b2.breakers[LOCAL].evacuate()
    a.shared.restore(LOCAL, by="ops")
    b2.join()
    assert b2.local.state == CLOSED
    b2.link.close()


def test_an_older_action_sent_late_changes_nothing(fleet, clock):
    from regionproxy._fleet.breakers import action_record, send_action

    a, b = fleet(), fleet()
    old = action_record("evacuate", "first", clock.now, a.link.member)
    clock.now += 10
    b.shared.restore(LOCAL, by="second")
    assert send_action(a.link, LOCAL, old)  # a replay after a gap, say: the newer word stands
    late = fleet()
    assert late.local.state == CLOSED and late.shared.status()["actions"][LOCAL]["by"] == "second"
    assert b.local.state == CLOSED


def test_strange_messages_change_nothing_and_a_future_opening_keeps_no_region_out(fleet, clock, caplog):
    a, b = fleet(), fleet()
    for body in (
        {"region": ["eu-west-3"], "state": "open"},
        {"region": {"x": 1}, "action": "evacuate"},
        {"region": LOCAL, "state": "melted"},
        {"region": LOCAL, "action": "explode", "at": float("nan")},
        {"region": "ap-south-1", "state": "open"},
    ):
        topic = "evacuation" if "action" in body else "breaker"
        assert a.link.publish(topic, body)
    assert a.link.publish("breaker", {"region": LOCAL, "state": "open", "opened_at": clock.now + 10**9})  # a clock far ahead
    assert wait_for(lambda: b.local.state == OPEN)
    assert "failed" not in caplog.text  # no callback raised
    clock.now += POLICY.reset_timeout
    assert b.local.admit() == TRIAL  # kept out for one reset timeout from when it heard, not a billion seconds
