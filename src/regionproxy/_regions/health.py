"""Health: background probes of each region, and what to tell a load balancer.

:class:`HealthMonitor` probes every region in the background (one thread
per region, so a blackholed region delays no other) through the region's
breaker, like live traffic: a dead region is found even when no user
traffic reaches it, and a healed one is taken back by a probe's half-open
trial. :func:`assess` turns breaker states and the last probes into an
answer, and the health endpoints only read that state: they answer in
milliseconds while a region is blackholed, and never call DynamoDB.

Readiness policies:

- ``evacuate`` (default): fail while the local region is unusable, so the
  load balancer or DNS moves users to a region whose replica is healthy.
  Serving from a remote replica works, but is the degraded mode.
- ``any``: pass while any region serves.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from regionproxy._dynamodb.verdicts import CREDENTIAL_CODES, classify, error_code
from regionproxy._forks import reset_after_fork
from regionproxy._regions.breaker import CLOSED, HALF_OPEN
from regionproxy.errors import ConfigError
from regionproxy.events import CALLER_ERROR, FAULT, OK, CallFinished, Event

if TYPE_CHECKING:
    from regionproxy._session.session import RegionSession

PASS, WARN, FAIL = "pass", "warn", "fail"
POLICIES = ("evacuate", "any")
PROBE_KEY = "__regionproxy_probe__"


@dataclass(frozen=True, slots=True)
class Probe:
    """The last probe of one region."""

    ok: bool
    at: float  # monotonic seconds
    latency: float  # seconds
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RegionHealth:
    region: str
    status: str
    breaker: str
    latency_ms: float | None
    reason: str | None
    probed_at: float | None  # wall-clock seconds, for the health+json "time"


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

    :param session: the session whose regions and breakers it watches.
    :param interval: seconds between probes of a region.
    :param policy: ``evacuate`` or ``any`` (see the module docstring).
    :param probe: what a probe does, ``(replica) -> None``; by default a
        ``ListTables(Limit=1)`` call, or with ``probe_table`` a ``GetItem``
        of a key no item has (string key attributes), which tests the data plane.
    :param probe_table: a table to probe with ``GetItem``.
    :param stale_after: seconds after which a probe no longer proves a region.
    """

    def __init__(
        self,
        session: RegionSession,
        *,
        interval: float = 2.0,
        policy: str = "evacuate",
        probe: Callable[[Any], None] | None = None,
        probe_table: str | None = None,
        stale_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
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
        self._probes: dict[str, Probe] = {}
        self._stop = threading.Event()
        # Set when live traffic meets a fault in a region: probe it now
        # rather than at the next interval, so readiness follows within
        # one probe's time instead of up to interval + timeout.
        self._wake = {region: threading.Event() for region in session.regions}
        self._threads: list[threading.Thread] = []
        self._pid = -1
        self._lock = threading.Lock()
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
            self.session.hooks.add(self._on_event)
            self._threads = [
                threading.Thread(target=self._run, args=(region,), name=f"regionproxy-probe:{region}", daemon=True)
                for region in self.session.regions
            ]
            for thread in self._threads:
                thread.start()
            self._pid = os.getpid()

    def stop(self) -> None:
        self._stop.set()
        self.session.hooks.remove(self._on_event)
        for wake in self._wake.values():
            wake.set()
        timeouts = self.session.settings.timeouts
        for thread in self._threads:
            thread.join(timeout=timeouts.connect + timeouts.read + 1)
        self._threads = []
        self._pid = -1

    def _on_event(self, event: Event) -> None:
        """Listener: a live call's fault in a region wakes that region's probe."""
        if isinstance(event, CallFinished) and event.outcome == FAULT and event.operation != "Probe":
            wake = self._wake.get(event.region)
            if wake is not None:
                wake.set()

    def probe_now(self, region: str) -> Probe | None:
        """Probe ``region`` once, through its breaker; None if the breaker
        kept the probe out (open and not yet due a trial)."""
        replica = self.session.replicas[region]
        ticket = replica.breaker.admit()
        if ticket is None:
            return None
        started = self._clock()
        try:
            self._probe(replica)
        except Exception as error:  # noqa: BLE001 - classified below
            result, outcome = self._judge(replica, ticket, error, self._clock() - started)
        except BaseException:
            replica.breaker.released(ticket)
            raise
        else:
            replica.breaker.succeeded(ticket)
            result, outcome = Probe(True, self._clock(), self._clock() - started), OK
        if outcome is not None:
            self.session.hooks.emit(CallFinished(region, "Probe", "probe", result.latency, outcome, result.reason))
        self._probes[region] = result
        return result

    def _judge(self, replica: Any, ticket: str, error: BaseException, duration: float) -> tuple[Probe, str | None]:
        """The probe's result and its CallFinished outcome (None: not sent)."""
        verdict = classify(error, throttling_is_fault=self.session.settings.throttling_is_fault)
        now = self._clock()
        if not verdict.sent:
            # Raised before a request left (no credentials, a credential
            # refresh that failed, a configuration error met in the send):
            # the region said nothing, but this process cannot send a
            # request: not ready, until a probe gets through again.
            replica.breaker.released(ticket)
            return Probe(False, now, duration, verdict.reason), None
        if verdict.fault:
            # A probe is a request known to be good: a 5xx is the region's.
            replica.breaker.failed(ticket)
            return Probe(False, now, duration, verdict.reason), FAULT
        replica.breaker.succeeded(ticket)  # it answered: the region is up
        code = error_code(error)
        if code in CREDENTIAL_CODES:
            return Probe(False, now, duration, "credentials_rejected"), CALLER_ERROR
        if code == "ResourceNotFoundException":
            return Probe(False, now, duration, "table_missing"), CALLER_ERROR
        return Probe(True, now, duration), CALLER_ERROR

    def readiness(self) -> Readiness:
        """The current answer, from kept state only: no I/O."""
        now = self._clock()
        wall = time.time()
        regions = []
        for region, replica in self.session.replicas.items():
            probe = self._probes.get(region)
            breaker = replica.breaker.state
            status = region_health(region, breaker, probe, stale_after=self._stale_after, now=now)
            if probe is not None and not probe.ok:
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
                )
            )
        overall, output = assess(self.policy, self.session.local_region, {r.region: r.status for r in regions})
        return Readiness(overall, tuple(regions), output)

    def _run(self, region: str) -> None:
        stop, wake = self._stop, self._wake[region]
        while not stop.is_set():
            wake.clear()
            try:
                self.probe_now(region)
            except Exception:  # noqa: BLE001 - a probe thread must outlive a bad probe
                pass
            if wake.wait(self.interval):
                stop.wait(0.05)  # a burst of faults wakes one probe, not one per fault


def _probe_with(session: RegionSession, table: str | None) -> Callable[[Any], None]:
    if table is None:
        return lambda replica: replica.call("ListTables", {"Limit": 1})

    def probe(replica: Any) -> None:
        # A GetItem of a key no item has: the data plane of the table, at
        # the cost of one read unit. Until the key names are known, the
        # probe is a DescribeTable of this region (it proves the region and
        # the replica the same way, and teaches the key names).
        names = session.key_schemas.known(table)
        if names is None:
            session.key_schemas.learn(table, replica.call("DescribeTable", {"TableName": table})["Table"])
            return
        key = {name: {"S": PROBE_KEY} for name in names}
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
        checks[f"dynamodb:{region.region}"] = [check]
    body: dict[str, Any] = {"status": readiness.status, "serviceId": service, "checks": checks}
    if readiness.output:
        body["output"] = readiness.output
    return body
