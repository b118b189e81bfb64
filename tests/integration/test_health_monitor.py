"""The health monitor against the lab: how fast readiness follows a fault."""

from __future__ import annotations

import threading

import pytest

import regionproxy as rp
from regionproxy._regions.health import FAIL, PASS, HealthMonitor
from regionproxy.events import CallFinished
from regionproxy.testing.lab import wait_for
from tests.support import LOCAL, TABLE

KEY = {"pk": {"S": "a"}, "sk": {"S": "s"}}


def test_a_live_fault_wakes_the_probe_instead_of_waiting_for_the_interval(lab):
    # A read timeout only the blackhole reaches: on a loaded machine a
    # healthy probe must never time out (the interval would not retry it).
    session = lab.session(timeouts=rp.Timeouts(connect=1.0, read=2.0, attempts=1))
    # An interval far longer than the wait below: only a woken probe can
    # turn readiness to fail in time.
    monitor = HealthMonitor(session, interval=120)
    monitor.start()
    try:
        assert wait_for(lambda: monitor.readiness().status == PASS, timeout=30)
        lab.fault(LOCAL, "blackhole")
        session.client.get_item(TableName=TABLE, Key=KEY)  # fails over; its fault wakes the local probe
        assert wait_for(lambda: monitor.readiness().status == FAIL, timeout=30)
        assert {r.region: r.reason for r in monitor.readiness().regions}[LOCAL] == "read_timeout"
    finally:
        monitor.stop()


def test_probe_faults_do_not_wake_probes_in_a_loop(lab):
    probes = []
    session = lab.session(
        # Refused is refused at once: no tight timeout is needed, and a tight
        # one failed the first, healthy probes on a loaded machine (readiness
        # then stayed failed: the 120 s interval never probed again in time).
        timeouts=rp.Timeouts(connect=1.0, read=5.0, attempts=1),
        listeners=[lambda e: probes.append(e) if isinstance(e, CallFinished) and e.operation == "Probe" else None],
    )
    monitor = HealthMonitor(session, interval=120)
    monitor.start()
    try:
        assert wait_for(lambda: monitor.readiness().status == PASS, timeout=30)  # the first probes are done
        lab.fault(LOCAL, "refuse")
        session.client.get_item(TableName=TABLE, Key=KEY)
        assert wait_for(lambda: monitor.readiness().status == FAIL, timeout=30)
        seen = len([p for p in probes if p.region == LOCAL])
        # A probe's own fault must not wake the probe again: a refused
        # region would then be probed back to back instead of every interval.
        threading.Event().wait(0.5)
        assert len([p for p in probes if p.region == LOCAL]) == seen
    finally:
        monitor.stop()


@pytest.mark.parametrize(
    ("types", "declared"),
    [(("N",), False), (("B",), False), (("B", "N"), True)],
    ids=["number-key", "binary-key", "binary-and-number-keys-declared"],
)
def test_a_probe_table_keyed_by_numbers_or_binary_is_read_and_its_data_plane_fault_seen(lab, types, declared):
    """The ``probe_table`` probe builds its key of the table's own types,
    so its ``GetItem`` reads the table (real DynamoDB refuses a key of the
    wrong type with a ``ValidationException``, an answer that proves nothing
    of the data plane), and a fault of the region's data plane fails it.
    moto accepts wrong-typed keys (/work/shared/MOTO.md), so the key the
    probe sends is checked against the table's key types here, as DynamoDB
    checks it."""
    table = "Probed" + "".join(types)
    names = ("id", "sort")[: len(types)]
    lab.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind in zip(names, ("HASH", "RANGE"), strict=False)],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": kind} for name, kind in zip(names, types, strict=True)],
    )
    probes: list[CallFinished] = []
    session = lab.session(
        timeouts=rp.Timeouts(connect=1.0, read=5.0, attempts=1),
        key_schemas={table: names} if declared else None,
        listeners=[lambda e: probes.append(e) if isinstance(e, CallFinished) and e.operation == "Probe" else None],
    )
    sent: list[dict] = []
    session.replicas[LOCAL].client.meta.events.register(
        "provide-client-params.dynamodb.GetItem", lambda params, **_: sent.append(params["Key"])
    )
    monitor = HealthMonitor(session, interval=120, probe_table=table)
    for _ in range(2):  # the first one may describe the table first
        probe = monitor.probe_now(LOCAL)
        assert probe is not None and probe.ok
    assert [(e.outcome, e.error) for e in probes] == [("ok", None), ("ok", None)]  # no ValidationException
    assert sent, "the probe read no item"
    for key in sent:  # what DynamoDB checks before it reads: each key attribute, of its type
        assert {name: next(iter(value)) for name, value in key.items()} == dict(zip(names, types, strict=True))
    lab.fault(LOCAL, "error", status=500, code="InternalServerError", operations=("GetItem",))
    probe = monitor.probe_now(LOCAL)
    assert probe is not None and not probe.ok
    assert probes[-1].outcome == "fault"  # the GetItem met it (a 500: the region's)
