"""The multi-region DynamoDB session: prefer the local replica, fail over.

:class:`RegionSession` composes the parts: a :class:`~regionproxy._routing.router.Router`
orders regions, each region's :class:`~regionproxy._regions.breaker.RegionBreaker`
admits or keeps out a call, :func:`~regionproxy._dynamodb.verdicts.classify` says what
an error means, and events report it all. The session only executes.

One pass per call: whichever surface a call comes from, it enters the
session once (:meth:`RegionSession.execute`, the one method of the
:class:`~regionproxy._boto3.client.CallRouter` protocol that carries calls)
and is described once, as one :class:`~regionproxy._dynamodb.calls.Call`
that every part it visits reads (the cache, read-your-writes, the attempt
loop, hedging). A call from the Python-value surfaces brings its
:class:`~regionproxy._boto3.client.PythonValues`: a cached GetItem is then
answered in Python values without serialising anything, and a miss is
serialised, routed and deserialised once.

Collaborators ask, they do not reach in: the boto3-shaped surfaces
(:mod:`regionproxy._boto3`), the health monitor and the admin app use the
session's methods (``execute``, ``local_client``, ``breaker_state``,
``probe``, ``evacuate``, ``hedge_delay``, ``add_listener``, ...) and import
nothing of this module.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from regionproxy._boto3.client import RegionClient, ValueForm
from regionproxy._boto3.emitters import Registration, caller_registrations, take_off
from regionproxy._boto3.resource import RegionResource
from regionproxy._cache.reads import CachedReads
from regionproxy._cache.store import MISS, ReadCache
from regionproxy._config.environment import settings_from_env
from regionproxy._config.policies import BreakerPolicy, CachePolicy, HedgePolicy, Timeouts
from regionproxy._config.settings import SESSION_ARGUMENTS, Settings, check_session_arguments
from regionproxy._dynamodb.calls import Call
from regionproxy._dynamodb.consistency import STRONG, TableKinds
from regionproxy._dynamodb.keys import key_fingerprint
from regionproxy._dynamodb.operations import READ, WRITE, changed_tables
from regionproxy._dynamodb.schemas import KeySchemas
from regionproxy._dynamodb.verdicts import classify, error_code
from regionproxy._fleet.coherence import Remembered, SharedWrites
from regionproxy._fleet.fleet import Fleet
from regionproxy._forks import reset_after_fork
from regionproxy._regions.breaker import RegionBreaker
from regionproxy._regions.health import ProbeAnswer, ProbeSharing
from regionproxy._regions.replica import Replica
from regionproxy._routing.attempts import AttemptLoop, longest_call
from regionproxy._routing.hedging import Hedger
from regionproxy._routing.nearest import LatencyEstimates, nearest_first
from regionproxy._routing.router import NOTHING_SEEN, Router, StickyWrites
from regionproxy._session.stats import SessionStats
from regionproxy.errors import ConfigError
from regionproxy.events import (
    CALLER_ERROR,
    FAULT,
    OK,
    PROBE,
    PROBE_KIND,
    CallFinished,
    ConsistencyDowngraded,
    Event,
    Hooks,
    Listener,
)

if TYPE_CHECKING:
    import boto3
    import pybreaker
    from botocore.config import Config

    from regionproxy._boto3.table import RegionTable

log = logging.getLogger("regionproxy")

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
    :param hedge: a :class:`HedgePolicy`: hedge reads (after a delay, ask the
        next region too; the first success wins), or None.
    :param primary_region: the write region in ``primary`` mode (default:
        the first region).
    :param write_failover: in ``primary`` mode, let writes fail over.
    :param sticky_seconds: how long reads of a key follow a write that
        failed over to another region (read-your-writes), and how long the
        cache keeps answers of regions that may lack the session's latest
        write of a key out (see :mod:`regionproxy._routing.router`); 0: neither.
    :param throttling_is_fault: throttling counts against the region and
        fails over (True), or reaches the caller (False).
    :param key_schemas: key attribute names per table, ``{"Blog": ("PK", "SK")}``;
        tables not named are described once (``DescribeTable``) when the
        cache or read-your-writes needs a put item's key.
    :param latency_window: seconds: remote regions whose latency estimates
        are within this of the nearest one's are tried in the configured
        order, the others after them, nearest first (see
        :mod:`regionproxy._routing.nearest`).
    :param consistency: each Global Table's kind, ``{"Orders": "strong"}``
        (MRSC) or ``"eventual"`` (MREC); tables not named are described once
        when a strongly consistent read needs to know (see
        :mod:`regionproxy._dynamodb.consistency`).
    :param consistent_read_failover: ``"serve"``: a ``ConsistentRead=True``
        read of an MREC table whose region fails is served by another one,
        with a ``ConsistencyDowngraded`` event; ``"refuse"``: it raises
        instead (the caller gets its region's error).
    :param config: a botocore ``Config`` for every region's client (pool
        size, user agent, proxies, ...); the session's timeouts and retries
        override its ``connect_timeout``, ``read_timeout`` and ``retries``.
    :param boto3_session: where credentials come from; None: a boto3
        session of regionproxy's own (the default credential chain), whose
        credential refreshes (STS for an assume-role or web-identity
        profile, SSO) are bounded by ``timeouts``, a failed one held that
        long so threads do not queue on it
        (:mod:`regionproxy._regions.credentials`). A session passed here is
        used as it is, with botocore's defaults (60 s per attempt) unless
        you bound it: ``boto3_session._session.set_default_client_config(Config(...))``.
    :param listeners: callables that receive every event.
    :param breaker_storage: ``region -> pybreaker storage`` (pybreaker's
        Redis storage shares open/closed only: prefer ``fleet``).
    :param fleet: a ``redis://`` or ``rediss://`` URL: share breakers,
        evacuations, probes and cache drops with every process of the fleet
        (see :mod:`regionproxy._fleet`); None: this process on its own.
    :param fleet_name: the fleet's namespace in Redis; derived from the
        regions and the tables named by default.
    :param fleet_timeout: seconds each Redis operation may take (0.05).
    :param clock: wall-clock seconds for breakers and event times; tests pass a fake one.
    :param monotonic: monotonic seconds for the cache and read-your-writes.
    :param sleep: how to wait before an in-region retry; tests pass a fake one.
    :raises ConfigError: a setting is wrong (a region that is not an AWS region name, a
        ``primary_region`` without ``write_mode="primary"``, a bad policy,
        ...); ``.setting`` names it. Nothing is sent before the first call:
        clients are made lazily, per process.

    Calls through :attr:`client`, :attr:`resource` and :meth:`table` take
    boto3's arguments and return boto3's answers. A caller's DynamoDB error
    (``ConditionalCheckFailedException``, ``ValidationException``, ...)
    reaches the caller unchanged; when no region serves a call it raises
    ``AllRegionsFailed``; a non-idempotent write that may have been applied
    raises ``AmbiguousWriteError``.

    Example::

        import regionproxy as rp

        session = rp.RegionSession(
            regions=["eu-west-3", "us-east-1"],         # order = preference; first is local
            timeouts=rp.Timeouts(connect=0.5, read=1.0, attempts=2),
            cache=rp.CachePolicy(maxsize=10_000, ttl=5.0),
        )
        table = session.table("Blog")                   # boto3.resource("dynamodb").Table("Blog")
        table.get_item(Key={"PK": "POST#1", "SK": "METADATA"})
        session.close()
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
        key_schemas: Mapping[str, Iterable[str]] | None = None,
        fleet: str | None = None,
        fleet_name: str | None = None,
        fleet_timeout: float = 0.05,
        latency_window: float = 0.015,
        consistency: Mapping[str, str] | None = None,
        consistent_read_failover: str = "serve",
        config: Config | None = None,
        boto3_session: boto3.session.Session | None = None,
        listeners: Iterable[Listener] = (),
        breaker_storage: Callable[[str], pybreaker.CircuitBreakerStorage] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        listeners = check_session_arguments(  # a tuple: a one-shot iterator is used up here
            boto3_session=boto3_session,
            listeners=listeners,
            breaker_storage=breaker_storage,
            clock=clock,
            monotonic=monotonic,
            sleep=sleep,
        )
        self.settings = Settings(
            regions=tuple(regions) if isinstance(regions, list | tuple) else regions,  # Settings rejects the rest
            endpoints=endpoints if endpoints is not None else {},
            write_mode=write_mode,
            primary_region=primary_region,
            write_failover=write_failover,
            breaker=breaker if breaker is not None else BreakerPolicy(),
            timeouts=timeouts if timeouts is not None else Timeouts(),
            cache=cache,
            hedge=hedge,
            sticky_seconds=sticky_seconds,
            throttling_is_fault=throttling_is_fault,
            key_schemas=key_schemas if key_schemas is not None else {},
            latency_window=latency_window,
            consistency=consistency if consistency is not None else {},
            consistent_read_failover=consistent_read_failover,
            client_config=config,
            fleet=fleet,
            fleet_name=fleet_name,
            fleet_timeout=fleet_timeout,
        )
        settings = self.settings
        self.regions = settings.regions
        self.local_region = settings.regions[0]
        self.hooks = Hooks(listeners)
        self.stats = SessionStats(settings.regions)
        self.hooks.add(self.stats.record)  # a bound method: cheaper to call than the instance
        self.router = Router(settings.regions, settings.write_mode, settings.primary, settings.write_failover)
        self._boto3_session = boto3_session
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
                config=settings.client_config,
                prepare=self._take_off_callers_handlers,
            )
            for region in settings.regions
        }
        longest = longest_call(len(settings.regions), settings.timeouts)
        # -- the fleet (regionproxy._fleet): joined in each process on first use
        self.fleet = (
            Fleet(settings, {r: replica.breaker for r, replica in self.replicas.items()}, self.hooks, trial_seconds=longest, clock=clock)
            if settings.fleet is not None
            else None
        )
        self._fleet_due = self.fleet is not None
        # -- end of the fleet
        self._latency = LatencyEstimates()  # issue 20: nearest healthy region
        self.hooks.add(self._latency.record)
        self._hedger = (
            Hedger(
                settings.hedge,
                self.hooks,
                longest_call=longest,
                estimates=self._latency,
                latency_window=settings.latency_window,
                clock=monotonic,
            )
            if settings.hedge is not None
            else None
        )
        self.attempts = AttemptLoop(
            self.replicas,
            self.hooks,
            attempts=settings.timeouts.attempts,
            throttling_is_fault=settings.throttling_is_fault,
            clock=clock,
            sleep=sleep,
            hedger=self._hedger,
        )
        self.key_schemas = KeySchemas(settings.key_schemas, self._describe_and_learn, clock=monotonic)
        self._kinds = TableKinds(settings.consistency, settings.regions, self._describe, clock=monotonic)  # issue 20
        self.cache = ReadCache(settings.cache, clock=monotonic, wait_timeout=longest + 1.0) if settings.cache else None
        self.reads = CachedReads(self.cache, self._read, self.hooks) if self.cache is not None else None
        # The Router is a value: these plans are what it answers every time
        # (a read's, unless a recent write says otherwise).
        self._read_plan, self._write_plan = self.router.plan(READ), self.router.plan(WRITE)
        self._sticky = StickyWrites(settings.sticky_seconds, home=self._write_plan[0], clock=monotonic)
        # The fleet's share of writes: cache drops and read-your-writes (None: this process alone).
        self._shared = (
            SharedWrites(
                self.fleet.link,
                regions=self.regions,
                cache=self.cache,
                sticky=self._sticky,
                forget_table=self.key_schemas.forget,
                hooks=self.hooks,
            )
            if self.fleet is not None
            else None
        )
        self._clock = clock
        self._client: RegionClient | None = None
        self._resource: RegionResource | None = None
        self._lock = threading.Lock()
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"RegionSession(regions={list(self.regions)!r}, write_mode={self.settings.write_mode!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> RegionSession:
        """Build a session from ``REGIONPROXY_*`` variables (every one is in
        docs/reference/configuration.md).

        :param environ: where to read them; ``os.environ`` by default.
        :param kwargs: a setting given here (``regions=``, ``timeouts=``, ...)
            replaces the variables of that field; keyword arguments that are
            not settings (``boto3_session``, ``listeners``, ...) go to the
            constructor as they are.
        :raises ConfigError: a variable's value is wrong (``.setting`` names
            the variable), or a keyword is neither a setting nor the
            constructor's.

        Example::

            # REGIONPROXY_REGIONS=eu-west-3,us-east-1 REGIONPROXY_CACHE_TTL=5
            session = rp.RegionSession.from_env(listeners=[print])
        """
        if "config" in kwargs:  # the constructor's name for the client_config setting
            kwargs["client_config"] = kwargs.pop("config")
        rest = {name: kwargs.pop(name) for name in (*SESSION_ARGUMENTS, "sleep") if name in kwargs}
        # Everything else is a setting: an unknown name is a ConfigError naming it.
        settings = settings_from_env(os.environ if environ is None else environ, **kwargs)
        fields = {name: getattr(settings, name) for name in Settings.__dataclass_fields__}
        fields["config"] = fields.pop("client_config")
        return cls(**fields, **rest)

    # -- the surfaces users call -------------------------------------------------

    @property
    def client(self) -> RegionClient:
        """A drop-in for ``boto3.client("dynamodb")``, made once: share it
        between threads for calls; a thread that changes its ``meta.events``
        takes one of its own (:meth:`new_client`)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = RegionClient(self)
        return self._client

    @property
    def resource(self) -> RegionResource:
        """A drop-in for ``boto3.resource("dynamodb")``, made once: share it
        (and its Tables) between threads for calls; a thread that changes
        its client's ``meta.events`` (the wire-format idiom, a ``Stubber``)
        takes one of its own (:meth:`new_resource`)."""
        if self._resource is None:
            with self._lock:
                if self._resource is None:
                    self._resource = RegionResource(self)
        return self._resource

    def table(self, name: str) -> RegionTable:
        """A drop-in for ``boto3.resource("dynamodb").Table(name)``: ``self.resource.Table(name)``.

        Nothing is sent until the first call; a table that does not exist is
        the caller's ``ResourceNotFoundException`` on that call, as in boto3.
        ``name`` may be the table's ARN, as DynamoDB takes it: each region
        is sent the ARN of its own replica, and the cache knows the table by
        its name (docs/concepts/tables.md)."""
        return self.resource.Table(name)

    def new_client(self) -> RegionClient:
        """A client of its own (its own ``meta.events``), routed through this
        session like :attr:`client`: for a thread that registers handlers
        or attaches a ``Stubber``, as boto3 makes a client per call of
        ``boto3.client``. About 0.03 ms to make."""
        return RegionClient(self)

    def new_resource(self) -> RegionResource:
        """A resource of its own (its Tables share its client, with its own
        ``meta.events``), routed through this session like :attr:`resource`:
        for a thread that swaps or changes the emitter (the wire-format
        idiom), as boto3 advises a resource per thread. About 0.2 ms to make."""
        return RegionResource(self)

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

    def prepare(self) -> RegionSession:
        """Build every region's client in this process now, instead of on
        first use (about 60 ms of CPU each): call it in a worker after the
        fork (gunicorn's ``post_fork``) so no request pays for it."""
        for replica in self.replicas.values():
            replica.client  # noqa: B018 - building it is the point
        if self._fleet_due:
            self._join_fleet()
        return self

    def evacuate(self, region: str, *, by: str | None = None) -> None:
        """Send no traffic to ``region`` until :meth:`restore` (forces its
        breaker open): in every process of the fleet, if there is one, and
        until restored; ``by`` says who acted (the status page shows it)."""
        breaker = self._replica(region).breaker
        if self.fleet is not None:
            self.fleet.evacuate(region, by)
        else:
            breaker.evacuate()

    def restore(self, region: str, *, by: str | None = None) -> None:
        """Take ``region`` back into service (closes its breaker), in every
        process of the fleet if there is one."""
        breaker = self._replica(region).breaker
        if self.fleet is not None:
            self.fleet.restore(region, by)
        else:
            breaker.restore()

    def probe_sharing(self) -> ProbeSharing | None:
        """How health monitors of this session's fleet share probes (None:
        no fleet); joins the fleet in this process."""
        if self.fleet is None:
            return None
        self._join_fleet()
        return self.fleet.probes

    def _join_fleet(self) -> None:
        self._fleet_due = False
        if self.fleet is not None:
            self.fleet.join()

    def settle(self) -> None:
        """Apply what the fleet has sent this process so far (other workers'
        cache drops, and their failed-over writes to follow) before going on:
        the middleware calls it as each request starts, so a request reads
        every write the fleet finished before it arrived. Waits for this
        process's listener thread, at most a second (once, while it is
        stuck); at once when nothing is waiting, or without a fleet."""
        if self._shared is not None:
            self._shared.settle()

    def breaker_state(self, region: str) -> str:
        """``closed``, ``open``, ``half-open`` or ``evacuated``: ``region``'s breaker now."""
        return self._replica(region).breaker.state

    def hedge_delay(self, region: str) -> float | None:
        """Seconds a read waits for ``region`` before it is hedged; None
        without a hedge policy."""
        return self._hedger.delay(region) if self._hedger is not None else None

    def add_listener(self, listener: Listener) -> None:
        """Send every event to ``listener`` from now on (once, however often added)."""
        self.hooks.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        self.hooks.remove(listener)

    def announce(self, event: Event) -> None:
        """Deliver ``event`` to every listener (the health monitor's probes
        and name resolutions)."""
        self.hooks.emit(event)

    def call_region(self, region: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one wire-format call straight to ``region``'s replica: no
        cache, no router, no breaker, no failover (the replication canary's
        heartbeats, which measure the region itself)."""
        call = Call(operation, params)
        if not call.by_arn:
            return self._replica(region).call(operation, params)
        sent, renames = call.params_in(region, self.regions)
        return call.answer_for_caller(self._replica(region).call(operation, sent), renames)

    def endpoint_url(self, region: str) -> str:
        """The URL ``region``'s requests go to in this process (an override,
        or the one botocore resolved for the region)."""
        replica = self._replica(region)
        return replica.endpoint or replica.client.meta.endpoint_url

    def warm(self, region: str) -> str:
        """Keep a connection to ``region`` open in this process's pool for
        it, without a request and outside its breaker
        (:mod:`regionproxy._regions.warming`); what it did (``opened``,
        ``kept``, ...)."""
        return self._replica(region).warm()

    def key_names(self, table: str) -> tuple[str, ...] | None:
        """``table``'s key attribute names if known now (declared, or
        learned), without I/O."""
        return self.key_schemas.known(table)

    def learn_table(self, table: str, description: Mapping[str, Any]) -> None:
        """Keep ``table``'s key names and kind from a ``DescribeTable`` answer's ``Table``."""
        self.key_schemas.learn(table, description)
        with contextlib.suppress(ConfigError):  # kept: the table's own calls raise it
            self._kinds.learn(table, description)

    def probe(self, region: str, send: Callable[[Replica], None]) -> ProbeAnswer | None:
        """Send a health probe to ``region`` through its breaker, as live
        traffic goes: ``send(replica)`` makes the request (``replica.call``).
        None if the breaker kept it out (open and not due a trial, evacuated,
        another trial out). The breaker hears the verdict: an error raised
        before the request left says nothing of the region; a fault counts
        against it (a 5xx too: a probe is a request known to be good, so no
        poison-request judgment); any answer, DynamoDB's own errors
        included, is the region up. Announced as a ``CallFinished`` of
        operation ``"Probe"``, unless it was not sent."""
        replica = self._replica(region)
        breaker = replica.breaker
        ticket = breaker.admit()
        if ticket is None:
            return None
        started = time.perf_counter()
        try:
            send(replica)
        except Exception as error:  # noqa: BLE001 - judged here, and its verdict returned
            seconds = time.perf_counter() - started
            verdict = classify(error, throttling_is_fault=self.settings.throttling_is_fault)
            if not verdict.sent:
                breaker.released(ticket)
                return ProbeAnswer(error, verdict)
            if verdict.fault:
                breaker.failed(ticket)
                outcome, label = FAULT, verdict.reason
            else:
                breaker.succeeded(ticket)
                outcome, label = CALLER_ERROR, error_code(error)
            answer = ProbeAnswer(error, verdict)
        except BaseException:
            breaker.released(ticket)
            raise
        else:
            seconds = time.perf_counter() - started
            breaker.succeeded(ticket)
            outcome, label, answer = OK, None, ProbeAnswer()
        self.hooks.emit(CallFinished(region, PROBE, PROBE_KIND, seconds, outcome, label))
        return answer

    def status(self) -> dict[str, Any]:
        """A JSON-ready picture: regions, breakers, latency, failovers, cache
        (what the status page and ``/_regionproxy/status.json`` show).

        ``status()["regions"][region]`` holds ``local``, ``breaker``
        (``closed``, ``half-open``, ``open``, ``evacuated``), ``calls``,
        ``errors``, ``last_error`` and ``latency_ms`` (p50, p99)."""
        regions = {}
        for region, replica in self.replicas.items():
            regions[region] = {
                "local": region == self.local_region,
                "breaker": replica.breaker.state,
                "consecutive_failures": replica.breaker.failures,
                "latency_estimate_ms": _ms(self._latency.estimate(region)),
                **self.stats.region(region),
            }
        summary = self.stats.summary()
        summary["failovers"]["recent"] = [
            {"operation": e.operation, "from": e.from_region, "to": e.to_region, "reason": e.reason, "at": e.at}
            for e in self.stats.recent_failovers()
        ]
        return {
            "local_region": self.local_region,
            "write_mode": self.settings.write_mode,
            "regions": regions,
            **summary,
            "cache": {
                "enabled": self.cache is not None,
                **(self.cache.counts() if self.cache is not None else {"entries": 0, "evictions": 0, "expiries": 0}),
                **self.stats.cache(),
            },
            "fleet": (
                {**self.fleet.status(), "cache": self._shared.status()}
                if self.fleet is not None and self._shared is not None
                else {"enabled": False}
            ),
        }

    def close(self) -> None:
        """Close what the session holds in this process: its fleet link,
        hedging threads and every region's connections. Calls after it are
        not supported; a lab closes the sessions it made when it stops."""
        if self.fleet is not None:
            self.fleet.close()
        if self._hedger is not None:
            self._hedger.close()
        for replica in self.replicas.values():
            replica.close()

    def __enter__(self) -> RegionSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what the boto3-shaped surfaces ask (regionproxy._boto3.client.CallRouter) --

    def local_client(self) -> Any:
        """This process's botocore client of the local region, as it is:
        not routed (the surfaces read its model, config, endpoint and
        exceptions from it, and build before-call's request with it)."""
        return self.replicas[self.local_region].client

    def caller_handlers(self) -> tuple[Registration, ...]:
        """The handlers of the caller's boto3 session for the per-call
        events, which the surfaces carry and the regional clients do not
        (see :mod:`regionproxy._boto3.emitters`)."""
        if self._boto3_session is None:
            return ()  # the regions' clients come from a boto3 session of our own
        return caller_registrations(self._boto3_session.events) or ()

    def _take_off_callers_handlers(self, client: Any) -> None:
        """Called with each regional client made: the caller's per-call
        handlers belong to the surfaces. Best effort: a failure here must
        not cost the client (the handlers then run there, as before)."""
        if self._boto3_session is None:
            return
        try:
            take_off(client.meta.events, self.caller_handlers())
        except Exception:  # noqa: BLE001 - see the docstring
            log.warning("regionproxy: the boto3 session's handlers stay on a region's client", exc_info=True)

    # -- execution ---------------------------------------------------------------

    def execute(self, operation: str, params: dict[str, Any], values: ValueForm | None = None) -> dict[str, Any]:
        """Run one DynamoDB operation (``"GetItem"``) on the best region that
        can serve it: ``params`` and the answer in wire format; or, with
        ``values`` (what the Python-value client passes), both in Python
        values, through the Python-value cache where it applies."""
        if self._fleet_due:  # the first call in this process joins the fleet
            self._join_fleet()
        reads = self.reads
        if values is None:
            if reads is not None and operation == "GetItem":
                # A hit costs microseconds: describing the call would be a third of it.
                result = reads.hit(params)
                if result is not MISS:
                    return result
            # No keyword to pass unless it is marked: a keyword costs a dict per call.
            call = Call(operation, params, marked_idempotent=True) if _IDEMPOTENT.get() else Call(operation, params)
        elif reads is not None and (operation == "GetItem" or operation == "Query"):
            return self._read_values(operation, params, values)
        else:
            params = values.to_wire(params)
            call = Call(operation, params, marked_idempotent=True) if _IDEMPOTENT.get() else Call(operation, params)
        if call.kind == READ:
            if reads is not None and reads.applies(operation):
                result = reads.read(call)
            else:
                result = self._read(call)
        elif call.kind == WRITE:
            result = self._write(call)
        else:
            result = self._control(call)
        return result if values is None else values.to_python(result)

    def _control(self, call: Call) -> dict[str, Any]:
        """A control-plane call: the local region, no failover."""
        tables = changed_tables(call.operation, call.named)  # DeleteTable, CreateTable, ...: by name
        try:
            return self.attempts.run(call, self.router.plan(call.kind))[0]
        finally:
            for table in tables:  # whatever the outcome: it may have been applied
                self.key_schemas.forget(table)
                if self.cache is not None:
                    self.cache.invalidate_table(table)
            if self._shared is not None and tables:
                self._shared.changed(tables)

    def _read_values(self, operation: str, params: dict[str, Any], values: ValueForm) -> dict[str, Any]:
        """A GetItem or Query in Python values through the cache's Python-value
        form (see :meth:`CachedReads.read_values`): a GetItem is looked up by
        its Python-value key, so a hit serialises nothing; a Query by its
        wire-format request, the call's own. A miss is serialised, routed by
        :meth:`_read` (not through the wire-format cache, which would keep a
        second copy of the same answer) and deserialised, once."""
        assert self.reads is not None
        if operation == "GetItem":
            return self.reads.read_values(
                operation, params, lambda: values.to_python(self._read(Call(operation, values.to_wire(params))))
            )
        call = Call(operation, values.to_wire(params))
        return self.reads.read_values(operation, call.params, lambda: values.to_python(self._read(call)))

    def _read(self, call: Call) -> dict[str, Any]:
        sticky = self._sticky
        seen = sticky.seen_by(call) if sticky.remembering else NOTHING_SEEN  # the common path: no call
        hedger = self._hedger
        if self._kinds.misconfigured:
            self._kinds.check(call.tables)
        plan = self._read_plan if seen.follow is None else self.router.plan(READ, seen.follow)
        if len(plan) > 2:  # remote regions nearest first (issue 20); with two, nothing to reorder
            plan = nearest_first(plan, self._latency.snapshot(), self.settings.latency_window)
        if call.strongly_consistent:
            # It must see every write the preferred region took: a hedge to
            # another region could answer first with the item as it was,
            # and a demotion would send the read there first. It waits for
            # its region, and fails over (an MREC table's: with meaning lost,
            # and said so; or not at all) only if that region fails.
            result, region = self._consistent_read(call, plan)
        elif seen.follow is not None:
            # Read-your-writes: the write is in the sticky region, maybe not
            # yet in the others (unhedged, not reordered, as above).
            result, region = self.attempts.run(call, plan, hedge=False)
        elif hedger is not None:
            result, region = self.attempts.run(call, hedger.order(plan))  # a slow region last
        else:
            result, region = self.attempts.run(call, plan)
        if self.reads is not None and not seen.may_store(region):
            # A region that may not have the session's latest write of what
            # this read sees answered it (a hedge, a failover): the caller
            # gets it, the cache does not keep it.
            self.reads.withhold(call)
        return result

    # -- issue 20 (r20-routing): strongly consistent reads --------------------------

    def _consistent_read(self, call: Call, plan: tuple[str, ...]) -> tuple[dict[str, Any], str]:
        """A ``ConsistentRead=True`` read, unhedged: see
        :mod:`regionproxy._dynamodb.consistency` for the rules."""
        try:
            tables = call.tables
        except Exception:  # noqa: BLE001 - a statement botocore will refuse: its kind is unknown
            tables = []
        # Known before the read (described once per table, through the
        # breakers): a witness listed as a region is found on the first one.
        strong = self._all_strong(tables, plan[0])
        if self.settings.consistent_read_failover == "refuse" and not strong:
            plan = plan[:1]  # its region's error rather than an answer that may be stale
        result, region = self.attempts.run(call, plan, hedge=False)
        if region != plan[0] and not strong:
            self.hooks.emit(ConsistencyDowngraded(call.operation, tuple(tables), plan[0], region, self._clock()))
        return result, region

    def _all_strong(self, tables: list[str], prefer: str) -> bool:
        """Whether every one of ``tables`` is MRSC (an unknown kind is not)."""
        return bool(tables) and all(self._kinds.kind(table, prefer) == STRONG for table in tables)

    # -- end issue 20 -------------------------------------------------------------

    def _write(self, call: Call) -> dict[str, Any]:
        if self._kinds.misconfigured:
            self._kinds.check(call.tables)
        plan = self._write_plan
        cache = self.cache
        # One write asks for a table's key schema once, however many times
        # its keys are named (before, after, for read-your-writes).
        key_names = _KeyNamesOnce(self.key_schemas.names) if cache is not None else None
        if cache is not None:
            cache.invalidate_write(call.operation, call.named, key_names)
        maybe_applied: list[str] = []  # where it failed in a way that may have applied it
        remembered: Remembered | None = None
        try:
            result, region = self.attempts.run(call, plan, maybe_applied=maybe_applied)
            # Where it landed: reads of it follow it if it failed over, and
            # the cache keeps answers only from there. Landed at home, it
            # matters only to the cache, or to end what an earlier write of
            # its tables made sticky.
            if (
                region != plan[0]
                or cache is not None
                or (self._sticky.remembering and self._sticky.remembers(call.tables))  # the tables only if it may matter
            ):
                key_names = key_names or _KeyNamesOnce(self.key_schemas.names)
                remembered = self._remember(region, call, key_names, failed_over=region != plan[0])
        except Exception:
            # It failed, but may have landed (AmbiguousWriteError, or any
            # error after such an attempt): remembered as an uncertain write
            # there, before the cache is cleared again below.
            landed = maybe_applied[0] if maybe_applied else None
            if landed is not None and (landed != plan[0] or cache is not None or self._sticky.remembers(call.tables)):
                key_names = key_names or _KeyNamesOnce(self.key_schemas.names)
                remembered = self._remember(landed, call, key_names, failed_over=landed != plan[0], uncertain=True)
            raise
        finally:
            drops = ()
            if cache is not None:
                # Again after the write, and after reads of it follow it: a
                # read that loaded before either (from the local region, which
                # may not have a write that failed over yet) may have stored
                # the old item.
                drops = cache.invalidate_write(call.operation, call.named, key_names)
            if self._shared is not None:
                # Before the write returns: every worker of the fleet drops
                # it too, and follows it (see regionproxy._fleet.coherence).
                self._shared.wrote(drops, remembered)
        return result

    def _remember(
        self, region: str, call: Call, key_names: _KeyNamesOnce, *, failed_over: bool, uncertain: bool = False
    ) -> Remembered | None:
        """Remember that ``region`` took what the write touched, or, when
        ``uncertain``, may have (see :mod:`regionproxy._routing.router`); and
        return what was remembered, for the fleet. The write was (or may
        have been) applied: nothing here may turn that into an error, nor
        change the error the caller gets."""
        try:
            keys: list[tuple[str, Any]] | None = [
                (table, key_fingerprint(key)) for table, key in call.written_keys(lambda table: key_names(table, region))
            ]
            tables = list(dict.fromkeys(table for table, _ in keys)) if keys else call.tables
        except Exception as error:  # noqa: BLE001 - e.g. DescribeTable denied: follow whole tables instead
            if failed_over:
                log.warning(
                    "regionproxy: keys of a %s in %s unknown (%s); reads of %s follow it",
                    call.operation, region, error, call.tables or "every table",
                )
            keys, tables = None, call.tables
        try:
            self._sticky.remember(region, tables, keys, uncertain=uncertain)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("regionproxy: read-your-writes bookkeeping failed after a %s", call.operation)
            return None
        return region, list(tables), keys, uncertain

    def _describe_and_learn(self, table: str, prefer: str | None) -> Mapping[str, Any]:
        """:meth:`_describe`, whose answer also tells the table's kind."""
        description = self._describe(table, prefer)
        with contextlib.suppress(ConfigError):  # kept: the table's own calls raise it
            self._kinds.learn(table, description)
        return description

    def _describe(self, table: str, prefer: str | None) -> Mapping[str, Any]:
        """DescribeTable through the breakers, ``prefer`` first (the region
        that just answered), then the others."""
        plan = self.router.plan(READ) if prefer is None else (prefer, *(r for r in self.regions if r != prefer))
        return self.attempts.run(Call("DescribeTable", {"TableName": table}), plan)[0]["Table"]

    def _replica(self, region: str) -> Replica:
        if region not in self.replicas:
            raise ConfigError(f"unknown region {region!r}; this session has {list(self.regions)}", setting="region")
        return self.replicas[region]

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._fleet_due = self.fleet is not None  # a worker joins the fleet on its own


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class _KeyNamesOnce:
    """A table's key names, asked of ``names`` once per table (an error
    included) for the life of this object: one write."""

    __slots__ = ("_names", "_known")

    def __init__(self, names: Callable[[str, str | None], tuple[str, ...]]) -> None:
        self._names = names
        self._known: dict[str, tuple[str, ...] | Exception] = {}

    def __call__(self, table: str, prefer: str | None = None) -> tuple[str, ...]:
        known = self._known.get(table)
        if known is None:
            try:
                known = self._names(table, prefer)
            except Exception as error:  # noqa: BLE001 - raised again, to every asker
                known = error
            self._known[table] = known
        if isinstance(known, Exception):
            raise known
        return known

