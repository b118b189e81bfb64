"""Fork safety: a fork at any instant leaves a child that can serve.

A fork copies only the forking thread. Each test puts another thread in the
middle of something (holding a lock, holding the half-open trial, loading a
cache entry, creating a client), forks, and checks in the child that the
same objects still work. The child reports through its exit code (and a
pipe for the traceback); the parent waits for it with a bound and kills a
child that hangs, so a deadlock fails the test instead of hanging the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import boto3
import pytest
import requests

import regionproxy as rp
from regionproxy._cache.store import ReadCache
from regionproxy._config.policies import BreakerPolicy, CachePolicy
from regionproxy._regions.breaker import CLOSED, HALF_OPEN, NORMAL, OPEN, TRIAL, RegionBreaker
from regionproxy.events import Hooks
from tests.support import LOCAL, TABLE, free_port, in_child

HELD = 60.0  # how long a parent's thread stays in the middle of its work at most


class Holder:
    """A thread that does ``enter()``, signals, then stays there until released."""

    def __init__(self, enter, name="holder"):
        self.entered, self.release = threading.Event(), threading.Event()

        def run():
            enter(self)
            self.entered.set()
            self.release.wait(HELD)

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()
        assert self.entered.wait(10), "the holder thread got into position"

    def finish(self):
        self.release.set()
        self.thread.join(10)


@pytest.fixture
def breaker(clock):
    return RegionBreaker(LOCAL, BreakerPolicy(fail_max=3, reset_timeout=10.0), Hooks(), clock=clock)


def _trip(breaker):
    for _ in range(3):
        breaker.failed(breaker.admit())


# -- breakers ------------------------------------------------------------------


def _hold_region_lock(breaker):
    return lambda holder: breaker._lock.acquire()


def _hold_pybreaker_lock(breaker):
    return lambda holder: breaker._cb._lock.acquire()


@pytest.mark.parametrize(
    "hold",
    [
        pytest.param(_hold_region_lock, id="region-lock"),
        pytest.param(_hold_pybreaker_lock, id="pybreaker-lock"),
    ],
)
def test_child_breaker_works_when_another_thread_held_its_lock_at_fork(breaker, clock, hold):
    holder = Holder(hold(breaker))

    def check():
        _trip(breaker)
        assert breaker.state == OPEN
        assert breaker.admit() is None
        clock.now += 10
        ticket = breaker.admit()
        assert ticket == TRIAL
        breaker.succeeded(ticket)
        assert breaker.state == CLOSED
        breaker.evacuate()
        breaker.restore()
        assert breaker.admit() == NORMAL

    try:
        in_child(check)
    finally:
        holder.finish()


def test_child_breaker_works_when_a_listener_was_running_at_fork(clock):
    """Listeners run after the locks are released: a fork in the middle of
    one (a slow alerting hook) leaves the child's breaker usable."""
    in_listener, release = threading.Event(), threading.Event()

    def slow_listener(event):
        if threading.current_thread().name == "tripper":
            in_listener.set()
            release.wait(HELD)

    breaker = RegionBreaker(LOCAL, BreakerPolicy(fail_max=3, reset_timeout=10.0), Hooks([slow_listener]), clock=clock)
    tripper = threading.Thread(target=_trip, args=(breaker,), name="tripper", daemon=True)
    tripper.start()
    assert in_listener.wait(10)

    def check():
        assert breaker.state == OPEN
        clock.now += 10
        breaker.succeeded(breaker.admit())
        assert breaker.state == CLOSED

    try:
        in_child(check)
    finally:
        release.set()
        tripper.join(10)


def test_child_gets_the_trial_a_parent_thread_held_at_fork(breaker, clock):
    _trip(breaker)
    clock.now += 10
    tickets = []
    holder = Holder(lambda holder: tickets.append(breaker.admit()), name="trial-holder")
    assert tickets == [TRIAL] and breaker.state == HALF_OPEN
    assert breaker.admit() is None, "in the parent the trial is still out"

    def check():
        ticket = breaker.admit()
        assert ticket == TRIAL, "the child's next caller gets the trial"
        breaker.succeeded(ticket)
        assert breaker.state == CLOSED

    try:
        in_child(check)
    finally:
        holder.finish()


# -- the read cache --------------------------------------------------------------


def test_child_loads_a_key_whose_load_was_in_flight_at_fork(clock):
    # wait_timeout far above the child's bound: only the fork reset can save it.
    cache = ReadCache(CachePolicy(maxsize=10, ttl=60.0), clock=clock, wait_timeout=3600)
    entered, release = threading.Event(), threading.Event()

    def parent_load():
        entered.set()
        release.wait(HELD)
        return {"v": "parent"}

    leader = threading.Thread(target=cache.get_or_load, args=(("t", "k"), parent_load), daemon=True)
    leader.start()
    assert entered.wait(10)

    def check():
        assert cache.get_or_load(("t", "k"), lambda: {"v": "child"}) == ({"v": "child"}, False)
        assert cache.get_or_load(("t", "k"), lambda: {"v": "again"}) == ({"v": "child"}, True)

    try:
        in_child(check)
    finally:
        release.set()
        leader.join(10)


