"""The replication-lag canary against the lab: its replicator's lag set,
replication stopped, a region down (its pairs say so, the others carry
on). Cycles are run by hand (``run_cycle``), so no test waits for a thread."""

from __future__ import annotations

import prometheus_client
import pytest

import regionproxy as rp
from regionproxy._regions.canary import KEY_PREFIX, TTL_ATTRIBUTE, WRITTEN_AT, ReplicationCanary, heartbeat_key
from regionproxy._regions.health import PASS, WARN, HealthMonitor
from regionproxy._web.metrics import PrometheusListener
from regionproxy.testing import LocalRegions
from tests.support import FLEET_TIMEOUT, KEY_SCHEMA, LOCAL, REMOTE, TABLE

THIRD = "ap-southeast-2"
TIMEOUTS = rp.Timeouts(connect=1.0, read=5.0, attempts=1)


def _states(canary):
    return {(row["source"], row["replica"]): row["state"] for row in canary.pairs()}


def _lags(canary):
    return {(row["source"], row["replica"]): row["lag_s"] for row in canary.pairs()}


def test_the_lag_set_in_the_lab_is_measured_and_warns_readiness(lab):
    registry = prometheus_client.CollectorRegistry()
    session = lab.session(timeouts=TIMEOUTS, listeners=[PrometheusListener(registry, (LOCAL, REMOTE))])
    lab.replicator.lag = 1.0
    canary = ReplicationCanary(session, TABLE, interval=4.0, lag_warn=0.5)
    for _ in range(2):
        assert canary.run_cycle()
    lags = _lags(canary)
    assert set(lags) == {(LOCAL, REMOTE), (REMOTE, LOCAL)}
    # Never less than the replicator's lag (written before it shipped).
    assert all(lag is not None and lag >= 1.0 for lag in lags.values()), lags
    assert set(_states(canary).values()) == {"lagging"}
    assert registry.get_sample_value("regionproxy_replication_lag_seconds", {"source": LOCAL, "replica": REMOTE}) >= 1.0

    monitor = HealthMonitor(session, interval=3600, canary=canary)
    for region in (LOCAL, REMOTE):
        monitor.probe_now(region)
    ready = monitor.readiness()
    assert ready.status == WARN and "replication" in ready.output and "lagging" in ready.output

    # The heartbeats: under the reserved prefix, with a TTL attribute.
    item = lab.client(REMOTE, direct=True).get_item(TableName=TABLE, Key={"pk": {"S": KEY_PREFIX + LOCAL}, "sk": {"S": KEY_PREFIX + LOCAL}})["Item"]
    assert float(item[TTL_ATTRIBUTE]["N"]) > float(item[WRITTEN_AT]["N"])


def test_no_lag_to_speak_of_is_ok_and_readiness_passes(lab):
    session = lab.session(timeouts=TIMEOUTS)
    canary = ReplicationCanary(session, TABLE, interval=4.0, lag_warn=60.0)
    assert canary.run_cycle()
    assert set(_states(canary).values()) == {"ok"}
    monitor = HealthMonitor(session, interval=3600, canary=canary)
    for region in (LOCAL, REMOTE):
        monitor.probe_now(region)
    assert monitor.readiness().status == PASS
    assert canary.status()["measured_here"] is True


def test_replication_stopped_is_stalled_then_recovers(lab):
    registry = prometheus_client.CollectorRegistry()
    session = lab.session(timeouts=TIMEOUTS, listeners=[PrometheusListener(registry, (LOCAL, REMOTE))])
    canary = ReplicationCanary(session, TABLE, interval=0.3, lag_warn=60.0, stall_after=0.6)
    lab.replicator.pause()
    for _ in range(20):  # bounded: each cycle ends within its interval
        canary.run_cycle()
        if set(_states(canary).values()) == {"stalled"}:
            break
    assert set(_states(canary).values()) == {"stalled"}, canary.pairs()
    assert registry.get_sample_value("regionproxy_replication_stalled", {"source": LOCAL, "replica": REMOTE}) == 1
    stalled_lag = _lags(canary)[(LOCAL, REMOTE)]
    assert stalled_lag > 0.6  # grows while nothing arrives
    lab.replicator.resume()
    for _ in range(40):
        canary.run_cycle()
        if set(_states(canary).values()) == {"ok"}:
            break
    assert set(_states(canary).values()) == {"ok"}, canary.pairs()
    assert registry.get_sample_value("regionproxy_replication_stalled", {"source": LOCAL, "replica": REMOTE}) == 0


