"""ReadCache: TTL, invalidation, single flight."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from decimal import Decimal
from types import MappingProxyType

import pytest

from regionproxy._cache.store import ReadCache
from regionproxy._config.settings import CachePolicy


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
    from regionproxy._cache.keys import item_key_fingerprint

    entries = [("t", {"pk": {"S": "a"}}), ("t", {"pk": {"S": "b"}}), ("u", {"pk": {"S": "a"}})]
    for table, key in entries:
        cache.get_or_load((table, item_key_fingerprint(key)), lambda: "cached")
    cache.invalidate_write(operation, params, lambda table: ("pk",))
    survivors = {
        (table, key["pk"]["S"])
        for table, key in entries
        if cache.get_or_load((table, item_key_fingerprint(key)), lambda: "reloaded")[1]
    }
    assert survivors == kept


# -- bounded waits and fork safety ------------------------------------------------


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


def _bounded(target, timeout=10.0):
    """``target()``'s result, run in a daemon thread; fails instead of hanging."""
    out = []
    thread = threading.Thread(target=lambda: out.append(target()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the reader waited without a bound"
    return out[0]


def test_reader_waits_at_most_wait_timeout_for_another_load(clock):
    cache = ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock, wait_timeout=0.05)
    stuck = BlockedLoad(cache, ("t", "k"), {"v": "stuck"})
    try:
        assert _bounded(lambda: cache.get_or_load(("t", "k"), lambda: {"v": "own"})) == ({"v": "own"}, False)
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
        assert _bounded(lambda: cache.get_or_load(("t", "k"), load)) == ({"v": "old"}, False)
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
        assert _bounded(lambda: cache.get_or_load(("t", "k"), lambda: {"v": "child"})) == ({"v": "child"}, False)
    finally:
        parents.finish()
    assert cache.get_or_load(("t", "k"), lambda: None) == ({"v": "child"}, True)


def test_after_fork_replaces_a_lock_held_by_another_thread(cache):
    cache.get_or_load(("t", "k"), lambda: {"v": 1})
    cache._lock.acquire()  # a thread was inside the cache at the fork
    cache._after_fork()
    assert _bounded(lambda: cache.get_or_load(("t", "k"), lambda: {"v": 2})) == ({"v": 2}, False), (
        "entries that may have been half-written are dropped"
    )


def test_load_that_reads_its_own_key_does_not_wait_for_itself(clock):
    cache = ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock, wait_timeout=3600)

    def load():
        # e.g. a breaker listener that makes a DynamoDB call during the load
        inner = cache.get_or_load(("t", "k"), lambda: {"v": "inner"})
        return {"v": "outer", "inner": inner}

    result = _bounded(lambda: cache.get_or_load(("t", "k"), load))
    assert result == ({"v": "outer", "inner": ({"v": "inner"}, False)}, False)
    assert cache.get_or_load(("t", "k"), lambda: None)[0]["v"] == "outer", "the outer load stores"


# -- policy, TTLs, eviction, copies, query tags --------------------------------------


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


@pytest.mark.parametrize(
    ("policy", "setting"),
    [
        pytest.param({"negative_ttl": -1}, "negative_ttl", id="negative-ttl-below-zero"),
        pytest.param({"negative_ttl": float("nan")}, "negative_ttl", id="negative-ttl-nan"),
        pytest.param({"negative_ttl": "1"}, "negative_ttl", id="negative-ttl-text"),
        pytest.param({"tables": "Items"}, "tables", id="tables-as-one-string"),
        pytest.param({"tables": []}, "tables", id="tables-empty"),
        pytest.param({"tables": ["no spaces allowed"]}, "tables", id="tables-bad-name"),
        pytest.param({"tables": {"Items": 1}}, "tables", id="tables-dict"),
    ],
)
def test_bad_cache_policy_values_are_config_errors_naming_the_field(policy, setting):
    from regionproxy.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        CachePolicy(**policy)
    assert raised.value.setting == setting


def test_tables_opt_in_and_none_means_every_table():
    assert CachePolicy().caches("Anything")
    policy = CachePolicy(tables=["Blog", "Users"])
    assert policy.caches("Blog") and not policy.caches("Other")


def test_cache_variables_are_read_from_the_environment():
    from regionproxy._config.environment import settings_from_env
    from regionproxy.errors import ConfigError

    env = {"REGIONPROXY_REGIONS": "eu-west-3", "REGIONPROXY_CACHE_NEGATIVE_TTL": "0.5", "REGIONPROXY_CACHE_TABLES": "Blog, Users"}
    assert settings_from_env(env).cache == CachePolicy(negative_ttl=0.5, tables=("Blog", "Users"))
    with pytest.raises(ConfigError) as raised:
        settings_from_env({**env, "REGIONPROXY_CACHE_TABLES": "Blog,,Users"})
    assert raised.value.setting == "REGIONPROXY_CACHE_TABLES"


