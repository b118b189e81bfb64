"""SharedWrites: cache drops and read-your-writes from one worker reach the
others, over a real redis-server (the ``redis`` fixture); a gap in the
subscription empties the cache. Two links in one process stand for two
workers (each has its own member id, so each hears the other's messages
as another worker's)."""

from __future__ import annotations

import contextlib
import threading
from types import SimpleNamespace

import pytest

from regionproxy._cache.keys import EVERYTHING, ITEM, QUERY, TABLE, query_tags, write_drops
from regionproxy._cache.store import MISS, ReadCache
from regionproxy._config.policies import CachePolicy
from regionproxy._dynamodb.calls import Call
from regionproxy._dynamodb.keys import key_fingerprint
from regionproxy._fleet.coherence import MAX_UNSENT, TOPIC, SharedWrites
from regionproxy._fleet.link import FleetLink, FleetMessage
from regionproxy._routing.router import StickyWrites
from regionproxy.events import FleetCacheFlushed, FleetDropsApplied, Hooks
from regionproxy.testing import wait_for

LOCAL, REMOTE = "eu-west-3", "us-east-1"
# Generous for a loaded 2-core machine; the defaults (50 ms) are for production.
FAST = {"timeout": 0.2, "retry": 0.05, "retry_max": 0.2, "ping_after": 0.3, "poll": 0.05, "heartbeat": 0}
KEY = {"pk": {"S": "a"}}
FP = key_fingerprint(KEY)


def worker(link, cache=True):
    """One worker's parts, sharing its writes through ``link``."""
    events, forgotten = [], []
    parts = SimpleNamespace(
        link=link,
        cache=ReadCache(CachePolicy(maxsize=100, ttl=60.0)) if cache else None,
        sticky=StickyWrites(5.0, home=LOCAL),
        events=events,
        forgotten=forgotten,
    )
    parts.shared = SharedWrites(
        link,
        regions=(LOCAL, REMOTE),
        cache=parts.cache,
        sticky=parts.sticky,
        forget_table=forgotten.append,
        hooks=Hooks([events.append]),
    )
    return parts


@pytest.fixture
def fleet(redis):
    """Make workers on the test's Redis; each is listening when returned."""
    links = []

    def make(link_options=None, url=None, **options):
        link = FleetLink(url or redis.url, "coherence", **{**FAST, **(link_options or {})})
        links.append(link)
        parts = worker(link, **options)
        parts.shared.start()
        assert wait_for(lambda: link.connected, timeout=10)
        if parts.cache is not None:  # (used once the link says it is connected, a moment later)
            assert wait_for(lambda: parts.cache.counts().get("fleet_link") != "down", timeout=10)
        return parts

    yield make
    for link in links:
        link.close()


def cached(parts, key=("t", FP), value=None):
    parts.cache.get_or_load(key, lambda: value or {"Item": {"v": "old"}})
    assert parts.cache.lookup(key) is not MISS


def test_a_write_in_one_worker_drops_the_item_in_the_others(fleet):
    a, b, c = fleet(), fleet(), fleet()
    for parts in (b, c):
        cached(parts)
        cached(parts, key=("t", FP, "values"))
        cached(parts, key=("t", key_fingerprint({"pk": {"S": "other"}})))
    a.shared.wrote(write_drops("PutItem", {"TableName": "t", "Item": {**KEY, "v": {"S": "new"}}}, lambda t: ("pk",)), None)
    for parts in (b, c):
        assert wait_for(lambda p=parts: p.cache.lookup(("t", FP)) is MISS, timeout=10)
        assert parts.cache.lookup(("t", FP, "values")) is MISS  # both forms
        assert parts.cache.lookup(("t", key_fingerprint({"pk": {"S": "other"}}))) is not MISS  # only that item
        assert parts.shared.invalidations_applied == 1
        assert parts.events == [FleetDropsApplied(1)]


