"""Readiness decisions: pure functions, and the monitor over scripted probes;
no I/O; and the health endpoint app alone, through werkzeug's test client."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from werkzeug.test import Client

import regionproxy as rp
from regionproxy._regions.breaker import CLOSED
from regionproxy._regions.health import (
    FAIL,
    PASS,
    WARN,
    HealthMonitor,
    Probe,
    Readiness,
    RegionHealth,
    assess,
    health_json,
    region_health,
)
from regionproxy._web.middleware import HealthApp
from tests.support import closed_port_session, closed_port_url

NOW = 100.0


@pytest.mark.parametrize(
    ("breaker", "probe", "status"),
    [
        pytest.param("closed", Probe(True, NOW - 1, 0.002), PASS, id="closed-and-probed"),
        pytest.param("closed", None, WARN, id="not-probed-yet"),
        pytest.param("closed", Probe(True, NOW - 60, 0.002), WARN, id="probe-stale"),
        pytest.param("closed", Probe(False, NOW - 1, 0.3, "read_timeout"), FAIL, id="probe-failed"),
        pytest.param("half-open", Probe(True, NOW - 1, 0.002), WARN, id="recovering"),
        pytest.param("open", Probe(True, NOW - 1, 0.002), FAIL, id="open"),
        pytest.param("evacuated", Probe(True, NOW - 1, 0.002), FAIL, id="evacuated"),
    ],
)
def test_region_health(breaker, probe, status):
    assert region_health("r", breaker, probe, stale_after=10, now=NOW) == status


@pytest.mark.parametrize(
    ("policy", "regions", "status"),
    [
        pytest.param("evacuate", {"local": PASS, "remote": PASS}, PASS, id="evacuate-all-pass"),
        pytest.param("evacuate", {"local": FAIL, "remote": PASS}, FAIL, id="evacuate-local-down"),
        pytest.param("evacuate", {"local": PASS, "remote": FAIL}, PASS, id="evacuate-remote-down"),
        pytest.param("evacuate", {"local": WARN, "remote": PASS}, WARN, id="evacuate-local-warn"),
        pytest.param("any", {"local": FAIL, "remote": PASS}, WARN, id="any-local-down"),
        pytest.param("any", {"local": FAIL, "remote": FAIL}, FAIL, id="any-all-down"),
        pytest.param("any", {"local": PASS, "remote": FAIL}, PASS, id="any-remote-down"),
    ],
)
def test_assess(policy, regions, status):
    assert assess(policy, "local", regions)[0] == status


def test_health_json_names_regions_but_no_endpoint():
    readiness = Readiness(
        FAIL,
        (RegionHealth("eu-west-3", FAIL, "open", 300.0, "read_timeout", 1_795_000_000.0),),
        "local region unavailable",
    )
    body = health_json(readiness)
    assert body["status"] == FAIL
    check = body["checks"]["dynamodb:eu-west-3"][0]
    assert (check["status"], check["observedValue"], check["observedUnit"]) == (FAIL, 300.0, "ms")
    text = json.dumps(body)
    assert "http" not in text and "127.0.0.1" not in text and "amazonaws" not in text


# Every code DynamoDB (or IAM in front of it) answers when it will not take
# this process's signature: spelled out here, not read from the code under
# test, so that dropping one from CREDENTIAL_CODES fails a test.
CREDENTIAL_REJECTIONS = [
    pytest.param("UnrecognizedClientException", 400, id="unrecognized-client"),
    pytest.param("InvalidSignatureException", 400, id="invalid-signature"),
    pytest.param("ExpiredTokenException", 400, id="expired-token-exception"),
    pytest.param("ExpiredToken", 400, id="expired-token"),
    pytest.param("MissingAuthenticationToken", 403, id="missing-authentication-token"),
    pytest.param("IncompleteSignature", 400, id="incomplete-signature"),
    pytest.param("InvalidClientTokenId", 403, id="invalid-client-token-id"),
]


@pytest.mark.parametrize(("code", "status"), CREDENTIAL_REJECTIONS)
def test_each_credential_rejection_fails_readiness_without_blaming_the_region(code, status):
    regions = ["eu-west-3", "us-east-1"]
    session = rp.RegionSession(regions, endpoints=dict.fromkeys(regions, closed_port_url()))

    def rejected(replica):  # the probe's request, answered: the region is up
        raise ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "ListTables")

    monitor = HealthMonitor(session, probe=rejected, interval=60)
    try:
        for region in regions:
            probe = monitor.probe_now(region)
            assert (probe.ok, probe.reason) == (False, "credentials_rejected")
        readiness = monitor.readiness()
        assert readiness.status == FAIL
        assert {region.reason for region in readiness.regions} == {"credentials_rejected"}
        assert {replica.breaker.state for replica in session.replicas.values()} == {CLOSED}
    finally:
        session.close()

# -- the endpoint alone ------------------------------------------------------------


@pytest.fixture(scope="module")
def monitor():
    """A monitor over a session whose regions are a closed local port, with
    probes that do nothing: readiness moves only when a test moves a breaker."""
    with closed_port_session() as session:
        yield HealthMonitor(session, interval=3600, probe=lambda replica: None)


@pytest.mark.parametrize("ready", [False, True], ids=["live", "ready"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_health_app_alone_answers_probe_methods(monitor, ready, method):
    response = Client(HealthApp(monitor, ready=ready)).open("/", method=method)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/health+json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    get = Client(HealthApp(monitor, ready=ready)).get("/")
    assert int(response.headers["Content-Length"]) == len(get.get_data())
    assert (response.get_data() == b"") == (method == "HEAD")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "get", "head", "TRACE", "CONNECT"])
def test_health_app_alone_refuses_other_methods_without_a_body(monitor, method):
    response = Client(HealthApp(monitor, ready=True)).open("/", method=method)
    assert (response.status_code, response.headers["Allow"]) == (405, "GET, HEAD, OPTIONS")
    assert b"regions" not in response.get_data() and b"checks" not in response.get_data()


def test_readiness_fails_with_503_while_the_local_region_is_evacuated(monitor):
    client = Client(HealthApp(monitor, ready=True))
    monitor.session.evacuate("eu-west-3")
    try:
        failing, head = client.get("/"), client.head("/")
    finally:
        monitor.session.restore("eu-west-3")
    assert (failing.status_code, failing.json["status"]) == (503, FAIL)
    assert (head.status_code, head.get_data()) == (503, b"")
    assert Client(HealthApp(monitor, ready=False)).get("/").status_code == 200, "alive all the same"
    assert client.get("/").status_code == 200


class WatchedStandIn:
    """The monitor's view of a session (``Watched``): methods only."""

    regions = ("eu-west-3", "us-east-1")
    local_region = "eu-west-3"

    def __init__(self, answers):
        from types import SimpleNamespace

        self.settings = SimpleNamespace(timeouts=rp.Timeouts())
        self.answers = answers  # region -> ProbeAnswer, or None: kept out
        self.breakers = {region: "closed" for region in self.regions}
        self.probed = []
        self.announced = []

    def breaker_state(self, region):
        return self.breakers[region]

    def probe(self, region, send):
        self.probed.append(region)
        return self.answers[region]

    def endpoint_url(self, region):
        return f"https://dynamodb.{region}.amazonaws.com"

    def warm(self, region):
        return "skipped"

    def announce(self, event):
        self.announced.append(event)


