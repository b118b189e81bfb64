"""RegionBreaker: pybreaker's states, our admission, a fake clock."""

from __future__ import annotations

import contextlib
import threading
import time

import pybreaker
import pytest

from regionproxy._config.policies import BreakerPolicy
from regionproxy._regions.breaker import CLOSED, EVACUATED, HALF_OPEN, NORMAL, OPEN, TRIAL, RegionBreaker
from regionproxy.events import BreakerChanged, Hooks


@pytest.fixture
def events():
    return []


@pytest.fixture
def hooks(events):
    return Hooks([events.append])


@pytest.fixture
def breaker(clock, hooks):
    return RegionBreaker("eu-west-3", BreakerPolicy(fail_max=3, reset_timeout=10.0), hooks, clock=clock)


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


def test_a_late_fault_of_a_call_admitted_before_the_breaker_opened_does_not_end_the_trial(breaker, clock):
    slow = breaker.admit()  # admitted while closed; its answer comes late
    _fail(breaker, 3)
    clock.now += 10
    trial = breaker.admit()
    assert trial == TRIAL
    breaker.failed(slow)  # e.g. a read timeout that began before the breaker opened
    assert breaker.state == HALF_OPEN, "only the trial may decide half-open"
    breaker.succeeded(trial)
    assert breaker.state == CLOSED


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


# -- announcing changes: after the locks, by the changing thread, in order --------


def _transitions(events):
    return [(e.old, e.new) for e in events if isinstance(e, BreakerChanged)]


def _run_bounded(target, timeout=10.0):
    """Run ``target`` in a daemon thread; True if it finished within ``timeout``
    (a deadlocked thread is left behind instead of hanging the test run)."""
    errors = []

    def run():
        try:
            target()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if errors:
        raise errors[0]
    return not thread.is_alive()


REENTRY = [
    pytest.param(lambda b: b.evacuate(), id="evacuate"),
    pytest.param(lambda b: b.restore(), id="restore"),
    pytest.param(lambda b: b.failed(b.admit() or NORMAL), id="admit-and-fail"),
    pytest.param(lambda b: (b.state, repr(b), b.failures), id="read-state"),
]


@pytest.mark.parametrize("reenter", REENTRY)
def test_listener_that_calls_back_into_the_breaker_completes(clock, reenter):
    calls = []

    def listener(event):
        if isinstance(event, BreakerChanged) and event.new == OPEN and not calls:
            calls.append(event)
            reenter(breaker)

    breaker = RegionBreaker("r", BreakerPolicy(fail_max=1, reset_timeout=10.0), Hooks([listener]), clock=clock)
    assert _run_bounded(lambda: _fail(breaker, 1)), "a listener calling into its breaker deadlocked"
    assert calls, "the listener ran"


def test_listener_runs_with_no_breaker_lock_held(breaker, hooks, clock):
    seen = []

    def listener(event):
        seen.append((breaker._lock.locked(), breaker._cb._lock._is_owned()))

    hooks.add(listener)
    _fail(breaker, 3)
    clock.now += 10
    breaker.succeeded(breaker.admit())
    breaker.evacuate()
    breaker.restore()
    assert len(seen) == 5
    assert set(seen) == {(False, False)}


@contextlib.contextmanager
def _tripped_by_a_held_thread(breaker, hooks, *later_listeners):
    """Trip ``breaker`` on another thread whose slow listener holds it, with
    closed -> open announced to the listeners before that one only, until
    the block ends."""
    entered, release = threading.Event(), threading.Event()

    def slow(event):
        if event.new == OPEN:
            entered.set()
            release.wait(10)

    for listener in (slow, *later_listeners):
        hooks.add(listener)
    tripping = threading.Thread(target=_fail, args=(breaker, 3), daemon=True)
    tripping.start()
    try:
        assert entered.wait(10)
        yield
    finally:
        release.set()
        tripping.join(10)
    assert not tripping.is_alive()


