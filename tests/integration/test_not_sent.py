"""Errors raised before a request leaves the process are "not sent", on the
lab, whatever botocore calls them (review 1, defects 1 and 2): the region
saw nothing, so no breaker counts them, a half-open trial stays unjudged,
a write is not ambiguous, and readiness fails while nothing can be sent.

Credentials come from a loopback STS stand-in (``tests/integration/sts_stand_in.py``)
through botocore's own AssumeRole fetcher: a failing refresh raises STS's
``ClientError`` and transport errors while the DynamoDB request is signed.
"""

from __future__ import annotations

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
    SSLError,
)

import regionproxy as rp
from regionproxy._regions.breaker import CLOSED, HALF_OPEN, OPEN
from regionproxy._regions.health import FAIL, PASS, HealthMonitor
from tests.conftest import TABLE
from tests.integration.sts_stand_in import ANSWER_TIMEOUT, StandInSTS, role_session
from tests.support import LOCAL

KEY = {"pk": {"S": "a"}, "sk": {"S": "s"}}
ADD = {"UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}
BREAKER = rp.BreakerPolicy(fail_max=3, reset_timeout=60)


@pytest.fixture
def sts():
    stand_in = StandInSTS()
    yield stand_in
    stand_in.stop()


def _arrivals(lab):
    return sum(len(lab.requests(region)) for region in lab.regions)


def _breakers(session):
    return {region: (replica.breaker.state, replica.breaker.failures) for region, replica in session.replicas.items()}


def _role_session(lab, sts, **kwargs):
    session = lab.session(boto3_session=role_session(sts), timeouts=rp.Timeouts(connect=1.0, read=5.0, attempts=2), **kwargs)
    session.client.get_item(TableName=TABLE, Key=KEY)  # signed with role credentials: STS works
    assert sts.calls >= 1
    return session


# -- defect 1: a failing credential refresh is not the regions'


STS_FAILURES = [
    pytest.param(lambda sts: sts.answer(400, "Throttling"), ClientError, id="sts-throttling"),
    pytest.param(lambda sts: sts.answer(403, "AccessDenied"), ClientError, id="sts-access-denied"),
    pytest.param(lambda sts: sts.answer(500, "InternalFailure"), ClientError, id="sts-500"),
    pytest.param(lambda sts: sts.delay(ANSWER_TIMEOUT * 2), ReadTimeoutError, id="sts-timeout"),
    pytest.param(lambda sts: sts.stop(), EndpointConnectionError, id="sts-down"),
]


@pytest.mark.parametrize(("fail", "raised"), STS_FAILURES)
def test_a_failing_credential_refresh_charges_no_region_and_reaches_the_caller_as_it_was(lab, sts, fail, raised):
    session = _role_session(lab, sts, breaker=rp.BreakerPolicy(fail_max=1, reset_timeout=60))  # one charge opens
    fail(sts)
    before = _arrivals(lab)
    for _ in range(2):
        with pytest.raises(raised):
            session.client.get_item(TableName=TABLE, Key=KEY)
    assert _arrivals(lab) == before  # DynamoDB saw nothing
    assert _breakers(session) == {region: (CLOSED, 0) for region in lab.regions}


def test_once_sts_is_back_every_region_serves_at_once(lab, sts):
    session = _role_session(lab, sts, breaker=BREAKER)
    sts.answer(400, "Throttling")
    for _ in range(BREAKER.fail_max + 1):
        with pytest.raises(ClientError):
            session.client.get_item(TableName=TABLE, Key=KEY)
    sts.answer(200)
    before = len(lab.requests(LOCAL))
    assert session.client.get_item(TableName=TABLE, Key=KEY)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert len(lab.requests(LOCAL)) == before + 1  # served by the local region, no breaker in the way


@pytest.mark.parametrize(("fail", "raised"), STS_FAILURES)
def test_a_write_that_could_not_be_signed_is_not_ambiguous(lab, sts, fail, raised):
    session = _role_session(lab, sts)
    fail(sts)
    before = _arrivals(lab)
    with pytest.raises(raised) as caught:
        session.client.update_item(TableName=TABLE, Key=KEY, **ADD)
    assert not isinstance(caught.value, rp.AmbiguousWriteError)
    assert _arrivals(lab) == before


def test_an_sts_denial_does_not_close_a_half_open_breaker(lab, sts):
    now = [1_000.0]
    session = _role_session(lab, sts, breaker=rp.BreakerPolicy(fail_max=1, reset_timeout=10), clock=lambda: now[0])
    lab.fault(LOCAL, "refuse")
    session.client.get_item(TableName=TABLE, Key=KEY)  # served by us-east-1; eu-west-3 opens
    breaker = session.replicas[LOCAL].breaker
    assert breaker.state == OPEN
    now[0] += 11  # the next call is eu-west-3's half-open trial
    sts.answer(403, "AccessDenied")
    with pytest.raises(ClientError) as caught:
        session.client.get_item(TableName=TABLE, Key=KEY)
    assert caught.value.response["Error"]["Code"] == "AccessDenied"  # STS's, unchanged
    assert breaker.state == HALF_OPEN  # eu-west-3 said nothing: no verdict
    sts.answer(200)
    session.client.get_item(TableName=TABLE, Key=KEY)  # the trial, released, is taken again: refused
    assert breaker.state == OPEN


def test_readiness_fails_while_no_request_can_be_signed_and_passes_once_it_can(lab, sts):
    session = _role_session(lab, sts)
    monitor = HealthMonitor(session, interval=60)
    for region in session.regions:
        assert monitor.probe_now(region).ok
    assert monitor.readiness().status == PASS
    sts.answer(403, "AccessDenied")  # a changed trust policy, a web-identity token no longer accepted
    for region in session.regions:
        probe = monitor.probe_now(region)
        assert (probe.ok, probe.reason) == (False, "credential_refresh")
    readiness = monitor.readiness()
    assert readiness.status == FAIL
    assert {region.breaker for region in readiness.regions} == {CLOSED}  # no region was blamed
    sts.answer(200)
    for region in session.regions:
        assert monitor.probe_now(region).ok
    assert monitor.readiness().status == PASS


# -- defect 2: configuration errors raised before the request is written


def _session_token_with_a_newline():
    # A token read from a mounted secret file, trailing newline and all.
    return {"boto3_session": boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token="token\n")}


