"""The replication-lag canary: heartbeats written in each region, read in every other.

A Global Table replicates asynchronously, with no SLA (typically about a
second). :class:`ReplicationCanary` measures it: every ``interval`` seconds
it writes one heartbeat item into each region (the wall-clock time it was
written), then reads every other region's heartbeat in each region with a
strongly consistent ``GetItem`` (polling with a doubling backoff, within
the interval) until the new one has arrived. Per (source, replica):

- ``lag``: how late the newest heartbeat arrived (seen time minus written
  time, to the poll's resolution); while a heartbeat written has not yet
  arrived, how long it has been on its way (so it grows while replication
  is stopped);
- ``state``: ``ok`` (a heartbeat from the source has arrived, and the lag
  is within ``lag_warn``); ``lagging`` (lag past ``lag_warn``); ``stalled``
  (heartbeats written in the source have not arrived for ``stall_after``
  seconds: AWS's guidance alarms when ``ReplicationLatency`` drops to zero
  for the same reason, no data means replication stopped, not that it is
  instant); ``source_down`` (the heartbeat could not be written there);
  ``replica_down`` (the replica region could not be read); ``unknown``
  (not measured yet: no heartbeat from the source has arrived, and the one
  on its way is not yet late enough to be ``lagging``).

Rules:

- Heartbeats live under one reserved key (:func:`heartbeat_key`: in every
  key attribute, :data:`KEY_PREFIX` and the source region, as a string
  for an ``S`` attribute and as its UTF-8 bytes for a ``B`` one; for an
  ``N`` attribute a reserved number, ``-9.<crc32 of the region, 10
  digits>1E+125``, near the most negative number DynamoDB stores), so
  they never collide with an app's items. The key and its attributes'
  types are :mod:`regionproxy._regions.reserved`'s (the health probe's
  too): the types come from the table's ``DescribeTable`` (asked once per
  process; while it fails, e.g. denied by IAM with the key names
  declared, the attributes are taken for strings and it is asked again a
  minute later). They carry a TTL attribute
  (:data:`TTL_ATTRIBUTE`, epoch seconds) so they expire once the canary
  stops (name it as the table's TTL attribute). There is one item per
  source region, overwritten each time.
- They go straight to each region's replica (``session.call_region``): never
  through the read cache, the router or a breaker (a canary write must
  not open a breaker, nor be failed over to another region).
- One process per fleet measures: each cycle takes the fleet's lease
  ``canary`` for one interval (the health probes' lease mechanism); without
  a fleet, every process measures. Other processes report
  ``measured_here: False``. A process that loses the lease (another one
  took it) stops reporting what it measured: its figures are forgotten
  (its pairs are ``unknown``, so its readiness no longer warns on them), and
  it announces each pair as ``not_measured`` (lag None), on which the
  metrics drop the series it set.
- A pair is judged only on a heartbeat read in the replica's own copy:
  ``ok`` needs one that arrived there, never only a young one on its way
  (its age is a lower bound of the lag, proof of ``lagging`` or
  ``stalled``, never of ``ok``). In a cycle each replica waits for the
  heartbeat its sources write in that cycle: it stops reading a source
  once that heartbeat has arrived, the source's write has failed, or the
  interval is over, never because the source has not written yet (the
  regions write side by side, and a replica that read before the
  source's write would otherwise take "nothing pending" for "arrived").
  Meanwhile it still reads a source with an earlier heartbeat pending: a
  source slow to write this cycle does not hide one that arrived.
- Figures are announced as :class:`~regionproxy.events.ReplicationLag`
  events after the cycle, outside the lock.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from regionproxy._forks import reset_after_fork
from regionproxy._regions.reserved import KeyTypes, reserved_key
from regionproxy.errors import ConfigError
from regionproxy.events import Event, ReplicationLag

KEY_PREFIX = "__regionproxy_canary__#"
WRITTEN_AT = "regionproxy_written_at"
TTL_ATTRIBUTE = "regionproxy_expires"
LEASE = "canary"
OK, LAGGING, STALLED, SOURCE_DOWN, REPLICA_DOWN, UNKNOWN, NOT_MEASURED = (
    "ok",
    "lagging",
    "stalled",
    "source_down",
    "replica_down",
    "unknown",
    "not_measured",  # announced once by a process that lost the lease: it reports nothing now
)
WARN_STATES = frozenset({LAGGING, STALLED})
FIRST_POLL, LONGEST_POLL = 0.05, 1.0


def heartbeat_key(attributes: tuple[tuple[str, str], ...], source: str) -> dict[str, Any]:
    """The key of ``source``'s heartbeat: ``attributes`` are the table's key
    attributes, ``(name, type)`` with type ``S``, ``N`` or ``B``."""
    return reserved_key(attributes, KEY_PREFIX, source)


class Canaried(Protocol):
    """What the canary asks of the session it measures."""

    @property
    def regions(self) -> tuple[str, ...]: ...

    @property
    def local_region(self) -> str: ...

    def call_region(self, region: str, operation: str, params: dict[str, Any]) -> dict[str, Any]: ...

    def key_names(self, table: str) -> tuple[str, ...] | None: ...

    def learn_table(self, table: str, description: dict[str, Any]) -> None: ...

    def probe_sharing(self) -> Any: ...

    def announce(self, event: Event) -> None: ...


@dataclass
class _Pair:
    pending: float | None = None  # the earliest heartbeat written in the source not yet seen here
    seen: float | None = None  # written time of the newest heartbeat seen here
    delay: float | None = None  # how late it arrived
    read_error: str | None = None


class ReplicationCanary:
    """Measure replication lag between every pair of regions of ``session``.

    :param table: a Global Table the canary may write its heartbeats into.
    :param interval: seconds between heartbeats (5 by default).
    :param lag_warn: seconds of lag past which readiness warns.
    :param stall_after: seconds without an arrival, heartbeats written,
        before a pair is ``stalled`` (3 intervals by default).
    """

    def __init__(
        self,
        session: Canaried,
        table: str,
        *,
        interval: float = 5.0,
        lag_warn: float = 10.0,
        stall_after: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(table, str) or not table:
            raise ConfigError(f"canary_table must be a table name, got {table!r}", setting="canary_table")
        for name, value in (("canary_interval", interval), ("lag_warn", lag_warn)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 86400:
                raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}", setting=name)
        if len(session.regions) < 2:
            raise ConfigError("the replication canary needs two regions or more", setting="canary_table")
        self.session = session
        self.table = table
        self.interval = float(interval)
        self.lag_warn = float(lag_warn)
        self.stall_after = float(stall_after) if stall_after is not None else 3 * self.interval
        self._clock = clock
        self._lock = threading.Lock()
        self._written: dict[str, float] = {}
        self._write_error: dict[str, str | None] = {}
        self._pairs = {(s, q): _Pair() for s in session.regions for q in session.regions if s != q}
        self._measured_here = False
        self._cycles = 0
        self._keys = KeyTypes(session, table, "canary_table")  # the key attributes' types, from DescribeTable
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = -1
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"ReplicationCanary(table={self.table!r}, interval={self.interval})"

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._thread = None

    # -- running ---------------------------------------------------------------

    def start(self) -> None:
        """Start the canary thread in this process, once (safe after fork)."""
        if self._pid == os.getpid():
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="regionproxy-canary", daemon=True)
        self._pid = os.getpid()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        self._thread = None
        self._pid = -1

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_cycle()
            except Exception:  # noqa: BLE001 - the canary thread outlives a bad cycle
                pass
            self._stop.wait(max(self.interval - (time.monotonic() - started), 0.05))

    def run_cycle(self) -> bool:
        """One cycle: take the fleet's lease (if any), write a heartbeat in
        every region, read every other region's in each, within one
        interval; announce the figures. False if another process holds the
        lease."""
        sharing = self.session.probe_sharing()
        if sharing is not None and not sharing.lease(LEASE, self.interval):
            with self._lock:
                lost, self._measured_here = self._measured_here, False
                if lost:  # another process measures now: forget what this one measured
                    self._written.clear()
                    self._write_error.clear()
                    self._pairs = {pair: _Pair() for pair in self._pairs}
            if lost:
                at = self._clock()
                for source, replica in self._pairs:
                    self.session.announce(ReplicationLag(source, replica, None, NOT_MEASURED, at))
            return False
        deadline = time.monotonic() + self.interval
        regions = self.session.regions
        # Set once each region's write of this cycle is over (done or failed):
        # until then its replicas cannot tell "arrived" from "not written yet".
        wrote = {region: threading.Event() for region in regions}
        with ThreadPoolExecutor(len(regions), thread_name_prefix="regionproxy-canary") as pool:
            # one worker per region: a region that does not answer delays only its own
            list(pool.map(lambda region: self._region_cycle(region, deadline, wrote), regions))
        with self._lock:
            self._measured_here = True
            self._cycles += 1
        for event in self._figures():
            self.session.announce(event)
        return True

    def _region_cycle(self, region: str, deadline: float, wrote: dict[str, threading.Event]) -> None:
        try:
            names = self._key_attributes(region)
            written = self._clock()
            try:
                item = {**heartbeat_key(names, region), WRITTEN_AT: {"N": repr(written)}}
                item[TTL_ATTRIBUTE] = {"N": str(int(written + max(3600.0, 10 * self.interval)))}
                self.session.call_region(region, "PutItem", {"TableName": self.table, "Item": item})
                error = None
            except Exception as caught:  # noqa: BLE001 - the region's failure is the figure
                error = type(caught).__name__
            with self._lock:
                self._write_error[region] = error
                if error is None:
                    self._written[region] = written
                    for (source, _), pair in self._pairs.items():
                        if source == region and pair.pending is None:
                            pair.pending = written
        finally:
            wrote[region].set()  # its replicas may judge now (also when no key could be built)
        # Read the other regions' heartbeats here until each has arrived.
        waiting = [source for source in self.session.regions if source != region]
        pause = FIRST_POLL
        while waiting and time.monotonic() < deadline:
            polled = False
            for source in list(waiting):
                written_before = wrote[source].is_set()  # this cycle's write over before this read
                if not written_before:
                    with self._lock:
                        earlier = self._pairs[(source, region)].pending is not None
                    if not earlier:
                        continue  # nothing a read now could prove arrived
                polled |= written_before
                try:
                    answer = self.session.call_region(
                        region,
                        "GetItem", {"TableName": self.table, "Key": heartbeat_key(names, source), "ConsistentRead": True}
                    )
                except Exception as caught:  # noqa: BLE001
                    with self._lock:
                        self._pairs[(source, region)].read_error = type(caught).__name__
                    waiting.remove(source)
                    continue
                seen_at = self._clock()
                value = answer.get("Item", {}).get(WRITTEN_AT, {}).get("N")
                # An earlier heartbeat may arrive meanwhile; done only once the
                # cycle's own write was over before the read that found nothing pending.
                if self._saw(source, region, float(value) if value else None, seen_at) and written_before:
                    waiting.remove(source)
            if waiting:
                # The backoff runs from the first read: waiting for a write
                # does not coarsen the lag measured once it has been made.
                time.sleep(min(pause if polled else FIRST_POLL, max(deadline - time.monotonic(), 0)))
                if polled:
                    pause = min(pause * 2, LONGEST_POLL)

    def _saw(self, source: str, replica: str, written: float | None, seen_at: float) -> bool:
        """Record what a read in ``replica`` found; True once the newest
        heartbeat written in ``source`` has arrived (or none is pending)."""
        with self._lock:
            pair = self._pairs[(source, replica)]
            pair.read_error = None
            if written is not None and (pair.seen is None or written > pair.seen):
                pair.seen = written
                if pair.pending is not None and written >= pair.pending:
                    pair.delay = max(seen_at - written, 0.0)
                    newest = self._written.get(source)
                    pair.pending = newest if newest is not None and newest > written else None
            return pair.pending is None

    def _key_attributes(self, region: str) -> tuple[tuple[str, str], ...]:
        """The table's key attributes with their types, ``(name, type)``."""
        return self._keys.attributes(lambda: self.session.call_region(region, "DescribeTable", {"TableName": self.table})["Table"])

    # -- figures -----------------------------------------------------------------

    def pairs(self) -> list[dict[str, Any]]:
        """Each (source, replica): ``lag_s`` (None: not measured) and ``state``."""
        now = self._clock()
        with self._lock:
            rows = []
            for (source, replica), pair in self._pairs.items():
                lag = pair.delay
                if pair.pending is not None:  # on its way: at least this late
                    lag = max(lag or 0.0, now - pair.pending)
                if self._write_error.get(source):
                    state = SOURCE_DOWN
                elif pair.read_error:
                    state = REPLICA_DOWN
                elif pair.pending is not None and now - pair.pending > self.stall_after:
                    state = STALLED
                elif lag is None or pair.delay is None and lag <= self.lag_warn:
                    state = UNKNOWN  # none arrived yet: a young heartbeat on its way proves nothing
                elif lag > self.lag_warn:
                    state = LAGGING
                else:
                    state = OK
                rows.append(
                    {
                        "source": source,
                        "replica": replica,
                        "lag_s": round(lag, 3) if lag is not None else None,
                        "state": state,
                    }
                )
            return rows

    def _figures(self) -> list[ReplicationLag]:
        at = self._clock()
        return [ReplicationLag(row["source"], row["replica"], row["lag_s"], row["state"], at) for row in self.pairs()]

    def warning(self) -> str | None:
        """Why readiness should warn (a pair into or out of the local region
        lagging past ``lag_warn`` or stalled), or None."""
        local = self.session.local_region
        bad = [
            f"{row['source']}->{row['replica']} {row['state']}"
            for row in self.pairs()
            if row["state"] in WARN_STATES and local in (row["source"], row["replica"])
        ]
        return "replication " + ", ".join(bad) if bad else None

    def status(self) -> dict[str, Any]:
        with self._lock:
            measured, cycles = self._measured_here, self._cycles
        return {
            "enabled": True,
            "table": self.table,
            "interval_s": self.interval,
            "lag_warn_s": self.lag_warn,
            "measured_here": measured,
            "cycles": cycles,
            "pairs": self.pairs(),
        }
