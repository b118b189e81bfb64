"""How the cache names reads: cache keys, request fingerprints, query tags."""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from types import MappingProxyType

import pytest

from regionproxy._cache.keys import EVERYTHING, ITEM, TABLE, get_item_cache_key, read_cache_key, write_drops


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
    from regionproxy._cache.keys import get_item_cache_key, read_cache_key

    assert get_item_cache_key(params) == key
    assert read_cache_key("GetItem", params) == key


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


def _no_schema(table):
    raise LookupError("DescribeTable denied")


@pytest.mark.parametrize(
    ("operation", "params", "key_names", "drops"),
    [
        pytest.param(
            "PutItem", {"TableName": "t", "Item": {"pk": {"S": "a"}, "v": {"S": "x"}}}, lambda table: ("pk",),
            ((ITEM, "t", (("pk", ("S", "a")),)),), id="an-item",
        ),
        pytest.param(
            "BatchWriteItem",
            {"RequestItems": {"t": [{"DeleteRequest": {"Key": {"pk": {"S": "a"}}}}, {"DeleteRequest": {"Key": {"pk": {"S": "a"}}}}]}},
            lambda table: ("pk",), ((ITEM, "t", (("pk", ("S", "a")),)),), id="the-same-item-once",
        ),
        pytest.param(
            "DeleteItem", {"TableName": "t", "Key": {"pk": {"N": "not a number"}}}, lambda table: ("pk",),
            ((TABLE, "t"),), id="a-key-no-fingerprint-names",
        ),
        pytest.param("PutItem", {"TableName": "t", "Item": {"pk": {"S": "a"}}}, _no_schema, ((TABLE, "t"),), id="schema-unknown"),
        pytest.param("ExecuteStatement", {"Statement": "UPDATE \"t\" SET v = 1"}, lambda table: ("pk",), ((TABLE, "t"),), id="partiql-whole-table"),
        pytest.param("ExecuteStatement", {"Statement": "not partiql"}, lambda table: ("pk",), ((EVERYTHING,),), id="tables-unknown"),
    ],
)  # fmt: skip
def test_a_write_drops_what_it_names_as_a_value_every_worker_can_apply(operation, params, key_names, drops):
    assert write_drops(operation, params, key_names) == drops


# -- a table named by its ARN (regionproxy._dynamodb.tables) --------------------------

_ARN = "arn:aws:dynamodb:eu-west-3:123456789012:table/Blog"
_ARN_KEY = {"pk": {"S": "a"}}


def test_a_read_by_arn_is_cached_under_its_tables_name():
    assert get_item_cache_key({"TableName": _ARN, "Key": _ARN_KEY}) == get_item_cache_key({"TableName": "Blog", "Key": _ARN_KEY})
    query = {"TableName": _ARN, "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "a"}}}
    assert read_cache_key("Query", query)[0] == "Blog"


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        pytest.param("PutItem", {"TableName": _ARN, "Item": _ARN_KEY}, id="put"),
        pytest.param("BatchWriteItem", {"RequestItems": {_ARN: [{"DeleteRequest": {"Key": _ARN_KEY}}]}}, id="batch"),
        pytest.param("TransactWriteItems", {"TransactItems": [{"Put": {"TableName": _ARN, "Item": _ARN_KEY}}]}, id="transaction"),
    ],
)
def test_a_write_by_arn_drops_its_item_by_its_tables_name(operation, params):
    """The drops are what the fleet sends to every worker
    (regionproxy._fleet.coherence): they name the table as every reader's key does."""
    assert write_drops(operation, params, lambda table: ("pk",)) == ((ITEM, "Blog", (("pk", ("S", "a")),)),)
