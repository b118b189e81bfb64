"""Prometheus metrics, fed by session events.

:class:`PrometheusListener` is an event listener, and :class:`MetricsApp`
the WSGI endpoint that answers its :meth:`~PrometheusListener.exposition`
(the middleware mounts it at ``/metrics``, behind the admin surface's
access checks).
This is the only module that imports prometheus_client, and only when
metrics are asked for (the ``metrics`` extra).

Label values are bounded, because some come from clients (the sidecar's
requests name operations and tables; a Python app may build table names
from a request too), and every distinct set of label values is a series
kept in memory (and in the multiprocess files) for the life of the
process: ``operation`` is one of DynamoDB's operation names (botocore's
service model, the only operations a session can send) or ``Probe``,
anything else ``other``; ``region`` is one of the session's regions,
anything else ``other``; ``table``, in every metric that has it (sidecar
requests, cache lookups, evictions and bypasses, missing replicas), one of
the first ``MAX_TABLES`` distinct names this listener saw, anything after
them ``other``. Every other label value is the session's own (outcomes,
reasons, fleet topics, an HTTP status).

The per-call metrics keep their labelled children (:class:`_Children`):
prometheus_client's ``labels()`` takes a lock and builds a key on every
call, about 1 us each, several per request; a dict lookup by the (bounded)
label values costs a tenth of that. Gauges whose series are removed
(replication lag) are not kept: a removed child must not be written to.

Under gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before the workers start and call
``multiprocess.mark_process_dead(pid)`` when a worker exits (see the
recipe in docs/reference/metrics.md): every worker writes its samples there, and a scrape of any
worker returns the sum over all of them. The breaker gauge is ``livemax``:
the worst state any *live* worker sees. ``mark_process_dead`` deletes only
``live*`` gauge files, so under plain ``max`` a killed worker's open
breaker would stay in every scrape until the directory is emptied.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from regionproxy._regions.breaker import CLOSED, EVACUATED, HALF_OPEN, OPEN
from regionproxy._web.admin import READ_METHODS, StartResponse, answer
from regionproxy.events import (
    PROBE,
    BreakerChanged,
    CacheBypassed,
    CacheDropped,
    CacheLookup,
    CallFinished,
    ConsistencyDowngraded,
    Event,
    FailedOver,
    FleetCacheFlushed,
    FleetChanged,
    FleetDropsApplied,
    FleetTraffic,
    Hedged,
    NameResolved,
    OperationFinished,
    PoisonRequest,
    RegionDemoted,
    RegionProbed,
    ReplicaMissing,
    ReplicationLag,
    SidecarRequest,
)

BREAKER_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2, EVACUATED: 3}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
OTHER = "other"
MAX_TABLES = 200  # table label values the sidecar's metrics keep before "other"


class _Children:
    """One metric's labelled children by their label values (the module
    docstring): at most as many as the bounded values allow."""

    __slots__ = ("_metric", "_children")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:  # two threads may both ask: labels() gives both the same child
            child = self._children[values] = self._metric.labels(*values)
        return child


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir"))


@functools.cache
def operation_names() -> frozenset[str]:
    """DynamoDB's operation names, from botocore's service model, and ``Probe``.

    Loaded once per process (about 0.2 s): a session sends nothing botocore's
    model does not know, so this is every operation name a label can need.
    """
    import botocore.session

    model = botocore.session.get_session().get_service_model("dynamodb")
    return frozenset(model.operation_names) | {PROBE}


class PrometheusListener:
    """Counts DynamoDB calls, app operations, failovers, breaker states,
    poison requests, missing replicas and cache lookups.

    :param registry: a ``prometheus_client.CollectorRegistry``; a private
        one by default, so two sessions in a process do not collide.
    :param regions: the session's regions: the only ``region`` label values
        besides ``other``.
    :param fleet: the session belongs to a fleet: ``regionproxy_fleet_connected``
        starts at 0 and follows the link.
    """

    def __init__(self, registry: Any = None, regions: tuple[str, ...] = (), *, fleet: bool = False) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self._regions = frozenset(regions)
        self._operations = operation_names()
        # In multiprocess mode, samples go to files and the registry is only
        # read at scrape time; metrics must not be registered twice there.
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        target = None if _multiprocess() else self.registry
        counter = functools.partial(Counter, registry=target)
        self.calls = counter(
            "regionproxy_dynamodb_calls",
            "DynamoDB attempts per region, operation and outcome (ok, caller_error, fault).",
            ["region", "operation", "outcome"],
        )
        self.latency = Histogram(
            "regionproxy_dynamodb_call_duration_seconds",
            "Time of one DynamoDB attempt against one region, in seconds.",
            ["region", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=target,
        )
        self.operations = counter(
            "regionproxy_operations",
            "The app's DynamoDB calls (all attempts together) per operation and outcome (ok, caller_error, failed).",
            ["operation", "outcome"],
        )
        self.failovers = counter(
            "regionproxy_failovers",
            "Attempts sent to another region than the preferred one, per reason and how the attempt ended.",
            ["operation", "from_region", "to_region", "reason", "outcome"],
        )
        self.breaker = Gauge(
            "regionproxy_breaker_state",
            "Breaker state per region: 0 closed, 1 half-open, 2 open, 3 evacuated (worst live worker).",
            ["region"],
            registry=target,
            multiprocess_mode="livemax",
        )
        self.probe_failures = counter(
            "regionproxy_probe_failures",
            "Health probes of this process that failed, per region and reason (dns: the endpoint's name did not resolve).",
            ["region", "reason"],
        )
        self.dns_duration = Histogram(
            "regionproxy_dns_resolution_seconds",
            "Time to resolve a region's endpoint host name, once per probe interval, in seconds.",
            ["region"],
            buckets=LATENCY_BUCKETS,
            registry=target,
        )
        self.dns_failures = counter(
            "regionproxy_dns_failures",
            "Resolutions of a region's endpoint host name that failed (no address: an empty record, a resolver down).",
            ["region"],
        )
        self.replication_lag = Gauge(
            "regionproxy_replication_lag_seconds",
            "The replication canary's lag from source to replica region, in seconds (grows while heartbeats do not arrive).",
            ["source", "replica"],
            registry=target,
            multiprocess_mode="livemostrecent",  # the measuring worker's latest (the lease moves between workers)
        )
        self.replication_stalled = Gauge(
            "regionproxy_replication_stalled",
            "1 while the canary's heartbeats from source stop arriving in replica (replication stopped), else 0.",
            ["source", "replica"],
            registry=target,
            multiprocess_mode="livemostrecent",
        )
        self.poison = counter(
            "regionproxy_poison_requests",
            "Requests that failed with a server error in every region they reached (no breaker counted them).",
            ["operation"],
        )
        self.replica_missing = counter(
            "regionproxy_replica_missing",
            "Calls that found no replica of a table in a region while another region has it.",
            ["region", "table"],
        )
        self.hedges = counter(
            "regionproxy_hedges",
            "Hedged reads per hedge region and outcome (won, lost, failed, refused: over budget, not sent).",
            ["region", "outcome"],
        )
        self.demotions = counter(
            "regionproxy_region_demotions",
            "Times hedges kept winning against a region (slow, not down) and reads tried it last for a while.",
            ["region"],
        )
        self.downgraded = counter(
            "regionproxy_consistency_downgraded",
            "Strongly consistent reads of an MREC table that failed over: served by another region, maybe stale.",
            ["from_region", "to_region"],
        )
        self.cache = counter(
            "regionproxy_cache_lookups",
            "Read cache lookups per table and result (hit, miss).",
            ["table", "result"],
        )
        self.cache_bypassed = counter(
            "regionproxy_cache_bypassed",
            "Reads that went past the read cache, per table, while the worker's fleet link was down.",
            ["table"],
        )
        self.cache_evictions = counter(
            "regionproxy_cache_evictions",
            "Read cache entries dropped per table and reason (size: least recently used, past maxsize; expired).",
            ["table", "reason"],
        )
        self.fleet_invalidations = counter(
            "regionproxy_fleet_invalidations_applied",
            "Cache drops published by other workers of the fleet (their writes) and applied here.",
        )
        self.fleet_flushes = counter(
            "regionproxy_fleet_reconnect_flushes",
            "Times the read cache was emptied after a gap in the fleet subscription (drops may have been missed).",
        )
        self.fleet_connected = Gauge(
            "regionproxy_fleet_connected",
            "1 while the link to the fleet's Redis is up, 0 while each worker is on its own (lowest live worker).",
            registry=target,
            multiprocess_mode="livemin",
        )
        self.fleet_messages = counter(
            "regionproxy_fleet_messages",
            "Messages sent to and received from the fleet, per topic and direction (sent, received).",
            ["topic", "direction"],
        )
        if fleet:
            self.fleet_connected.set(0)
        self.sidecar_requests = counter(
            "regionproxy_sidecar_requests",
            "Requests the sidecar (regionproxy serve) answered, per operation, table and HTTP status.",
            ["operation", "table", "status"],
        )
        self.sidecar_latency = Histogram(
            "regionproxy_sidecar_request_duration_seconds",
            "Time the sidecar took to answer one request, per operation, in seconds.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=target,
        )
        self._tables: set[str] = set()
        self._tables_lock = threading.Lock()
        self._calls = _Children(self.calls)
        self._latency = _Children(self.latency)
        self._operations_done = _Children(self.operations)
        self._cache = _Children(self.cache)
        self._sidecar_requests = _Children(self.sidecar_requests)
        self._sidecar_latency = _Children(self.sidecar_latency)
        # The sequence number of the BreakerChanged last applied per region.
        # Breakers announce after releasing their lock, so two threads'
        # changes (or a listener's change made while an earlier one is still
        # being delivered) can arrive newest first; the lock makes "is it
        # newer, then set the gauge" one step.
        self._breaker_lock = threading.Lock()
        self._breaker_seq: dict[str, int] = {}
        for region in regions:
            self.breaker.labels(region).set(0)

    def _region(self, region: str | None) -> str:
        return region if region in self._regions else OTHER

    def _operation(self, operation: str) -> str:
        return operation if operation in self._operations else OTHER

    def _table(self, table: str) -> str:
        """``table``, or ``other`` once ``MAX_TABLES`` other names were seen
        (or for a name that is not text)."""
        try:
            if table in self._tables:
                return table
        except TypeError:  # unhashable
            return OTHER
        if not isinstance(table, str):
            return OTHER
        with self._tables_lock:
            if table in self._tables:
                return table
            if len(self._tables) >= MAX_TABLES:
                return OTHER
            self._tables.add(table)
        return table

    def __call__(self, event: Event) -> None:
        handler = self._HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _call_finished(self, event: CallFinished) -> None:
        region, operation = self._region(event.region), self._operation(event.operation)
        self._calls(region, operation, event.outcome).inc()
        self._latency(region, operation).observe(event.duration)

    def _replication_lag(self, event: ReplicationLag) -> None:
        source, replica = self._region(event.source), self._region(event.replica)
        if event.state == "not_measured":
            # This process stopped measuring (another holds the canary
            # lease): its figures go. A multiprocess gauge cannot drop a
            # series (prometheus_client keeps it in the worker's file): NaN,
            # newer than its last figure and older than the measuring
            # worker's next (livemostrecent).
            multiprocess = _multiprocess()
            for gauge in (self.replication_lag, self.replication_stalled):
                if multiprocess:
                    gauge.labels(source, replica).set(float("nan"))
                else:
                    gauge.remove(source, replica)
            return
        if event.lag is not None:
            self.replication_lag.labels(source, replica).set(event.lag)
        self.replication_stalled.labels(source, replica).set(1 if event.state == "stalled" else 0)

    def _region_probed(self, event: RegionProbed) -> None:
        if not event.ok:
            self.probe_failures.labels(self._region(event.region), event.reason or "unknown").inc()

    def _name_resolved(self, event: NameResolved) -> None:
        region = self._region(event.region)
        self.dns_duration.labels(region).observe(event.duration)
        if not event.ok:
            self.dns_failures.labels(region).inc()

    def _operation_finished(self, event: OperationFinished) -> None:
        self._operations_done(self._operation(event.operation), event.outcome).inc()

    def _failed_over(self, event: FailedOver) -> None:
        self.failovers.labels(
            self._operation(event.operation),
            self._region(event.from_region),
            self._region(event.to_region),
            event.reason,
            event.outcome,
        ).inc()

    def _breaker_changed(self, event: BreakerChanged) -> None:
        if event.region not in self._regions:
            return
        with self._breaker_lock:
            if event.seq < self._breaker_seq.get(event.region, 0):
                return  # a newer change of this breaker is already shown
            self._breaker_seq[event.region] = event.seq
            self.breaker.labels(event.region).set(BREAKER_VALUES.get(event.new, BREAKER_VALUES[OPEN]))

    def _poison_request(self, event: PoisonRequest) -> None:
        self.poison.labels(self._operation(event.operation)).inc()

    def _replica_missing(self, event: ReplicaMissing) -> None:
        self.replica_missing.labels(self._region(event.region), self._table(event.table)).inc()

    def _hedged(self, event: Hedged) -> None:
        self.hedges.labels(self._region(event.to_region), event.outcome).inc()

    def _region_demoted(self, event: RegionDemoted) -> None:
        self.demotions.labels(self._region(event.region)).inc()

    def _consistency_downgraded(self, event: ConsistencyDowngraded) -> None:
        self.downgraded.labels(self._region(event.from_region), self._region(event.to_region)).inc()

    def _cache_lookup(self, event: CacheLookup) -> None:
        self._cache(self._table(event.table), "hit" if event.hit else "miss").inc()

    def _cache_bypassed(self, event: CacheBypassed) -> None:
        self.cache_bypassed.labels(self._table(event.table)).inc()

    def _cache_dropped(self, event: CacheDropped) -> None:
        self.cache_evictions.labels(self._table(event.table), event.reason).inc(event.count)

    def _fleet_drops_applied(self, event: FleetDropsApplied) -> None:
        self.fleet_invalidations.inc(event.count)

    def _fleet_cache_flushed(self, event: FleetCacheFlushed) -> None:
        self.fleet_flushes.inc()
    def _fleet_changed(self, event: FleetChanged) -> None:
        self.fleet_connected.set(1 if event.connected else 0)

    def _fleet_traffic(self, event: FleetTraffic) -> None:
        self.fleet_messages.labels(event.topic, event.direction).inc()
    def _sidecar_request(self, event: SidecarRequest) -> None:
        operation = self._operation(event.operation)
        self._sidecar_requests(operation, self._table(event.table), str(event.status)).inc()
        self._sidecar_latency(operation).observe(event.duration)

    _HANDLERS: ClassVar[dict[type, Callable[[PrometheusListener, Any], None]]] = {
        CallFinished: _call_finished,
        RegionProbed: _region_probed,
        ReplicationLag: _replication_lag,
        NameResolved: _name_resolved,
        OperationFinished: _operation_finished,
        FailedOver: _failed_over,
        BreakerChanged: _breaker_changed,
        PoisonRequest: _poison_request,
        ReplicaMissing: _replica_missing,
        Hedged: _hedged,
        RegionDemoted: _region_demoted,
        ConsistencyDowngraded: _consistency_downgraded,
        CacheLookup: _cache_lookup,
        CacheBypassed: _cache_bypassed,
        CacheDropped: _cache_dropped,
        FleetDropsApplied: _fleet_drops_applied,
        FleetCacheFlushed: _fleet_cache_flushed,
        FleetChanged: _fleet_changed,
        FleetTraffic: _fleet_traffic,
        SidecarRequest: _sidecar_request,
    }

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if _multiprocess():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsApp:
    """WSGI app: the exposition of ``listener`` for GET and HEAD, 405 otherwise.

    It answers whoever reaches it: mount it behind the admin surface's
    access checks (:class:`~regionproxy._web.admin.AdminApp` does).
    """

    def __init__(self, listener: PrometheusListener) -> None:
        self.listener = listener

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] not in READ_METHODS:  # raw: methods are case-sensitive
            response = answer(b"GET or HEAD only\n", 405, headers={"Allow": ", ".join(READ_METHODS)})
        else:
            body, content_type = self.listener.exposition()
            response = answer(body, content_type=content_type)
        return response(environ, start_response)
