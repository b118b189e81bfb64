"""One pass per call: whichever surface a call comes from, with the cache
and hedging on, it enters the session once and is described once (one
``Call``), a cache miss and a hit alike.

In-process DynamoDB (moto's ``mock_aws``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from boto3.dynamodb.conditions import Key

import regionproxy as rp
from regionproxy._dynamodb.calls import Call
from tests.support import LOCAL, REMOTE, moto_table

TABLE = "Items"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
ITEM = {"p": "a", "n": 1}
WIRE_KEY = {"p": {"S": "a"}}


@pytest.fixture
def counted(monkeypatch) -> Iterator[tuple[rp.RegionSession, list[str], list[str]]]:
    """A session with cache and hedging over an in-process DynamoDB, and
    the operations of each entry into the session (a call of any of its
    public methods) and of each Call made."""
    entries: list[str] = []
    described: list[str] = []
    init = Call.__init__

    def counting(method: Callable[..., Any]) -> Callable[..., Any]:
        def counted_method(self: Any, *args: Any, **kwargs: Any) -> Any:
            entries.append(args[0] if args and isinstance(args[0], str) else method.__name__)
            return method(self, *args, **kwargs)

        return counted_method

    def counting_init(self: Any, operation: str, *args: Any, **kwargs: Any) -> None:
        described.append(operation)
        init(self, operation, *args, **kwargs)

    with moto_table(TABLE, CREDENTIALS) as boto:
        for name, member in vars(rp.RegionSession).items():
            if callable(member) and not name.startswith("_") and not isinstance(member, staticmethod | classmethod):
                monkeypatch.setattr(rp.RegionSession, name, counting(member))
        monkeypatch.setattr(Call, "__init__", counting_init)
        session = rp.RegionSession(
            [LOCAL, REMOTE],
            boto3_session=boto,
            cache=rp.CachePolicy(maxsize=100, ttl=60),
            hedge=rp.HedgePolicy(delay=5.0),
            key_schemas={TABLE: ("p",)},
        )
        session.table(TABLE).put_item(Item=ITEM)
        entries.clear()
        described.clear()
        yield session, entries, described
        session.close()


# (the surface, what it is asked): the surface is made before counting.
SURFACES: list[Any] = [
    pytest.param(lambda s: s.table(TABLE), lambda t: t.get_item(Key={"p": "a"}), "GetItem", id="table-get-item"),
    pytest.param(
        lambda s: s.resource.meta.client, lambda c: c.get_item(TableName=TABLE, Key={"p": "a"}), "GetItem", id="values-get-item"
    ),
    pytest.param(lambda s: s.client, lambda c: c.get_item(TableName=TABLE, Key=WIRE_KEY), "GetItem", id="client-get-item"),
    pytest.param(lambda s: s.table(TABLE), lambda t: t.query(KeyConditionExpression=Key("p").eq("a")), "Query", id="table-query"),
    pytest.param(
        lambda s: s.client,
        lambda c: c.query(TableName=TABLE, KeyConditionExpression="p = :p", ExpressionAttributeValues={":p": {"S": "a"}}),
        "Query",
        id="client-query",
    ),
    pytest.param(lambda s: s.table(TABLE), lambda t: t.scan(), "Scan", id="table-scan"),
    pytest.param(lambda s: s.table(TABLE), lambda t: t.put_item(Item=ITEM), "PutItem", id="table-put-item"),
]


@pytest.mark.parametrize(("surface", "call", "operation"), SURFACES)
def test_a_call_enters_the_session_once_and_is_described_once(counted, surface, call, operation: str):
    session, entries, described = counted
    made = surface(session)
    entries.clear()
    call(made)  # a miss (or a write)
    assert entries == [operation], "entered the session once"
    assert described == [operation], "described once"
    entries.clear()
    described.clear()
    call(made)  # a hit, for the cached reads
    assert entries == [operation]
    assert len(described) <= 1


def test_a_cached_get_item_is_answered_in_the_callers_form_on_each_surface(counted):
    session = counted[0]
    for _ in range(2):  # the miss, then the hit
        assert session.table(TABLE).get_item(Key={"p": "a"})["Item"] == ITEM
        assert session.client.get_item(TableName=TABLE, Key=WIRE_KEY)["Item"] == {"p": {"S": "a"}, "n": {"N": "1"}}