def test_listener_of_another_thread_does_not_block_a_change(breaker, hooks, clock):
    """A slow listener holds up only the thread that made its change."""
    with _tripped_by_a_held_thread(breaker, hooks):
        clock.now += 10
        assert _run_bounded(lambda: breaker.succeeded(breaker.admit())), "blocked behind another thread's listener"
        assert breaker.state == CLOSED


def test_changes_are_announced_by_the_thread_that_made_them(breaker, hooks, clock):
    announced_by = []
    hooks.add(lambda event: announced_by.append(threading.current_thread().name))

    def trip():
        _fail(breaker, 3)

    thread = threading.Thread(target=trip, name="tripper")
    thread.start()
    thread.join(10)
    clock.now += 10
    breaker.succeeded(breaker.admit())
    assert announced_by == ["tripper", threading.current_thread().name, threading.current_thread().name]


def test_changes_made_by_a_listener_come_after_the_change_it_heard(clock):
    events = []

    def listener(event):
        events.append(event)
        if event.new == OPEN:
            breaker.evacuate()
        elif event.new == EVACUATED:
            breaker.restore()

    breaker = RegionBreaker("r", BreakerPolicy(fail_max=1, reset_timeout=10.0), Hooks([listener]), clock=clock)
    assert _run_bounded(lambda: _fail(breaker, 1))
    assert _transitions(events) == [(CLOSED, OPEN), (OPEN, EVACUATED), (EVACUATED, CLOSED)]
    assert breaker.state == CLOSED


@pytest.mark.parametrize(
    ("prepare", "old"),
    [
        pytest.param(lambda b, c: None, CLOSED, id="from-closed"),
        pytest.param(lambda b, c: _fail(b, 3), OPEN, id="from-open"),
        pytest.param(lambda b, c: (_fail(b, 3), setattr(c, "now", c.now + 10), b.admit()), HALF_OPEN, id="from-half-open"),
    ],
)
def test_evacuate_announces_evacuated_and_restore_announces_closed(breaker, clock, events, prepare, old):
    prepare(breaker, clock)
    events.clear()
    breaker.evacuate()
    breaker.evacuate()  # already evacuated: no second event
    clock.now += 3600
    assert breaker.admit() is None
    breaker.restore()
    assert _transitions(events) == [(old, EVACUATED), (EVACUATED, CLOSED)]


def test_restore_of_an_open_breaker_announces_open_to_closed(breaker, events):
    _fail(breaker, 3)
    events.clear()
    breaker.restore()
    assert _transitions(events) == [(OPEN, CLOSED)]


def test_breaker_state_gauge_shows_3_while_evacuated(breaker, hooks):
    from prometheus_client import CollectorRegistry

    from regionproxy._web.metrics import PrometheusListener

    metrics = PrometheusListener(CollectorRegistry(), regions=("eu-west-3",))
    hooks.add(metrics)

    def gauge():
        return metrics.registry.get_sample_value("regionproxy_breaker_state", {"region": "eu-west-3"})

    breaker.evacuate()
    assert gauge() == 3
    breaker.restore()
    assert gauge() == 0


def _gauge_listener(region="eu-west-3"):
    from prometheus_client import CollectorRegistry

    from regionproxy._web.metrics import BREAKER_VALUES, PrometheusListener

    metrics = PrometheusListener(CollectorRegistry(), regions=(region,))

    def shown():
        value = metrics.registry.get_sample_value("regionproxy_breaker_state", {"region": region})
        return {number: state for state, number in BREAKER_VALUES.items()}[value]

    return metrics, shown


def test_changes_are_numbered_in_the_order_they_were_made(breaker, clock, events):
    _fail(breaker, 3)
    clock.now += 10
    breaker.succeeded(breaker.admit())
    breaker.evacuate()
    breaker.restore()
    numbers = [e.seq for e in events]
    assert len(numbers) == 5
    assert numbers == sorted(numbers) and len(set(numbers)) == 5 and numbers[0] > 0