def test_a_write_drops_the_query_pages_its_item_may_change_in_the_others(fleet):
    a, b = fleet(), fleet()
    query = {"TableName": "t", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "a"}}}
    other = {**query, "ExpressionAttributeValues": {":p": {"S": "b"}}}
    for params in (query, other):
        b.cache.get_or_load(("t", QUERY, repr(params)), lambda: {"Items": []}, tags=query_tags("t", params))
    a.shared.wrote(write_drops("DeleteItem", {"TableName": "t", "Key": KEY}, lambda t: ("pk",)), None)
    assert wait_for(lambda: b.cache.lookup(("t", QUERY, repr(query))) is MISS, timeout=10)
    assert b.cache.lookup(("t", QUERY, repr(other))) is not MISS


@pytest.mark.parametrize(
    "key",
    [
        pytest.param({"pk": {"S": "ünï"}, "sk": {"N": "1.50"}}, id="string-and-number"),
        pytest.param({"pk": {"B": b"\x00\xff"}}, id="binary"),
        pytest.param({"pk": {"N": "1234567890123456789012345678901234567"}}, id="38-digit-number"),
    ],
)
def test_keys_of_every_kind_name_the_same_item_in_the_other_worker(fleet, key):
    a, b = fleet(), fleet()
    cached(b, key=("t", key_fingerprint(key)))
    a.shared.wrote(write_drops("DeleteItem", {"TableName": "t", "Key": key}, lambda t: ("pk",)), None)
    assert wait_for(lambda: b.cache.lookup(("t", key_fingerprint(key))) is MISS, timeout=10)


@pytest.mark.parametrize(
    ("drops", "kept"),
    [
        pytest.param(((TABLE, "t"),), [("u", FP)], id="a-table"),
        pytest.param(((EVERYTHING,),), [], id="everything"),
    ],
)
def test_table_and_everything_drops_reach_the_others(fleet, drops, kept):
    a, b = fleet(), fleet()
    cached(b, key=("t", FP))
    cached(b, key=("u", FP))
    a.shared.wrote(drops, None)
    assert wait_for(lambda: b.cache.lookup(("t", FP)) is MISS, timeout=10)
    assert [key for key in (("u", FP),) if b.cache.lookup(key) is not MISS] == kept


def test_a_table_changed_by_a_control_call_is_dropped_and_its_key_schema_forgotten_everywhere(fleet):
    a, b = fleet(), fleet()
    cached(b)
    a.shared.changed(["t"])
    assert wait_for(lambda: b.forgotten == ["t"], timeout=10)
    assert b.cache.lookup(("t", FP)) is MISS
    assert a.forgotten == []  # the publisher did its own before publishing


def test_the_publishing_worker_ignores_its_own_message(fleet):
    a, b = fleet(), fleet()
    a.shared.wrote(((ITEM, "t", FP),), None)
    cached(a)  # stored by the publisher after its write (a read of the new item)
    cached(b, key=("t", "marker"))
    a.shared.wrote(((ITEM, "t", "marker"),), None)  # the same link delivers in order: once b has this, a has both
    assert wait_for(lambda: b.cache.lookup(("t", "marker")) is MISS, timeout=10)
    assert wait_for(lambda: a.link.received == 2, timeout=10)
    assert a.cache.lookup(("t", FP)) is not MISS
    assert a.shared.invalidations_applied == 0


@pytest.mark.parametrize(
    "redis", [pytest.param({}, id="plain"), pytest.param({"tls": True}, id="tls")], indirect=True
)  # over TLS, decrypted bytes may wait inside the socket's TLS layer: the listener drains them too
def test_a_request_that_settles_after_a_write_returned_sees_its_drop_however_slow_the_listener(redis, fleet):
    a = fleet()
    link = FleetLink(redis.url, "coherence", **FAST)
    try:
        slow = threading.Event()
        # Runs before the drop is applied, in the same dispatch round: a
        # listener thread the scheduler left waiting.
        link.subscribe(TOPIC, lambda message: slow.wait(0.5))
        b = worker(link)
        b.shared.start()
        assert wait_for(lambda: link.connected, timeout=10)
        cached(b)
        a.shared.wrote(((ITEM, "t", FP),), None)  # returned: the drop is in b's socket
        b.shared.settle()
        assert b.cache.lookup(("t", FP)) is MISS
        assert link.status()["settled"] == 1
    finally:
        link.close()


