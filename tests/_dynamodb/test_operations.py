"""Operation kinds and idempotency."""

from __future__ import annotations

import pytest

from regionproxy._dynamodb.operations import CONTROL, READ, WRITE, is_idempotent, kind_of, tables_of, written_keys


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


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        pytest.param('/* report */ SELECT * FROM "Items" WHERE pk = ?', READ, id="block-comment-select"),
        pytest.param('-- report\nSELECT * FROM "Items"', READ, id="line-comment-select"),
        pytest.param('/* a */ -- b\n  /* c\n d */ select * from "Items"', READ, id="comments-then-select"),
        pytest.param('SELECT * FROM "Items" WHERE a = `x`', READ, id="select-whose-rest-is-unread"),
        pytest.param('/* SELECT */ UPDATE "Items" SET a = 1', WRITE, id="commented-select-then-update"),
        pytest.param('-- SELECT\nDELETE FROM "Items" WHERE pk = 1', WRITE, id="line-commented-select-then-delete"),
        pytest.param("/* unterminated SELECT * FROM t", WRITE, id="unterminated-comment"),
        pytest.param("SELECTED FROM t", WRITE, id="not-the-word-select"),
        pytest.param("", WRITE, id="empty"),
        pytest.param(None, WRITE, id="not-a-string"),
        pytest.param("SELECT * FROM t WHERE a = '" + "x" * 9000 + "'", READ, id="select-longer-than-dynamodb-takes"),
        pytest.param("UPDATE t SET a = '" + "x" * 9000 + "'", WRITE, id="update-longer-than-dynamodb-takes"),
        pytest.param("/*" + " " * 9000 + "*/ SELECT * FROM t", WRITE, id="verb-past-the-longest-statement"),
    ],
)
def test_kind_of_a_partiql_statement_is_its_verb_as_the_statement_reader_reads_it(statement, kind):
    assert kind_of("ExecuteStatement", {"Statement": statement}) == kind
    assert kind_of("BatchExecuteStatement", {"Statements": [{"Statement": statement}]}) == kind
    assert kind_of("ExecuteTransaction", {"TransactStatements": [{"Statement": statement}]}) == kind


def test_a_select_after_a_comment_names_its_table():
    assert tables_of("ExecuteStatement", {"Statement": '/* report */ SELECT * FROM "Items" WHERE pk = ?'}) == ["Items"]


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
        ("ExecuteStatement", {"Statement": "UPDATE t SET a=1"}, ["t"]),
        ("ExecuteStatement", {"Statement": 'SELECT * FROM "My-Table"."by-date" WHERE pk = ?'}, ["My-Table"]),
        ("ExecuteStatement", {"Statement": "delete from \"t\" where pk = 'a'"}, ["t"]),
        ("ExecuteStatement", {"Statement": "INSERT INTO \"t\" VALUE {'pk': 'a'}"}, ["t"]),
        (
            "ExecuteTransaction",
            {
                "TransactStatements": [
                    {"Statement": "EXISTS(SELECT * FROM a WHERE pk = 'x')"},
                    {"Statement": "UPDATE b SET v = 1"},
                ]
            },
            ["a", "b"],
        ),
        # One statement whose table cannot be read: the call's tables are unknown.
        ("BatchExecuteStatement", {"Statements": [{"Statement": "UPDATE a SET v=1"}, {"Statement": "UPSERT b"}]}, []),
        ("ExecuteStatement", {"Statement": "UPDATE `t` SET a=1"}, []),
        ("TransactGetItems", {"TransactItems": ["junk"]}, []),
    ],
)
def test_tables_of(operation, params, tables):
    assert tables_of(operation, params) == tables


def test_written_keys_of_a_mixed_transaction_name_every_entry_but_the_condition_check():
    params = {
        "TransactItems": [
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "u"}}, "UpdateExpression": "SET v = :v"}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "p"}, "v": {"S": "x"}}}},
            {"Delete": {"TableName": "other", "Key": {"pk": {"S": "d"}}}},
            {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "c"}}, "ConditionExpression": "attribute_exists(pk)"}},
        ]
    }
    assert written_keys("TransactWriteItems", params, lambda table: ("pk",)) == [
        ("t", {"pk": {"S": "u"}}),
        ("t", {"pk": {"S": "p"}}),
        ("other", {"pk": {"S": "d"}}),
    ]


KEY_NAMES = {"t": ("pk", "sk")}


