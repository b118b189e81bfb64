"""The multi-region DynamoDB session: prefer the local replica, fail over.

:class:`RegionSession` composes the parts: a :class:`~regionproxy.routing.Router`
orders regions, each region's :class:`~regionproxy.breakers.RegionBreaker`
admits or keeps out a call, :func:`~regionproxy.faults.classify` says what
an error means, and events report it all. The session only executes.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from regionproxy.breakers import RegionBreaker
from regionproxy.cache import ReadCache
from regionproxy.config import BreakerPolicy, CachePolicy, HedgePolicy, Settings, Timeouts, settings_from_env
from regionproxy.errors import AllRegionsFailed, AmbiguousWriteError, ConfigError, RegionUnavailable
from regionproxy.events import CALLER_ERROR, FAULT, OK, CacheLookup, CallFinished, FailedOver, Hooks, Listener
from regionproxy.faults import classify
from regionproxy.operations import READ, WRITE, is_idempotent, key_fingerprint, kind_of
from regionproxy.replica import Replica
from regionproxy.routing import Router, StickyWrites
from regionproxy.stats import SessionStats

if TYPE_CHECKING:
    import boto3
    import pybreaker

    from regionproxy.client import RegionClient
    from regionproxy.table import RegionTable

# Only plain eventually consistent GetItems are cached: ConsistentRead,
# projections and capacity reports change the answer, so they bypass it.
_CACHEABLE_GET = frozenset({"TableName", "Key"})
_IDEMPOTENT: contextvars.ContextVar[bool] = contextvars.ContextVar("regionproxy_idempotent", default=False)


class RegionSession:
    """A DynamoDB session over the replicas of Global Tables in several regions.

    :param regions: region names in order of preference; the first is local.
    :param endpoints: endpoint URL per region, where it is not AWS's own.
    :param write_mode: ``local`` (writes go to the preferred healthy region)
        or ``primary`` (every write to ``primary_region``).
    :param breaker: when a region's breaker opens and closes.
    :param timeouts: per attempt, per region.
    :param cache: a :class:`CachePolicy` to cache eventually consistent
        ``GetItem`` results, or None.
    :param hedge: reserved for hedged reads; must be None in this version.
    :param primary_region: the write region in ``primary`` mode (default:
        the first region).
    :param write_failover: in ``primary`` mode, let writes fail over.
    :param sticky_seconds: how long reads of a key follow a write that
        failed over to another region (read-your-writes).
    :param throttling_is_fault: throttling counts against the region and
        fails over (True), or reaches the caller (False).
    :param boto3_session: where credentials come from.
    :param listeners: callables that receive every event.
    :param breaker_storage: ``region -> pybreaker storage``, e.g. Redis
        storage to share breaker state across gunicorn workers.
    :param clock: wall-clock seconds for breakers; tests pass a fake one.
    """

    def __init__(
        self,
        regions: Iterable[str],
        endpoints: Mapping[str, str] | None = None,
        write_mode: str = "local",
        breaker: BreakerPolicy | None = None,
        timeouts: Timeouts | None = None,
        cache: CachePolicy | None = None,
        hedge: HedgePolicy | None = None,
        *,
        primary_region: str | None = None,
        write_failover: bool = False,
        sticky_seconds: float = 5.0,
        throttling_is_fault: bool = True,
        boto3_session: boto3.session.Session | None = None,
        listeners: Iterable[Listener] = (),
        breaker_storage: Callable[[str], pybreaker.CircuitBreakerStorage] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = Settings(
            regions=tuple(regions) if not isinstance(regions, str) else regions,  # Settings rejects a str
            endpoints=dict(endpoints or {}),
            write_mode=write_mode,
            primary_region=primary_region,
            write_failover=write_failover,
            breaker=breaker if breaker is not None else BreakerPolicy(),
            timeouts=timeouts if timeouts is not None else Timeouts(),
            cache=cache,
            hedge=hedge,
            sticky_seconds=sticky_seconds,
            throttling_is_fault=throttling_is_fault,
        )
        settings = self.settings
        self.regions = settings.regions
        self.local_region = settings.regions[0]
        self.hooks = Hooks(listeners)
        self.stats = SessionStats(settings.regions)
        self.hooks.add(self.stats)
        self.router = Router(settings.regions, settings.write_mode, settings.primary, settings.write_failover)
        self.replicas = {
            region: Replica(
                region,
                RegionBreaker(
                    region,
                    settings.breaker,
                    self.hooks,
                    clock=clock,
                    storage=breaker_storage(region) if breaker_storage else None,
                ),
                settings.timeouts,
                endpoint=settings.endpoints.get(region),
                boto3_session=boto3_session,
            )
            for region in settings.regions
        }
        self.cache = ReadCache(settings.cache, clock=monotonic) if settings.cache else None
        self._sticky = StickyWrites(settings.sticky_seconds, self._key_names, clock=monotonic)
        self._key_schema: dict[str, tuple[str, ...]] = {}
        self._clock = clock
        self._throttling_is_fault = settings.throttling_is_fault
        self._client: RegionClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RegionSession(regions={list(self.regions)!r}, write_mode={self.settings.write_mode!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> RegionSession:
        """Build a session from ``REGIONPROXY_*`` variables (see the README).

        Keyword arguments that are not settings (``boto3_session``,
        ``listeners``, ...) go to the constructor as they are.
        """
        settings_names = set(Settings.__dataclass_fields__)
        overrides = {name: value for name, value in kwargs.items() if name in settings_names}
        settings = settings_from_env(os.environ if environ is None else environ, **overrides)
        rest = {name: value for name, value in kwargs.items() if name not in settings_names}
        fields = {name: getattr(settings, name) for name in settings_names}
        return cls(**fields, **rest)

    # -- the surfaces users call -------------------------------------------------

    @property
    def client(self) -> RegionClient:
        """A drop-in for ``boto3.client("dynamodb")``."""
        if self._client is None:
            from regionproxy.client import RegionClient

            with self._lock:
                if self._client is None:
                    self._client = RegionClient(self)
        return self._client

    def table(self, name: str) -> RegionTable:
        """A drop-in for ``boto3.resource("dynamodb").Table(name)``."""
        from regionproxy.table import RegionTable

        return RegionTable(name, self)

    @staticmethod
    @contextlib.contextmanager
    def idempotent() -> Iterator[None]:
        """Mark the writes in this block safe to repeat on another region
        even when their outcome is unknown (the caller guarantees it)."""
        token = _IDEMPOTENT.set(True)
        try:
            yield
        finally:
            _IDEMPOTENT.reset(token)

    def evacuate(self, region: str) -> None:
        """Send no traffic to ``region`` until :meth:`restore` (forces its breaker open)."""
        self._replica(region).breaker.evacuate()

    def restore(self, region: str) -> None:
        """Take ``region`` back into service (closes its breaker)."""
        self._replica(region).breaker.restore()

    def status(self) -> dict[str, Any]:
        """A JSON-ready picture: regions, breakers, latency, failovers, cache."""
        regions = {}
        for region, replica in self.replicas.items():
            regions[region] = {
                "local": region == self.local_region,
                "breaker": replica.breaker.state,
                "consecutive_failures": replica.breaker.failures,
                **self.stats.region(region),
            }
        recent = [
            {"operation": e.operation, "from": e.from_region, "to": e.to_region, "reason": e.reason, "at": e.at}
            for e in list(self.stats.failovers)
        ]
        return {
            "local_region": self.local_region,
            "write_mode": self.settings.write_mode,
            "regions": regions,
            "failovers": {"total": self.stats.failover_count, "recent": recent},
            "cache": {
                "enabled": self.cache is not None,
                "entries": len(self.cache) if self.cache is not None else 0,
                **self.stats.cache(),
            },
        }

    def close(self) -> None:
        for replica in self.replicas.values():
            replica.close()

    def __enter__(self) -> RegionSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- execution ---------------------------------------------------------------

    def execute(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run one DynamoDB operation (``"GetItem"``, wire-format ``params``)
        on the best region that can serve it."""
        kind = kind_of(operation, params)
        if kind == READ:
            if self.cache is not None and operation == "GetItem" and params.keys() <= _CACHEABLE_GET:
                return self._cached_get(params)
            return self._route(operation, params, kind)
        if kind == WRITE:
            return self._write(operation, params)
        return self._route(operation, params, kind)

    def _cached_get(self, params: dict[str, Any]) -> dict[str, Any]:
        assert self.cache is not None
        table = params["TableName"]
        key = (table, key_fingerprint(params["Key"]))
        result, hit = self.cache.get_or_load(key, lambda: self._route("GetItem", params, READ))
        self.hooks.emit(CacheLookup(table, "GetItem", hit))
        return result

    def _local_key_names(self, table: str) -> tuple[str, ...]:
        return self._key_names(self.local_region, table)

    def _write(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if self.cache is None:
            return self._route(operation, params, WRITE)
        self.cache.invalidate_write(operation, params, self._local_key_names)
        try:
            return self._route(operation, params, WRITE)
        finally:
            # Again after the write: a read that loaded between the first
            # invalidation and the write's landing may have stored the old item.
            self.cache.invalidate_write(operation, params, self._local_key_names)

    def _route(self, operation: str, params: dict[str, Any], kind: str) -> dict[str, Any]:
        plan = self.router.plan(kind, self._sticky.region_for(operation, params) if kind == READ else None)
        errors: dict[str, BaseException] = {}
        reason = "breaker_open"  # why the preferred region did not serve
        for region in plan:
            replica = self.replicas[region]
            ticket = replica.breaker.admit()
            if ticket is None:
                errors[region] = RegionUnavailable(region, replica.breaker.state)
                continue
            started = time.perf_counter()
            try:
                result = replica.call(operation, params)
            except Exception as error:
                duration = time.perf_counter() - started
                verdict = classify(error, throttling_is_fault=self._throttling_is_fault)
                if not verdict.fault:
                    replica.breaker.succeeded(ticket)  # the region answered: it is healthy
                    self.hooks.emit(CallFinished(region, operation, kind, duration, CALLER_ERROR, _code(error)))
                    raise
                replica.breaker.failed(ticket)
                self.hooks.emit(CallFinished(region, operation, kind, duration, FAULT, verdict.reason))
                if kind == WRITE and verdict.maybe_applied and not self._repeatable(operation, params):
                    raise AmbiguousWriteError(region, operation, error) from error
                errors[region] = error
                if region == plan[0]:
                    reason = verdict.reason
                continue
            except BaseException:
                replica.breaker.released(ticket)
                raise
            replica.breaker.succeeded(ticket)
            self.hooks.emit(CallFinished(region, operation, kind, time.perf_counter() - started, OK))
            if errors:
                self.hooks.emit(FailedOver(operation, plan[0], region, reason, self._clock()))
                if kind == WRITE:
                    self._sticky.remember(region, operation, params)
            return result
        raise AllRegionsFailed(operation, errors) from _last_error(errors)

    def _repeatable(self, operation: str, params: Mapping[str, Any]) -> bool:
        return _IDEMPOTENT.get() or is_idempotent(operation, params)

    # -- key schema, for finding the key of a put item ----------------------------

    def _key_names(self, region: str, table: str) -> tuple[str, ...]:
        """A table's key attribute names, from DescribeTable once per table;
        asked of ``region`` first (the one that just answered), then the others."""
        names = self._key_schema.get(table)
        if names is not None:
            return names
        for candidate in (region, *(other for other in self.regions if other != region)):
            try:
                schema = self.replicas[candidate].call("DescribeTable", {"TableName": table})["Table"]["KeySchema"]
            except Exception:  # noqa: BLE001 - try the next region
                continue
            names = self._key_schema[table] = tuple(part["AttributeName"] for part in schema)
            return names
        raise LookupError(f"no region could describe table {table}")

    def _replica(self, region: str) -> Replica:
        if region not in self.replicas:
            raise ConfigError(f"unknown region {region!r}; this session has {list(self.regions)}", setting="region")
        return self.replicas[region]


def _code(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code") or type(error).__name__
    return type(error).__name__


def _last_error(errors: Mapping[str, BaseException]) -> BaseException | None:
    return next(reversed(errors.values()), None) if errors else None
