"""Operation kinds and idempotency."""

from __future__ import annotations

import pytest

from regionproxy.operations import CONTROL, READ, WRITE, is_idempotent, kind_of, written_keys


@pytest.mark.parametrize(
    ("operation", "params", "kind"),
    [
        ("GetItem", {}, READ),
        ("Query", {}, READ),
        ("BatchGetItem", {}, READ),
        ("TransactGetItems", {}, READ),
        ("PutItem", {}, WRITE),
        ("TransactWriteItems", {}, WRITE),
        ("ExecuteStatement", {"Statement": "SELECT * FROM t"}, READ),
        ("ExecuteStatement", {"Statement": "  select * from t"}, READ),
        ("ExecuteStatement", {"Statement": "UPDATE t SET a=1"}, WRITE),
        ("BatchExecuteStatement", {"Statements": [{"Statement": "SELECT 1"}, {"Statement": "DELETE FROM t"}]}, WRITE),
        ("CreateTable", {}, CONTROL),
        ("DescribeTable", {}, CONTROL),
    ],
)
def test_kind_of(operation, params, kind):
    assert kind_of(operation, params) == kind


KEY = {"TableName": "t", "Key": {"pk": {"S": "a"}}}


@pytest.mark.parametrize(
    ("operation", "params", "idempotent"),
    [
        pytest.param("PutItem", {"TableName": "t", "Item": {}}, True, id="plain-put"),
        pytest.param("PutItem", {"ConditionExpression": "attribute_not_exists(pk)"}, False, id="conditional-put"),
        pytest.param("DeleteItem", KEY, True, id="plain-delete"),
        pytest.param("DeleteItem", {**KEY, "Expected": {"a": {"Exists": False}}}, False, id="legacy-conditional"),
        pytest.param("UpdateItem", {**KEY, "UpdateExpression": "SET a = :a REMOVE b"}, True, id="set-remove"),
        pytest.param("UpdateItem", {**KEY, "UpdateExpression": "SET a = if_not_exists(a, :z)"}, True, id="if-not-exists"),
        pytest.param("UpdateItem", {**KEY, "UpdateExpression": "ADD n :one"}, False, id="add"),
        pytest.param("UpdateItem", {**KEY, "UpdateExpression": "SET n = n + :one"}, False, id="arithmetic"),
        pytest.param("UpdateItem", {**KEY, "UpdateExpression": "SET l = list_append(l, :x)"}, False, id="list-append"),
        pytest.param("UpdateItem", {**KEY, "UpdateExpression": "DELETE s :x"}, False, id="delete-from-set"),
        # DynamoDB's placeholders are [A-Za-z0-9_]: '#a-b' reads as '#a - b', arithmetic.
        pytest.param("UpdateItem", {**KEY, "UpdateExpression": "SET #a-b = :c-d"}, False, id="dash-is-arithmetic"),
        pytest.param("UpdateItem", {**KEY, "UpdateExpression": "SET #c = #c - :one"}, False, id="minus-after-name"),
        pytest.param("UpdateItem", {**KEY, "UpdateExpression": "SET #p = #cur, #cur = :v"}, False, id="copy-then-write"),
        pytest.param("UpdateItem", {**KEY, "UpdateExpression": "SET l[9] = :v"}, False, id="list-index-write"),
        pytest.param("UpdateItem", {**KEY, "UpdateExpression": "REMOVE l[0]"}, False, id="list-index-remove"),
        pytest.param("ExecuteStatement", {"Statement": "UPDATE t SET a=1 WHERE pk='x'"}, False, id="partiql-write"),
        pytest.param(
            "UpdateItem", {**KEY, "UpdateExpression": "SET a = :a", "ConditionExpression": "a = :b"}, False, id="cond"
        ),
        pytest.param("UpdateItem", {**KEY, "AttributeUpdates": {"a": {"Action": "ADD"}}}, False, id="legacy-add"),
        pytest.param("UpdateItem", {**KEY, "AttributeUpdates": {"a": {"Action": "PUT"}}}, True, id="legacy-put"),
        pytest.param("BatchWriteItem", {}, True, id="batch-write"),
        pytest.param(
            "TransactWriteItems",
            {"TransactItems": [{"Put": {"Item": {}}}, {"Delete": KEY}]},
            True,
            id="transact-plain",
        ),
        pytest.param(
            "TransactWriteItems",
            {"TransactItems": [{"Update": {**KEY, "UpdateExpression": "SET #c = :ten - #c"}}]},
            False,
            id="transact-value-minus-name",
        ),
        pytest.param(
            "TransactWriteItems",
            {"TransactItems": [{"Put": {"Item": {}}}, {"ConditionCheck": {**KEY, "ConditionExpression": "x"}}]},
            False,
            id="transact-condition-check",
        ),
        pytest.param("ExecuteStatement", {"Statement": "UPDATE t SET a=1"}, False, id="partiql"),
    ],
)
def test_is_idempotent(operation, params, idempotent):
    assert is_idempotent(operation, params) is idempotent


def test_written_keys_finds_put_keys_from_the_schema():
    params = {
        "RequestItems": {
            "t": [
                {"PutRequest": {"Item": {"pk": {"S": "a"}, "other": {"S": "x"}}}},
                {"DeleteRequest": {"Key": {"pk": {"S": "b"}}}},
            ]
        }
    }
    assert written_keys("BatchWriteItem", params, lambda table: ("pk",)) == [
        ("t", {"pk": {"S": "a"}}),
        ("t", {"pk": {"S": "b"}}),
    ]


@pytest.mark.parametrize(
    ("operation", "params", "tables"),
    [
        ("GetItem", {"TableName": "t"}, ["t"]),
        ("BatchGetItem", {"RequestItems": {"a": {}, "b": {}}}, ["a", "b"]),
        ("TransactWriteItems", {"TransactItems": [{"Put": {"TableName": "a"}}, {"Delete": {"TableName": "b"}}]}, ["a", "b"]),
        ("TransactGetItems", {"TransactItems": [{"Get": {"TableName": "a"}}]}, ["a"]),
        ("ExecuteStatement", {"Statement": "UPDATE t SET a=1"}, []),
    ],
)
def test_tables_of(operation, params, tables):
    from regionproxy.operations import tables_of

    assert tables_of(operation, params) == tables
