"""The read cache against a careless caller, through the lab: keys that look
alike but name other items, requests botocore refuses, answers a caller
changes. Each case compares what the cached session does with what DynamoDB
(moto) and botocore's own validation answer without the cache."""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

import pytest
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ParamValidationError

import regionproxy as rp
from tests.support import TABLE

PATIENT = rp.Timeouts(connect=1, read=5, attempts=1)
WIRE_KEY = {"pk": {"S": "p"}, "sk": {"S": "s"}}


def _session(lab, **schemas):
    return lab.session(cache=rp.CachePolicy(ttl=60), timeouts=PATIENT, key_schemas={TABLE: ("pk", "sk"), **schemas})


def _create(lab, name, attribute, kind):
    lab.create_table(TableName=name, KeySchema=[{"AttributeName": attribute, "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": attribute, "AttributeType": kind}])  # fmt: skip


# 31 significant digits: DynamoDB keeps 38, Python's default decimal context 28.
BIG = Decimal("1234567890123456789012345678901")


@pytest.mark.parametrize("surface", ["client", "table"])
def test_number_keys_that_differ_past_28_digits_are_different_items(lab, surface):
    _create(lab, "Numbers", "n", "N")
    session = _session(lab, Numbers=("n",))
    for n, value in ((BIG, "first"), (BIG + 1, "second")):
        session.table("Numbers").put_item(Item={"n": n, "v": value})
    for _ in range(2):  # a miss, then a hit
        for n, value in ((BIG, "first"), (BIG + 1, "second")):
            if surface == "client":
                item = session.client.get_item(TableName="Numbers", Key={"n": {"N": str(n)}})["Item"]
                assert item["v"] == {"S": value}
            else:
                assert session.table("Numbers").get_item(Key={"n": n})["Item"]["v"] == value


def test_a_write_of_a_binary_key_given_as_text_drops_the_item_read_with_bytes(lab):
    """botocore sends ``{"B": "a"}`` as the bytes of "a": one item, two spellings."""
    _create(lab, "Blobs", "b", "B")
    session = _session(lab, Blobs=("b",))
    session.client.put_item(TableName="Blobs", Item={"b": {"B": b"a"}, "v": {"S": "old"}})
    assert session.client.get_item(TableName="Blobs", Key={"b": {"B": "a"}})["Item"]["v"] == {"S": "old"}
    assert session.client.get_item(TableName="Blobs", Key={"b": {"B": b"a"}})["Item"]["v"] == {"S": "old"}
    session.client.update_item(TableName="Blobs", Key={"b": {"B": "a"}}, UpdateExpression="SET v = :v",
                               ExpressionAttributeValues={":v": {"S": "new"}})  # fmt: skip
    assert session.client.get_item(TableName="Blobs", Key={"b": {"B": b"a"}})["Item"]["v"] == {"S": "new"}
    session.client.put_item(TableName="Blobs", Item={"b": {"B": b"a"}, "v": {"S": "newer"}})
    assert session.client.get_item(TableName="Blobs", Key={"b": {"B": "a"}})["Item"]["v"] == {"S": "newer"}


_QUERY = {"TableName": TABLE, "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p"}}}


@pytest.mark.parametrize(
    ("operation", "good", "bad"),
    [
        pytest.param("get_item", {"TableName": TABLE, "Key": WIRE_KEY},
                     {"TableName": TABLE, "Key": MappingProxyType(WIRE_KEY)}, id="key-not-a-dict"),
        pytest.param("query", {**_QUERY, "Limit": 1}, {**_QUERY, "Limit": 1.0}, id="limit-a-float"),
        pytest.param("query", {**_QUERY, "Limit": 1}, {**_QUERY, "Limit": Decimal(1)}, id="limit-a-decimal"),
        pytest.param("query", {**_QUERY, "ScanIndexForward": True}, {**_QUERY, "ScanIndexForward": 1}, id="bool-an-int"),
        pytest.param("query", {**_QUERY, "ExpressionAttributeValues": {":p": {"S": "{'p'}"}}},
                     {**_QUERY, "ExpressionAttributeValues": {":p": {"S": {"p"}}}}, id="a-set-that-reads-like-a-string"),
        pytest.param("query", _QUERY, {**_QUERY, "ExpressionAttributeValues": MappingProxyType(_QUERY["ExpressionAttributeValues"])},
                     id="values-not-a-dict"),
    ],
)  # fmt: skip
def test_a_request_botocore_refuses_gets_its_error_after_a_lookalike_is_cached(lab, operation, good, bad):
    session = _session(lab)
    session.client.put_item(TableName=TABLE, Item=WIRE_KEY)
    with pytest.raises(ParamValidationError):
        getattr(lab.session(timeouts=PATIENT).client, operation)(**bad)  # what boto3 says, uncached
    for _ in range(2):
        getattr(session.client, operation)(**good)
    with pytest.raises(ParamValidationError):
        getattr(session.client, operation)(**bad)