_WIRE_ITEM = {
    "pk": {"S": "a"},
    "n": {"N": "1.50"},
    "b": {"B": b"\x00\x01"},
    "ss": {"SS": ["x", "y"]},
    "ns": {"NS": ["1", "2"]},
    "bs": {"BS": [b"x", b"y"]},
    "l": {"L": [{"S": "x"}, {"M": {"deep": {"L": [{"N": "3"}]}}}]},
    "m": {"M": {"k": {"M": {"nested": {"N": "0.1"}}}}},
    "flag": {"BOOL": True},
    "none": {"NULL": True},
}
_METADATA = {
    "RequestId": "r1",
    "HTTPStatusCode": 200,
    "HTTPHeaders": {"x-amzn-requestid": "r1", "content-type": "application/x-amz-json-1.0"},
    "RetryAttempts": 0,
}


def _copy_cases():
    from decimal import Decimal

    from boto3.dynamodb.types import Binary

    python_item = {"s": "x", "n": Decimal("1.5"), "ss": {"a"}, "b": Binary(b"1"), "l": [1, [2], {"m": {3}}], "none": None}
    return [
        pytest.param({"Item": python_item, "ResponseMetadata": _METADATA}, id="python-values"),
        pytest.param({"Item": _WIRE_ITEM, "ResponseMetadata": _METADATA}, id="wire-format"),
        pytest.param({f"a{n}": {"SS": [str(n)]} for n in range(40)}, id="many-keys-of-containers"),
        pytest.param({f"a{n}": {"S": str(n)} if n % 2 else "x" for n in range(40)}, id="many-keys-some-shared"),
        pytest.param({f"a{n}": [str(n)] for n in range(40)}, id="many-keys-of-containers-of-immutables"),
        pytest.param([{"a": [1]}, "x", {"b": {"c": [2]}}, [[3]]], id="list-some-shared"),
        pytest.param([[1], {2}, {"x": 3}], id="list-of-containers"),
        pytest.param({1: [1], (2, 3): {"x": [4]}, "s": ["y"]}, id="keys-that-are-not-strings"),
        pytest.param({"odd": bytearray(b"xy"), "deep": [bytearray(b"z")]}, id="odd-values-deep-copied"),
        pytest.param({"bs": {Binary(b"x"), Binary(b"y"), b"z"}, "l": [{Binary(b"w")}]}, id="binary-in-sets"),
        pytest.param({"b": Binary(bytearray(b"x")), "l": [Binary(bytearray(b"y"))]}, id="binary-holding-a-bytearray"),
        pytest.param({"f": frozenset({Binary(b"x")}), "t": (Binary(b"y"),)}, id="immutable-containers-of-binary"),
    ]


def _containers(value):
    """Every mutable object in ``value``, depth first."""
    from boto3.dynamodb.types import Binary

    if isinstance(value, dict | list | set | bytearray | Binary):
        yield value
    if isinstance(value, Binary):
        yield from _containers(value.value)
    elif isinstance(value, dict):
        for part in value.values():
            yield from _containers(part)
    elif isinstance(value, list | tuple | set | frozenset):
        for part in value:
            yield from _containers(part)


@pytest.mark.parametrize("value", _copy_cases())
def test_copies_equal_the_original_with_the_same_types_and_share_nothing_mutable(value):
    import copy

    from regionproxy._cache.copies import HOT, compiled_copier, copier, copy_by, copy_plan

    before = copy.deepcopy(value)
    plan = copy_plan(value)
    copy_ = copier(plan)
    copies = [copy_(value) for _ in range(HOT + 1)]  # interpreted, then compiled once hot
    for copied in (copies[0], copies[-1], compiled_copier(plan)(value), copy_by(plan, value)):
        assert _typed(copied) == _typed(value)
        originals = {id(part) for part in _containers(value)}
        assert originals and not originals & {id(part) for part in _containers(copied)}
    assert _typed(value) == _typed(before), "copying changed nothing"


def _typed(value):
    """``value`` with every type spelled out, so ``==`` cannot hide a type change."""
    if isinstance(value, dict):
        return ("dict", {repr(name): _typed(part) for name, part in value.items()})
    if isinstance(value, list):
        return ("list", [_typed(part) for part in value])
    if isinstance(value, set):
        return ("set", sorted(repr(part) for part in value))
    return (type(value).__name__, repr(value))


