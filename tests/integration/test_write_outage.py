"""A region whose write path fails while its reads work, on the lab (review
1, defect 3): every write that is not idempotent meets a 500 it may have
been applied with, so it is never tried in another region and no other
region ever judges the 500. Different writes failing in a row prove the
region failing (see :mod:`regionproxy._routing.attempts`); the same write
failing again and again proves nothing."""

from __future__ import annotations

import pytest

import regionproxy as rp
from regionproxy._regions.breaker import CLOSED, OPEN
from regionproxy._regions.health import FAIL, PASS, HealthMonitor
from tests.conftest import TABLE
from tests.support import LOCAL, REMOTE

BREAKER = rp.BreakerPolicy(fail_max=3, reset_timeout=60)
TIMEOUTS = rp.Timeouts(connect=1.0, read=5.0, attempts=2)


def _bump(session, counter):
    return session.client.update_item(
        TableName=TABLE,
        Key={"pk": {"S": counter}, "sk": {"S": "s"}},
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )


def _writes(lab, region):
    return [r for r in lab.requests(region) if r.operation in ("UpdateItem", "PutItem")]


@pytest.mark.parametrize("status", [500, 503], ids=["500", "503"])
def test_a_region_failing_every_write_opens_its_breaker_and_later_writes_fail_over(lab, status):
    session = lab.session(breaker=BREAKER, timeouts=TIMEOUTS)
    monitor = HealthMonitor(session, interval=60)
    lab.fault(LOCAL, "error", status=status, operations=("UpdateItem", "PutItem"))
    bumped = []
    for n in range(10):  # ten different counters, each bumped once
        try:
            _bump(session, f"counter-{n}")
        except rp.AmbiguousWriteError as error:
            assert error.region == LOCAL
            continue
        bumped.append(n)
    breaker = session.replicas[LOCAL].breaker
    assert breaker.state == OPEN
    # 500 may have been applied: ambiguous until the breaker opens after
    # fail_max different writes; 503 was not: each fails over at once.
    assert bumped == (list(range(BREAKER.fail_max, 10)) if status == 500 else list(range(10)))
    assert len(_writes(lab, REMOTE)) == len(bumped)  # each served write sent once
    for region in session.regions:
        monitor.probe_now(region)
    assert monitor.readiness().status == FAIL  # its probe reads fine, but the region is failing: move users away


def test_the_same_write_failing_again_and_again_is_a_poison_request_not_an_outage(lab):
    session = lab.session(breaker=BREAKER, timeouts=TIMEOUTS)
    monitor = HealthMonitor(session, interval=60)
    lab.fault(LOCAL, "error", status=500, operations=("UpdateItem",))
    for _ in range(10):  # one counter, bumped again and again (a user clicking retry)
        with pytest.raises(rp.AmbiguousWriteError):
            _bump(session, "counter")
    breaker = session.replicas[LOCAL].breaker
    assert (breaker.state, breaker.failures) == (CLOSED, 0)
    assert len(_writes(lab, LOCAL)) == 10 and _writes(lab, REMOTE) == []
    for region in session.regions:
        monitor.probe_now(region)
    assert monitor.readiness().status == PASS
