"""PrometheusListener: what each event does to the metrics, and labels that
stay bounded whatever operation names and regions the events carry."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regionproxy._dynamodb.operations import PARTIQL, READS, WRITES
from regionproxy._regions.breaker import CLOSED, EVACUATED, HALF_OPEN, OPEN
from regionproxy._web.metrics import MAX_TABLES, OTHER, PrometheusListener, operation_names
from regionproxy.events import (
    BreakerChanged,
    CacheBypassed,
    CacheDropped,
    CacheLookup,
    CallFinished,
    FailedOver,
    OperationFinished,
    PoisonRequest,
    ReplicaMissing,
    SidecarRequest,
)
from tests.support import LOCAL, REMOTE


@pytest.fixture
def metrics():
    return PrometheusListener(regions=(LOCAL, REMOTE))


def value(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels)


def label_values(metrics, family, label):
    return {
        sample.labels[label]
        for metric in metrics.registry.collect()
        if metric.name == family
        for sample in metric.samples
        if label in sample.labels
    }


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(CLOSED, 0, id="closed"),
        pytest.param(HALF_OPEN, 1, id="half-open"),
        pytest.param(OPEN, 2, id="open"),
        pytest.param(EVACUATED, 3, id="evacuated"),
    ],
)
def test_breaker_state_gauge_maps_each_state(metrics, state, expected):
    metrics(BreakerChanged(LOCAL, CLOSED if state != CLOSED else OPEN, state, 0.0))
    assert value(metrics, "regionproxy_breaker_state", region=LOCAL) == expected


def test_breaker_gauge_starts_closed_for_every_region(metrics):
    assert [value(metrics, "regionproxy_breaker_state", region=r) for r in (LOCAL, REMOTE)] == [0, 0]


WORKER = """
import os
from regionproxy.events import BreakerChanged
from regionproxy._web.metrics import PrometheusListener
PrometheusListener(regions=("eu-west-3",))(BreakerChanged("eu-west-3", "closed", "open", 0.0))
print(os.getpid())
"""


def test_a_dead_workers_breaker_state_leaves_the_multiprocess_scrape(tmp_path):
    # mark_process_dead() deletes only live* gauge files (prometheus_client's
    # multiprocess.py): under "max" a dead worker's open breaker would stay.
    from prometheus_client import CollectorRegistry, multiprocess

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    worker = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=60, check=True)

    def breaker_series():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
        return {
            s.labels["region"]: s.value for m in registry.collect() if m.name == "regionproxy_breaker_state" for s in m.samples
        }

    assert breaker_series() == {LOCAL: 2}
    multiprocess.mark_process_dead(int(worker.stdout), path=str(tmp_path))
    assert breaker_series() == {}


def test_operation_names_outside_dynamodb_become_other(metrics):
    metrics(CallFinished(LOCAL, "GetItem", "read", 0.01, "ok"))
    metrics(CallFinished(LOCAL, "Probe", "probe", 0.01, "ok"))
    metrics(CallFinished(LOCAL, "select * from users -- 1", "read", 0.01, "ok"))
    assert label_values(metrics, "regionproxy_dynamodb_calls", "operation") == {"GetItem", "Probe", "other"}


@given(st.lists(st.text(max_size=20), max_size=30))
def test_operation_label_values_are_bounded_whatever_the_names(names):
    metrics = PrometheusListener(regions=(LOCAL,))
    for name in names:
        metrics(OperationFinished(name, "read", "ok", LOCAL, 0.01, 1))
    assert label_values(metrics, "regionproxy_operations", "operation") <= operation_names() | {"other"}


def test_every_operation_the_session_routes_keeps_its_own_label():
    assert READS | WRITES | PARTIQL | {"ListTables", "DescribeTable", "Probe"} <= operation_names()


def test_regions_outside_the_session_become_other(metrics):
    metrics(CallFinished("ap-south-1", "GetItem", "read", 0.01, "ok"))
    metrics(BreakerChanged("ap-south-1", CLOSED, OPEN, 0.0))
    assert label_values(metrics, "regionproxy_dynamodb_calls", "region") == {"other"}
    assert label_values(metrics, "regionproxy_breaker_state", "region") == {LOCAL, REMOTE}


@pytest.mark.parametrize("outcome", ["ok", "caller_error", "fault"])
def test_failovers_are_counted_with_their_outcome(metrics, outcome):
    metrics(FailedOver("PutItem", LOCAL, REMOTE, "read_timeout", 0.0, outcome))
    labels = {"operation": "PutItem", "from_region": LOCAL, "to_region": REMOTE, "reason": "read_timeout"}
    assert value(metrics, "regionproxy_failovers_total", **labels, outcome=outcome) == 1


@pytest.mark.parametrize("outcome", ["ok", "caller_error", "failed"])
def test_app_operations_are_counted_by_outcome(metrics, outcome):
    metrics(OperationFinished("Query", "read", outcome, REMOTE, 0.02, 2))
    assert value(metrics, "regionproxy_operations_total", operation="Query", outcome=outcome) == 1


def test_poison_requests_are_counted_per_operation(metrics):
    metrics(PoisonRequest("UpdateItem", (LOCAL, REMOTE), "InternalServerError", 0.0))
    metrics(PoisonRequest("UpdateItem", (LOCAL,), "InternalServerError", 1.0))
    assert value(metrics, "regionproxy_poison_requests_total", operation="UpdateItem") == 2


def test_missing_replicas_are_counted_per_region_and_table(metrics):
    metrics(ReplicaMissing(REMOTE, "Items", 0.0))
    assert value(metrics, "regionproxy_replica_missing_total", region=REMOTE, table="Items") == 1


def test_an_older_breaker_change_arriving_late_leaves_the_newer_state(metrics):
    # Breakers announce after releasing their lock: a thread that changed the
    # breaker first can deliver its event last.
    metrics(BreakerChanged(LOCAL, OPEN, HALF_OPEN, 2.0, seq=8))
    metrics(BreakerChanged(LOCAL, CLOSED, OPEN, 1.0, seq=7))
    assert value(metrics, "regionproxy_breaker_state", region=LOCAL) == 1


def test_breaker_changes_are_ordered_per_region(metrics):
    metrics(BreakerChanged(LOCAL, CLOSED, OPEN, 1.0, seq=9))
    metrics(BreakerChanged(REMOTE, CLOSED, EVACUATED, 1.0, seq=3))
    metrics(BreakerChanged(REMOTE, EVACUATED, CLOSED, 2.0, seq=10))
    assert [value(metrics, "regionproxy_breaker_state", region=r) for r in (LOCAL, REMOTE)] == [2, 0]


def test_breaker_changes_in_order_each_move_the_gauge(metrics):
    for seq, (old, new) in enumerate([(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN)], start=1):
        metrics(BreakerChanged(LOCAL, old, new, float(seq), seq=seq))
        assert value(metrics, "regionproxy_breaker_state", region=LOCAL) == {OPEN: 2, HALF_OPEN: 1}[new]


def test_strongly_consistent_reads_served_by_another_region_are_counted(metrics):
    from regionproxy.events import ConsistencyDowngraded

    metrics(ConsistencyDowngraded("GetItem", ("Orders",), LOCAL, REMOTE, 0.0))
    assert value(metrics, "regionproxy_consistency_downgraded_total", from_region=LOCAL, to_region=REMOTE) == 1


LAG_WORKER = """
import sys, time
from regionproxy.events import ReplicationLag
from regionproxy._web.metrics import PrometheusListener
metrics = PrometheusListener(regions=("eu-west-3", "us-east-1"))
for state, lag in [tuple(step.split(":")) for step in sys.argv[1:]]:
    metrics(ReplicationLag("eu-west-3", "us-east-1", float(lag) if lag else None, state, time.time()))
    time.sleep(0.01)  # livemostrecent orders by wall-clock time