@pytest.mark.parametrize(
    ("params", "tags"),
    [
        pytest.param(
            {"KeyConditionExpression": "pk = :p AND sk > :s", "ExpressionAttributeValues": {":p": {"S": "a"}, ":s": {"S": "b"}}},
            {("t", "pk", ("S", "a"))},
            id="partition-equality",
        ),
        pytest.param(
            {"KeyConditionExpression": "(:p = #k) and #r <= :s", "ExpressionAttributeNames": {"#k": "pk", "#r": "sk"},
             "ExpressionAttributeValues": {":p": {"N": "1.0"}, ":s": {"S": "b"}}},
            {("t", "pk", ("N", "1"))},
            id="placeholders-reversed-numbers-by-value",
        ),  # fmt: skip
        pytest.param(
            {"KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "a"}]}}},
            {("t", "pk", ("S", "a"))},
            id="legacy-key-conditions",
        ),
        pytest.param(
            {"IndexName": "g", "KeyConditionExpression": "g = :g", "ExpressionAttributeValues": {":g": {"S": "a"}}},
            {("t", None)},
            id="index-is-table-wide",
        ),
        pytest.param({"KeyConditionExpression": "begins_with(pk, :p)"}, {("t", None)}, id="no-equality-is-table-wide"),
    ],
)
def test_query_tags_name_what_invalidates_a_query(params, tags):
    from regionproxy._cache.keys import query_tags

    assert set(query_tags("t", params)) == tags


def test_a_write_drops_queries_of_its_partition_and_the_tables_index_queries(cache):
    from regionproxy._cache.keys import QUERY
    from regionproxy._dynamodb.operations import key_fingerprint

    cache.get_or_load(("t", QUERY, "p=a"), lambda: "a", tags=(("t", "pk", ("S", "a")),))
    cache.get_or_load(("t", QUERY, "p=b"), lambda: "b", tags=(("t", "pk", ("S", "b")),))
    cache.get_or_load(("t", QUERY, "index"), lambda: "i", tags=(("t", None),))
    cache.invalidate_item("t", key_fingerprint({"pk": {"S": "a"}, "sk": {"S": "1"}}))
    assert cache.get_or_load(("t", QUERY, "p=a"), lambda: "new")[1] is False
    assert cache.get_or_load(("t", QUERY, "p=b"), lambda: "new")[1] is True
    assert cache.get_or_load(("t", QUERY, "index"), lambda: "new")[1] is False


def test_a_write_during_a_query_load_keeps_its_page_out(cache):
    from regionproxy._cache.keys import QUERY
    from regionproxy._dynamodb.operations import key_fingerprint

    def load():
        cache.invalidate_item("t", key_fingerprint({"pk": {"S": "a"}}))
        return "old"

    cache.get_or_load(("t", QUERY, "p=a"), load, tags=(("t", "pk", ("S", "a")),))
    assert cache.get_or_load(("t", QUERY, "p=a"), lambda: "new") == ("new", False)


def test_values_key_fingerprint_matches_the_wire_keys():
    from decimal import Decimal

    from boto3.dynamodb.types import Binary

    from regionproxy._cache.keys import values_key_fingerprint
    from regionproxy._dynamodb.operations import key_fingerprint

    assert values_key_fingerprint({"pk": "a", "n": Decimal("10")}) == key_fingerprint({"n": {"N": "1E+1"}, "pk": {"S": "a"}})
    assert values_key_fingerprint({"pk": 0, "b": Binary(b"x")}) == key_fingerprint({"pk": {"N": "0.00"}, "b": {"B": b"x"}})
    assert values_key_fingerprint({"pk": 1.5}) is None, "floats: boto3 refuses them, so the uncached path must run"


def test_a_reader_after_a_write_does_not_take_the_answer_of_a_load_from_before_it(clock):
    cache = ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock, wait_timeout=3600)
    before = BlockedLoad(cache, ("t", "k"), {"v": "before the write"})
    try:
        cache.invalidate(("t", "k"))  # the write lands while that load is in flight
        assert _bounded(lambda: cache.get_or_load(("t", "k"), lambda: {"v": "after"})) == ({"v": "after"}, False)
    finally:
        assert before.finish() == ({"v": "before the write"}, False)
    assert cache.get_or_load(("t", "k"), lambda: None) == ({"v": "after"}, True), "the older load stored nothing"


# -- through the session: GetItem hits before a Call is built ----------------------

REGIONS = ["eu-west-3", "us-east-1"]
KEY = {"pk": {"S": "a"}}


class Backend:
    """Stands in for the session's attempt loop: answers a GetItem or a Query
    with a fresh copy of one response, anything else with ``{}``; records each call
    and the region it went to, and answers from ``answer_from`` if given."""

    def __init__(self):
        self.calls = []
        self.answer_from = None

    def __call__(self, call, plan, *, hedge=True, maybe_applied=None):
        import copy

        region = self.answer_from or plan[0]
        self.calls.append((call.operation, dict(call.params), region))
        if call.operation == "GetItem":
            return copy.deepcopy({"Item": _WIRE_ITEM, "ResponseMetadata": _METADATA}), region
        if call.operation == "Query":
            return copy.deepcopy({"Items": [_WIRE_ITEM], "Count": 1, "ScannedCount": 1, "ResponseMetadata": _METADATA}), region
        return {}, region

    def reads(self, operation="GetItem"):
        return [(params, region) for called, params, region in self.calls if called == operation]


@pytest.fixture
def backend():
    return Backend()


@pytest.fixture
def session(backend):
    return _session(backend)


def _session(backend, **cache):
    import regionproxy as rp

    session = rp.RegionSession(
        REGIONS,
        endpoints={region: "http://127.0.0.1:9" for region in REGIONS},  # never reached: the backend answers
        cache=CachePolicy(**{"ttl": 60, **cache}),
        key_schemas={"Items": ("pk",), "Other": ("pk",)},
    )
    session.attempts.run = backend
    return session


