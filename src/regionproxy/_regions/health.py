"""Health: background probes of each region, and what to tell a load balancer.

:class:`HealthMonitor` probes every region in the background (one thread
per region, so a blackholed region delays no other) through the region's
breaker, like live traffic: a dead region is found even when no user
traffic reaches it, and a healed one is taken back by a probe's half-open
trial. :func:`assess` turns breaker states and the last probes into an
answer, and the health endpoints only read that state: they answer in
milliseconds while a region is blackholed, and never call DynamoDB.

The monitor asks its session for what it needs (its regions, a region's
breaker state, a probe sent through a region's breaker: see
:class:`Watched`) and imports nothing of it.

In a fleet (the session's :meth:`~Watched.probe_sharing` is not None), a
region is probed once per interval by the whole fleet: before each probe
the monitor takes the region's lease, and probes only if it got it; the
result goes to every process of the fleet, whose monitors record it as
their own. So every worker answers ``/readyz`` from the same probes.

Name resolution: every interval, in every process (a resolver is per
host), each region's probe thread first resolves the region's endpoint
host name (``socket.getaddrinfo``, as urllib3 does) and keeps how long it
took and whether it failed (:class:`NameResolved`). A name that does not
resolve fails the region with reason ``dns``, whatever another process of
the fleet probed: this process cannot open a connection to it. An endpoint
given by address resolves nothing.

Connection warming: every interval, in every process, after its probe (if
it holds the lease) each region's probe thread keeps a connection to the
region open in the pool the region's client sends through, re-opened when
the server closed it, TLS handshake included, without a request
(:meth:`~Watched.warm`, :mod:`regionproxy._regions.warming`): the first
call that fails over to a region finds a connection ready, in a worker
that never probes as in the lease holder. It comes after the probe
because a probe takes the pool's most recent connection, and a server that
closes after each answer would leave nothing open for the calls. A name
that just failed to resolve is not warmed (nothing to connect to), nor a
region its breaker keeps calls from (open, evacuated): no call goes there
until a trial, and a dead region would cost a connect timeout per
interval for nothing.

The ``probe_table`` probe: a ``GetItem`` of a reserved key no item has,
built of the table's own key types (string, number or binary:
:mod:`regionproxy._regions.reserved`, the replication canary's keys too),
so DynamoDB reads a partition and the probe tests the data plane; a key of
the wrong type would be a ``ValidationException``, an answer that proves
nothing of it. The types come from a ``DescribeTable`` of the probed
region, sent before the first ``GetItem`` (once per process); while it
fails with the key names declared (e.g. denied by IAM), the key is built
of strings and it is asked again a minute later.

Readiness policies:

- ``evacuate`` (default): fail while the local region is unusable, so the
  load balancer or DNS moves users to a region whose replica is healthy.
  Serving from a remote replica works, but is the degraded mode.
- ``any``: pass while any region serves.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from regionproxy._config.settings import Settings
from regionproxy._dynamodb.verdicts import CREDENTIAL_CODES, Verdict, error_code
from regionproxy._forks import reset_after_fork
from regionproxy._regions.breaker import CLOSED, HALF_OPEN
from regionproxy._regions.reserved import KeyTypes, reserved_key
from regionproxy.errors import ConfigError
from regionproxy.events import FAULT, PROBE, CallFinished, ConnectionWarmed, Event, Listener, NameResolved, RegionProbed

PASS, WARN, FAIL = "pass", "warn", "fail"
POLICIES = ("evacuate", "any")
PROBE_KEY = "__regionproxy_probe__"
DNS = "dns"


@dataclass(frozen=True, slots=True)
class ProbeAnswer:
    """What one probe sent through its region's breaker met: ``error``
    (None: an answer) with its ``verdict``."""

    error: BaseException | None = None
    verdict: Verdict | None = None


class ProbeSharing(Protocol):
    """How monitors of one fleet share probes (regionproxy._fleet)."""

    def lease(self, region: str, seconds: float) -> bool: ...

    def publish(self, region: str, ok: bool, latency: float, reason: str | None, at: float) -> None: ...

    def subscribe(self, listener: Callable[[str, bool, float, str | None, float], None]) -> None: ...


class Watched(Protocol):
    """What a :class:`HealthMonitor` asks of the session it watches."""

    @property
    def regions(self) -> tuple[str, ...]: ...

    @property
    def local_region(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    def breaker_state(self, region: str) -> str: ...

    def probe(self, region: str, send: Callable[[Any], None]) -> ProbeAnswer | None: ...

    def key_names(self, table: str) -> tuple[str, ...] | None: ...

    def learn_table(self, table: str, description: dict[str, Any]) -> None: ...

    def add_listener(self, listener: Listener) -> None: ...

    def remove_listener(self, listener: Listener) -> None: ...

    def probe_sharing(self) -> ProbeSharing | None: ...

    def endpoint_url(self, region: str) -> str: ...

    def warm(self, region: str) -> str: ...

    def announce(self, event: Event) -> None: ...


@dataclass(frozen=True, slots=True)
class Probe:
    """The last probe of one region."""

    ok: bool
    at: float  # monotonic seconds
    latency: float  # seconds
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """The last resolution of one region's endpoint host name."""

    ok: bool
    at: float  # monotonic seconds
    seconds: float