@pytest.mark.parametrize(
    ("statement", "parameters", "key"),
    [
        pytest.param(
            "UPDATE \"t\" SET v = 1 WHERE pk = 'a' AND sk = 'b'", None, {"pk": {"S": "a"}, "sk": {"S": "b"}}, id="literals"
        ),
        pytest.param(
            "update t set v = ? where pk = ? and \"sk\" = 'b' returning all new *",
            [{"S": "v"}, {"S": "a"}],
            {"pk": {"S": "a"}, "sk": {"S": "b"}},
            id="parameters-counted-from-the-start",
        ),
        pytest.param(
            "DELETE FROM t WHERE 'a' = pk AND sk = -1.5", None, {"pk": {"S": "a"}, "sk": {"N": "-1.5"}}, id="reversed-negative"
        ),
        pytest.param(
            "DELETE FROM t WHERE pk = 'it''s' AND v BETWEEN 1 AND 2 AND sk = 'b' AND attribute_exists(v)",
            None,
            {"pk": {"S": "it's"}, "sk": {"S": "b"}},
            id="other-conditions",
        ),
        pytest.param(
            "INSERT INTO t VALUE {'pk': 'a', 'sk': ?, 'm': {'pk': 'not this', 'l': [1, 2]}}",
            [{"S": "b"}],
            {"pk": {"S": "a"}, "sk": {"S": "b"}},
            id="insert-tuple",
        ),
        pytest.param(
            "INSERT INTO t VALUE ?",
            [{"M": {"pk": {"S": "a"}, "sk": {"S": "b"}, "v": {"N": "1"}}}],
            {"pk": {"S": "a"}, "sk": {"S": "b"}},
            id="insert-parameter",
        ),
    ],
)
def test_a_partiql_write_that_states_its_whole_key_names_its_item(statement, parameters, key):
    params = {"Statement": statement, **({"Parameters": parameters} if parameters else {})}
    assert written_keys("ExecuteStatement", params, KEY_NAMES.__getitem__) == [("t", key)]


@pytest.mark.parametrize(
    ("statement", "parameters"),
    [
        pytest.param("UPDATE t SET v = 1 WHERE pk = 'a'", None, id="part-of-the-key"),
        pytest.param("UPDATE t SET v = 1 WHERE pk = 'a' OR sk = 'b'", None, id="or"),
        pytest.param("UPDATE t SET v = 1 WHERE pk = 'a' AND NOT sk = 'b'", None, id="not"),
        pytest.param("UPDATE t SET v = 1 WHERE (pk = 'a' AND sk = 'b')", None, id="brackets"),
        pytest.param("UPDATE t SET v = 1 WHERE pk = 'a' AND sk = 'b' AND pk = 'c'", None, id="two-values"),
        pytest.param("UPDATE t SET v = 1 WHERE pk = 'a' AND sk IN ['b', 'c']", None, id="in"),
        pytest.param("UPDATE t SET v = 1 WHERE x BETWEEN 1 AND sk = 'b' AND pk = 'a'", None, id="between-swallows-and"),
        pytest.param("UPDATE t SET v = 1 WHERE pk = 'a' AND sk = ?", [], id="missing-parameter"),
        pytest.param("UPDATE t SET v = 1 WHERE pk = 'a' AND sk = TRUE", None, id="not-a-key-value"),
        pytest.param("INSERT INTO t VALUE {'pk': 'a', 'sk': ['b']}", None, id="insert-list"),
        pytest.param("INSERT INTO t VALUE ?", [{"S": "a"}], id="insert-not-a-map"),
        pytest.param("UPDATE `t` SET v = 1 WHERE pk = 'a' AND sk = 'b'", None, id="unreadable"),
    ],
)
def test_a_partiql_write_that_does_not_state_its_whole_key_names_none(statement, parameters):
    from regionproxy._dynamodb.operations import UnnamedKeys

    params = {"Statement": statement, **({"Parameters": parameters} if parameters is not None else {})}
    with pytest.raises(UnnamedKeys):
        written_keys("ExecuteStatement", params, KEY_NAMES.__getitem__)


def test_partiql_reads_in_a_write_batch_name_no_written_item():
    params = {
        "Statements": [
            {"Statement": "SELECT * FROM t WHERE pk = 'x'"},
            {"Statement": "DELETE FROM t WHERE pk = 'a' AND sk = 'b'"},
        ]
    }
    assert written_keys("BatchExecuteStatement", params, KEY_NAMES.__getitem__) == [("t", {"pk": {"S": "a"}, "sk": {"S": "b"}})]


@pytest.mark.parametrize(
    ("operation", "params", "consistent"),
    [
        ("GetItem", {"ConsistentRead": True}, True),
        ("GetItem", {"ConsistentRead": False}, False),
        ("GetItem", {}, False),
        ("Query", {"ConsistentRead": True}, True),
        ("Scan", {"ConsistentRead": True}, True),
        ("BatchGetItem", {"RequestItems": {"a": {"Keys": []}, "b": {"Keys": [], "ConsistentRead": True}}}, True),
        ("BatchGetItem", {"RequestItems": {"a": {"Keys": []}}}, False),
        ("TransactGetItems", {}, True),
        ("ExecuteStatement", {"Statement": "SELECT * FROM t", "ConsistentRead": True}, True),
        ("ExecuteStatement", {"Statement": "SELECT * FROM t"}, False),
        (
            "BatchExecuteStatement",
            {"Statements": [{"Statement": "SELECT 1"}, {"Statement": "SELECT 2", "ConsistentRead": True}]},
            True,
        ),
        ("ExecuteTransaction", {"TransactStatements": [{"Statement": "SELECT * FROM t"}]}, True),
        ("GetItem", {"ConsistentRead": "yes"}, True),  # botocore refuses it: no need to hedge it
        ("BatchGetItem", {"RequestItems": ["junk"]}, False),
    ],
)
def test_is_strongly_consistent(operation, params, consistent):
    from regionproxy._dynamodb.operations import is_strongly_consistent

    assert is_strongly_consistent(operation, params) is consistent
