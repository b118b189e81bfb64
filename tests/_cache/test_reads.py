"""CachedReads through the session: which reads a hit answers, in which
form, that every hit is the caller's own, and what writes drop."""

from __future__ import annotations

import copy
import threading
from decimal import Decimal

import pytest

from regionproxy._config.policies import CachePolicy
from tests._cache.conftest import METADATA, WIRE_ITEM, compiled_copiers, typed
from tests.support import REGIONS, bounded, closed_port_url

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
            return copy.deepcopy({"Item": WIRE_ITEM, "ResponseMetadata": METADATA}), region
        if call.operation == "Query":
            return copy.deepcopy({"Items": [WIRE_ITEM], "Count": 1, "ScannedCount": 1, "ResponseMetadata": METADATA}), region
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
        endpoints=dict.fromkeys(REGIONS, closed_port_url()),  # never reached: the backend answers
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
    expected = typed(first)
    _spoil(first)
    for _ in range(3):
        hit = read()
        assert typed(hit) == expected
        assert hit["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"] == "r1"
        _spoil(hit)
    assert len(backend.reads()) == 1, "the later reads were hits"


class ExchangeHeaders(Backend):
    """Answers a GetItem as DynamoDB does: with the headers of its HTTP
    exchange (its date, length, checksum) and a request id of its own."""

    def __call__(self, call, plan, *, hedge=True, maybe_applied=None):
        result, region = super().__call__(call, plan, hedge=hedge)
        if call.operation == "GetItem":
            request_id = f"r{len(self.calls)}"
            headers = {**result["ResponseMetadata"]["HTTPHeaders"], "x-amzn-requestid": request_id}
            headers.update({"date": "Tue, 25 Nov 2026 09:43:00 GMT", "content-length": "350", "x-amz-crc32": "99"})
            result["ResponseMetadata"].update(RequestId=request_id, HTTPHeaders=headers)
        return result, region


@pytest.mark.parametrize("surface", ["client", "table"])
def test_a_hit_answers_the_metadata_of_the_call_that_loaded_it(surface):
    session = _session(ExchangeHeaders())
    if surface == "client":
        read = lambda: session.client.get_item(TableName="Items", Key=KEY)  # noqa: E731
    else:
        read = lambda: session.table("Items").get_item(Key={"pk": "a"})  # noqa: E731
    miss = read()["ResponseMetadata"]
    for _ in range(2):
        hit = read()["ResponseMetadata"]
        assert typed(hit) == typed(miss)
        assert hit["RequestId"] == hit["HTTPHeaders"]["x-amzn-requestid"] == "r1", "the request that loaded the answer"
    assert len(session.attempts.run.reads()) == 1


def test_a_client_hit_answers_exactly_what_the_uncached_call_answered(session, backend):
    uncached = _session(Backend(), tables=["Other"]).client.get_item(TableName="Items", Key=KEY)
    session.client.get_item(TableName="Items", Key=KEY)
    hit = session.client.get_item(TableName="Items", Key=KEY)
    assert typed(hit) == typed(uncached) == typed({"Item": WIRE_ITEM, "ResponseMetadata": METADATA})
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


def _table_query(session, **params):
    from boto3.dynamodb.conditions import Key

    return session.table("Items").query(KeyConditionExpression=Key("pk").eq("a"), **params)


def test_a_table_query_hit_answers_exactly_what_the_uncached_query_answered(session, backend):
    uncached = _table_query(_session(Backend(), tables=["Other"]))
    _table_query(session)
    hit = _table_query(session)
    assert typed(hit) == typed(uncached)
    assert len(backend.reads("Query")) == 1


def test_a_caller_who_changes_any_part_of_a_table_query_hit_does_not_change_the_next_callers(session, backend):
    first = _table_query(session)
    expected = typed(first)
    _spoil(first)
    for _ in range(2):
        hit = _table_query(session)
        assert typed(hit) == expected
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


class IdMaps(Backend):
    """Answers each GetItem with an item whose map attribute is keyed by ids
    (one of its own per item): a shape of its own per item."""

    def __call__(self, call, plan, *, hedge=True, maybe_applied=None):
        if call.operation != "GetItem":
            return super().__call__(call, plan, hedge=hedge)
        self.calls.append((call.operation, dict(call.params), plan[0]))
        key = call.params["Key"]["pk"]["S"]
        item = {"pk": {"S": key}, "m": {"M": {f"id-{key}": {"N": "1"}, f"at-{key}": {"L": [{"S": "x"}]}}}}
        return {"Item": item, "ResponseMetadata": copy.deepcopy(METADATA)}, plan[0]


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
    assert compiled_copiers() <= 256 + 100, "the shared table's cap and one per cached entry"
    session.close()
    del session, table
    assert compiled_copiers() <= copies.SHAPES == 256


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
        endpoints=dict.fromkeys(REGIONS, closed_port_url()),
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
        bounded(lambda: session.client.put_item(TableName="Items", Item={"pk": {"S": "b"}}))
    finally:
        hold.set()
        first.join(10)
    assert len(backend.reads("DescribeTable")) == 1
