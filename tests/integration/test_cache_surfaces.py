"""The read cache against the lab, through each surface: hits answer exactly
what an uncached call answers, and writes through the session invalidate
items, query pages and batches at once."""

from __future__ import annotations

import itertools
import threading
from decimal import Decimal

import pytest
from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import Binary

import regionproxy as rp
from tests.support import LOCAL, TABLE, FakeClock

PATIENT = rp.Timeouts(connect=1, read=5, attempts=1)
ITEM = {
    "pk": "p",
    "sk": "s",
    "n": Decimal("1.50"),
    "big": Decimal("12345678901234567890"),
    "tags": {"a", "b"},
    "nums": {Decimal(1), Decimal(2)},
    "blob": Binary(b"\x00\x01"),
    "blobs": {Binary(b"x"), Binary(b"y")},
    "list": ["x", Decimal(3), {"deep": ["y"]}],
    "map": {"k": {"nested": Decimal("0.1")}},
    "flag": True,
    "none": None,
}


def _session(lab, **cache):
    return lab.session(cache=rp.CachePolicy(**{"ttl": 60, **cache}), timeouts=PATIENT, key_schemas={TABLE: ("pk", "sk")})


def _forwarded(lab, since, operation):
    return [r for r in lab.requests(LOCAL)[since:] if r.operation == operation and r.action == "forwarded"]


def _without_metadata(response):
    return {name: value for name, value in response.items() if name != "ResponseMetadata"}


def _typed(value):
    """``value`` with every type spelled out, so ``==`` cannot hide a type change."""
    if isinstance(value, dict):
        return {name: _typed(part) for name, part in value.items()}
    if isinstance(value, list):
        return [_typed(part) for part in value]
    if isinstance(value, set):
        return ("set", sorted(repr(part) for part in value))
    return (type(value).__name__, repr(value))