def test_a_read_that_loaded_before_a_remote_drop_does_not_store_after_it(fleet):
    a, b = fleet(), fleet()
    loading, release = threading.Event(), threading.Event()

    def slow_load():
        loading.set()
        assert release.wait(10)
        return {"Item": {"v": "old"}}  # read before the write landed

    reader = threading.Thread(target=lambda: b.cache.get_or_load(("t", FP), slow_load))
    reader.start()
    assert loading.wait(10)
    a.shared.wrote(((ITEM, "t", FP),), None)
    assert wait_for(lambda: b.shared.invalidations_applied == 1, timeout=10)
    release.set()
    reader.join(10)
    assert b.cache.lookup(("t", FP)) is MISS, "the old item was stored after the drop"


def test_a_failed_over_write_makes_the_other_workers_reads_follow_it(fleet):
    a, b = fleet(), fleet()
    a.shared.wrote(((ITEM, "t", FP),), (REMOTE, ["t"], [("t", FP)], False))
    get = Call("GetItem", {"TableName": "t", "Key": KEY})
    query = Call("Query", {"TableName": "t", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": KEY["pk"]}})
    other = Call("GetItem", {"TableName": "t", "Key": {"pk": {"S": "other"}}})
    assert wait_for(lambda: b.sticky.region_for(get) == REMOTE, timeout=10)
    assert b.sticky.region_for(query) == REMOTE  # its table's queries, as the local rule says
    assert b.sticky.region_for(other) is None
    # Read from home, an answer to a read of it is not cached: home may lack the write.
    assert not b.sticky.seen_by(get).may_store(LOCAL)


def test_a_later_write_at_home_ends_what_the_failed_over_one_made_sticky_in_the_others(fleet):
    a, b = fleet(), fleet()
    get = Call("GetItem", {"TableName": "t", "Key": KEY})
    a.shared.wrote(((ITEM, "t", FP),), (REMOTE, ["t"], [("t", FP)], False))
    assert wait_for(lambda: b.sticky.region_for(get) == REMOTE, timeout=10)
    a.shared.wrote(((ITEM, "t", FP),), (LOCAL, ["t"], [("t", FP)], False))
    assert wait_for(lambda: b.sticky.region_for(get) is None, timeout=10)


def test_an_uncertain_write_keeps_the_others_from_caching_reads_of_it(fleet):
    a, b = fleet(), fleet()
    get = Call("GetItem", {"TableName": "t", "Key": KEY})
    a.shared.wrote(((ITEM, "t", FP),), (LOCAL, ["t"], [("t", FP)], True))
    assert wait_for(lambda: b.sticky.seen_by(get).uncertain, timeout=10)
    assert not b.sticky.seen_by(get).may_store(LOCAL)


def test_a_write_remembered_in_a_region_this_worker_does_not_have_is_ignored(fleet):
    a, b = fleet(), fleet()
    get = Call("GetItem", {"TableName": "t", "Key": KEY})
    a.shared.wrote(((ITEM, "t", FP),), ("ap-south-1", ["t"], [("t", FP)], False))
    a.shared.wrote(((ITEM, "t", "marker"),), None)
    assert wait_for(lambda: b.shared.invalidations_applied == 2, timeout=10)
    assert b.sticky.region_for(get) is None  # reads are not sent to a region the session does not have


def test_a_write_whose_items_are_unknown_makes_the_others_follow_its_whole_table(fleet):
    a, b = fleet(), fleet()
    a.shared.wrote(((TABLE, "t"),), (REMOTE, ["t"], None, False))
    get = Call("GetItem", {"TableName": "t", "Key": {"pk": {"S": "any"}}})
    assert wait_for(lambda: b.sticky.region_for(get) == REMOTE, timeout=10)


def test_a_gap_in_the_subscription_empties_the_cache_and_is_counted(fleet, redis):
    a, b = fleet(), fleet()
    cached(b)
    redis.kill()
    assert wait_for(lambda: not b.link.connected, timeout=10)
    a.shared.wrote(((ITEM, "t", FP),), None)  # lost: nobody hears it; and no error
    redis.start()
    assert wait_for(lambda: b.shared.reconnect_flushes == 1, timeout=10)
    assert b.cache.lookup(("t", FP)) is MISS
    assert FleetCacheFlushed("reconnect") in b.events
    # Coherence resumes after the flush.
    assert wait_for(lambda: a.link.connected, timeout=10)
    cached(b, key=("t", "after"))
    a.shared.wrote(((ITEM, "t", "after"),), None)
    assert wait_for(lambda: b.cache.lookup(("t", "after")) is MISS, timeout=10)


def test_a_paused_redis_found_by_the_ping_empties_the_cache_when_it_answers_again(fleet, redis):
    b = fleet()
    cached(b)
    redis.pause()
    try:
        assert wait_for(lambda: not b.link.connected, timeout=10)
    finally:
        redis.resume()
    assert wait_for(lambda: b.shared.reconnect_flushes == 1, timeout=10)
    assert b.cache.lookup(("t", FP)) is MISS


def test_before_its_first_subscription_is_live_a_worker_reads_past_its_cache(redis):
    link = FleetLink(redis.url, "coherence", **FAST)
    try:
        b = worker(link)
        for value in ("old", "new"):  # nothing kept: each read is loaded
            assert b.cache.get_or_load(("t", FP), lambda value=value: {"v": value}) == ({"v": value}, None)
        assert b.cache.counts()["fleet_link"] == "down"
        b.shared.start()
        assert wait_for(lambda: link.connected and not b.cache.bypassing, timeout=10)
        cached(b)
        assert b.cache.counts() == {"entries": 1, "evictions": 0, "expiries": 0, "fleet_link": "live", "bypassed": 2}
        assert b.shared.reconnect_flushes == 0  # not a reconnect
    finally:
        link.close()


# -- a worker whose own link is down reads past its cache ---------------------------


class Table:
    """One item in DynamoDB, read and written by workers (their caches in front)."""

    def __init__(self):
        self.value = "old"

    def read(self, parts):
        """A read through ``parts``' cache: the value it answered."""
        answer, _ = parts.cache.get_or_load(("t", FP), lambda: {"Item": {"v": self.value}})
        return answer["Item"]["v"]

    def write(self, parts, value):
        """A write through ``parts``: its own cache dropped, the drop sent to the fleet."""
        self.value = value
        drops = ((ITEM, "t", FP),)
        parts.cache.drop(drops)
        parts.shared.wrote(drops, None)


def in_use(parts):
    """The worker's link is up and its cache used again."""
    return parts.link.connected and parts.cache.counts().get("fleet_link") != "down"


@contextlib.contextmanager
def admin(redis):
    import redis as redis_py

    with redis_py.Redis.from_url(redis.url) as client:
        yield client


@pytest.mark.parametrize("outage", ["redis-killed", "this-worker-cut-off"])
def test_a_worker_whose_link_is_down_does_not_answer_a_write_made_elsewhere_from_its_cache(fleet, redis, outage):
    table = Table()
    if outage == "this-worker-cut-off":
        with admin(redis) as client:  # worker a connects as a user of its own, to be cut off alone
            client.acl_setuser("worker-a", enabled=True, passwords=["+secret"], keys=["*"], channels=["*"], commands=["+@all"])
        a = fleet(url=redis.url.replace("redis://", "redis://worker-a:secret@"))
    else:
        a = fleet()
    b = fleet()
    assert table.read(a) == "old" and table.read(a) == "old"  # cached
    if outage == "redis-killed":
        redis.kill()  # b's publish below fails (kept, sent later)
    else:
        # Worker a alone loses Redis (its connections closed, its reconnections
        # refused): b's publish below is taken, and a does not hear it.
        with admin(redis) as client:
            client.acl_setuser("worker-a", enabled=False)
            assert client.client_kill_filter(user="worker-a") >= 1
    assert wait_for(lambda: not a.link.connected, timeout=10)
    table.write(b, "new")
    assert a.link.status()["connected"] is False
    assert table.read(a) == "new", "a worker whose link is down answered from its cache"
    assert table.read(a) == "new"
    assert a.cache.counts() == {"entries": 0, "evictions": 0, "expiries": 0, "fleet_link": "down", "bypassed": 2}
    table.write(a, "newer")  # its own writes still drop (and are kept to send)
    assert table.read(a) == "newer"
    if outage == "redis-killed":
        redis.start()
    else:
        assert b.link.connected and b.link.sent == 1  # the write's drop went out; a missed it
        with admin(redis) as client:
            client.acl_setuser("worker-a", enabled=True)
    assert wait_for(lambda: in_use(a), timeout=10)
    assert a.shared.reconnect_flushes == 1
    assert table.read(a) == "newer"
    table.value = "only-in-dynamodb"  # (no write through a worker: the read below is a hit)
    assert table.read(a) == "newer", "the cache is used again after the reconnection"


def test_a_load_that_began_before_the_link_went_down_does_not_store_after(fleet, redis):
    a = fleet()
    loading, release = threading.Event(), threading.Event()

    def slow_load():
        loading.set()
        assert release.wait(10)
        return {"Item": {"v": "old"}}

    reader = threading.Thread(target=lambda: a.cache.get_or_load(("t", FP), slow_load))
    reader.start()
    assert loading.wait(10)
    redis.kill()
    assert wait_for(lambda: not a.link.connected, timeout=10)
    release.set()
    reader.join(10)
    assert a.cache.lookup(("t", FP)) is MISS, "a load from before the outage was stored, and answered during it"
    redis.start()
    assert wait_for(lambda: in_use(a), timeout=10)
    assert a.cache.lookup(("t", FP)) is MISS


def test_a_load_that_began_while_the_link_was_down_does_not_store_after_it_is_back(fleet, redis):
    a = fleet()
    redis.kill()
    assert wait_for(lambda: not a.link.connected, timeout=10)
    loading, release = threading.Event(), threading.Event()

    def slow_load():
        loading.set()
        assert release.wait(10)
        return {"Item": {"v": "old"}}  # read during the outage: a write elsewhere may follow, unheard

    reader = threading.Thread(target=lambda: a.cache.get_or_load(("t", FP), slow_load))
    reader.start()
    assert loading.wait(10)
    redis.start()
    assert wait_for(lambda: in_use(a), timeout=10)
    release.set()
    reader.join(10)
    assert a.cache.lookup(("t", FP)) is MISS, "a load made while the link was down was stored"


def test_a_request_that_settles_while_the_listener_finds_the_subscription_gone_does_not_read_the_cache(fleet, redis):
    a, b = fleet(), fleet()
    cached(a)
    inside, go_on = threading.Event(), threading.Event()
    a.link.subscribe("hold", lambda message: inside.set() or go_on.wait(10))  # the listener, inside a round
    assert b.link.publish("hold", {})
    assert inside.wait(10)
    b.shared.wrote(((ITEM, "t", "other"),), None)  # in a's socket, just before the link drops
    seen = []

    def request():
        a.shared.settle()  # waits for the round running now
        seen.append(a.cache.lookup(("t", FP)))

    requester = threading.Thread(target=request)
    requester.start()
    assert wait_for(lambda: a.link.status()["settled"] == 1, timeout=10)  # it waits
    redis.kill()  # the round's next read finds the socket closed
    go_on.set()
    requester.join(10)
    assert seen == [MISS], "a request read the cache of a worker whose subscription was gone"
    assert a.cache.bypassing
    assert a.shared.invalidations_applied == 1  # the drop that had arrived was applied, not lost


def test_an_unreadable_message_empties_the_cache(fleet):
    a, b = fleet(), fleet()
    cached(b)
    assert a.link.publish(TOPIC, {"v": 1, "w": [{"d": [["item", "t", [["pk", "X", "a"]]]]}]})
    assert wait_for(lambda: b.cache.lookup(("t", FP)) is MISS, timeout=10)


def test_a_worker_without_a_cache_still_follows_and_forgets(fleet):
    a, b = fleet(), fleet(cache=False)
    a.shared.wrote((), (REMOTE, ["t"], [("t", FP)], False))
    a.shared.changed(["t"])
    assert wait_for(lambda: b.forgotten == ["t"], timeout=10)
    assert b.sticky.region_for(Call("GetItem", {"TableName": "t", "Key": KEY})) == REMOTE


# -- what the link could not take (no Redis needed: the link's answer is the input) --


class RefusingLink:
    """A link whose publish says what ``answers`` says (True: taken)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.published = []
        self.callbacks = {}

    def start(self):
        pass

    def publish(self, topic, message):
        self.published.append(message)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def ping(self):
        return True

    def settle(self):
        pass

    def subscribe(self, topic, callback):
        self.callbacks[topic] = callback

    def on_connect(self, callback):
        self.callbacks["connect"] = callback

    def on_link(self, callback):
        self.callbacks["link"] = callback
        callback(True, 1)  # live

    def on_reconnect(self, callback):
        self.callbacks["reconnect"] = callback


def test_a_write_redis_could_not_take_is_sent_first_with_the_next_one():
    link = RefusingLink([False, RuntimeError("redis-py bug"), True])
    a = worker(link)
    a.shared.wrote(((ITEM, "t", FP),), None)
    a.shared.wrote(((TABLE, "u"),), None)  # an error from the link never reaches the writer
    a.shared.wrote(((TABLE, "v"),), None)
    assert [write["d"] for write in link.published[-1]["w"]] == [
        [["item", "t", [["pk", "S", "a"]]]],
        [["table", "u"]],
        [["table", "v"]],
    ]
    assert a.shared.status()["unsent"] == 0


def test_writes_unsent_past_the_bound_become_one_drop_of_everything():
    link = RefusingLink([False] * (MAX_UNSENT + 1) + [True])
    a = worker(link)
    for n in range(MAX_UNSENT + 1):
        a.shared.wrote(((TABLE, f"t{n}"),), None)
    a.shared.wrote(((TABLE, "last"),), None)
    assert link.published[-1]["w"] == [{"d": [["all"]]}, {"d": [["table", "last"]]}]


def test_unsent_writes_go_out_when_the_link_reconnects():
    link = RefusingLink([False, True])
    a = worker(link)
    a.shared.wrote(((TABLE, "t"),), None)
    link.callbacks["reconnect"]()
    assert link.published[-1]["w"] == [{"d": [["table", "t"]]}]


def test_a_key_that_cannot_be_sent_as_named_makes_every_worker_drop_everything():
    link = RefusingLink([True])
    a = worker(link)
    a.shared.wrote(((ITEM, "t", (("pk", ("S", object())),)),), None)
    assert link.published[-1]["w"] == [{"d": [["all"]]}]


def test_a_message_of_another_version_empties_the_cache():
    link = RefusingLink([])
    b = worker(link)
    cached(b)
    link.callbacks[TOPIC](FleetMessage(TOPIC, {"v": 99, "w": []}, "other:1:x", 0.0, False))
    assert b.cache.lookup(("t", FP)) is MISS


def test_a_settle_from_the_listeners_own_callback_does_not_wait_for_itself(fleet):
    a, b = fleet(), fleet()
    waited = []

    def settles(message):  # a listener of the fleet that calls back into the session
        b.shared.settle()
        waited.append(message.body)

    b.link.subscribe(TOPIC, settles)
    a.shared.wrote(((ITEM, "t", FP),), None)
    assert wait_for(lambda: len(waited) == 1, timeout=10)
    assert b.link.status()["settle_timeouts"] == 0  # it did not wait out its bound for its own round