def _spoil(value):
    """Change every mutable part of ``value``, at every level."""
    from boto3.dynamodb.types import Binary

    if isinstance(value, dict):
        for part in list(value.values()):
            _spoil(part)
        value["spoilt"] = "junk"
    elif isinstance(value, list):
        for part in value:
            _spoil(part)
        value.append("junk")
    elif isinstance(value, set):
        for part in value:
            _spoil(part)
        value.add("junk")
    elif isinstance(value, Binary):
        value.value = b"junk"


@pytest.mark.parametrize("surface", ["client", "table"])
def test_a_caller_who_changes_any_part_of_a_hit_does_not_change_the_next_callers(session, backend, surface):
    if surface == "client":

        def read():
            return session.client.get_item(TableName="Items", Key={"pk": {"S": "a"}})
    else:

        def read():
            return session.table("Items").get_item(Key={"pk": "a"})

    first = read()  # the miss
    expected = _typed(first)
    _spoil(first)
    for _ in range(3):
        hit = read()
        assert _typed(hit) == expected
        assert hit["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"] == "r1"
        _spoil(hit)
    assert len(backend.reads()) == 1, "the later reads were hits"


def test_a_client_hit_answers_exactly_what_the_uncached_call_answered(session, backend):
    uncached = _session(Backend(), tables=["Other"]).client.get_item(TableName="Items", Key=KEY)
    session.client.get_item(TableName="Items", Key=KEY)
    hit = session.client.get_item(TableName="Items", Key=KEY)
    assert _typed(hit) == _typed(uncached) == _typed({"Item": _WIRE_ITEM, "ResponseMetadata": _METADATA})
    assert len(backend.reads()) == 1


@pytest.mark.parametrize(
    ("params", "cache"),
    [
        pytest.param({"ConsistentRead": True}, {}, id="consistent-read"),
        pytest.param({"ConsistentRead": 0}, {}, id="consistent-read-not-a-bool"),
        pytest.param({"ProjectionExpression": "pk"}, {}, id="projection"),
        pytest.param({"ReturnConsumedCapacity": "TOTAL"}, {}, id="capacity-report"),
        pytest.param({"ConsistentRead": False, "ReturnConsumedCapacity": "NONE"}, {}, id="any-fourth-parameter"),
        pytest.param({}, {"tables": ["Other"]}, id="table-not-opted-in"),
    ],
)
def test_get_items_the_cache_may_not_answer_all_reach_dynamodb(backend, params, cache):
    session = _session(backend, **cache)
    for _ in range(2):
        session.client.get_item(TableName="Items", Key=KEY, **params)
    assert len(backend.reads()) == 2
    assert session.status()["cache"]["hits"] == 0


def test_consistent_read_false_is_cached_like_a_plain_get_item(session, backend):
    session.client.get_item(TableName="Items", Key=KEY)
    session.client.get_item(TableName="Items", Key=KEY, ConsistentRead=False)
    assert len(backend.reads()) == 1


@pytest.mark.parametrize(
    ("params", "key"),
    [
        pytest.param({"TableName": "T", "Key": {"pk": {"S": "a"}}}, ("T", (("pk", ("S", "a")),)), id="plain"),
        pytest.param(
            {"TableName": "T", "Key": {"sk": {"N": "1.0"}, "pk": {"S": "a"}}, "ConsistentRead": False},
            ("T", (("pk", ("S", "a")), ("sk", ("N", "1")))),
            id="two-attributes-numbers-by-value",
        ),
        pytest.param({"TableName": "T", "Key": {"pk": {"S": "a"}}, "ConsistentRead": True}, None, id="consistent"),
        pytest.param({"TableName": "T", "Key": {"pk": {"S": "a"}}, "ConsistentRead": None}, None, id="consistent-none"),
        pytest.param({"TableName": "T", "Key": {"pk": {"S": "a"}}, "AttributesToGet": ["pk"]}, None, id="projection"),
        pytest.param({"TableName": "T", "Key": [("pk", {"S": "a"})]}, None, id="key-not-a-mapping"),
        pytest.param({"TableName": b"T", "Key": {"pk": {"S": "a"}}}, None, id="table-not-a-string"),
        pytest.param({"Key": {"pk": {"S": "a"}}, "ConsistentRead": False}, None, id="no-table"),
    ],
)
def test_get_item_cache_key_is_the_calls_and_none_where_the_cache_is_bypassed(params, key):
    from regionproxy._dynamodb.calls import Call, get_item_cache_key

    assert get_item_cache_key(params) == key
    assert Call("GetItem", params).cache_key == key


def test_each_get_item_is_one_cache_lookup_event_and_counted_once(backend):
    from regionproxy.events import CacheLookup

    session = _session(backend)
    seen = []
    session.hooks.add(lambda event: seen.append(event) if isinstance(event, CacheLookup) else None)
    for _ in range(3):
        session.client.get_item(TableName="Items", Key=KEY)
    assert [event.hit for event in seen] == [False, True, True]
    assert {(event.table, event.operation) for event in seen} == {("Items", "GetItem")}
    assert {name: session.status()["cache"][name] for name in ("hits", "misses")} == {"hits": 2, "misses": 1}


def test_a_write_through_the_session_drops_the_hit(session, backend):
    session.client.get_item(TableName="Items", Key=KEY)
    session.client.put_item(TableName="Items", Item={"pk": {"S": "a"}, "v": {"S": "new"}})
    session.client.get_item(TableName="Items", Key=KEY)
    assert len(backend.reads()) == 2