def test_client_hit_answers_exactly_what_an_uncached_call_answers(lab):
    session = _session(lab)
    session.table(TABLE).put_item(Item=ITEM)
    key = {"pk": {"S": "p"}, "sk": {"S": "s"}}
    uncached = lab.client(LOCAL, direct=True).get_item(TableName=TABLE, Key=key)
    session.client.get_item(TableName=TABLE, Key=key)  # the miss
    since = len(lab.requests(LOCAL))
    hit = session.client.get_item(TableName=TABLE, Key=key)
    assert not _forwarded(lab, since, "GetItem"), "served from the cache"
    assert _typed(_without_metadata(hit)) == _typed(_without_metadata(uncached))
    assert hit["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_table_hit_answers_exactly_what_an_uncached_table_answers(lab):
    session = _session(lab)
    table = session.table(TABLE)
    table.put_item(Item=ITEM)
    uncached = lab.session(timeouts=PATIENT).table(TABLE).get_item(Key={"pk": "p", "sk": "s"})
    table.get_item(Key={"pk": "p", "sk": "s"})  # the miss
    since = len(lab.requests(LOCAL))
    hit = table.get_item(Key={"pk": "p", "sk": "s"})
    assert not _forwarded(lab, since, "GetItem")
    assert _typed(_without_metadata(hit)) == _typed(_without_metadata(uncached))


def test_python_value_form_hit_deserialises_nothing_and_matches(lab, monkeypatch):
    """The Python-value client's path (a miss: serialise, route,
    deserialise), kept in its own form: a hit deserialises nothing."""
    from regionproxy._boto3.client import PythonValues

    session = _session(lab)
    session.table(TABLE).put_item(Item=ITEM)
    client = session.resource.meta.client
    params = {"TableName": TABLE, "Key": {"pk": "p", "sk": "s"}}
    loads = []
    to_python = PythonValues.to_python
    monkeypatch.setattr(PythonValues, "to_python", lambda self, answer: loads.append(1) or to_python(self, answer))
    first = client.get_item(**params)
    since = len(lab.requests(LOCAL))
    second = client.get_item(**params)
    assert loads == [1] and not _forwarded(lab, since, "GetItem")
    assert _typed(_without_metadata(second)) == _typed(_without_metadata(first))
    assert second["Item"] is not first["Item"]


@pytest.mark.parametrize("surface", ["client", "table", "values"])
def test_a_caller_who_changes_a_returned_item_does_not_change_the_next_callers(lab, surface):
    session = _session(lab)
    session.table(TABLE).put_item(Item=ITEM)
    if surface == "client":

        def read():
            return session.client.get_item(TableName=TABLE, Key={"pk": {"S": "p"}, "sk": {"S": "s"}})
    elif surface == "table":

        def read():
            return session.table(TABLE).get_item(Key={"pk": "p", "sk": "s"})
    else:
        client = session.resource.meta.client
        params = {"TableName": TABLE, "Key": {"pk": "p", "sk": "s"}}

        def read():
            return client.get_item(**params)

    before = _typed(read())
    for _ in range(2):  # the miss's answer, then a hit's
        answer = read()
        item = answer["Item"]
        for value in list(item.values()):
            if isinstance(value, dict):
                value.clear()
            elif isinstance(value, list | set):
                for part in value:
                    if isinstance(part, Binary):  # a member of a binary set
                        part.value = b"junk"
                value.clear() if isinstance(value, set) else value.append("junk")
            elif isinstance(value, Binary):
                value.value = b"junk"
        item["added"] = "junk"
        answer["ResponseMetadata"]["HTTPHeaders"].clear()
        assert _typed(read()) == before


def test_no_such_item_is_cached_for_negative_ttl_only(lab):
    clock = FakeClock()
    session = lab.session(
        cache=rp.CachePolicy(ttl=60, negative_ttl=2), timeouts=PATIENT, monotonic=clock, key_schemas={TABLE: ("pk", "sk")}
    )
    key = {"pk": {"S": "absent"}, "sk": {"S": "s"}}
    since = len(lab.requests(LOCAL))
    assert "Item" not in session.client.get_item(TableName=TABLE, Key=key)
    lab.client(LOCAL, direct=True).put_item(TableName=TABLE, Item=key)  # not through the session
    clock.now += 1.9
    assert "Item" not in session.client.get_item(TableName=TABLE, Key=key), "within negative_ttl: cached"
    clock.now += 0.2
    assert session.client.get_item(TableName=TABLE, Key=key)["Item"] == key, "past negative_ttl: read again"
    assert len(_forwarded(lab, since, "GetItem")) == 2
    assert session.status()["cache"]["expiries"] == 1


def test_only_the_tables_named_are_cached(lab):
    lab.create_table(TableName="Other", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])  # fmt: skip
    session = _session(lab, tables=["Other"])
    since = len(lab.requests(LOCAL))
    for _ in range(3):
        session.client.get_item(TableName=TABLE, Key={"pk": {"S": "a"}, "sk": {"S": "b"}})
        session.client.get_item(TableName="Other", Key={"pk": {"S": "a"}})
    assert len(_forwarded(lab, since, "GetItem")) == 3 + 1


def test_batch_get_serves_cached_keys_and_fetches_the_rest_in_one_call(lab):
    session = _session(lab)
    table = session.table(TABLE)
    for n in range(4):
        table.put_item(Item={"pk": f"b{n}", "sk": "s", "v": n})
    keys = [{"pk": {"S": f"b{n}"}, "sk": {"S": "s"}} for n in range(5)]  # b4 does not exist
    for key in keys[:2]:
        session.client.get_item(TableName=TABLE, Key=key)
    sent = []
    run = session.attempts.run
    session.attempts.run = lambda call, plan: sent.append(call.params) or run(call, plan)
    answer = session.client.batch_get_item(RequestItems={TABLE: {"Keys": keys}})
    assert sorted(item["v"]["N"] for item in answer["Responses"][TABLE]) == ["0", "1", "2", "3"]
    assert answer["UnprocessedKeys"] == {}
    assert [params["RequestItems"][TABLE]["Keys"] for params in sent] == [keys[2:]], "one call, the misses only"
    sent.clear()
    again = session.client.batch_get_item(RequestItems={TABLE: {"Keys": keys}})
    assert sent == [], "every key cached now, the absent one too"
    assert sorted(item["v"]["N"] for item in again["Responses"][TABLE]) == ["0", "1", "2", "3"]
    assert session.client.get_item(TableName=TABLE, Key=keys[3])["Item"]["v"] == {"N": "3"}
    assert sent == [], "a batch's item serves a GetItem"


