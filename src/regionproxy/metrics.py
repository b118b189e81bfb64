"""Prometheus metrics, fed by session events.

:class:`PrometheusListener` is an event listener; :func:`metrics_app` is the
``/metrics`` WSGI app. This is the only module that imports
prometheus_client, and only when metrics are asked for (the ``metrics``
extra).

Under gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before the workers start (see the README's recipe): every
worker then writes its samples there, and a scrape of any worker returns
the sum over all of them.
"""

from __future__ import annotations

import os
from typing import Any

from regionproxy.breakers import CLOSED, EVACUATED, HALF_OPEN, OPEN
from regionproxy.events import BreakerChanged, CacheLookup, CallFinished, Event, FailedOver

BREAKER_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2, EVACUATED: 3}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir"))


class PrometheusListener:
    """Counts DynamoDB calls, failovers, breaker states and cache lookups.

    :param registry: a ``prometheus_client.CollectorRegistry``; a private
        one by default, so two sessions in a process do not collide.
    """

    def __init__(self, registry: Any = None, regions: tuple[str, ...] = ()) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        # In multiprocess mode, samples go to files and the registry is only
        # read at scrape time; metrics must not be registered twice there.
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        target = None if _multiprocess() else self.registry
        self.calls = Counter(
            "regionproxy_dynamodb_calls",
            "DynamoDB calls per region, operation and outcome (ok, caller_error, fault).",
            ["region", "operation", "outcome"],
            registry=target,
        )
        self.latency = Histogram(
            "regionproxy_dynamodb_call_duration_seconds",
            "Time of one DynamoDB attempt against one region, in seconds.",
            ["region", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=target,
        )
        self.failovers = Counter(
            "regionproxy_failovers",
            "Calls served by another region than the preferred one.",
            ["operation", "from_region", "to_region", "reason"],
            registry=target,
        )
        self.breaker = Gauge(
            "regionproxy_breaker_state",
            "Breaker state per region: 0 closed, 1 half-open, 2 open, 3 evacuated.",
            ["region"],
            registry=target,
            multiprocess_mode="max",
        )
        self.cache = Counter(
            "regionproxy_cache_lookups",
            "Read cache lookups per table and result (hit, miss).",
            ["table", "result"],
            registry=target,
        )
        for region in regions:
            self.breaker.labels(region).set(0)

    def __call__(self, event: Event) -> None:
        if isinstance(event, CallFinished):
            self.calls.labels(event.region, event.operation, event.outcome).inc()
            self.latency.labels(event.region, event.operation).observe(event.duration)
        elif isinstance(event, FailedOver):
            self.failovers.labels(event.operation, event.from_region, event.to_region, event.reason).inc()
        elif isinstance(event, BreakerChanged):
            self.breaker.labels(event.region).set(BREAKER_VALUES.get(event.new, 2))
        elif isinstance(event, CacheLookup):
            self.cache.labels(event.table, "hit" if event.hit else "miss").inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if _multiprocess():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
