"""Health probes once per interval per fleet, their results heard by all.

:class:`SharedProbes` is what a :class:`~regionproxy._regions.health.HealthMonitor`
asks when its session belongs to a fleet (its
:class:`~regionproxy._regions.health.ProbeSharing`): before probing a region,
a monitor takes the region's probe lease (``probe-lease:{region}``, ``SET
NX PX`` for one interval); the one that has it probes and publishes the
result, which every process's monitor records as if it had probed itself.
So every worker answers ``/readyz`` from the same probes, and a region is
probed once per interval by the fleet, not once per worker.

The last result of each region is also kept (``probe:{region}``, in the
same atomic step as the message), so a process that starts, or comes back
after a gap, has the fleet's latest probes at once rather than after an
interval. While Redis is away, every process takes the lease as granted
and probes for itself, as it would without a fleet.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterable
from typing import Any

from regionproxy._fleet.link import FleetLink, FleetMessage
from regionproxy._forks import reset_after_fork

PROBE_TOPIC = "probe"
# KEYS[1]: the lease; ARGV: the holder, its length (ms). 1: taken, 0: held by another.
_LEASE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# (region, ok, latency seconds, reason, wall-clock time of the probe)
Heard = Callable[[str, bool, float, "str | None", float], None]


class SharedProbes:
    """Probe leases and results of one session's regions through ``link``."""

    def __init__(self, link: FleetLink, regions: Iterable[str]) -> None:
        self._link = link
        self._regions = tuple(regions)
        self._listeners: tuple[Heard, ...] = ()
        self._lock = threading.Lock()
        # Who probed each region last, as heard: region -> (member, wall-clock time).
        self.probers: dict[str, tuple[str, float]] = {}
        link.subscribe(PROBE_TOPIC, self._heard)
        link.on_connect(self._catch_up)
        reset_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SharedProbes({list(self._regions)!r}, fleet={self._link.name!r})"

    def lease(self, region: str, seconds: float) -> bool:
        """Whether this process probes ``region`` now: it holds the lease
        for ``seconds``, or the fleet cannot say (then each process probes)."""
        taken = self._link.script(_LEASE, [f"probe-lease:{region}"], [self._link.member, max(int(seconds * 1000), 1)])
        return taken is None or taken == 1

    def publish(self, region: str, ok: bool, latency: float, reason: str | None, at: float) -> None:
        """Tell the fleet what this process's probe of ``region`` found."""
        record = {"region": region, "ok": bool(ok), "latency": float(latency), "reason": reason, "at": float(at)}
        self.probers[region] = (self._link.member, at)
        self._link.publish(PROBE_TOPIC, record, keep={f"probe:{region}": json.dumps(record)})

    def subscribe(self, listener: Heard) -> None:
        """Call ``listener`` with each probe result another process publishes."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def _heard(self, message: FleetMessage) -> None:
        if message.mine:
            return  # the monitor recorded its own probe already
        self._deliver(message.body, message.sender)

    def _catch_up(self) -> None:
        values = self._link.mget([f"probe:{region}" for region in self._regions])
        for text in values or ():
            if text is None:
                continue
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if isinstance(record, dict):
                self._deliver(record, None)

    def _deliver(self, record: dict[str, Any], sender: str | None) -> None:
        region, at, latency = record.get("region"), record.get("at"), record.get("latency")
        if not isinstance(region, str) or region not in self._regions:
            return
        if not all(isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n) for n in (at, latency)):
            return
        reason = record.get("reason")
        if sender is not None:
            self.probers[region] = (sender, float(at))
        for listener in self._listeners:
            listener(region, bool(record.get("ok")), float(latency), reason if isinstance(reason, str) else None, float(at))

    def status(self) -> dict[str, Any]:
        return {region: {"member": member, "at": at} for region, (member, at) in sorted(self.probers.items())}