CONFIGURATION_ERRORS = [
    pytest.param(_session_token_with_a_newline, HTTPClientError, id="session-token-with-a-newline"),
    pytest.param(lambda: {"config": Config(user_agent_extra="app/1.0\n")}, HTTPClientError, id="user-agent-with-a-newline"),
    pytest.param(lambda: {"config": Config(proxies={"http": "http://proxy.internal:port"})}, HTTPClientError, id="proxy-url-bad-port"),
]


def _assert_not_sent(lab, session, raised):
    """A write and reads fail with ``raised``, as boto3 raises it; nothing
    reaches a region, no breaker counts, the write is not ambiguous."""
    with pytest.raises(raised) as caught:
        session.client.update_item(TableName=TABLE, Key=KEY, **ADD)
    assert not isinstance(caught.value, rp.AmbiguousWriteError)
    for _ in range(BREAKER.fail_max):
        with pytest.raises(raised):
            session.client.get_item(TableName=TABLE, Key=KEY)
    assert all(not lab.requests(region) for region in lab.regions), "nothing reached a region"
    assert _breakers(session) == {region: (CLOSED, 0) for region in lab.regions}


@pytest.mark.parametrize(("settings", "raised"), CONFIGURATION_ERRORS)
def test_a_configuration_error_in_the_send_is_not_a_region_fault(lab, settings, raised):
    _assert_not_sent(lab, lab.session(breaker=BREAKER, **settings()), raised)


def _ca_bundle(path):
    core = botocore.session.Session()
    core.set_config_variable("ca_bundle", path)  # what AWS_CA_BUNDLE sets
    return boto3.session.Session(botocore_session=core, aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.mark.parametrize(
    ("settings", "raised"),
    [
        pytest.param(lambda tmp_path: {"boto3_session": _ca_bundle(str(tmp_path / "bundle.pem"))}, SSLError, id="ca-bundle-missing"),
        pytest.param(
            lambda tmp_path: {"config": Config(client_cert=str(tmp_path / "client.pem"))},
            ConnectionClosedError,  # urllib3 reports the missing file as a dropped connection
            id="client-certificate-missing",
        ),
    ],
)
def test_a_tls_setup_error_before_the_handshake_is_not_a_region_fault(tls_lab, tmp_path, settings, raised):
    session = tls_lab.session(breaker=BREAKER, **settings(tmp_path))
    _assert_not_sent(tls_lab, session, raised)
    monitor = HealthMonitor(session, interval=60)
    for region in session.regions:
        assert monitor.probe_now(region).reason == "configuration"
    assert monitor.readiness().status == FAIL  # this process can send nothing: not ready