def test_child_cache_works_when_another_thread_held_its_lock_at_fork(clock):
    cache = ReadCache(CachePolicy(maxsize=10, ttl=60.0), clock=clock)
    cache.get_or_load(("t", "k"), lambda: {"v": 1})
    holder = Holder(lambda holder: cache._lock.acquire())

    def check():
        assert cache.get_or_load(("t", "k"), lambda: {"v": 2})[0] in ({"v": 1}, {"v": 2})
        cache.invalidate(("t", "k"))
        assert cache.get_or_load(("t", "k"), lambda: {"v": 3}) == ({"v": 3}, False)

    try:
        in_child(check)
    finally:
        holder.finish()


# -- the session (replica client creation) ------------------------------------------


def test_child_session_calls_when_a_thread_was_creating_a_client_at_fork(lab, monkeypatch):
    """A thread is inside boto3 client creation (holding the lock that
    serialises it) at the fork: the child still makes a DynamoDB call."""
    lab.client(LOCAL).put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"S": "s"}, "v": {"S": "x"}})
    session = lab.session(timeouts=rp.Timeouts(connect=2.0, read=5.0, attempts=1))
    entered, release = threading.Event(), threading.Event()
    original = boto3.session.Session.client

    def slow_client(self, *args, **kwargs):
        if threading.current_thread().name == "creator":
            entered.set()
            release.wait(HELD)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", slow_client)

    def create():
        try:
            session.client.get_item(TableName=TABLE, Key={"pk": {"S": "a"}, "sk": {"S": "s"}})
        except Exception:  # noqa: BLE001, S110 - only its position at the fork matters
            pass

    creator = threading.Thread(target=create, name="creator", daemon=True)
    creator.start()
    assert entered.wait(10), "the creator thread is inside client creation"

    def check():
        item = session.client.get_item(TableName=TABLE, Key={"pk": {"S": "a"}, "sk": {"S": "s"}})["Item"]
        assert item["v"] == {"S": "x"}

    try:
        in_child(check)
    finally:
        release.set()
        creator.join(10)


# -- under gunicorn --preload -------------------------------------------------------

PRELOADED_APP = """
import json
import threading

from regionproxy._regions.breaker import RegionBreaker
from regionproxy._cache.store import ReadCache
from regionproxy._config.settings import BreakerPolicy, CachePolicy
from regionproxy.events import Hooks
from tests.support import FakeClock

clock = FakeClock()
breaker = RegionBreaker("eu-west-3", BreakerPolicy(fail_max=1, reset_timeout=10.0), Hooks(), clock=clock)
cache = ReadCache(CachePolicy(maxsize=10, ttl=3600.0), wait_timeout=3600)
release = threading.Event()  # never set: the master's threads stay where they are


def _take_trial_and_stay():
    assert breaker.admit() == "trial"
    trial_taken.set()
    release.wait()


def _load_and_stay():
    loading.set()
    release.wait()
    return "master"


def _hold_breaker_lock():
    breaker._lock.acquire()
    lock_held.set()
    release.wait()


# Built at import, before gunicorn forks: the breaker half-open with its
# trial held by a master thread, a cache load in flight, the breaker's lock held.
breaker.failed(breaker.admit())
clock.now += 10
trial_taken, loading, lock_held = threading.Event(), threading.Event(), threading.Event()
threading.Thread(target=_take_trial_and_stay, daemon=True).start()
assert trial_taken.wait(10)
threading.Thread(target=cache.get_or_load, args=(("t", "k"), _load_and_stay), daemon=True).start()
assert loading.wait(10)
threading.Thread(target=_hold_breaker_lock, daemon=True).start()
assert lock_held.wait(10)


def application(environ, start_response):
    import os

    ticket = breaker.admit()
    if ticket is not None:
        breaker.released(ticket)  # no verdict: the next request gets the trial again
    value, _ = cache.get_or_load(("t", "k"), lambda: "worker")
    body = json.dumps({"pid": os.getpid(), "ticket": ticket, "value": value}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
"""


def test_gunicorn_preload_workers_serve_with_a_master_mid_trial_mid_load_and_locked(tmp_path):
    (tmp_path / "preloaded.py").write_text(textwrap.dedent(PRELOADED_APP))
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--bind", f"127.0.0.1:{port}",
        "--timeout", "60", "--log-level", "warning", "preloaded:application",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        answers = []
        # Until both workers answered (a sync worker takes whichever
        # connection comes), bounded in count and time. Once one worker has
        # answered many, the requests are spaced out: a worker still starting
        # on a loaded machine (or waking later from its select) otherwise
        # sees every connection taken by the one already serving.
        while len(answers) < 20 or len({a["pid"] for a in answers}) < 2:
            assert len(answers) < 1000, "one worker never answered"
            if len(answers) >= 20:
                time.sleep(0.05)
            assert time.monotonic() < deadline and server.poll() is None, f"gunicorn served {len(answers)}"
            try:
                # A new connection each time, so that both workers get requests.
                response = requests.get(f"http://127.0.0.1:{port}/", timeout=5, headers={"Connection": "close"})
            except requests.ConnectionError:
                time.sleep(0.1)  # not listening yet
                continue
            assert response.status_code == 200
            answers.append(response.json())
        assert {(a["ticket"], a["value"]) for a in answers} == {(TRIAL, "worker")}
    finally:
        server.terminate()
        try:
            output, _ = server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate(timeout=10)
    assert "Traceback" not in output, output
