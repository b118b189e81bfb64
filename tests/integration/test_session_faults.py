"""The session never makes an outage worse: what a hostile network or a
least-privilege account does to it, on the lab (issue 7 defects 3, 6, 7, 8,
14; issue 8's errors raised before a request is sent)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, NoCredentialsError, ParamValidationError

import regionproxy as rp
from regionproxy._regions.breaker import CLOSED, HALF_OPEN, OPEN
from regionproxy._regions.health import FAIL, HealthMonitor
from regionproxy.testing.lab import wait_for
from tests.support import LOCAL, REMOTE, TABLE

PATIENT = rp.Timeouts(connect=1.0, read=5.0, attempts=1)
KEY = {"pk": {"S": "a"}, "sk": {"S": "s"}}


def _describes(lab, region, since=0):
    return [r for r in lab.requests(region)[since:] if r.operation == "DescribeTable"]


def test_write_that_failed_over_succeeds_even_when_describe_table_is_denied(lab):
    # Least-privilege IAM: data calls allowed, DescribeTable denied everywhere.
    for region in (LOCAL, REMOTE):
        lab.fault(region, "error", status=400, code="AccessDeniedException", operations=("DescribeTable",))
    lab.fault(LOCAL, "refuse")  # the outage replaces the local one: refused, then
    lab.replicator.pause()
    session = lab.session(timeouts=PATIENT, cache=rp.CachePolicy())
    table = session.table(TABLE)
    table.put_item(Item={"pk": "a", "sk": "s", "v": "written"})  # must not raise
    remote = lab.client(REMOTE, direct=True)
    assert remote.get_item(TableName=TABLE, Key=KEY)["Item"]["v"] == {"S": "written"}
    lab.heal(LOCAL)
    # Its key could not be named, so every read of the table follows the write.
    assert table.get_item(Key={"pk": "a", "sk": "s"})["Item"]["v"] == "written"


def test_declared_key_schemas_need_no_describe_table(lab):
    session = lab.session(timeouts=PATIENT, cache=rp.CachePolicy(), key_schemas={TABLE: ("pk", "sk")})
    lab.fault(LOCAL, "refuse")
    session.table(TABLE).put_item(Item={"pk": "a", "sk": "s"})
    assert _describes(lab, LOCAL) == [] and _describes(lab, REMOTE) == []


def test_key_schema_lookup_skips_an_evacuated_blackholed_region(lab):
    session = lab.session(timeouts=rp.Timeouts(connect=1.0, read=5.0, attempts=1), cache=rp.CachePolicy())
    session.evacuate(LOCAL)
    lab.fault(LOCAL, "blackhole")
    since = len(lab.requests(LOCAL))
    for n in range(3):
        session.table(TABLE).put_item(Item={"pk": f"k{n}", "sk": "s"})
    assert lab.requests(LOCAL)[since:] == []  # not one request (DescribeTable included) waited on it
    assert len(_describes(lab, REMOTE)) == 1  # described once, where it could be


def test_cached_read_after_own_write_sees_it_whatever_the_number_spelling(lab):
    lab.create_table(
        TableName="Numbers",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
    )
    session = lab.session(timeouts=PATIENT, cache=rp.CachePolicy(ttl=60), key_schemas={"Numbers": ("id",)})
    client = session.client
    assert "Item" not in client.get_item(TableName="Numbers", Key={"id": {"N": "1"}})  # cached: no item
    client.put_item(TableName="Numbers", Item={"id": {"N": "1.0"}, "v": {"S": "new"}})
    assert client.get_item(TableName="Numbers", Key={"id": {"N": "1"}})["Item"]["v"] == {"S": "new"}


def test_probe_table_health_fails_while_every_region_is_blackholed(lab):
    session = lab.session(timeouts=rp.Timeouts(connect=0.5, read=0.3, attempts=1))
    monitor = HealthMonitor(session, interval=0.05, probe_table=TABLE)
    for region in (LOCAL, REMOTE):
        lab.fault(region, "blackhole")
    monitor.start()
    try:
        assert wait_for(lambda: monitor.readiness().status == FAIL, timeout=30)
        assert all(replica.breaker.state in (CLOSED, OPEN, HALF_OPEN) for replica in session.replicas.values())
        # A probe that never reached a region never closes its breaker.
        assert wait_for(lambda: all(r.breaker.state == OPEN for r in session.replicas.values()), timeout=30)
    finally:
        monitor.stop()


def test_param_validation_during_a_half_open_trial_keeps_the_dead_region_out(lab):
    session = lab.session(
        timeouts=rp.Timeouts(connect=0.5, read=5.0, attempts=1),
        breaker=rp.BreakerPolicy(fail_max=1, reset_timeout=0.05),
    )
    lab.fault(LOCAL, "refuse")
    session.client.get_item(TableName=TABLE, Key=KEY)  # opens the local breaker, served remotely
    breaker = session.replicas[LOCAL].breaker
    assert breaker.state == OPEN
    assert wait_for(lambda: breaker.admit() is not None, timeout=10)  # our own admit took the trial...
    breaker.released("trial")  # ...and gave it back: the next call is the trial
    with pytest.raises(ParamValidationError):
        session.client.get_item(TableName=TABLE, Key="not a key")
    assert breaker.state == HALF_OPEN  # not closed: the region never answered
    assert session.client.get_item(TableName=TABLE, Key=KEY)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert breaker.state == OPEN  # the next real trial met the refusal


def _without_credentials(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata look-up
    for name in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_no_credentials_reach_the_caller_unchanged_and_readiness_fails(lab, monkeypatch, tmp_path):
    import boto3

    _without_credentials(monkeypatch, tmp_path)
    session = rp.RegionSession(
        list(lab.regions), endpoints=lab.endpoints, timeouts=PATIENT, boto3_session=boto3.session.Session()
    )
    monitor = HealthMonitor(session, interval=0.05)
    try:
        with pytest.raises(NoCredentialsError):
            session.client.get_item(TableName=TABLE, Key=KEY)
        for region in session.regions:
            probe = monitor.probe_now(region)
            assert (probe.ok, probe.reason) == (False, "no_credentials")
        readiness = monitor.readiness()
        assert readiness.status == FAIL
        assert {r.reason for r in readiness.regions} == {"no_credentials"}
        assert {r.breaker.state for r in session.replicas.values()} == {CLOSED}  # no region was blamed
    finally:
        session.close()


def test_rejected_credentials_reach_the_caller_and_fail_readiness_but_no_breaker(lab):
    # What DynamoDB answers when a token has expired (moto does not check signatures).
    for region in (LOCAL, REMOTE):
        lab.fault(region, "error", status=400, code="ExpiredTokenException")
    session = lab.session(timeouts=PATIENT)
    monitor = HealthMonitor(session, interval=0.05)
    with pytest.raises(ClientError) as caught:
        session.client.get_item(TableName=TABLE, Key=KEY)
    assert caught.value.response["Error"]["Code"] == "ExpiredTokenException"
    for region in session.regions:
        assert monitor.probe_now(region).reason == "credentials_rejected"
    assert monitor.readiness().status == FAIL
    assert {r.breaker.state for r in session.replicas.values()} == {CLOSED}


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param("http://exa mple:4566", id="space"),
        pytest.param("ftp://127.0.0.1:1", id="scheme"),
        pytest.param("http://", id="no-host"),
    ],
)
def test_bad_endpoint_url_is_a_config_error_at_construction(endpoint):
    with pytest.raises(rp.ConfigError) as caught:
        rp.RegionSession([LOCAL, REMOTE], endpoints={REMOTE: endpoint})
    assert caught.value.setting == "endpoints"
