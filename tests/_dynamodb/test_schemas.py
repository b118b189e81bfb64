"""KeySchemas: a table's key names, declared or learned once from
DescribeTable; a failure to learn them is remembered for a while, then the
table is asked about again."""

from __future__ import annotations

import pytest

from regionproxy._dynamodb.schemas import KeySchemas, KeySchemaUnknown

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