"""


def test_a_worker_that_stopped_measuring_leaves_the_multiprocess_lag_to_the_measuring_one(tmp_path):
    from prometheus_client import CollectorRegistry, multiprocess

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def worker(*steps):
        subprocess.run([sys.executable, "-c", LAG_WORKER, *steps], env=env, capture_output=True, text=True, timeout=60, check=True)

    def lag():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
        return [s.value for m in registry.collect() if m.name == "regionproxy_replication_lag_seconds" for s in m.samples]

    worker("lagging:30.0", "not_measured:")  # measured 30 s, then lost the lease
    [value] = lag()
    assert value != value, "NaN: no figure from a worker that stopped measuring"
    worker("ok:0.5")  # the worker that holds the lease now
    assert lag() == [0.5]  # not the stale 30 s, as livemax would keep


# Every metric with a table label, and an event that names a table for it.
TABLE_LABELLED = {
    "regionproxy_sidecar_requests": lambda table: SidecarRequest("GetItem", table, 200, 0.001),
    "regionproxy_cache_lookups": lambda table: CacheLookup(table, "GetItem", True),
    "regionproxy_cache_bypassed": lambda table: CacheBypassed(table, "GetItem"),
    "regionproxy_cache_evictions": lambda table: CacheDropped(table, "expired", 1),
    "regionproxy_replica_missing": lambda table: ReplicaMissing(REMOTE, table, 0.0),
}


@pytest.mark.parametrize("family", sorted(TABLE_LABELLED))
def test_table_labels_from_clients_are_bounded_in_every_metric_that_has_one(metrics, family):
    """Table names come from clients (the sidecar's requests, an app's):
    past ``MAX_TABLES`` distinct names, each new one is counted as ``other``,
    so a client sending many names cannot grow the series without bound."""
    event = TABLE_LABELLED[family]
    for number in range(MAX_TABLES + 50):
        metrics(event(f"table-{number}"))
    metrics(event("table-0"))  # a name seen before the bound: still its own
    tables = label_values(metrics, family, "table")
    assert len(tables) == MAX_TABLES + 1 and OTHER in tables and "table-0" in tables
    assert sum(
        sample.value for metric in metrics.registry.collect() if metric.name == family for sample in metric.samples if sample.name.endswith("_total")
    ) == MAX_TABLES + 51  # nothing lost: the rest counted under other


def test_the_table_bound_is_one_for_the_listener_and_a_name_that_is_not_text_is_other(metrics):
    for number in range(MAX_TABLES):
        metrics(SidecarRequest("GetItem", f"table-{number}", 200, 0.001))
    metrics(CacheLookup("new", "GetItem", False))
    metrics(CacheLookup(["a", "list"], "GetItem", False))  # type: ignore[arg-type]
    assert label_values(metrics, "regionproxy_cache_lookups", "table") == {OTHER}


def test_kept_children_count_as_prometheus_clients_own(metrics):
    for _ in range(3):
        metrics(SidecarRequest("GetItem", "Hot", 200, 0.001))
        metrics(CallFinished(LOCAL, "GetItem", "read", 0.001, "ok"))
    assert value(metrics, "regionproxy_sidecar_requests_total", operation="GetItem", table="Hot", status="200") == 3
    assert value(metrics, "regionproxy_dynamodb_calls_total", region=LOCAL, operation="GetItem", outcome="ok") == 3
    assert value(metrics, "regionproxy_dynamodb_call_duration_seconds_count", region=LOCAL, operation="GetItem") == 3