def test_after_a_write_fails_over_its_key_is_read_from_the_writes_region_then_cached(session, backend):
    session.client.get_item(TableName="Items", Key=KEY)
    backend.answer_from = "us-east-1"  # the write fails over
    session.client.put_item(TableName="Items", Item={"pk": {"S": "a"}})
    backend.answer_from = None
    session.client.get_item(TableName="Items", Key=KEY)
    session.client.get_item(TableName="Items", Key=KEY)
    assert [region for _, region in backend.reads()] == ["eu-west-3", "us-east-1"], "read-your-writes, then a hit"


def test_a_table_miss_loads_from_dynamodb_even_when_the_client_form_is_cached(session, backend):
    session.client.get_item(TableName="Items", Key=KEY)
    assert session.table("Items").get_item(Key={"pk": "a"})["Item"]["pk"] == "a"
    assert len(backend.reads()) == 2, "the Python-value load does not read the wire-format cache"
    session.client.get_item(TableName="Items", Key=KEY)
    session.table("Items").get_item(Key={"pk": "a"})
    assert len(backend.reads()) == 2


# -- Table queries: their pages kept in Python values ------------------------------


def _table_query(session, **params):
    from boto3.dynamodb.conditions import Key

    return session.table("Items").query(KeyConditionExpression=Key("pk").eq("a"), **params)


def test_a_table_query_hit_answers_exactly_what_the_uncached_query_answered(session, backend):
    uncached = _table_query(_session(Backend(), tables=["Other"]))
    _table_query(session)
    hit = _table_query(session)
    assert _typed(hit) == _typed(uncached)
    assert len(backend.reads("Query")) == 1


def test_a_caller_who_changes_any_part_of_a_table_query_hit_does_not_change_the_next_callers(session, backend):
    first = _table_query(session)
    expected = _typed(first)
    _spoil(first)
    for _ in range(2):
        hit = _table_query(session)
        assert _typed(hit) == expected
        _spoil(hit)
    assert len(backend.reads("Query")) == 1


@pytest.mark.parametrize(
    ("item", "dropped"),
    [
        pytest.param({"pk": "a", "v": 1}, True, id="a-write-to-its-partition-drops-it"),
        pytest.param({"pk": "b", "v": 1}, False, id="a-write-elsewhere-keeps-it"),
    ],
)
def test_a_table_query_page_is_dropped_by_writes_to_its_partition_only(session, backend, item, dropped):
    _table_query(session)
    session.table("Items").put_item(Item=item)
    _table_query(session)
    assert len(backend.reads("Query")) == (2 if dropped else 1)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"ConsistentRead": True}, id="consistent-read"),
        pytest.param({"ReturnConsumedCapacity": "TOTAL"}, id="capacity-report"),
    ],
)
def test_table_queries_the_cache_may_not_answer_all_reach_dynamodb(session, backend, params):
    for _ in range(2):
        _table_query(session, **params)
    assert len(backend.reads("Query")) == 2
    assert session.status()["cache"]["hits"] == 0


def test_each_table_query_is_one_cache_lookup_event(session):
    from regionproxy.events import CacheLookup

    seen = []
    session.hooks.add(lambda event: seen.append(event) if isinstance(event, CacheLookup) else None)
    for _ in range(3):
        _table_query(session)
    assert [event.hit for event in seen] == [False, True, True]
    assert {(event.table, event.operation) for event in seen} == {("Items", "Query")}


def test_table_and_client_queries_keep_their_own_forms(session, backend):
    _table_query(session)
    wire = backend.reads("Query")[0][0]
    session.client.query(**wire)
    assert len(backend.reads("Query")) == 2, "the Table's Python-value page does not answer the client"
    session.client.query(**wire)
    _table_query(session)
    assert len(backend.reads("Query")) == 2


@pytest.mark.parametrize(
    ("one", "other"),
    [
        pytest.param({"b": [1, {"S": "x"}], "a": None}, {"a": None, "b": [1, {"S": "x"}]}, id="key-order"),
        pytest.param({"k": [1, 2]}, {"k": (1, 2)}, id="list-or-tuple"),
        pytest.param({"k": {"B": b"x"}}, {"k": {"B": bytearray(b"x")}}, id="bytes-or-bytearray"),
        pytest.param({"k": {"S": "x"}}, OrderedDict({"k": {"S": "x"}}), id="dict-or-dict-subclass"),
    ],
)
def test_request_fingerprints_are_equal_for_equal_requests(one, other):
    from regionproxy._cache.keys import request_fingerprint

    assert request_fingerprint(one) == request_fingerprint(other)
    assert hash(request_fingerprint(one)) == hash(request_fingerprint(other))