def test_a_region_down_says_so_and_the_others_carry_on():
    with LocalRegions([LOCAL, REMOTE, THIRD]) as lab:
        lab.create_table(TableName=TABLE, **KEY_SCHEMA)
        session = lab.session(timeouts=TIMEOUTS)
        canary = ReplicationCanary(session, TABLE, interval=3.0, lag_warn=60.0)
        assert canary.run_cycle()
        assert set(_states(canary).values()) == {"ok"}
        lab.fault(THIRD, "refuse")
        assert canary.run_cycle()
        states = _states(canary)
        assert {states[(THIRD, LOCAL)], states[(THIRD, REMOTE)]} == {"source_down"}
        assert {states[(LOCAL, THIRD)], states[(REMOTE, THIRD)]} == {"replica_down"}
        assert states[(LOCAL, REMOTE)] == states[(REMOTE, LOCAL)] == "ok"


def test_one_process_of_a_fleet_measures(lab, redis):
    one = lab.session(timeouts=TIMEOUTS, fleet=redis.url, fleet_timeout=FLEET_TIMEOUT)
    two = lab.session(timeouts=TIMEOUTS, fleet=redis.url, fleet_timeout=FLEET_TIMEOUT)
    first = ReplicationCanary(one, TABLE, interval=30.0)
    second = ReplicationCanary(two, TABLE, interval=30.0)
    assert first.run_cycle() is True
    assert second.run_cycle() is False  # the lease is the first's for an interval
    assert (first.status()["measured_here"], second.status()["measured_here"]) == (True, False)


@pytest.mark.parametrize(
    ("attributes", "hash_type", "range_type"),
    [
        pytest.param([("id", "N")], "N", None, id="number-hash"),
        pytest.param([("id", "B")], "B", None, id="binary-hash"),
        pytest.param([("id", "B"), ("at", "N")], "B", "N", id="binary-hash-number-range"),
    ],
)
def test_tables_keyed_by_numbers_or_bytes_are_measured(lab, attributes, hash_type, range_type):
    schema = [{"AttributeName": "id", "KeyType": "HASH"}] + ([{"AttributeName": "at", "KeyType": "RANGE"}] if range_type else [])
    lab.create_table(
        TableName="Typed",
        KeySchema=schema,
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": kind} for name, kind in attributes],
    )
    session = lab.session(timeouts=TIMEOUTS)
    canary = ReplicationCanary(session, "Typed", interval=4.0, lag_warn=60.0)
    assert canary.run_cycle()
    assert set(_states(canary).values()) == {"ok"}, canary.pairs()
    # Both heartbeats replicated, each under a key of the table's types.
    items = lab.client(REMOTE, direct=True).scan(TableName="Typed")["Items"]
    assert len(items) == 2, items
    for item in items:
        assert set(item["id"]) == {hash_type} and (range_type is None or set(item["at"]) == {range_type})
        assert float(item[TTL_ATTRIBUTE]["N"]) > float(item[WRITTEN_AT]["N"])


def test_heartbeat_keys_are_reserved_per_region_for_every_key_type():
    keys = {kind: {region: heartbeat_key((("id", kind),), region)["id"] for region in (LOCAL, REMOTE, THIRD)} for kind in "SNB"}
    for kind, by_region in keys.items():
        assert len({str(value) for value in by_region.values()}) == 3, (kind, by_region)  # one per source region
    assert keys["S"][LOCAL] == {"S": KEY_PREFIX + LOCAL}
    assert keys["B"][LOCAL] == {"B": (KEY_PREFIX + LOCAL).encode()}
    number = keys["N"][LOCAL]["N"]
    assert -1e126 < float(number) <= -9e125  # DynamoDB's range ends at 9.99...E+125: far from any app's keys
    assert len(number.split("E")[0].replace("-", "").replace(".", "")) <= 38  # its precision


def test_a_process_that_loses_the_lease_stops_reporting_its_figures(lab, redis):
    import redis as redis_py

    registries = [prometheus_client.CollectorRegistry() for _ in range(2)]
    sessions = [
        lab.session(timeouts=TIMEOUTS, fleet=redis.url, listeners=[PrometheusListener(registry, (LOCAL, REMOTE))])
        for registry in registries
    ]
    lab.replicator.lag = 1.0
    first, second = (ReplicationCanary(session, TABLE, interval=30.0, lag_warn=0.5) for session in sessions)

    def lag(registry):
        return registry.get_sample_value("regionproxy_replication_lag_seconds", {"source": LOCAL, "replica": REMOTE})

    assert first.run_cycle() is True
    assert lag(registries[0]) >= 1.0 and first.warning()  # lagging past lag_warn
    # The lease moves (it expired while the first was away, say): the second measures.
    leases = redis_py.Redis.from_url(redis.url)
    [key] = [k for k in leases.scan_iter("*probe-lease:canary*")]
    leases.delete(key)
    assert second.run_cycle() is True
    assert first.run_cycle() is False
    # The first reports nothing now: no series, no figures, no warning.
    assert lag(registries[0]) is None
    assert registries[0].get_sample_value("regionproxy_replication_stalled", {"source": LOCAL, "replica": REMOTE}) is None
    assert set(_states(first).values()) == {"unknown"} and first.warning() is None
    assert first.status()["measured_here"] is False
    assert lag(registries[1]) >= 1.0  # the second's stand