@dataclass(frozen=True, slots=True)
class RegionHealth:
    region: str
    status: str
    breaker: str
    latency_ms: float | None
    reason: str | None
    probed_at: float | None  # wall-clock seconds, for the health+json "time"
    dns_ms: float | None = None  # the last resolution's time; None: not resolved (an address)
    dns_ok: bool | None = None


@dataclass(frozen=True, slots=True)
class Readiness:
    status: str
    regions: tuple[RegionHealth, ...]
    output: str | None = None


def region_health(region: str, breaker: str, probe: Probe | None, *, stale_after: float, now: float) -> str:
    """``pass``, ``warn`` or ``fail`` for one region. Pure."""
    if breaker not in (CLOSED, HALF_OPEN):
        return FAIL  # open or evacuated: no traffic goes there
    if probe is not None and not probe.ok:
        return FAIL
    if breaker == HALF_OPEN or probe is None or now - probe.at > stale_after:
        return WARN  # recovering, or not probed recently: usable, not proven
    return PASS


def assess(policy: str, local: str, regions: dict[str, str]) -> tuple[str, str | None]:
    """Overall status from each region's, under ``policy``. Pure."""
    if policy == "evacuate":
        if regions[local] == FAIL:
            # The reason must be true of the other regions too: with none
            # left, nothing is served from remote replicas.
            if all(status == FAIL for status in regions.values()):
                return FAIL, "no region available"
            return FAIL, "local region unavailable: serving from remote replicas, move users away"
        return regions[local], None
    statuses = set(regions.values())
    if statuses == {FAIL}:
        return FAIL, "no region available"
    if PASS in statuses:
        return PASS if regions[local] == PASS else WARN, None
    return WARN, None


