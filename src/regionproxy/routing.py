"""Which regions a call may go to, in order of preference. Pure values.

A :class:`Router` only orders: the session asks each region's breaker
whether it may be tried, in this order, and stops at the first that serves.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from regionproxy.forks import reset_after_fork
from regionproxy.operations import CONTROL, WRITE, key_fingerprint

if TYPE_CHECKING:
    from regionproxy.calls import Call


@dataclass(frozen=True, slots=True)
class Router:
    """Order regions for a call.

    :param regions: every region, most preferred (local) first.
    :param write_mode: ``local`` (writes go where reads go) or ``primary``.
    :param primary: the write region in ``primary`` mode.
    :param write_failover: in ``primary`` mode, let writes fail over to
        the other regions when the primary cannot take them.
    """

    regions: tuple[str, ...]
    write_mode: str = "local"
    primary: str = ""
    write_failover: bool = False

    def plan(self, kind: str, sticky: str | None = None) -> tuple[str, ...]:
        """The regions to try for a call of ``kind``, in order.

        ``sticky`` is a region that recently took a write the call may read,
        tried first so that users read their own writes.
        """
        if kind == CONTROL:
            return self.regions[:1]
        if kind == WRITE and self.write_mode == "primary":
            primary = self.primary or self.regions[0]
            rest = tuple(region for region in self.regions if region != primary)
            return (primary, *rest) if self.write_failover else (primary,)
        if sticky is not None and sticky != self.regions[0]:
            return (sticky, *(region for region in self.regions if region != sticky))
        return self.regions


class StickyWrites:
    """Remember, for a short window, where writes away from the local region
    landed.

    Replication to the local region takes about a second (no SLA), so a
    user who wrote through a remote region would not read their own write
    from the local one. Reads of a remembered key (or, for queries and
    scans, of a remembered table) go to the region that took the write.
    When a write's keys could not be named, every read of its tables does.

    :param seconds: how long a write is sticky; 0 turns it off.
    :param maxsize: bound on remembered keys; the oldest are dropped.
    """

    def __init__(self, seconds: float, *, maxsize: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._maxsize = maxsize
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: OrderedDict[tuple[str, Hashable], tuple[str, float]] = OrderedDict()
        # table -> (region, until, every read of the table follows: keys unknown)
        self._tables: dict[str, tuple[str, float, bool]] = {}
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"StickyWrites(seconds={self.seconds}, keys={len(self._keys)}, tables={sorted(self._tables)})"

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def remember(self, region: str, tables: Iterable[str], keys: Iterable[tuple[str, Hashable]] | None) -> None:
        """A write landed in ``region``: ``keys`` are ``(table, key_fingerprint)``
        of the items it touched, or None when they could not be named."""
        if not self.seconds:
            return
        until = self._clock() + self.seconds
        keys = list(keys) if keys is not None else None
        with self._lock:
            for table in tables:
                whole = keys is None or self._tables.get(table, (None, 0.0, False))[2]
                self._tables[table] = (region, until, whole)
            for table_key in keys or ():
                self._keys[table_key] = (region, until)
                self._keys.move_to_end(table_key)
            while len(self._keys) > self._maxsize:
                self._keys.popitem(last=False)

    def region_for(self, call: Call) -> str | None:
        """The region that must serve this read, if a recent write says so."""
        # Common path: nothing remembered, no lock, no work.
        if not self._tables:
            return None
        now = self._clock()
        with self._lock:
            self._expire(now)
            tables = [self._tables[table] for table in call.tables if table in self._tables]
            if not tables:
                return None
            if call.operation == "GetItem":
                found = self._keys.get((call.params.get("TableName", ""), key_fingerprint(call.params.get("Key"))))
                if found is not None:
                    return found[0]
                return next((region for region, _, whole in tables if whole), None)
            return tables[0][0]

    def _expire(self, now: float) -> None:
        for table in [table for table, (_, until, _) in self._tables.items() if until <= now]:
            del self._tables[table]
        while self._keys and next(iter(self._keys.values()))[1] <= now:
            self._keys.popitem(last=False)