def test_the_monitor_judges_probes_and_breakers_it_asks_the_session_for():
    from regionproxy._dynamodb.verdicts import classify
    from regionproxy._regions.health import ProbeAnswer

    rejected = ClientError({"Error": {"Code": "ExpiredTokenException"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "ListTables")
    watched = WatchedStandIn({"eu-west-3": ProbeAnswer(rejected, classify(rejected)), "us-east-1": None})
    watched.breakers["us-east-1"] = "open"
    monitor = HealthMonitor(watched, interval=60)
    assert monitor.probe_now("eu-west-3").reason == "credentials_rejected"
    assert monitor.probe_now("us-east-1") is None, "kept out by its breaker"
    readiness = monitor.readiness()
    assert readiness.status == FAIL
    assert [(r.region, r.status, r.breaker, r.reason) for r in readiness.regions] == [
        ("eu-west-3", FAIL, "closed", "credentials_rejected"),
        ("us-east-1", FAIL, "open", "open"),
    ]
    assert watched.probed == ["eu-west-3", "us-east-1"]


@pytest.mark.parametrize("policy", ["evacuate", "any"])
def test_every_region_failing_is_not_said_to_serve_from_remote_replicas(policy):
    status, reason = assess(policy, "local", {"local": FAIL, "remote": FAIL})
    assert status == FAIL
    assert reason == "no region available"


def test_local_failing_with_a_remote_up_says_it_serves_from_remote_replicas():
    assert "serving from remote replicas" in assess("evacuate", "local", {"local": FAIL, "remote": PASS})[1]
