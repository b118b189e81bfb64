"""A table named by its ARN: its identity, the copy sent to each region,
and the answer given back (regionproxy._dynamodb.tables)."""

from __future__ import annotations

import copy

import pytest

import regionproxy as rp
from regionproxy._dynamodb.calls import Call
from regionproxy._dynamodb.operations import changed_tables
from regionproxy._dynamodb.tables import in_region, restore, table_name
from tests.support import LOCAL, REMOTE, moto_table

ARN = "arn:aws:dynamodb:eu-west-3:123456789012:table/Blog"
IN_REMOTE = "arn:aws:dynamodb:us-east-1:123456789012:table/Blog"
ELSEWHERE = "arn:aws:dynamodb:ap-south-1:123456789012:table/Blog"
SERVED = (LOCAL, REMOTE)
KEY = {"pk": {"S": "a"}}
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.mark.parametrize(
    ("table", "name"),
    [
        pytest.param("Blog", "Blog", id="a-name"),
        pytest.param(ARN, "Blog", id="an-arn"),
        pytest.param("arn:aws-cn:dynamodb:cn-north-1:123456789012:table/Blog", "Blog", id="another-partition"),
        pytest.param("arn:aws:dynamodb:eu-west-3:210987654321:table/Blog", "Blog", id="another-account"),
        pytest.param(ARN + "/index/byDate", ARN + "/index/byDate", id="an-index-arn-is-no-table"),
        pytest.param("arn:aws:dynamodb:eu-west-3:123456789012:stream/Blog", "arn:aws:dynamodb:eu-west-3:123456789012:stream/Blog", id="a-stream-arn"),
        pytest.param("arn:aws:s3:::Blog", "arn:aws:s3:::Blog", id="another-service"),
        pytest.param("arn:", "arn:", id="malformed"),
        pytest.param(None, None, id="not-a-string"),
    ],
)
def test_a_table_is_the_name_its_arn_ends_with_and_anything_else_is_itself(table, name):
    assert table_name(table) == name


SHAPES = {
    "GetItem": ({"TableName": ARN, "Key": KEY}, {"TableName": IN_REMOTE, "Key": KEY}),
    "BatchGetItem": ({"RequestItems": {ARN: {"Keys": [KEY]}, "Other": {"Keys": [KEY]}}}, {"RequestItems": {IN_REMOTE: {"Keys": [KEY]}, "Other": {"Keys": [KEY]}}}),
    "BatchWriteItem": ({"RequestItems": {ARN: [{"DeleteRequest": {"Key": KEY}}]}}, {"RequestItems": {IN_REMOTE: [{"DeleteRequest": {"Key": KEY}}]}}),
    "TransactWriteItems": (
        {"TransactItems": [{"Put": {"TableName": ARN, "Item": KEY}}, {"ConditionCheck": {"TableName": "Other", "Key": KEY, "ConditionExpression": "x"}}]},
        {"TransactItems": [{"Put": {"TableName": IN_REMOTE, "Item": KEY}}, {"ConditionCheck": {"TableName": "Other", "Key": KEY, "ConditionExpression": "x"}}]},
    ),
    "TransactGetItems": ({"TransactItems": [{"Get": {"TableName": ARN, "Key": KEY}}]}, {"TransactItems": [{"Get": {"TableName": IN_REMOTE, "Key": KEY}}]}),
}


@pytest.mark.parametrize("operation", list(SHAPES))
def test_a_call_sent_to_another_region_names_the_table_in_that_region_and_the_callers_params_stay(operation):
    params, expected = SHAPES[operation]
    before = copy.deepcopy(params)
    call = Call(operation, params)
    sent, renames = call.params_in(REMOTE, SERVED)
    assert sent == expected
    assert renames == {IN_REMOTE: ARN}
    assert params == before
    assert call.params_in(LOCAL, SERVED) == (params, {})  # its own region: sent as it is


