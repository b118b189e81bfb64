"""The session's own answers through the sidecar, as an SDK meets them: a
hedged read, a write whose outcome is unknown, a call no region can serve."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

import regionproxy as rp
from tests.integration.sidecar_lab import serving
from tests.support import LOCAL, REMOTE, TABLE

KEY = {"pk": {"S": "routed"}, "sk": {"S": "0"}}


def _operations(lab, region: str, operation: str) -> int:
    return sum(1 for request in lab.requests(region) if request.operation == operation)


def test_a_slow_local_region_is_hedged_and_the_client_gets_the_remote_answer(lab):
    lab.client(LOCAL, direct=True).put_item(TableName=TABLE, Item={**KEY, "v": {"S": "x"}})
    lab.wait_replicated(timeout=20)
    session = lab.session(hedge=rp.HedgePolicy(delay=0.02), timeouts=rp.Timeouts(connect=0.5, read=2.0))
    with serving(lab, session) as sidecar:
        lab.fault(LOCAL, "latency", delay=0.5)
        item = sidecar.client().get_item(TableName=TABLE, Key=KEY)["Item"]
    assert item["v"] == {"S": "x"}
    assert _operations(lab, REMOTE, "GetItem") >= 1  # the hedge answered


def test_a_write_whose_outcome_is_unknown_is_answered_once_and_not_retried_by_the_sdk(lab):
    session = lab.session(timeouts=rp.Timeouts(connect=0.3, read=0.5))
    with serving(lab, session) as sidecar:
        lab.fault(LOCAL, "blackhole")
        client = sidecar.client(retries={"mode": "standard", "max_attempts": 5})
        with pytest.raises(ClientError) as raised:
            client.update_item(
                TableName=TABLE, Key=KEY, UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}}
            )
    assert raised.value.response["Error"]["Code"] == "AmbiguousWriteException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0  # the SDK did not send it again
    assert _operations(lab, REMOTE, "UpdateItem") == 0  # nor did the session, anywhere


def test_a_call_no_region_can_serve_is_service_unavailable_which_sdks_retry(lab):
    session = lab.session(timeouts=rp.Timeouts(connect=0.3, read=0.5))
    with serving(lab, session) as sidecar:
        lab.fault(LOCAL, "refuse")
        lab.fault(REMOTE, "refuse")
        client = sidecar.client(retries={"mode": "standard", "max_attempts": 2})
        with pytest.raises(ClientError) as raised:
            client.get_item(TableName=TABLE, Key=KEY)
    assert raised.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] >= 1  # retried: nothing was applied


def test_https_regions_are_verified_against_the_ca_bundle_the_regions_clients_use():
    """A region behind https whose certificate only ``AWS_CA_BUNDLE`` (botocore's
    ``ca_bundle``) trusts: the sidecar's pass-through sends verify it as the
    region's boto3 client does, and reach it."""
    from regionproxy.testing import LocalRegions
    from tests.support import KEY_SCHEMA

    with LocalRegions([LOCAL, REMOTE], tls=True, replicate=False) as lab:
        lab.create_table(TableName=TABLE, **KEY_SCHEMA)
        lab.client(LOCAL).put_item(TableName=TABLE, Item={**KEY, "v": {"S": "over-tls"}})
        session = lab.session(timeouts=rp.Timeouts(connect=1.0, read=2.0))
        with serving(lab, session) as sidecar:
            client = sidecar.client()
            assert client.get_item(TableName=TABLE, Key=KEY)["Item"]["v"] == {"S": "over-tls"}
            client.put_item(TableName=TABLE, Item={**KEY, "v": {"S": "written"}})
        assert lab.client(LOCAL).get_item(TableName=TABLE, Key=KEY)["Item"]["v"] == {"S": "written"}
