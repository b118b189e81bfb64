"""KeySchemas: a table's key names, declared or learned once from
DescribeTable; a failure to learn them is remembered for a while, then the
table is asked about again."""

from __future__ import annotations

import threading

import pytest

from regionproxy._dynamodb.schemas import KeySchemas, KeySchemaUnknown
from tests.support import bounded

DESCRIPTION = {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]}


class Describe:
    """DescribeTable as the session sends it: denied until ``allowed``."""

    def __init__(self):
        self.asked = []
        self.allowed = False

    def __call__(self, table, prefer):
        self.asked.append(table)
        if not self.allowed:
            raise PermissionError("AccessDeniedException")
        return DESCRIPTION


def test_a_failed_describe_is_remembered_until_retry_after_then_asked_again(clock):
    describe = Describe()
    schemas = KeySchemas({}, describe, clock=clock, retry_after=60.0)
    with pytest.raises(PermissionError):
        schemas.names("T")
    clock.now += 59.9
    with pytest.raises(KeySchemaUnknown):
        schemas.names("T")  # remembered: not asked again
    assert describe.asked == ["T"]
    describe.allowed = True
    clock.now += 0.1
    assert schemas.names("T") == ("pk", "sk")
    assert describe.asked == ["T", "T"]
    assert schemas.names("T") == ("pk", "sk")
    assert describe.asked == ["T", "T"], "learned: never asked again"


def test_forgetting_a_table_forgets_that_describing_it_failed(clock):
    describe = Describe()
    schemas = KeySchemas({}, describe, clock=clock)
    with pytest.raises(PermissionError):
        schemas.names("T")
    describe.allowed = True
    schemas.forget("T")  # DeleteTable or CreateTable through the session
    assert schemas.names("T") == ("pk", "sk")


def test_declared_names_are_known_without_asking(clock):
    describe = Describe()
    schemas = KeySchemas({"Blog": ("PK", "SK")}, describe, clock=clock)
    assert schemas.known("Blog") == ("PK", "SK")
    assert schemas.names("Blog") == ("PK", "SK")
    assert schemas.known("Other") is None
    assert describe.asked == []


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
        assert bounded(lambda: schemas.names("T")) == ("pk",)
    finally:
        release.set()
        parent.join(10)