def test_request_fingerprints_differ_for_different_requests():
    from regionproxy._cache.keys import request_fingerprint

    requests = [{"k": [1]}, {"k": [[1]]}, {"k": {"S": "1"}}, {"k": {"N": "1"}}, {"k": "1"}, {"k": ["[", 1]}, {"j": [1]},
                {"k": [1.0]}, {"k": [True]}, {"k": [Decimal(1)]}]  # fmt: skip
    assert len({request_fingerprint(request) for request in requests}) == len(requests)


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param({"k": MappingProxyType({"S": "x"})}, id="a-mapping-not-a-dict"),
        pytest.param({"k": {"SS": {"x"}}}, id="a-set"),
        pytest.param({1: "x"}, id="a-name-not-a-string"),
        pytest.param({"k": object()}, id="an-object"),
    ],
)
def test_requests_botocore_would_refuse_or_not_send_as_they_are_have_no_fingerprint(request_):
    from regionproxy._cache.keys import request_fingerprint

    assert request_fingerprint(request_) is None


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        pytest.param({"n": {"N": "1"}}, {"n": {"N": "1.00"}}, True, id="numbers-by-value"),
        pytest.param({"n": {"N": "1234567890123456789012345678901"}}, {"n": {"N": "1234567890123456789012345678902"}}, False,
                     id="numbers-differing-past-28-digits"),
        pytest.param({"b": {"B": b"a"}}, {"b": {"B": "a"}}, True, id="binary-as-text-is-its-utf8-bytes"),
        pytest.param({"b": {"B": b"a"}}, {"b": {"B": bytearray(b"a")}}, True, id="bytes-or-bytearray"),
        pytest.param({"s": {"S": "1"}}, {"s": {"N": "1"}}, False, id="string-or-number"),
    ],
)  # fmt: skip
def test_item_key_fingerprints_name_the_same_item_as_dynamodb_does(one, other, same):
    from regionproxy._cache.keys import item_key_fingerprint, wire_key_fingerprint

    assert (item_key_fingerprint(one) == item_key_fingerprint(other)) is same
    assert wire_key_fingerprint(one) == item_key_fingerprint(one)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(MappingProxyType({"pk": {"S": "a"}}), id="a-mapping-not-a-dict"),
        pytest.param({1: {"S": "a"}}, id="a-name-not-a-string"),
        pytest.param({"pk": {"N": "1_000"}}, id="a-number-only-python-reads"),
        pytest.param({"pk": {"N": "Infinity"}}, id="not-a-finite-number"),
        pytest.param({"pk": {"S": ["a"]}}, id="a-list-for-a-string"),
        pytest.param({"pk": {"B": memoryview(b"a")}}, id="a-memoryview"),
        pytest.param({}, id="empty"),
    ],
)
def test_keys_botocore_or_dynamodb_refuse_have_no_fingerprint(key):
    from regionproxy._cache.keys import item_key_fingerprint, wire_key_fingerprint
    from regionproxy._dynamodb.calls import get_item_cache_key

    assert item_key_fingerprint(key) is None and wire_key_fingerprint(key) is None
    assert get_item_cache_key({"TableName": "t", "Key": key}) is None


def test_python_value_keys_past_28_digits_are_different_items():
    from regionproxy._cache.keys import item_key_fingerprint, values_key_fingerprint

    big = Decimal("1234567890123456789012345678901")
    assert values_key_fingerprint({"n": big}) != values_key_fingerprint({"n": big + 1})
    assert values_key_fingerprint({"n": big}) == item_key_fingerprint({"n": {"N": str(big)}})


def test_a_read_between_a_failed_over_write_and_its_read_your_writes_bookkeeping_is_not_kept(session, backend):
    """A read that lands after the write returned but before the session
    knows where it landed goes to the local region, which may not have the
    write yet: its answer must not be what the writer's next read gets."""
    import copy

    answer = backend.__call__

    def by_region(call, plan, *, hedge=True, maybe_applied=None):
        result, region = answer(call, plan, hedge=hedge)
        if call.operation == "GetItem":
            result = copy.deepcopy(result)
            result["Item"]["region"] = {"S": region}
        return result, region

    session.attempts.run = by_region
    remember = session._sticky.remember

    def remember_after_another_read(*args, **kwargs):
        backend.answer_from = None  # another thread's read: the local region, without the write
        session.client.get_item(TableName="Items", Key=KEY)
        return remember(*args, **kwargs)

    session._sticky.remember = remember_after_another_read
    backend.answer_from = "us-east-1"  # the write fails over
    session.client.put_item(TableName="Items", Item={"pk": {"S": "a"}})
    assert session.client.get_item(TableName="Items", Key=KEY)["Item"]["region"] == {"S": "us-east-1"}


# -- the cache's bounds (issue 15, section 4) --------------------------------------


def _compiled_copiers():
    """How many compiled copy functions are alive in this process."""
    import gc
    import types

    gc.collect()
    return sum(
        1
        for thing in gc.get_objects()
        if type(thing) is types.FunctionType and thing.__code__.co_filename == "<regionproxy._cache.copies copier>"
    )


class IdMaps(Backend):
    """Answers each GetItem with an item whose map attribute is keyed by ids
    (one of its own per item): a shape of its own per item."""

    def __call__(self, call, plan, *, hedge=True, maybe_applied=None):
        if call.operation != "GetItem":
            return super().__call__(call, plan, hedge=hedge)
        self.calls.append((call.operation, dict(call.params), plan[0]))
        key = call.params["Key"]["pk"]["S"]
        item = {"pk": {"S": key}, "m": {"M": {f"id-{key}": {"N": "1"}, f"at-{key}": {"L": [{"S": "x"}]}}}}
        return {"Item": item, "ResponseMetadata": copy.deepcopy(_METADATA)}, plan[0]