class HealthMonitor:
    """Probe each region of a session every ``interval`` seconds.

    :param session: the session whose regions and breakers it watches
        (a :class:`~regionproxy.RegionSession`: see :class:`Watched`).
    :param interval: seconds between probes of a region.
    :param policy: ``evacuate`` or ``any`` (see the module docstring).
    :param probe: what a probe does, ``(replica) -> None``; by default a
        ``ListTables(Limit=1)`` call, or with ``probe_table`` a ``GetItem``
        of a key no item has, of the table's key types (see the module
        docstring), which tests the data plane.
    :param probe_table: a table to probe with ``GetItem``.
    :param stale_after: seconds after which a probe no longer proves a region.
    :param canary: a :class:`~regionproxy._regions.canary.ReplicationCanary`
        (anything with ``warning() -> str | None``): readiness that would
        pass warns while it reports lag past ``lag_warn`` or a stall into or
        out of the local region. Started and stopped with the monitor.
    """

    def __init__(
        self,
        session: Watched,
        *,
        interval: float = 2.0,
        policy: str = "evacuate",
        probe: Callable[[Any], None] | None = None,
        probe_table: str | None = None,
        stale_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        canary: Any = None,
    ) -> None:
        if policy not in POLICIES:
            raise ConfigError(f"readiness policy must be one of {POLICIES}, got {policy!r}", setting="readiness")
        if not interval > 0:
            raise ConfigError(f"probe interval must be > 0, got {interval!r}", setting="probe_interval")
        self.session = session
        self.interval = interval
        self.policy = policy
        self._probe = probe or _probe_with(session, probe_table)
        self._stale_after = stale_after if stale_after is not None else 3 * interval + session.settings.timeouts.read
        self._clock = clock
        self.canary = canary
        self._probes: dict[str, Probe] = {}
        self._resolutions: dict[str, Resolution] = {}
        self._stop = threading.Event()
        # Set when live traffic meets a fault in a region: probe it now
        # rather than at the next interval, so readiness follows within
        # one probe's time instead of up to interval + timeout.
        self._wake = {region: threading.Event() for region in session.regions}
        self._threads: list[threading.Thread] = []
        self._pid = -1
        self._lock = threading.Lock()
        self._sharing: ProbeSharing | None = None
        self._sharing_asked = False
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"HealthMonitor(interval={self.interval}, policy={self.policy!r})"

    def _after_fork(self) -> None:
        # The parent's probe threads do not exist here; start() makes new ones.
        self._lock = threading.Lock()
        self._threads = []

    def start(self) -> None:
        """Start the probe threads in this process, once (safe after fork)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            # Threads do not survive a fork: a worker forked from a parent
            # that started probing gets fresh threads and a fresh stop flag.
            self._stop = threading.Event()
            # Asked in every process (it joins this process to the fleet),
            # subscribed once per monitor: subscriptions outlive forks.
            self._sharing = self.session.probe_sharing()
            if self._sharing is not None and not self._sharing_asked:
                self._sharing_asked = True
                self._sharing.subscribe(self._heard)
            self.session.add_listener(self._on_event)
            self._threads = [
                threading.Thread(target=self._run, args=(region,), name=f"regionproxy-probe:{region}", daemon=True)
                for region in self.session.regions
            ]
            for thread in self._threads:
                thread.start()
            if self.canary is not None:
                self.canary.start()
            self._pid = os.getpid()

    def stop(self) -> None:
        self._stop.set()
        if self.canary is not None:
            self.canary.stop()
        self.session.remove_listener(self._on_event)
        for wake in self._wake.values():
            wake.set()
        timeouts = self.session.settings.timeouts
        for thread in self._threads:
            thread.join(timeout=timeouts.connect + timeouts.read + 1)
        self._threads = []
        self._pid = -1

    def _on_event(self, event: Event) -> None:
        """Listener: a live call's fault in a region wakes that region's probe."""
        if isinstance(event, CallFinished) and event.outcome == FAULT and event.operation != PROBE:
            wake = self._wake.get(event.region)
            if wake is not None:
                wake.set()

    def probe_now(self, region: str) -> Probe | None:
        """Probe ``region`` once, through its breaker (the session's
        :meth:`~regionproxy.RegionSession.probe` gives the breaker its
        verdict); None if the breaker kept the probe out (open and not yet
        due a trial)."""
        started = self._clock()
        answer = self.session.probe(region, self._probe)
        if answer is None:
            return None
        result = self._judge(answer, self._clock() - started)
        self._probes[region] = result
        self.session.announce(RegionProbed(region, result.ok, result.latency, result.reason, time.time()))
        return result

    def resolve_now(self, region: str) -> Resolution | None:
        """Resolve ``region``'s endpoint host name once; None for an
        endpoint given by address (nothing to resolve)."""
        host, port = _host_port(self.session.endpoint_url(region))
        if host is None:
            return None
        started = self._clock()
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            ok = True
        except (OSError, UnicodeError):  # gaierror is an OSError; UnicodeError: a name IDNA refuses
            ok = False
        now = self._clock()
        result = self._resolutions[region] = Resolution(ok, now, now - started)
        self.session.announce(NameResolved(region, ok, result.seconds, time.time()))
        return result

    def warm_now(self, region: str) -> str:
        """Keep a connection to ``region`` open in this process's pool for
        it (see the module docstring); what it did (``opened``, ``kept``, ...)."""
        started = self._clock()
        result = self.session.warm(region)
        self.session.announce(ConnectionWarmed(region, result, self._clock() - started, time.time()))
        return result

    def _heard(self, region: str, ok: bool, latency: float, reason: str | None, at: float) -> None:
        """Another process of the fleet probed ``region`` at ``at`` (wall clock)."""
        if region not in self._wake:
            return
        probed = self._clock() - max(time.time() - at, 0.0)
        known = self._probes.get(region)
        if known is None or known.at < probed:
            self._probes[region] = Probe(ok, probed, latency, reason)

    def _judge(self, answer: ProbeAnswer, duration: float) -> Probe:
        """The probe's result: whether it proves the region serves this process."""
        now = self._clock()
        if answer.error is None or answer.verdict is None:
            return Probe(True, now, duration)
        verdict = answer.verdict
        if not verdict.sent:
            # Raised before a request left (no credentials, a credential
            # refresh that failed, a configuration error met in the send):
            # the region said nothing, but this process cannot send a
            # request: not ready, until a probe gets through again.
            return Probe(False, now, duration, verdict.reason)
        if verdict.fault:
            # A probe is a request known to be good: a 5xx is the region's.
            return Probe(False, now, duration, verdict.reason)
        code = error_code(answer.error)  # it answered: the region is up
        if code in CREDENTIAL_CODES:
            return Probe(False, now, duration, "credentials_rejected")
        if code == "ResourceNotFoundException":
            return Probe(False, now, duration, "table_missing")
        return Probe(True, now, duration)

    def readiness(self) -> Readiness:
        """The current answer, from kept state only: no I/O."""
        now = self._clock()
        wall = time.time()
        regions = []
        for region in self.session.regions:
            probe = self._probes.get(region)
            breaker = self.session.breaker_state(region)
            status = region_health(region, breaker, probe, stale_after=self._stale_after, now=now)
            resolved = self._resolutions.get(region)
            unresolved = resolved is not None and not resolved.ok and now - resolved.at <= self._stale_after
            if unresolved:
                status, reason = FAIL, DNS  # this process cannot connect, whatever the fleet probed
            elif probe is not None and not probe.ok:
                reason = probe.reason  # what the last probe met
            elif breaker not in (CLOSED, HALF_OPEN):
                reason = breaker  # kept out by its breaker (open, evacuated)
            else:
                reason = None
            regions.append(
                RegionHealth(
                    region,
                    status,
                    breaker,
                    round(probe.latency * 1000, 3) if probe else None,
                    reason,
                    wall - (now - probe.at) if probe else None,
                    round(resolved.seconds * 1000, 3) if resolved else None,
                    resolved.ok if resolved else None,
                )
            )
        overall, output = assess(self.policy, self.session.local_region, {r.region: r.status for r in regions})
        if overall == PASS and self.canary is not None:
            lagging = self.canary.warning()
            if lagging:
                overall, output = WARN, lagging
        return Readiness(overall, tuple(regions), output)

    def _run(self, region: str) -> None:
        stop, wake = self._stop, self._wake[region]
        while not stop.is_set():
            wake.clear()
            resolved = None
            try:
                resolved = self.resolve_now(region)
            except Exception:  # noqa: BLE001 - as a bad probe: the thread outlives it
                pass
            try:
                sharing = self._sharing
                if sharing is None:
                    self.probe_now(region)
                elif sharing.lease(region, self.interval):  # else another process probes it
                    probe = self.probe_now(region)
                    if probe is not None:
                        sharing.publish(region, probe.ok, probe.latency, probe.reason, time.time() - (self._clock() - probe.at))
            except Exception:  # noqa: BLE001 - a probe thread must outlive a bad probe
                pass
            if (resolved is None or resolved.ok) and self.session.breaker_state(region) in (CLOSED, HALF_OPEN):
                try:
                    self.warm_now(region)
                except Exception:  # noqa: BLE001 - warming is an optimisation: the thread outlives it
                    pass
            if wake.wait(self.interval):
                stop.wait(0.05)  # a burst of faults wakes one probe, not one per fault