@pytest.mark.parametrize(
    "table",
    [pytest.param(ELSEWHERE, id="a-region-the-session-does-not-serve"), pytest.param(ARN + "/index/i", id="malformed"), pytest.param("Blog", id="a-name")],
)
def test_what_names_no_served_region_is_sent_unchanged_for_dynamodb_to_answer(table):
    params = {"TableName": table, "Key": KEY}
    assert in_region("GetItem", params, REMOTE, SERVED) == (params, {})


def test_a_batch_answer_is_keyed_by_the_callers_arn_again():
    answer = {
        "Responses": {IN_REMOTE: [KEY], "Other": []},
        "UnprocessedKeys": {IN_REMOTE: {"Keys": [KEY]}},
        "ConsumedCapacity": [{"TableName": IN_REMOTE, "CapacityUnits": 1.0}, {"TableName": "Other"}],
    }
    restored = restore(answer, {IN_REMOTE: ARN})
    assert restored["Responses"] == {ARN: [KEY], "Other": []}
    assert restored["UnprocessedKeys"] == {ARN: {"Keys": [KEY]}}
    assert [entry["TableName"] for entry in restored["ConsumedCapacity"]] == [ARN, "Other"]


@pytest.mark.parametrize("operation", list(SHAPES))
def test_a_call_by_arn_names_its_tables_and_keys_by_name(operation):
    call = Call(operation, SHAPES[operation][0])
    assert call.by_arn
    assert "Blog" in call.tables and ARN not in call.tables
    if call.kind == "read":
        assert {table for table, _ in call.read_keys or ()} <= {"Blog", "Other"}


def test_a_call_by_name_is_read_through_its_own_params():
    params = {"TableName": "Blog", "Key": KEY}
    call = Call("GetItem", params)
    assert not call.by_arn
    assert call.named is params


def test_moto_takes_a_table_arn_and_echoes_it_in_a_batch_answer():
    """What the lab's stand-in does (restore relies on DynamoDB echoing the
    request's table keys); and an ARN of another region finds no table."""
    with moto_table("Blog", CREDENTIALS) as boto:
        client = boto.client("dynamodb", region_name=LOCAL)
        arn = client.describe_table(TableName="Blog")["Table"]["TableArn"]
        client.put_item(TableName=arn, Item={"p": {"S": "a"}})
        assert list(client.batch_get_item(RequestItems={arn: {"Keys": [{"p": {"S": "a"}}]}})["Responses"]) == [arn]
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.get_item(TableName=arn.replace(LOCAL, REMOTE), Key={"p": {"S": "a"}})


def test_a_session_sends_each_region_its_own_arn_in_process():
    with moto_table("Blog", CREDENTIALS) as boto:
        session = rp.RegionSession([LOCAL, REMOTE], boto3_session=boto)
        try:
            arn = boto.client("dynamodb", region_name=LOCAL).describe_table(TableName="Blog")["Table"]["TableArn"]
            boto.client("dynamodb", region_name=REMOTE).put_item(TableName="Blog", Item={"p": {"S": "remote"}})
            item = session.call_region(REMOTE, "GetItem", {"TableName": arn, "Key": {"p": {"S": "remote"}}})["Item"]
            assert item == {"p": {"S": "remote"}}
        finally:
            session.close()


def test_a_partiql_statement_naming_a_table_by_arn_names_the_table():
    call = Call("ExecuteStatement", {"Statement": f"UPDATE \"{ARN}\" SET v = 1 WHERE pk = 'a'"})
    assert call.tables == ["Blog"]
    assert call.written_keys(lambda table: ("pk",)) == [("Blog", {"pk": {"S": "a"}})]


def test_a_control_plane_call_by_arn_is_sent_as_written_and_changes_its_table_by_name():
    call = Call("DeleteTable", {"TableName": IN_REMOTE})
    assert call.params_in(LOCAL, SERVED) == (call.params, {})  # which replica: the caller's to say
    assert changed_tables(call.operation, call.named) == ("Blog",)  # what the cache and key schemas forget