def test_batch_get_leaves_unprocessed_keys_to_the_caller_and_uncached(lab):
    session = _session(lab)
    key = {"pk": {"S": "u"}, "sk": {"S": "s"}}
    run = session.attempts.run

    def unprocessed(call, plan):
        result, region = run(call, plan)
        return {**result, "Responses": {TABLE: []}, "UnprocessedKeys": {TABLE: {"Keys": [key]}}}, region

    session.attempts.run = unprocessed
    answer = session.client.batch_get_item(RequestItems={TABLE: {"Keys": [key]}})
    assert answer["UnprocessedKeys"] == {TABLE: {"Keys": [key]}}
    session.attempts.run = run
    since = len(lab.requests(LOCAL))
    session.client.get_item(TableName=TABLE, Key=key)
    assert len(_forwarded(lab, since, "GetItem")) == 1, "an unprocessed key is not cached as absent"


def _query(table, pk):
    return table.query(KeyConditionExpression=Key("pk").eq(pk))["Items"]


def test_query_is_invalidated_by_a_put_to_its_partition_only(lab):
    session = _session(lab)
    table = session.table(TABLE)
    table.put_item(Item={"pk": "q", "sk": "1"})
    table.put_item(Item={"pk": "other", "sk": "1"})
    assert len(_query(table, "q")) == 1
    since = len(lab.requests(LOCAL))
    table.put_item(Item={"pk": "other", "sk": "2"})
    assert len(_query(table, "q")) == 1
    assert not _forwarded(lab, since, "Query"), "a put elsewhere keeps the page"
    table.put_item(Item={"pk": "q", "sk": "2"})
    assert len(_query(table, "q")) == 2, "a put to the partition drops it"
    assert len(_forwarded(lab, since, "Query")) == 1


def test_consistent_query_bypasses_the_cache(lab):
    session = _session(lab)
    table = session.table(TABLE)
    since = len(lab.requests(LOCAL))
    for _ in range(2):
        table.query(KeyConditionExpression=Key("pk").eq("c"), ConsistentRead=True)
    assert len(_forwarded(lab, since, "Query")) == 2


