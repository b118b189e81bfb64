"""Readiness decisions: pure functions, no I/O."""

from __future__ import annotations

import json

import pytest

from regionproxy.health import FAIL, PASS, WARN, Probe, Readiness, RegionHealth, assess, health_json, region_health

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