def test_a_table_query_botocore_refuses_gets_its_error_after_a_lookalike_is_cached(lab):
    session = _session(lab)
    table = session.table(TABLE)
    table.put_item(Item={"pk": "p", "sk": "s"})
    for _ in range(2):
        table.query(KeyConditionExpression=Key("pk").eq("p"), Limit=1)
    with pytest.raises(ParamValidationError):
        table.query(KeyConditionExpression=Key("pk").eq("p"), Limit=1.0)


def test_a_caller_who_changes_a_batch_get_answer_does_not_change_the_cache(lab):
    session = _session(lab)
    item = {**WIRE_KEY, "l": {"L": [{"S": "x"}]}, "m": {"M": {"k": {"S": "v"}}}}
    session.client.put_item(TableName=TABLE, Item=item)
    answer = session.client.batch_get_item(RequestItems={TABLE: {"Keys": [WIRE_KEY]}})  # the miss: loads and caches
    got = answer["Responses"][TABLE][0]
    got["pk"]["S"] = "changed"
    got["l"]["L"].append("junk")
    got["m"]["M"].clear()
    answer["ResponseMetadata"]["HTTPHeaders"].clear()
    hit = session.client.get_item(TableName=TABLE, Key=WIRE_KEY)
    assert hit["Item"] == item
    assert hit["ResponseMetadata"]["HTTPHeaders"], "the headers were not the caller's to clear"
    again = session.client.batch_get_item(RequestItems={TABLE: {"Keys": [WIRE_KEY]}})
    assert again["Responses"][TABLE] == [item]


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        pytest.param("query", {**_QUERY, "ExpressionAttributeValues": 5}, id="query-values-a-number"),
        pytest.param("query", {**_QUERY, "KeyConditionExpression": "#k = :p", "ExpressionAttributeNames": ["#k"]},
                     id="query-names-a-list"),
        pytest.param("query", {"TableName": TABLE, "KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": 5}}},
                     id="query-key-conditions-operands-a-number"),
        pytest.param("batch_get_item", {"RequestItems": {TABLE: {"Keys": [{"pk": {"S": ["p"]}, "sk": {"S": "s"}}]}}},
                     id="batch-key-a-list"),
        pytest.param("transact_write_items", {"TransactItems": [5]}, id="transaction-item-a-number"),
        pytest.param("batch_write_item", {"RequestItems": [TABLE]}, id="batch-write-requests-a-list"),
        pytest.param("put_item", {"TableName": [TABLE], "Item": WIRE_KEY}, id="put-table-a-list"),
        pytest.param("update_item", {"TableName": {TABLE: 1}, "Key": WIRE_KEY}, id="update-table-a-dict"),
        pytest.param("transact_write_items", {"TransactItems": [{"Put": {"TableName": [TABLE], "Item": WIRE_KEY}}]},
                     id="transaction-table-a-list"),
    ],
)  # fmt: skip
def test_a_malformed_request_gets_botocores_error_not_the_caches(lab, operation, params):
    session = _session(lab)
    session.client.get_item(TableName=TABLE, Key=WIRE_KEY)  # something cached
    with pytest.raises(Exception) as uncached:
        getattr(lab.session(timeouts=PATIENT).client, operation)(**params)
    with pytest.raises(type(uncached.value)):
        getattr(session.client, operation)(**params)


@pytest.mark.parametrize(
    ("cached", "refused"),
    [
        pytest.param(Decimal("1E+40"), 10**40, id="an-int-of-41-digits"),
        pytest.param(Decimal("1E+40"), Decimal(10**40), id="a-decimal-of-41-digits"),
        pytest.param(Decimal(1), Decimal("1." + "0" * 40), id="zeros-past-38-digits"),
    ],
)
def test_a_table_key_boto3_refuses_gets_its_error_after_a_lookalike_is_cached(lab, cached, refused):
    """boto3's serializer refuses these numbers (more than 38 digits:
    ``decimal.Rounded``) before sending; a cached number of the same value
    must not answer them."""
    import boto3

    _create(lab, "Numbers", "n", "N")
    plain = boto3.resource("dynamodb", region_name="eu-west-3", endpoint_url=lab.endpoints["eu-west-3"]).Table("Numbers")
    with pytest.raises(Exception) as uncached:
        plain.get_item(Key={"n": refused})
    table = _session(lab, Numbers=("n",)).table("Numbers")
    table.put_item(Item={"n": cached, "v": "x"})
    for _ in range(2):  # a miss, then a hit
        assert table.get_item(Key={"n": cached})["Item"]["v"] == "x"
    with pytest.raises(type(uncached.value)):
        table.get_item(Key={"n": refused})