def _host_port(url: str | None) -> tuple[str | None, int]:
    """The host name to resolve in an endpoint URL, and its port; None for
    an address (IPv4 or IPv6 literal) or a URL without a host."""
    try:
        parts = urlsplit(url or "")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None, 0
    if not host:
        return None, 0
    try:
        import ipaddress

        ipaddress.ip_address(host)
        return None, 0
    except ValueError:
        pass
    return host, port or (443 if parts.scheme == "https" else 80)


def _probe_with(session: Watched, table: str | None) -> Callable[[Any], None]:
    if table is None:
        return lambda replica: replica.call("ListTables", {"Limit": 1})
    keys = KeyTypes(session, table, "probe_table")

    def probe(replica: Any) -> None:
        # A GetItem of a key no item has, of the table's own key types: the
        # data plane of the table, at the cost of one read unit. Until the
        # key types are known, a DescribeTable of this region comes first
        # (it teaches the key names and types).
        def describe() -> dict[str, Any]:
            return replica.call("DescribeTable", {"TableName": table})["Table"]

        key = reserved_key(keys.attributes(describe), PROBE_KEY, "")
        replica.call("GetItem", {"TableName": table, "Key": key})

    return probe


def health_json(readiness: Readiness, *, service: str = "regionproxy") -> dict[str, Any]:
    """The ``application/health+json`` body: status and a check per region,
    with nothing that names an endpoint, a host or a credential."""
    checks = {}
    for region in readiness.regions:
        check: dict[str, Any] = {
            "componentId": region.region,
            "componentType": "datastore",
            "status": region.status,
            "observedUnit": "ms",
            "observedValue": region.latency_ms,
            "breaker": region.breaker,
        }
        if region.probed_at is not None:
            check["time"] = datetime.fromtimestamp(region.probed_at, UTC).isoformat(timespec="milliseconds")
        if region.reason:
            check["output"] = region.reason
        if region.dns_ok is not None:
            # how long this process took to resolve the region's endpoint
            # name, and whether it did: never the name itself
            check["dns"] = {"status": PASS if region.dns_ok else FAIL, "observedValue": region.dns_ms, "observedUnit": "ms"}
        checks[f"dynamodb:{region.region}"] = [check]
    body: dict[str, Any] = {"status": readiness.status, "serviceId": service, "checks": checks}
    if readiness.output:
        body["output"] = readiness.output
    return body