def test_index_query_is_invalidated_by_any_write_to_the_table(lab):
    lab.create_table(
        TableName="Indexed",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[
            {"IndexName": "by-g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}}
        ],
    )
    session = lab.session(cache=rp.CachePolicy(ttl=60), timeouts=PATIENT, key_schemas={"Indexed": ("pk",)})
    table = session.table("Indexed")
    table.put_item(Item={"pk": "a", "g": "x"})
    query = {"IndexName": "by-g", "KeyConditionExpression": Key("g").eq("x")}
    assert len(table.query(**query)["Items"]) == 1
    since = len(lab.requests(LOCAL))
    assert len(table.query(**query)["Items"]) == 1
    assert not _forwarded(lab, since, "Query")
    table.put_item(Item={"pk": "b", "g": "x"})  # another partition of the table, same index key
    assert len(table.query(**query)["Items"]) == 2
    assert len(_forwarded(lab, since, "Query")) == 1


def test_readers_never_see_older_than_their_own_last_write(lab):
    """8 threads read and update the same keys; each updates only its own
    attribute, so its attribute must never read lower than its last write."""
    session = _session(lab, maxsize=1000)
    keys = [{"pk": {"S": f"hot{n}"}, "sk": {"S": "s"}} for n in range(2)]
    for key in keys:
        session.client.put_item(TableName=TABLE, Item=key)
    failures: list[str] = []

    def worker(me: int) -> None:
        last = {n: 0 for n in range(len(keys))}
        table = session.table(TABLE)
        counter = itertools.count(1)
        for step in range(12):
            n = step % len(keys)
            if step % 3 == 0:
                value = next(counter)
                session.client.update_item(
                    TableName=TABLE, Key=keys[n], UpdateExpression=f"SET t{me} = :v", ExpressionAttributeValues={":v": {"N": str(value)}}
                )
                last[n] = value
            if step % 2:
                item = session.client.get_item(TableName=TABLE, Key=keys[n]).get("Item", {})
                seen = int(item.get(f"t{me}", {"N": "0"})["N"])
            else:
                item = table.get_item(Key={"pk": f"hot{n}", "sk": "s"}).get("Item", {})
                seen = int(item.get(f"t{me}", 0))
            if seen < last[n]:
                failures.append(f"thread {me} wrote {last[n]} to hot{n}, then read {seen}")

    threads = [threading.Thread(target=worker, args=(me,), daemon=True) for me in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert session.status()["cache"]["hits"] > 0, "the cache was in play"


# -- table-level control-plane calls (issue 15, section 4) -------------------------

RECREATED = "Recreated"


def _schema(*names):
    return {
        "KeySchema": [{"AttributeName": name, "KeyType": kind} for name, kind in zip(names, ("HASH", "RANGE")[: len(names)], strict=True)],
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in names],
        "BillingMode": "PAY_PER_REQUEST",
    }


@pytest.mark.parametrize("surface", ["client", "table"])
def test_a_table_deleted_and_created_again_through_the_session_has_none_of_its_old_items_cached(lab, surface):
    session = lab.session(cache=rp.CachePolicy(ttl=60, negative_ttl=60), timeouts=PATIENT, key_schemas={RECREATED: ("pk",)})
    if surface == "client":
        session.client.create_table(TableName=RECREATED, **_schema("pk"))
        session.client.put_item(TableName=RECREATED, Item={"pk": {"S": "a"}, "v": {"S": "old"}})

        def read():
            return session.client.get_item(TableName=RECREATED, Key={"pk": {"S": "a"}}).get("Item")

        def recreate():
            session.client.delete_table(TableName=RECREATED)
            session.client.create_table(TableName=RECREATED, **_schema("pk"))
    else:
        table = session.resource.create_table(TableName=RECREATED, **_schema("pk"))
        table.put_item(Item={"pk": "a", "v": "old"})

        def read():
            return session.table(RECREATED).get_item(Key={"pk": "a"}).get("Item")

        def recreate():
            table.delete()
            session.resource.create_table(TableName=RECREATED, **_schema("pk"))

    for _ in range(2):
        assert read() is not None  # a miss, then a hit
    recreate()
    assert read() is None, "the new table is empty"


def test_a_table_created_again_with_another_key_schema_is_described_again(lab):
    """A key schema learned from DescribeTable belongs to the table it
    described: after a DeleteTable through the session, a put item's key is
    read with the new table's key attributes."""
    session = lab.session(cache=rp.CachePolicy(ttl=60, negative_ttl=60), timeouts=PATIENT)
    client = session.client
    client.create_table(TableName=RECREATED, **_schema("pk", "sk"))
    client.put_item(TableName=RECREATED, Item={"pk": {"S": "a"}, "sk": {"S": "s"}})  # (pk, sk) learned
    client.delete_table(TableName=RECREATED)
    client.create_table(TableName=RECREATED, **_schema("pk"))
    assert "Item" not in client.get_item(TableName=RECREATED, Key={"pk": {"S": "a"}})  # cached: no such item
    client.put_item(TableName=RECREATED, Item={"pk": {"S": "a"}, "sk": {"S": "s"}, "v": {"S": "new"}})
    assert client.get_item(TableName=RECREATED, Key={"pk": {"S": "a"}})["Item"]["v"] == {"S": "new"}


def test_with_describe_table_denied_ten_writes_send_one_describe_table(lab):
    """Least-privilege IAM: each denied DescribeTable is an entry in the
    account's audit log. The denial is remembered (asked again after a
    while), and the writes still drop what they may have changed."""
    for region in (LOCAL, "us-east-1"):
        lab.fault(region, "error", status=400, code="AccessDeniedException", operations=("DescribeTable",))
    session = lab.session(cache=rp.CachePolicy(ttl=60), timeouts=PATIENT)
    key = {"pk": {"S": "p"}, "sk": {"S": "s"}}
    session.client.put_item(TableName=TABLE, Item={**key, "v": {"S": "old"}})
    assert session.client.get_item(TableName=TABLE, Key=key)["Item"]["v"] == {"S": "old"}  # cached
    for n in range(10):
        session.client.put_item(TableName=TABLE, Item={**key, "v": {"S": f"new {n}"}})
    assert session.client.get_item(TableName=TABLE, Key=key)["Item"]["v"] == {"S": "new 9"}
    describes = [r for region in (LOCAL, "us-east-1") for r in lab.requests(region) if r.operation == "DescribeTable"]
    assert len(describes) == 1