def test_compiled_copy_functions_stay_under_their_cap_whatever_the_number_of_item_shapes():
    """With maxsize=100, reads of items of ever new shapes (maps keyed by
    ids), each hit many times, keep a bounded number of compiled copy
    functions alive: the shared table's cap, plus at most one per entry."""
    from regionproxy._cache import copies

    session = _session(IdMaps(), maxsize=100)
    table = session.table("Items")
    for n in range(1_200):
        for _ in range(40):  # hot enough to be worth compiling
            session.client.get_item(TableName="Items", Key={"pk": {"S": f"k{n}"}})
            table.get_item(Key={"pk": f"k{n}"})
    assert len(session.cache) <= 100
    assert _compiled_copiers() <= 256 + 100, "the shared table's cap and one per cached entry"
    session.close()
    del session, table
    assert _compiled_copiers() <= copies.SHAPES == 256


def test_a_shape_read_once_compiles_nothing(monkeypatch):
    """A miss costs one walk of the answer: a new shape is copied by the
    interpreter until it proves hot (compiling costs what tens of hits save)."""
    from regionproxy._cache import copies

    compiled = []

    def counted_compile(source, filename, mode, *args, **kwargs):
        compiled.append(filename)
        return compile(source, filename, mode, *args, **kwargs)

    monkeypatch.setattr(copies, "compile", counted_compile, raising=False)  # the builtin, as the module finds it
    backend = IdMaps()
    session = _session(backend, maxsize=100)
    for n in range(300):
        session.client.get_item(TableName="Items", Key={"pk": {"S": f"once{n}"}})
        session.table("Items").get_item(Key={"pk": f"once{n}"})
    assert compiled == []
    assert len(backend.reads()) == 600


def test_a_hot_shape_is_compiled_once_and_shared_by_its_entries():
    from regionproxy._cache import copies

    def item(key):
        return {"Item": {"pk": {"S": key}, "hot-shape": {"SS": ["a", "b"]}}, "ResponseMetadata": _METADATA}

    before = _compiled_copiers()
    copiers = [copies.copier(copies.copy_plan(item(key))) for key in ("a", "b", "c")]
    assert copiers[0] is copiers[1] is copiers[2], "entries of one shape share one copier"
    for _ in range(copies.HOT):
        for copy_ in copiers:
            assert copy_(item("z")) == item("z")
    assert _compiled_copiers() - before == 1


def test_pages_of_one_item_shape_share_their_compiled_copiers_whatever_their_length():
    """A compiled copier per page would be one per length and per mix of
    shapes: tens of kilobytes each, kept for good, compiled on every miss."""
    from regionproxy._cache import copies

    def page(length):
        items = [{"pk": "p", "sk": str(n), "tags": {"a"}, "l": ["x", {"m": [1]}]} for n in range(length)]
        return {"Items": items, "Count": length, "ResponseMetadata": {"HTTPHeaders": {"h": "v"}}}

    copy_pages = []
    before = _compiled_copiers()
    for length in range(40, 100):
        value = page(length)
        copy_page = copies.copier(copies.copy_plan(value))
        copy_pages.append(copy_page)  # alive, as a cache entry keeps it
        for _ in range(40):
            copied = copy_page(value)
        assert _typed(copied) == _typed(value)
        assert not {id(part) for part in _containers(value)} & {id(part) for part in _containers(copied)}
    assert _compiled_copiers() - before <= 5


@pytest.mark.parametrize("read", ["get_item", "query"])
def test_binary_objects_in_a_binary_set_are_new_in_every_hit(session, backend, read):
    """boto3's ``Binary`` has a mutable ``.value``: one caller changing it
    in the set of a hit must not reach the next readers."""
    from boto3.dynamodb.types import Binary

    def blobs():
        if read == "get_item":
            return session.table("Items").get_item(Key={"pk": "a"})["Item"]["bs"]
        return _table_query(session)["Items"][0]["bs"]

    assert blobs() == {Binary(b"x"), Binary(b"y")}  # the miss
    for _ in range(2):
        hit = blobs()
        assert sorted(blob.value for blob in hit) == [b"x", b"y"]
        for blob in hit:
            blob.value = b"changed by a caller"
    assert sorted(blob.value for blob in blobs()) == [b"x", b"y"]
    assert len(backend.reads("GetItem" if read == "get_item" else "Query")) == 1


