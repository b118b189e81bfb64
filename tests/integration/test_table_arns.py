"""A table given by its ARN works like a table given by its name
(regionproxy._dynamodb.tables), against the lab: one cache identity, and
failover that sends each region its own ARN.

moto takes a table ARN wherever a TableName goes, and answers an ARN of
another region with ResourceNotFoundException (real DynamoDB: a
ValidationException, "Invalid AWS region"): either way, a region given
another region's ARN does not serve the call.
"""

from __future__ import annotations

import copy

import pytest

import regionproxy as rp
from tests.integration.sidecar_lab import serving
from tests.support import LOCAL, REMOTE, TABLE

PATIENT = rp.Timeouts(connect=1, read=5, attempts=1)
KEY = {"pk": {"S": "arn"}, "sk": {"S": "0"}}


def _arn(lab, region=LOCAL):
    return lab.client(region, direct=True).describe_table(TableName=TABLE)["Table"]["TableArn"]


def _cached_session(lab):
    return lab.session(cache=rp.CachePolicy(ttl=60), timeouts=PATIENT, key_schemas={TABLE: ("pk", "sk")})


def _gets(lab, since):
    return sum(1 for request in lab.requests(LOCAL)[since:] if request.operation == "GetItem" and request.action == "forwarded")


@pytest.mark.parametrize("surface", ["client", "table"])
@pytest.mark.parametrize(("read_by", "write_by"), [("name", "arn"), ("arn", "name")], ids=["read-by-name", "read-by-arn"])
def test_a_write_by_one_name_of_a_table_drops_a_read_cached_by_the_other(lab, surface, read_by, write_by):
    arn = _arn(lab)
    names = {"name": TABLE, "arn": arn}
    session = _cached_session(lab)
    if surface == "client":
        session.client.put_item(TableName=TABLE, Item={**KEY, "v": {"S": "old"}})

        def read():
            return session.client.get_item(TableName=names[read_by], Key=KEY)["Item"]["v"]["S"]

        def write(value):
            session.client.put_item(TableName=names[write_by], Item={**KEY, "v": {"S": value}})
    else:
        session.table(TABLE).put_item(Item={"pk": "arn", "sk": "0", "v": "old"})

        def read():
            return session.table(names[read_by]).get_item(Key={"pk": "arn", "sk": "0"})["Item"]["v"]

        def write(value):
            session.table(names[write_by]).put_item(Item={"pk": "arn", "sk": "0", "v": value})

    assert read() == "old"
    since = len(lab.requests(LOCAL))
    assert read() == "old"
    assert _gets(lab, since) == 0  # cached
    write("new")
    assert read() == "new"  # not the cached "old"


def test_a_read_by_arn_with_the_local_region_refused_is_served_by_the_remote_region(lab):
    lab.client(LOCAL, direct=True).put_item(TableName=TABLE, Item={**KEY, "v": {"S": "x"}})
    lab.wait_replicated(timeout=20)
    session = lab.session(timeouts=PATIENT)
    lab.fault(LOCAL, "refuse")
    params = {"TableName": _arn(lab), "Key": KEY}
    before = copy.deepcopy(params)
    assert session.client.get_item(**params)["Item"]["v"] == {"S": "x"}
    assert params == before  # the caller's own parameters, untouched


def test_a_batch_read_by_arn_failing_over_answers_under_the_callers_arn(lab):
    lab.client(LOCAL, direct=True).put_item(TableName=TABLE, Item={**KEY, "v": {"S": "x"}})
    lab.wait_replicated(timeout=20)
    session = lab.session(timeouts=PATIENT)
    lab.fault(LOCAL, "refuse")
    arn = _arn(lab)
    answer = session.client.batch_get_item(RequestItems={arn: {"Keys": [KEY]}})
    assert list(answer["Responses"]) == [arn]
    assert answer["Responses"][arn][0]["v"] == {"S": "x"}


def test_a_conditional_write_by_arn_fails_over_as_a_write_by_name_would(lab):
    session = lab.session(timeouts=PATIENT)
    lab.fault(LOCAL, "refuse")
    session.client.put_item(
        TableName=_arn(lab), Item={**KEY, "v": {"S": "conditional"}}, ConditionExpression="attribute_not_exists(pk)"
    )
    assert lab.client(REMOTE, direct=True).get_item(TableName=TABLE, Key=KEY, ConsistentRead=True)["Item"]["v"] == {"S": "conditional"}