def test_breaker_gauge_ends_at_the_latest_state_when_another_thread_announces_late(breaker, hooks, clock):
    """The tripping thread is held after its change (closed -> open) but
    before the gauge hears it; meanwhile this thread half-opens and closes
    the breaker. The late open must not win."""
    metrics, shown = _gauge_listener()
    with _tripped_by_a_held_thread(breaker, hooks, metrics):
        clock.now += 10
        breaker.succeeded(breaker.admit())
        assert shown() == CLOSED
    assert breaker.state == shown() == CLOSED


def test_breaker_gauge_ends_at_the_latest_state_when_a_listener_changes_it_first(clock):
    """A listener ahead of the gauge evacuates on open: the gauge hears
    open -> evacuated before closed -> open, on one thread."""
    metrics, shown = _gauge_listener("r")

    def evacuate_on_open(event):
        if event.new == OPEN:
            breaker.evacuate()

    breaker = RegionBreaker("r", BreakerPolicy(fail_max=1, reset_timeout=10.0), Hooks([evacuate_on_open, metrics]), clock=clock)
    _fail(breaker, 1)
    assert breaker.state == shown() == EVACUATED


def test_breaker_gauge_equals_the_breaker_state_after_threads_flip_it(clock):
    metrics, shown = _gauge_listener("r")

    def make_way(event):
        time.sleep(0)  # let another thread run between a change and the gauge

    breaker = RegionBreaker("r", BreakerPolicy(fail_max=1, reset_timeout=1.0), Hooks([make_way, metrics]), clock=clock)

    def evacuate_and_restore():
        for _ in range(300):
            breaker.evacuate()
            breaker.restore()

    def fail_and_recover():
        for n in range(300):
            clock.now += 1  # an open breaker offers its trial
            ticket = breaker.admit()
            if ticket is not None:
                (breaker.failed if n % 2 else breaker.succeeded)(ticket)

    threads = [threading.Thread(target=work, daemon=True) for work in (evacuate_and_restore, fail_and_recover) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert shown() == breaker.state


def test_shared_storage_changes_are_announced_outside_the_locks(clock):
    """Two breakers on one storage, as two workers on Redis: each announces
    what it changes, never under a lock, and a listener may re-enter."""
    storage = pybreaker.CircuitMemoryStorage(CLOSED)
    seen = []

    def listener(event):
        owner = first if event.region == "a" else second
        seen.append((event.region, event.old, event.new, owner._lock.locked(), owner._cb._lock._is_owned()))
        owner.state  # noqa: B018 - reading the state re-enters the breaker

    policy = BreakerPolicy(fail_max=2, reset_timeout=10.0)
    first = RegionBreaker("a", policy, Hooks([listener]), clock=clock, storage=storage)
    second = RegionBreaker("b", policy, Hooks([listener]), clock=clock, storage=storage)
    _fail(first, 1)
    assert _run_bounded(lambda: _fail(second, 1))
    assert first.state == second.state == OPEN
    clock.now += 10
    assert _run_bounded(lambda: first.succeeded(first.admit()))
    assert second.state == CLOSED
    assert [s[:3] for s in seen] == [("b", CLOSED, OPEN), ("a", CLOSED, HALF_OPEN), ("a", HALF_OPEN, CLOSED)]
    assert {s[3:] for s in seen} == {(False, False)}


# -- fork safety: what _after_fork resets (the real forks: tests/integration/test_fork.py)


def test_after_fork_replaces_locks_held_by_other_threads(breaker, clock):
    breaker._lock.acquire()
    breaker._cb._lock.acquire()  # this thread owns them; in a child they would be orphans
    breaker._after_fork()
    assert _run_bounded(lambda: _fail(breaker, 3), timeout=5)
    assert breaker.state == OPEN


def test_after_fork_releases_a_trial_that_no_thread_will_end(breaker, clock):
    _fail(breaker, 3)
    clock.now += 10
    assert breaker.admit() == TRIAL
    breaker._after_fork()
    assert breaker.admit() == TRIAL