@pytest.mark.parametrize(
    ("cached", "refused"),
    [
        pytest.param(Decimal("1E+40"), 10**40, id="an-int-of-41-digits"),
        pytest.param(Decimal("1E+40"), Decimal(10**40), id="a-decimal-of-41-digits"),
        pytest.param(Decimal(1), Decimal("1." + "0" * 40), id="zeros-past-38-digits"),
        pytest.param(Decimal("1E+40"), Decimal("10E+39"), id="a-number-boto3-accepts-stays-a-hit"),
    ],
)
def test_a_table_key_boto3_refuses_gets_boto3s_error_after_a_lookalike_is_cached(backend, cached, refused):
    """boto3's serializer (its DYNAMODB_CONTEXT: 38 digits, traps on
    rounding) refuses the key before sending; the cache must not answer it."""
    from boto3.dynamodb.types import TypeSerializer

    try:
        TypeSerializer().serialize(refused)
    except Exception as error:  # noqa: BLE001 - whatever boto3 raises, the session must raise
        expected = type(error)
    else:
        expected = None
    session = _session(backend)
    table = session.table("Items")
    table.get_item(Key={"pk": cached})  # the miss: cached
    assert len(backend.reads()) == 1
    if expected is None:
        table.get_item(Key={"pk": refused})
        assert len(backend.reads()) == 1, "the same number, as boto3 sends it: a hit"
    else:
        with pytest.raises(expected):
            table.get_item(Key={"pk": refused})
        assert len(backend.reads()) == 1, "refused before sending, as boto3 does"


class DescribeDenied(Backend):
    """DescribeTable denied (a least-privilege IAM policy); every other call
    answered. ``hold`` (an Event) keeps the first DescribeTable waiting."""

    def __init__(self, hold=None):
        super().__init__()
        self.hold = hold
        self.entered = threading.Event()

    def __call__(self, call, plan, *, hedge=True, maybe_applied=None):
        if call.operation != "DescribeTable":
            return super().__call__(call, plan, hedge=hedge)
        from botocore.exceptions import ClientError

        self.calls.append((call.operation, dict(call.params), plan[0]))
        if self.hold is not None and not self.entered.is_set():
            self.entered.set()
            assert self.hold.wait(10)
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "DescribeTable")


def _unschematic(backend, clock):
    """A cached session that knows no key schema (it must describe tables)."""
    import regionproxy as rp

    session = rp.RegionSession(
        REGIONS,
        endpoints={region: "http://127.0.0.1:9" for region in REGIONS},
        cache=CachePolicy(ttl=60),
        monotonic=clock,
    )
    session.attempts.run = backend
    return session


def test_a_denied_describe_table_is_remembered_and_asked_again_after_a_while(clock):
    backend = DescribeDenied()
    session = _unschematic(backend, clock)
    session.client.get_item(TableName="Items", Key=KEY)
    for n in range(10):
        session.client.put_item(TableName="Items", Item={"pk": {"S": f"k{n}"}})
        clock.now += 1
    assert len(backend.reads("DescribeTable")) == 1, "one AccessDenied in the audit log, not twenty"
    session.client.get_item(TableName="Items", Key=KEY)
    assert len(backend.reads()) == 2, "the writes still dropped the table's entries"
    clock.now += 60
    session.client.put_item(TableName="Items", Item={"pk": {"S": "later"}})
    assert len(backend.reads("DescribeTable")) == 2, "asked again after a while"


def test_a_writer_does_not_describe_a_table_another_thread_is_describing(clock):
    hold = threading.Event()
    backend = DescribeDenied(hold)
    session = _unschematic(backend, clock)
    first = threading.Thread(target=lambda: session.client.put_item(TableName="Items", Item={"pk": {"S": "a"}}))
    first.start()
    try:
        assert backend.entered.wait(10)
        _bounded(lambda: session.client.put_item(TableName="Items", Item={"pk": {"S": "b"}}))
    finally:
        hold.set()
        first.join(10)
    assert len(backend.reads("DescribeTable")) == 1


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


def test_a_key_schema_described_while_its_table_is_deleted_is_not_kept(clock):
    """DeleteTable and CreateTable through the session forget what was
    learned of the table; an answer to a DescribeTable sent before that may
    describe the old table: its caller may use it, nobody else gets it."""
    from regionproxy._dynamodb.schemas import KeySchemas

    def describe(table, prefer):
        schemas.forget(table)  # the table is deleted and created again meanwhile
        return {"KeySchema": [{"AttributeName": "old", "KeyType": "HASH"}]}

    schemas = KeySchemas({"Declared": ("pk",)}, describe, clock=clock)
    assert schemas.names("T") == ("old",)
    assert schemas.known("T") is None
    schemas.forget("Declared")
    assert schemas.known("Declared") == ("pk",), "declared schemas are configuration: they stay"


def test_after_fork_a_table_another_thread_was_describing_is_described_again(clock):
    from regionproxy._dynamodb.schemas import KeySchemas, KeySchemaUnknown

    entered, release = threading.Event(), threading.Event()

    def describe(table, prefer):
        if not entered.is_set():
            entered.set()
            release.wait(10)
        return {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]}

    schemas = KeySchemas({}, describe, clock=clock)
    parent = threading.Thread(target=schemas.names, args=("T",), daemon=True)
    parent.start()
    try:
        assert entered.wait(10)
        with pytest.raises(KeySchemaUnknown):
            schemas.names("T")  # another thread is asking: unknown, at once
        schemas._after_fork()  # what the child runs; the asking thread would not exist there
        assert _bounded(lambda: schemas.names("T")) == ("pk",)
    finally:
        release.set()
        parent.join(10)
