"""ReadCache: TTLs, eviction, invalidation, single flight, bounded waits,
fork safety."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from regionproxy._cache.store import MISS, ReadCache
from regionproxy._config.policies import CachePolicy
from tests.support import bounded


def test_second_read_is_a_hit_until_ttl(cache, clock):
    loads = []
    load = lambda: loads.append(1) or {"Item": {"v": len(loads)}}  # noqa: E731
    assert cache.get_or_load(("t", "k"), load) == ({"Item": {"v": 1}}, False)
    assert cache.get_or_load(("t", "k"), load) == ({"Item": {"v": 1}}, True)
    clock.now = 5.1
    assert cache.get_or_load(("t", "k"), load) == ({"Item": {"v": 2}}, False)


def test_invalidate_drops_the_entry(cache):
    cache.get_or_load(("t", "k"), lambda: {"v": 1})
    cache.invalidate(("t", "k"))
    assert cache.get_or_load(("t", "k"), lambda: {"v": 2}) == ({"v": 2}, False)


def test_callers_cannot_corrupt_cached_results(cache):
    result, _ = cache.get_or_load(("t", "k"), lambda: {"Item": {"v": 1}})
    result["Item"]["v"] = 99
    assert cache.get_or_load(("t", "k"), lambda: None)[0] == {"Item": {"v": 1}}


def test_concurrent_misses_make_one_load(cache):
    release = threading.Event()
    loads = []

    def load():
        loads.append(1)
        release.wait(5)
        return {"v": 1}

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_load(("t", "k"), load))) for _ in range(8)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    assert [result for result, _ in results] == [{"v": 1}] * 8


def test_load_overtaken_by_a_write_is_not_stored(cache):
    def load():
        cache.invalidate(("t", "k"))  # a write lands while the read is in flight
        return {"v": "old"}

    assert cache.get_or_load(("t", "k"), load) == ({"v": "old"}, False)
    assert cache.get_or_load(("t", "k"), lambda: {"v": "new"}) == ({"v": "new"}, False)


def test_failed_load_reaches_every_waiter_and_stores_nothing(cache):
    with pytest.raises(RuntimeError):
        cache.get_or_load(("t", "k"), lambda: (_ for _ in ()).throw(RuntimeError("down")))
    assert len(cache) == 0


def test_invalidate_table_drops_only_that_table(cache):
    cache.get_or_load(("t", "a"), lambda: 1)
    cache.get_or_load(("u", "a"), lambda: 2)
    cache.invalidate_table("t")
    assert cache.get_or_load(("t", "a"), lambda: 3) == (3, False)
    assert cache.get_or_load(("u", "a"), lambda: 4) == (2, True)


@pytest.mark.parametrize(
    ("operation", "params", "kept"),
    [
        pytest.param("PutItem", {"TableName": "t", "Item": {"pk": {"S": "a"}, "v": {"N": "1"}}}, {("t", "b"), ("u", "a")}, id="put"),
        pytest.param("DeleteItem", {"TableName": "t", "Key": {"pk": {"S": "a"}}}, {("t", "b"), ("u", "a")}, id="delete"),
        pytest.param(
            "BatchWriteItem",
            {"RequestItems": {"t": [{"PutRequest": {"Item": {"pk": {"S": "a"}}}}, {"DeleteRequest": {"Key": {"pk": {"S": "b"}}}}]}},
            {("u", "a")},
            id="batch",
        ),
        pytest.param("DeleteItem", {"TableName": "t", "Key": {"pk": "a"}}, {("u", "a")}, id="a-key-not-in-wire-format-drops-its-table"),
        pytest.param("ExecuteStatement", {"Statement": "UPDATE t SET v=1"}, {("u", "a")}, id="partiql-without-its-key-drops-its-table"),
        pytest.param("ExecuteStatement", {"Statement": "UPDATE t SET v=1 WHERE pk='a'"}, {("t", "b"), ("u", "a")}, id="partiql-key"),
        pytest.param("ExecuteStatement", {"Statement": "UPDATE `t` SET v=1"}, set(), id="unreadable-partiql-drops-all"),
        pytest.param("TransactWriteItems", {"TransactItems": [5]}, set(), id="malformed-drops-all"),
    ],
)
def test_invalidate_write_drops_what_the_write_touches(cache, operation, params, kept):
    from regionproxy._dynamodb.keys import key_fingerprint

    entries = [("t", {"pk": {"S": "a"}}), ("t", {"pk": {"S": "b"}}), ("u", {"pk": {"S": "a"}})]
    for table, key in entries:
        cache.get_or_load((table, key_fingerprint(key)), lambda: "cached")
    cache.invalidate_write(operation, params, lambda table: ("pk",))
    survivors = {
        (table, key["pk"]["S"])
        for table, key in entries
        if cache.get_or_load((table, key_fingerprint(key)), lambda: "reloaded")[1]
    }
    assert survivors == kept


class BlockedLoad:
    """A load that blocks (in its own thread) until released."""

    def __init__(self, cache, key, value):
        self.entered, self.release = threading.Event(), threading.Event()
        self.results = []

        def load():
            self.entered.set()
            self.release.wait(30)
            return value

        self.thread = threading.Thread(target=lambda: self.results.append(cache.get_or_load(key, load)), daemon=True)
        self.thread.start()
        assert self.entered.wait(10), "the leader started loading"

    def finish(self):
        self.release.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.results[0]


def test_reader_waits_at_most_wait_timeout_for_another_load(clock):
    cache = ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock, wait_timeout=0.05)
    stuck = BlockedLoad(cache, ("t", "k"), {"v": "stuck"})
    try:
        assert bounded(lambda: cache.get_or_load(("t", "k"), lambda: {"v": "own"})) == ({"v": "own"}, False)
        assert cache.get_or_load(("t", "k"), lambda: {"v": "third"}) == ({"v": "own"}, True), "the take-over stored"
    finally:
        assert stuck.finish() == ({"v": "stuck"}, False), "the overdue leader still answers its caller"
    assert cache.get_or_load(("t", "k"), lambda: None) == ({"v": "own"}, True), "the overdue result is not stored"


def test_take_over_load_overtaken_by_a_write_is_not_stored(clock):
    cache = ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock, wait_timeout=0.05)
    stuck = BlockedLoad(cache, ("t", "k"), {"v": "stuck"})

    def load():
        cache.invalidate(("t", "k"))
        return {"v": "old"}

    try:
        assert bounded(lambda: cache.get_or_load(("t", "k"), load)) == ({"v": "old"}, False)
    finally:
        stuck.finish()
    assert cache.get_or_load(("t", "k"), lambda: {"v": "new"}) == ({"v": "new"}, False)


def test_reader_within_wait_timeout_shares_the_load(clock):
    cache = ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock, wait_timeout=30)
    leader = BlockedLoad(cache, ("t", "k"), {"v": 1})
    follower = []
    thread = threading.Thread(target=lambda: follower.append(cache.get_or_load(("t", "k"), lambda: {"v": 2})))
    thread.start()
    leader.finish()
    thread.join(10)
    assert follower == [({"v": 1}, False)]


@pytest.mark.parametrize("wait_timeout", [pytest.param(0, id="zero"), pytest.param(-1, id="negative")])
def test_wait_timeout_must_be_positive(wait_timeout):
    from regionproxy.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        ReadCache(CachePolicy(maxsize=1, ttl=1.0), wait_timeout=wait_timeout)
    assert raised.value.setting == "wait_timeout"


def test_after_fork_a_reader_does_not_wait_for_the_parents_load(clock):
    cache = ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock, wait_timeout=3600)
    parents = BlockedLoad(cache, ("t", "k"), {"v": "parent"})
    try:
        cache._after_fork()  # what the child runs; the loading thread would not exist there
        assert bounded(lambda: cache.get_or_load(("t", "k"), lambda: {"v": "child"})) == ({"v": "child"}, False)
    finally:
        parents.finish()
    assert cache.get_or_load(("t", "k"), lambda: None) == ({"v": "child"}, True)


def test_after_fork_replaces_a_lock_held_by_another_thread(cache):
    cache.get_or_load(("t", "k"), lambda: {"v": 1})
    cache._lock.acquire()  # a thread was inside the cache at the fork
    cache._after_fork()
    assert bounded(lambda: cache.get_or_load(("t", "k"), lambda: {"v": 2})) == ({"v": 2}, False), (
        "entries that may have been half-written are dropped"
    )


def test_load_that_reads_its_own_key_does_not_wait_for_itself(clock):
    cache = ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock, wait_timeout=3600)

    def load():
        # e.g. a breaker listener that makes a DynamoDB call during the load
        inner = cache.get_or_load(("t", "k"), lambda: {"v": "inner"})
        return {"v": "outer", "inner": inner}

    result = bounded(lambda: cache.get_or_load(("t", "k"), load))
    assert result == ({"v": "outer", "inner": ({"v": "inner"}, False)}, False)
    assert cache.get_or_load(("t", "k"), lambda: None)[0]["v"] == "outer", "the outer load stores"


def test_no_such_item_answers_expire_after_negative_ttl(clock):
    cache = ReadCache(CachePolicy(maxsize=100, ttl=60, negative_ttl=1.0), clock=clock)
    absent = lambda answer: "Item" not in answer  # noqa: E731
    cache.get_or_load(("t", "gone"), lambda: {}, negative=absent)
    cache.get_or_load(("t", "here"), lambda: {"Item": {"v": 1}}, negative=absent)
    clock.now = 1.1
    assert cache.get_or_load(("t", "gone"), lambda: {"Item": {"v": 2}}, negative=absent) == ({"Item": {"v": 2}}, False)
    assert cache.get_or_load(("t", "here"), lambda: None, negative=absent) == ({"Item": {"v": 1}}, True)
    assert cache.counts()["expiries"] == 1


def test_negative_ttl_zero_keeps_no_such_item_answers(clock):
    cache = ReadCache(CachePolicy(maxsize=100, ttl=60, negative_ttl=0), clock=clock)
    cache.get_or_load(("t", "gone"), lambda: {}, negative=lambda answer: True)
    assert len(cache) == 0


def test_past_maxsize_the_least_recently_used_entry_is_evicted_and_counted(clock):
    cache = ReadCache(CachePolicy(maxsize=2, ttl=60), clock=clock)
    cache.get_or_load(("t", "a"), lambda: 1)
    cache.get_or_load(("t", "b"), lambda: 2)
    cache.get_or_load(("t", "a"), lambda: None)  # a hit: "a" is now the most recent
    cache.get_or_load(("u", "c"), lambda: 3)
    assert cache.get_or_load(("t", "b"), lambda: "reloaded") == ("reloaded", False)
    assert cache.counts()["evictions"] == 2  # "b", then "a" to make room for "b"
    assert {(event.table, event.reason) for event in cache.take_dropped()} == {("t", "size")}
    assert cache.take_dropped() == []


def test_a_write_drops_queries_of_its_partition_and_the_tables_index_queries(cache):
    from regionproxy._cache.keys import QUERY
    from regionproxy._dynamodb.keys import key_fingerprint

    cache.get_or_load(("t", QUERY, "p=a"), lambda: "a", tags=(("t", "pk", ("S", "a")),))
    cache.get_or_load(("t", QUERY, "p=b"), lambda: "b", tags=(("t", "pk", ("S", "b")),))
    cache.get_or_load(("t", QUERY, "index"), lambda: "i", tags=(("t", None),))
    cache.invalidate_item("t", key_fingerprint({"pk": {"S": "a"}, "sk": {"S": "1"}}))
    assert cache.get_or_load(("t", QUERY, "p=a"), lambda: "new")[1] is False
    assert cache.get_or_load(("t", QUERY, "p=b"), lambda: "new")[1] is True
    assert cache.get_or_load(("t", QUERY, "index"), lambda: "new")[1] is False


def test_a_write_during_a_query_load_keeps_its_page_out(cache):
    from regionproxy._cache.keys import QUERY
    from regionproxy._dynamodb.keys import key_fingerprint

    def load():
        cache.invalidate_item("t", key_fingerprint({"pk": {"S": "a"}}))
        return "old"

    cache.get_or_load(("t", QUERY, "p=a"), load, tags=(("t", "pk", ("S", "a")),))
    assert cache.get_or_load(("t", QUERY, "p=a"), lambda: "new") == ("new", False)


def test_a_reader_after_a_write_does_not_take_the_answer_of_a_load_from_before_it(clock):
    cache = ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock, wait_timeout=3600)
    before = BlockedLoad(cache, ("t", "k"), {"v": "before the write"})
    try:
        cache.invalidate(("t", "k"))  # the write lands while that load is in flight
        assert bounded(lambda: cache.get_or_load(("t", "k"), lambda: {"v": "after"})) == ({"v": "after"}, False)
    finally:
        assert before.finish() == ({"v": "before the write"}, False)
    assert cache.get_or_load(("t", "k"), lambda: None) == ({"v": "after"}, True), "the older load stored nothing"


def test_dropping_a_tables_entries_compares_no_key_of_another_table(cache):
    """A write whose keys cannot be named drops its table's entries without
    a scan of the whole cache under the lock."""

    class Name(str):
        compared = 0

        def __eq__(self, other):
            Name.compared += 1
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    big = Name("Big")
    for n in range(50):
        cache.get_or_load((big, n), lambda: "big")
    cache.get_or_load(("Small", 1), lambda: "small")
    Name.compared = 0
    cache.invalidate_table("Small")
    assert Name.compared == 0
    assert cache.get_or_load(("Small", 1), lambda: "reloaded") == ("reloaded", False)
    assert cache.get_or_load((big, 0), lambda: "reloaded") == ("big", True)
    assert len(cache) == 51


def test_a_drop_of_a_table_counts_and_evicts_its_entries_as_gone(clock):
    cache = ReadCache(CachePolicy(maxsize=3, ttl=60), clock=clock)
    for n in range(3):
        cache.get_or_load(("t", n), lambda n=n: n)
    cache.invalidate_table("t")
    assert len(cache) == 0 and cache.counts()["entries"] == 0
    for n in range(3):
        cache.get_or_load(("u", n), lambda n=n: n)
    assert len(cache) == 3
    assert cache.counts()["evictions"] == 0, "dropped entries make room without counting as evictions"
    assert [cache.get_or_load(("u", n), lambda: None)[1] for n in range(3)] == [True] * 3


def test_a_load_in_flight_when_its_table_is_dropped_is_not_stored(cache):
    def load():
        cache.invalidate_table("t")  # a write whose keys are unknown lands meanwhile
        return "old"

    assert cache.get_or_load(("t", "k"), load) == ("old", False)
    assert cache.get_or_load(("t", "k"), lambda: "new") == ("new", False)


def test_dropping_everything_frees_the_entries_after_releasing_the_lock(cache):
    """A write whose tables cannot be named (a PartiQL statement that cannot
    be read) drops every entry: the lock is held to swap the dictionaries,
    not to free each entry."""

    class Answer:
        freed_under_the_lock = []

        def __del__(self):
            Answer.freed_under_the_lock.append(cache._lock.locked())

    for n in range(20):
        cache.get_or_load(("t", n), Answer)  # the caller's copy is freed at once
    Answer.freed_under_the_lock.clear()
    cache.invalidate_write("ExecuteStatement", {"Statement": "UPDATE `t` SET v=1"}, lambda table: ("pk",))
    assert Answer.freed_under_the_lock == [False] * 20
    assert len(cache) == 0


# -- the store: cachetools' TLRUCache, under the cache's lock ----------------------


def test_expired_entries_go_when_another_is_stored_and_count_as_expired(clock):
    cache = ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock)
    for n in range(10):
        cache.get_or_load(("t", n), lambda n=n: n)
    clock.now = 6
    cache.get_or_load(("t", "new"), lambda: "new")
    assert cache.counts() == {"entries": 1, "evictions": 0, "expiries": 10}
    assert [(event.table, event.reason, event.count) for event in cache.take_dropped()] == [("t", "expired", 10)]


def test_an_entry_of_a_dropped_table_goes_when_its_key_is_read(clock):
    cache = ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock)
    cache.get_or_load(("t", "k"), lambda: "old")
    cache.invalidate_table("t")
    assert cache.lookup(("t", "k")) is MISS
    assert cache.counts() == {"entries": 0, "evictions": 0, "expiries": 0}
    assert cache.get_or_load(("t", "k"), lambda: "new") == ("new", False)
    assert len(cache) == 1


def test_an_expired_page_dropped_while_it_is_loaded_again_is_still_dropped_by_a_write(clock):
    """The page's load in flight is filed under the page's tags: the expired
    entry going meanwhile must not take them with it, or a write during the
    load would not find the load, and the page from before the write would
    be kept."""
    from regionproxy._cache.keys import QUERY, write_tags

    cache = ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock)
    page, tags = ("t", QUERY, "pk=a"), (("t", "pk", ("S", "a")),)
    cache.get_or_load(page, lambda: "first", tags=tags)
    clock.now = 6  # the page expired

    def load():
        cache.get_or_load(("t", "other"), lambda: "x")  # a store meanwhile drops the expired page
        cache.invalidate_item("t", (("pk", ("S", "a")),))  # a write of the partition lands
        assert ("t", "pk", ("S", "a")) in write_tags("t", (("pk", ("S", "a")),))
        return "from before the write"

    assert cache.get_or_load(page, load, tags=tags) == ("from before the write", False)
    assert cache.get_or_load(page, lambda: "after", tags=tags) == ("after", False)


def _ten_attribute_answers(form, count):
    """GetItem answers of ``count`` 10-attribute items (strings, numbers,
    string sets), as bench_cache.py caches them, each with its own metadata."""
    from boto3.dynamodb.types import TypeSerializer

    serialize = TypeSerializer().serialize
    for n in range(count):
        item = {"pk": f"m-{n}"}
        for a in range(1, 10):
            item[f"a{a}"] = f"value {a}" if a % 3 == 0 else Decimal(a) if a % 3 == 1 else {f"x{a}", f"y{a}"}
        if form == "wire":
            item = {name: serialize(value) for name, value in item.items()}
        request_id = f"{n:052}"
        headers = {"server": "Server", "date": "Tue, 25 Nov 2026 09:43:00 GMT", "content-type": "application/x-amz-json-1.0",
                   "content-length": "312", "connection": "keep-alive", "x-amzn-requestid": request_id, "x-amz-crc32": "3415911"}  # fmt: skip
        metadata = {"RequestId": request_id, "HTTPStatusCode": 200, "HTTPHeaders": headers, "RetryAttempts": 0}
        yield f"m-{n}", {"Item": item, "ResponseMetadata": metadata}


@pytest.mark.parametrize("form", ["wire", "values"])
def test_a_cached_10_attribute_item_takes_at_most_1_kib(form):
    """What stays allocated per cached item (tracemalloc): entry, key,
    store and the item packed, with a request id of its own (52 characters,
    as DynamoDB's)."""
    import gc
    import tracemalloc

    from regionproxy._cache.keys import VALUES

    count = 2_000
    cache = ReadCache(CachePolicy(maxsize=count, ttl=3600))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key, answer in _ten_attribute_answers(form, count):  # each made, cached, and let go
            fingerprint = (("pk", ("S", key)),)
            cache.get_or_load(("t", fingerprint) if form == "wire" else ("t", fingerprint, VALUES), lambda answer=answer: answer)
        del key, answer
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == count
    assert used / count <= 1024, f"{used / count:.0f} bytes per item"


# -- a fleet's cache: bypassed while its link is down (regionproxy._fleet.coherence) ----


def test_a_cache_that_follows_a_link_is_bypassed_until_the_link_is_live(cache):
    cache.follow_link()
    assert cache.get_or_load(("t", "k"), lambda: {"v": 1}) == ({"v": 1}, None)
    assert cache.lookup(("t", "k")) is MISS and cache.begin([("t", "j"), ("t", "i")]) == {}
    assert cache.counts() == {"entries": 0, "evictions": 0, "expiries": 0, "fleet_link": "down", "bypassed": 3}
    cache.link_changed(True, 1)
    cache.get_or_load(("t", "k"), lambda: {"v": 2})
    assert cache.lookup(("t", "k")) == {"v": 2}
    cache.link_changed(False, 2)
    assert cache.lookup(("t", "k")) is MISS  # emptied as the link went down


def test_a_link_change_announced_late_does_not_undo_a_newer_one(cache):
    cache.follow_link()
    cache.link_changed(False, 2)  # one thread found the link down ...
    cache.link_changed(True, 1)  # ... after the listener made it live, whose news came second
    assert cache.bypassing
    cache.link_changed(True, 3)
    assert not cache.bypassing


def test_a_cache_without_a_link_ignores_link_changes_and_says_nothing_of_one(cache):
    cache.link_changed(False, 1)
    cache.get_or_load(("t", "k"), lambda: {"v": 1})
    assert cache.lookup(("t", "k")) == {"v": 1}
    assert "fleet_link" not in cache.counts()


def test_a_load_in_flight_when_the_link_goes_down_or_comes_back_stores_nothing(cache):
    cache.follow_link()
    cache.link_changed(True, 1)
    for change in ((False, 2), (True, 3)):
        flights = cache.begin([("t", "k")])
        cache.link_changed(*change)
        for key, flight in flights.items():
            cache.answer(flight, {"v": "loaded before the change"}, negative=False)
            cache.finish(key, flight)
        assert cache.lookup(("t", "k")) is MISS


def test_a_forked_child_of_a_cache_that_follows_a_link_is_bypassed_until_its_own_link_is_live(cache):
    cache.follow_link()
    cache.link_changed(True, 5)
    cache.get_or_load(("t", "k"), lambda: {"v": 1})
    cache._after_fork()  # noqa: SLF001 - what the fork hook runs in the child
    assert cache.bypassing and cache.lookup(("t", "k")) is MISS
    cache.link_changed(True, 1)  # the child's link numbers its changes from 1
    assert not cache.bypassing
