"""Nearest healthy region on a three-region lab (issue 20, part 2): the
second-listed region becomes slower than the third, and reads that fail
over go to the third; the local region stays first while it is healthy."""

from __future__ import annotations

import pytest

import regionproxy as rp
from regionproxy.events import OperationFinished
from tests.support import KEY_SCHEMA, LOCAL, TABLE

SECOND, THIRD = "eu-central-1", "us-east-1"
THREE = [LOCAL, SECOND, THIRD]
KEY = {"pk": {"S": "n"}, "sk": {"S": "s"}}


def _three_region_session(lab, events):
    lab.create_table(TableName=TABLE, **KEY_SCHEMA)
    session = lab.session(timeouts=rp.Timeouts(connect=1.0, read=5.0, attempts=1), listeners=[events.append])
    session.client.put_item(TableName=TABLE, Item={**KEY, "v": {"S": "x"}})
    lab.wait_replicated()
    lab.fault(SECOND, "latency", delay=0.4)  # the second-listed region is now far slower than the third
    monitor = rp.HealthMonitor(session)
    for _ in range(3):  # probes measure every region, as the background prober does
        for region in THREE:
            assert monitor.probe_now(region) is not None
    return session


def _served(events, since):
    return [e.region for e in events[since:] if isinstance(e, OperationFinished) and e.operation == "GetItem"]


def _arrivals(lab, region, since):
    return sum(1 for r in lab.requests(region)[since:] if r.operation == "GetItem" and r.action == "forwarded")


@pytest.mark.parametrize("local_regions", [THREE], indirect=True)
def test_failed_over_reads_go_to_the_nearest_remote_region_not_the_second_listed(local_regions):
    lab, events = local_regions, []
    session = _three_region_session(lab, events)
    estimates = {region: session.status()["regions"][region]["latency_estimate_ms"] for region in THREE}
    assert estimates[SECOND] > estimates[THIRD]  # what the status page shows
    lab.fault(LOCAL, "refuse")
    since, second = len(events), len(lab.requests(SECOND))
    for _ in range(3):
        assert session.client.get_item(TableName=TABLE, Key=KEY)["Item"]["v"] == {"S": "x"}
    assert _served(events, since) == [THIRD] * 3
    assert _arrivals(lab, SECOND, second) == 0


@pytest.mark.parametrize("local_regions", [THREE], indirect=True)
def test_the_local_region_stays_first_while_healthy_however_near_the_others(local_regions):
    lab, events = local_regions, []
    session = _three_region_session(lab, events)
    lab.fault(LOCAL, "latency", delay=0.1)  # slower than the third, but healthy
    since = len(events)
    assert session.client.get_item(TableName=TABLE, Key=KEY)["Item"]["v"] == {"S": "x"}
    assert _served(events, since) == [LOCAL]