def test_a_transactional_write_by_arn_fails_over_as_a_write_by_name_would(lab):
    session = lab.session(timeouts=PATIENT)
    lab.fault(LOCAL, "refuse")
    items = [{"Put": {"TableName": _arn(lab), "Item": {**KEY, "v": {"S": "transaction"}}, "ConditionExpression": "attribute_not_exists(pk)"}}]
    before = copy.deepcopy(items)
    session.client.transact_write_items(TransactItems=items)
    assert items == before
    assert lab.client(REMOTE, direct=True).get_item(TableName=TABLE, Key=KEY, ConsistentRead=True)["Item"]["v"] == {"S": "transaction"}


def test_a_sidecar_request_naming_a_table_by_arn_is_rewritten_for_the_region_it_fails_over_to(lab):
    lab.client(LOCAL, direct=True).put_item(TableName=TABLE, Item={**KEY, "v": {"S": "x"}})
    lab.wait_replicated(timeout=20)
    arn = _arn(lab)
    session = lab.session(timeouts=PATIENT)
    with serving(lab, session) as sidecar:
        lab.fault(LOCAL, "refuse")
        client = sidecar.client()
        assert client.get_item(TableName=arn, Key=KEY)["Item"]["v"] == {"S": "x"}
        answer = client.batch_get_item(RequestItems={arn: {"Keys": [KEY]}})
        assert answer["Responses"][arn][0]["v"] == {"S": "x"}
        client.put_item(TableName=arn, Item={**KEY, "v": {"S": "y"}}, ConditionExpression="attribute_exists(pk)")
    assert lab.client(REMOTE, direct=True).get_item(TableName=TABLE, Key=KEY, ConsistentRead=True)["Item"]["v"] == {"S": "y"}


def test_a_hedged_read_by_arn_sends_the_remote_region_its_own_arn(lab):
    lab.client(LOCAL, direct=True).put_item(TableName=TABLE, Item={**KEY, "v": {"S": "x"}})
    lab.wait_replicated(timeout=20)
    arn = _arn(lab)
    session = lab.session(hedge=rp.HedgePolicy(delay=0.02), timeouts=rp.Timeouts(connect=1.0, read=2.0, attempts=1))
    # The local region never answers: only the hedge, sent to the remote
    # region with the remote region's ARN, can.
    lab.fault(LOCAL, "blackhole")
    assert session.client.get_item(TableName=arn, Key=KEY)["Item"]["v"] == {"S": "x"}


def test_a_read_by_name_follows_a_write_by_arn_that_failed_over(lab):
    session = lab.session(timeouts=PATIENT, key_schemas={TABLE: ("pk", "sk")})
    lab.fault(LOCAL, "refuse")
    session.client.put_item(TableName=_arn(lab), Item={**KEY, "v": {"S": "failed-over"}})
    lab.heal(LOCAL)
    since = len(lab.requests(REMOTE))
    assert session.client.get_item(TableName=TABLE, Key=KEY)["Item"]["v"] == {"S": "failed-over"}
    # Read-your-writes: the read went where the write landed.
    assert any(request.operation == "GetItem" for request in lab.requests(REMOTE)[since:])


def test_a_batch_read_by_arn_is_served_from_the_cache_by_name_and_dropped_by_a_write_by_arn(lab):
    arn = _arn(lab)
    session = _cached_session(lab)
    session.client.put_item(TableName=TABLE, Item={**KEY, "v": {"S": "old"}})
    assert session.client.get_item(TableName=TABLE, Key=KEY)["Item"]["v"] == {"S": "old"}  # cached by name
    since = len(lab.requests(LOCAL))
    answer = session.client.batch_get_item(RequestItems={arn: {"Keys": [KEY]}})
    assert answer["Responses"] == {arn: [{**KEY, "v": {"S": "old"}}]}
    assert not any(request.operation == "BatchGetItem" for request in lab.requests(LOCAL)[since:])  # a hit
    session.client.batch_write_item(RequestItems={arn: [{"PutRequest": {"Item": {**KEY, "v": {"S": "new"}}}}]})
    answer = session.client.batch_get_item(RequestItems={arn: {"Keys": [KEY]}})
    assert answer["Responses"] == {arn: [{**KEY, "v": {"S": "new"}}]}
    assert session.client.get_item(TableName=TABLE, Key=KEY)["Item"]["v"] == {"S": "new"}
