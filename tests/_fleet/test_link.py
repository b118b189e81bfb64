"""FleetLink against a real redis-server (the ``redis`` fixture): messages,
keys, a paused and a killed Redis, the password, forks."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
import redis as redis_py

from regionproxy._config.settings import check_fleet_url, safe_redis_url
from regionproxy._fleet.link import FleetLink
from regionproxy.errors import ConfigError
from regionproxy.testing import wait_for
from tests.support import free_port, in_child

# Generous for a loaded 2-core machine; the defaults (50 ms) are for production.
TIMEOUT = 0.2
FAST = {"timeout": TIMEOUT, "retry": 0.05, "retry_max": 0.2, "ping_after": 0.3, "poll": 0.05}


@pytest.fixture
def links():
    made = []

    def make(url, name="fleet", **options):
        link = FleetLink(url, name, **{**FAST, **options})
        made.append(link)
        return link

    yield make
    for link in made:
        link.close()


class Heard:
    """A subscriber that keeps what it hears."""

    def __init__(self):
        self.messages = []
        self.reconnects = 0
        self.connects = 0

    def __call__(self, message):
        self.messages.append(message)

    def reconnected(self):
        self.reconnects += 1

    def connected(self):
        self.connects += 1

    def bodies(self):
        return [m.body for m in self.messages]


def started(link, heard=None, topic="t"):
    heard = heard or Heard()
    link.subscribe(topic, heard)
    link.on_reconnect(heard.reconnected)
    link.on_connect(heard.connected)
    link.start()
    assert wait_for(lambda: link.connected, timeout=10)
    return heard


def test_a_message_reaches_every_link_of_the_fleet_and_says_whose_it_is(redis, links):
    a, b = links(redis.url), links(redis.url)
    heard_a, heard_b = started(a), started(b)
    assert a.publish("t", {"n": 1})
    assert wait_for(lambda: heard_a.bodies() == [{"n": 1}] and heard_b.bodies() == [{"n": 1}])
    assert heard_a.messages[0].mine and not heard_b.messages[0].mine
    assert heard_b.messages[0].sender == a.member
    assert (a.sent, b.received) == (1, 1)


def test_messages_of_another_topic_or_another_fleet_do_not_arrive(redis, links):
    a, other_fleet = links(redis.url, "one"), links(redis.url, "two")
    heard = started(a)
    started(other_fleet)
    other_fleet.publish("t", {"n": "other fleet"})
    a.publish("u", {"n": "other topic"})
    a.publish("t", {"n": "this one"})
    assert wait_for(lambda: heard.bodies() == [{"n": "this one"}])


def test_keys_live_under_the_fleet_name(redis, links):
    link = links(redis.url, "blog")
    assert link.set("k", "v")
    assert not link.set("k", "w", nx=True)
    assert redis_py.Redis.from_url(redis.url, decode_responses=True).get("regionproxy:blog:k") == "v"
    assert link.key("a", "b") == "regionproxy:blog:a:b"
    assert link.get("k") == "v"
    assert link.set("lease", "me", px=60_000, nx=True)
    assert 0 < redis_py.Redis.from_url(redis.url).pttl("regionproxy:blog:lease") <= 60_000
    assert link.script("return redis.call('GET', KEYS[1])", ["k"], []) == "v"


def test_a_paused_redis_costs_one_timeout_then_calls_skip_it(redis, links):
    link = links(redis.url, retry=5.0)  # no reconnection during the test
    started(link)
    redis.pause()
    try:
        began = time.monotonic()
        assert link.publish("t", {}) is False
        assert time.monotonic() - began < TIMEOUT + 2.0  # bounded by the timeout, not hung
        assert not link.connected
        skipped = link.skipped
        for _ in range(50):
            assert link.get("k") is None and link.publish("t", {}) is False
        assert link.skipped == skipped + 100  # every one without I/O
    finally:
        redis.resume()


def test_an_idle_subscriber_finds_a_paused_redis_and_comes_back_after_a_gap(redis, links):
    link = links(redis.url)
    heard = started(link)
    redis.pause()
    try:
        assert wait_for(lambda: not link.connected, timeout=10)  # found by its ping
    finally:
        redis.resume()
    assert wait_for(lambda: link.connected and heard.reconnects >= 1, timeout=10)
    assert heard.connects == heard.reconnects + 1


def test_after_a_kill_and_restart_on_the_same_port_the_link_reconnects_and_says_so(redis, links):
    a, b = links(redis.url), links(redis.url)
    heard = started(a)
    started(b)
    redis.kill()
    assert wait_for(lambda: not a.connected and not b.connected, timeout=10)
    assert b.publish("t", {"n": "lost"}) is False
    redis.start()
    assert wait_for(lambda: a.connected and b.connected, timeout=10)
    assert heard.reconnects >= 1 and a.reconnects == heard.reconnects  # (a loaded machine may add a gap)
    assert b.publish("t", {"n": "after"})
    assert wait_for(lambda: heard.bodies() == [{"n": "after"}])


def test_the_first_connection_is_no_reconnect(redis, links):
    heard = started(links(redis.url))
    assert (heard.connects, heard.reconnects) == (1, 0)


def test_a_redis_that_is_not_there_at_start_is_a_gap_once_it_comes(links):
    from regionproxy.testing import RedisServer

    server = RedisServer()
    server.port = free_port()
    link = links(server.url)
    heard = Heard()
    link.on_reconnect(heard.reconnected)
    assert link.publish("t", {}) is False
    assert link.get("k") is None and link.hgetall("h") == {} and not link.set("k", "v")
    with server.start():
        assert wait_for(lambda: link.connected, timeout=10)
        assert heard.reconnects >= 1  # a cache built meanwhile may have missed drops


def test_a_failing_callback_does_not_silence_the_others(redis, links, caplog):
    link = links(redis.url)
    link.subscribe("t", lambda message: 1 / 0)
    heard = started(link)
    link.publish("t", {"n": 1})
    link.publish("t", {"n": 2})
    assert wait_for(lambda: heard.bodies() == [{"n": 1}, {"n": 2}])


def test_a_message_that_is_not_json_is_refused_without_raising(redis, links):
    link = links(redis.url)
    assert link.publish("t", {"when": object()}) is False
    assert link.connected or link.failures == 0  # not a Redis failure


@pytest.mark.parametrize("redis", [{"password": "s3cr:et/pw"}], indirect=True)
def test_the_password_never_shows(redis, links, caplog):
    caplog.set_level(logging.DEBUG, logger="regionproxy")
    link = links(redis.url)
    started(link)
    redis.kill()
    assert wait_for(lambda: not link.connected, timeout=10)
    link.publish("t", {})
    wrong = links(redis.url.replace("s3cr%3Aet%2Fpw", "wrong-s3cr%3Aet%2Fpw"), retry=5.0)
    redis.start()
    assert wait_for(lambda: link.connected, timeout=10)
    assert wrong.publish("t", {}) is False
    shown = " ".join([repr(link), str(link.status()), repr(wrong), str(wrong.status()), caplog.text])
    assert "***" in shown and wrong.last_error
    for secret in ("s3cr", "et/pw", "s3cr%3Aet%2Fpw"):
        assert secret not in shown


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://h:6379", id="not-redis"),
        pytest.param("redis://", id="no-host"),
        pytest.param("redis://h:99999", id="bad-port"),
        pytest.param("redis://:pw@h:6379/db", id="db-not-a-number"),
        pytest.param("redis://:pw@h:0", id="port-zero"),
        pytest.param("", id="empty"),
        pytest.param(6379, id="not-a-string"),
    ],
)
def test_a_bad_url_is_a_config_error_without_the_password(url):
    with pytest.raises(ConfigError) as raised:
        check_fleet_url(url)
    assert "pw" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("redis://:pw@h:1/0", "redis://:***@h:1/0", id="password-only"),
        pytest.param("rediss://user:pw@h:1", "rediss://user:***@h:1", id="user-and-password"),
        pytest.param("redis://h:1/2", "redis://h:1/2", id="no-password"),
        # urlsplit drops line breaks and tabs: its netloc is then no substring of the URL
        pytest.param("A://:\r@", "a://:***@", id="line-break-in-the-netloc"),
        pytest.param("redis://:p\tw@h:1/0", "redis://:***@h:1", id="tab-in-the-password"),
    ],
)
def test_safe_url_hides_the_password(url, shown):
    assert safe_redis_url(url) == shown


def test_a_bad_name_or_timeout_is_a_config_error(redis):
    with pytest.raises(ConfigError):
        FleetLink(redis.url, "two words")
    with pytest.raises(ConfigError):
        FleetLink(redis.url, "fleet", timeout=0)


def test_after_close_operations_answer_their_defaults(redis, links):
    link = links(redis.url)
    started(link)
    link.close()
    assert link.publish("t", {}) is False and link.get("k") is None and not link.connected
    assert not any(t.name.startswith("regionproxy-fleet") and t.is_alive() for t in threading.enumerate() if t is link._listener)


def test_a_forked_child_has_its_own_connection_and_leaves_the_parents_alone(redis, links):
    parent = links(redis.url)
    heard = started(parent)

    def child():
        assert not parent.connected  # the parent's subscription is not the child's
        mine = Heard()
        parent.subscribe("t", mine)
        parent.start()
        assert wait_for(lambda: parent.connected, timeout=10)
        assert parent.member != heard.messages[0].sender if heard.messages else True
        assert parent.publish("t", {"from": "child", "pid": os.getpid()})
        assert wait_for(lambda: any(b.get("from") == "child" for b in mine.bodies()), timeout=10)
        parent.close()

    in_child(child)
    assert wait_for(lambda: any(b.get("from") == "child" for b in heard.bodies()), timeout=10)
    assert parent.connected and parent.publish("t", {"from": "parent"})
    assert wait_for(lambda: {"from": "parent"} in heard.bodies())


@pytest.mark.parametrize("redis", [{"tls": True, "password": "s3cret-over-tls"}], indirect=True)
def test_tls_and_a_password_in_the_url_work(redis, links):
    assert redis.url.startswith("rediss://")
    a, b = links(redis.url), links(redis.url)
    heard = started(a)
    started(b)
    assert b.publish("t", {"over": "tls"})
    assert wait_for(lambda: heard.bodies() == [{"over": "tls"}])
    assert "s3cret-over-tls" not in repr(a) + str(a.status())


def test_a_tls_redis_without_its_ca_is_refused_and_said_so(links):
    from regionproxy.testing import RedisServer

    with RedisServer(tls=True) as server:
        link = links(server.url.partition("?")[0], retry=5.0)  # the CA not named: verification fails
        assert link.publish("t", {}) is False
        assert "SSL" in (link.last_error or "") or "certificate" in (link.last_error or "").lower()


def test_link_changes_are_told_at_once_on_the_thread_that_found_them_and_numbered(redis, links):
    link = links(redis.url, retry=5.0)  # no reconnection during the outage
    changes = []
    link.on_link(lambda connected, epoch: changes.append((connected, epoch, threading.current_thread().name, link.connected)))
    started(link)
    assert wait_for(lambda: len(changes) == 1, timeout=10)
    assert changes[0][:2] == (True, 1) and changes[0][3] is True  # told once `connected` says so
    redis.pause()
    try:
        assert link.publish("t", {}) is False  # this thread's operation takes the link down ...
        assert changes[1][:3] == (False, 2, threading.current_thread().name)  # ... and says so before returning
        assert wait_for(lambda: (link.last_error or "").startswith("connect"), timeout=10)  # (its next try is 5 s away)
    finally:
        redis.resume()
    link.close()  # nothing is heard from now on: said too
    assert [change[:2] for change in changes] == [(True, 1), (False, 2), (False, 3)]
    assert [epoch for _, epoch, _, _ in changes] == sorted({epoch for _, epoch, _, _ in changes})  # each once, growing
