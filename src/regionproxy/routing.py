"""Which regions a call may go to, in order of preference. Pure values.

A :class:`Router` only orders: the session asks each region's breaker
whether it may be tried, in this order, and stops at the first that serves.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from regionproxy.operations import CONTROL, WRITE, key_fingerprint, tables_of, written_keys


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
    """Remember, for a short window, where writes that failed over landed.

    Replication to the local region takes about a second (no SLA), so a
    user who wrote through a remote region would not read their own write
    from the local one. Reads of a remembered key (or, for queries and
    scans, of a remembered table) go to the region that took the write.

    :param seconds: how long a write is sticky; 0 turns it off.
    :param key_names: returns the key attribute names of a table, for
        finding the key of a ``PutItem`` item.
    :param maxsize: bound on remembered keys; the oldest are dropped.
    """

    def __init__(
        self,
        seconds: float,
        key_names: Callable[[str, str], tuple[str, ...]],
        *,
        maxsize: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self._key_names = key_names
        self._maxsize = maxsize
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._tables: dict[str, tuple[str, float]] = {}

    def remember(self, region: str, operation: str, params: Mapping[str, Any]) -> None:
        if not self.seconds:
            return
        until = self._clock() + self.seconds
        keys = [(table, _fingerprint(key)) for table, key in written_keys(operation, params, partial(self._key_names, region))]
        with self._lock:
            for table, key in keys:
                self._keys[(table, key)] = (region, until)
                self._keys.move_to_end((table, key))
                self._tables[table] = (region, until)
            while len(self._keys) > self._maxsize:
                self._keys.popitem(last=False)

    def region_for(self, operation: str, params: Mapping[str, Any]) -> str | None:
        """The region that must serve this read, if a recent write says so."""
        # Common path: nothing remembered, no lock, no work.
        if not self._tables:
            return None
        now = self._clock()
        with self._lock:
            self._expire(now)
            if operation == "GetItem":
                found = self._keys.get((params.get("TableName", ""), _fingerprint(params.get("Key"))))
            else:
                found = next((self._tables[t] for t in tables_of(operation, params) if t in self._tables), None)
        return found[0] if found else None

    def _expire(self, now: float) -> None:
        for table in [table for table, (_, until) in self._tables.items() if until <= now]:
            del self._tables[table]
        while self._keys and next(iter(self._keys.values()))[1] <= now:
            self._keys.popitem(last=False)


def _fingerprint(key: Any) -> str:
    return key_fingerprint(key)
