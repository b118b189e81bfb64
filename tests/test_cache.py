"""ReadCache: TTL, invalidation, single flight."""

from __future__ import annotations

import threading

import pytest

from regionproxy.cache import ReadCache
from regionproxy.config import CachePolicy


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cache(clock):
    return ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock)


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
        pytest.param("PutItem", {"TableName": "t", "Item": {"pk": "a", "v": 1}}, {("t", "b"), ("u", "a")}, id="put"),
        pytest.param("DeleteItem", {"TableName": "t", "Key": {"pk": "a"}}, {("t", "b"), ("u", "a")}, id="delete"),
        pytest.param(
            "BatchWriteItem",
            {"RequestItems": {"t": [{"PutRequest": {"Item": {"pk": "a"}}}, {"DeleteRequest": {"Key": {"pk": "b"}}}]}},
            {("u", "a")},
            id="batch",
        ),
        pytest.param("ExecuteStatement", {"Statement": "UPDATE t SET v=1"}, set(), id="partiql-drops-all"),
    ],
)
def test_invalidate_write_drops_what_the_write_touches(cache, operation, params, kept):
    from regionproxy.operations import key_fingerprint

    entries = [("t", {"pk": "a"}), ("t", {"pk": "b"}), ("u", {"pk": "a"})]
    for table, key in entries:
        cache.get_or_load((table, key_fingerprint(key)), lambda: "cached")
    cache.invalidate_write(operation, params, lambda table: ("pk",))
    survivors = {
        (table, key["pk"])
        for table, key in entries
        if cache.get_or_load((table, key_fingerprint(key)), lambda: "reloaded")[1]
    }
    assert survivors == kept
