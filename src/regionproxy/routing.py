"""Which regions a call may go to, in order of preference.

A :class:`Router` only orders (a pure value): the session asks each
region's breaker whether it may be tried, in this order, and stops at the
first that serves.

:class:`StickyWrites` keeps read-your-writes, by these rules:

- Every write of the session is remembered for ``sticky_seconds`` with the
  region that took it: per item it names (only the latest write of an item
  counts: a later write of the item moves its entry to the later write's
  region), per table, and, when its items cannot be named (a put whose key
  schema is unknown, a PartiQL statement that does not state the whole
  key), as a write of any item of its tables (of every table when its
  tables cannot be read either).
- A read follows the latest write it may see: an item read (GetItem,
  BatchGetItem, TransactGetItems) the latest write of its items and every
  write of its tables whose items are unknown; any other read (Query, Scan,
  PartiQL SELECT) the latest write of its tables. When that write landed
  in the write region (``home``: where writes go when nothing fails), the
  read is an ordinary one; otherwise (the write failed over) it goes to the
  write's region first, unhedged. So a later write that lands at home ends
  what an earlier failed-over write of the same item made sticky, and one
  that fails over elsewhere moves it.
- An answer to a read may be cached only if it came from the region that
  took every write the read may see (the item's latest, its tables'
  unnamed ones; for a query, every write of its tables): any other region
  may not have them yet. The answer is still returned.

Writes that land at home need remembering only for the cache and to end
earlier entries: the session skips them when it has no cache and nothing of
their tables is remembered.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from regionproxy.forks import reset_after_fork
from regionproxy.operations import CONTROL, WRITE

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


# The write of any table: a write whose tables could not be read.
_ANY_TABLE = None


@dataclass(frozen=True, slots=True)
class WritesSeen:
    """What a read may see of the session's recent writes.

    :param follow: the region the read must go to first (the latest of
        those writes failed over there), or None.
    :param regions: the regions that took those writes.
    """

    follow: str | None = None
    regions: frozenset[str] = field(default_factory=frozenset)

    def may_store(self, region: str) -> bool:
        """Whether an answer from ``region`` may be cached: it took every
        write the read may see."""
        return not self.regions or self.regions == {region}


NOTHING_SEEN = WritesSeen()
# One write: (sequence number, monotonic time it stops counting, region).
_Write = tuple[int, float, str]


class _TableWrites:
    """The latest write of one table per region, and the latest whose items
    are unknown per region."""

    __slots__ = ("last", "regions", "unnamed")

    def __init__(self) -> None:
        self.last = 0.0
        self.regions: dict[str, _Write] = {}
        self.unnamed: dict[str, _Write] = {}


class StickyWrites:
    """Remember, for a short window, which region took each of the session's
    writes; say where a read must go and whether its answer may be cached
    (the rules are in :mod:`regionproxy.routing`).

    :param seconds: the window; 0 turns read-your-writes off.
    :param home: the region writes go to when nothing fails (the local
        region, or the primary); a read of a write that landed there is an
        ordinary read.
    :param maxsize: bound on remembered items; the oldest are forgotten,
        and their tables then follow their region as if their items were unknown.
    """

    def __init__(
        self, seconds: float, *, home: str = "", maxsize: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.home = home
        self._maxsize = maxsize
        self._clock = clock
        self._lock = threading.Lock()
        self._sequence = 0
        # Both oldest write first, so expiry takes from the front.
        self._keys: OrderedDict[tuple[str, Hashable], _Write] = OrderedDict()
        self._tables: OrderedDict[str | None, _TableWrites] = OrderedDict()
        reset_after_fork(self)

    def __repr__(self) -> str:
        tables = sorted(str(table) for table in self._tables)
        return f"StickyWrites(seconds={self.seconds}, home={self.home!r}, keys={len(self._keys)}, tables={tables})"

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def remembers(self, tables: Iterable[str]) -> bool:
        """Whether a write of ``tables`` may change what reads follow (an
        entry of one of them, or of unknown tables, is remembered)."""
        if not self._tables:  # the common path, read without the lock: a dict's size is one C call
            return False
        tables = list(tables)
        return not tables or any(table in self._tables for table in (*tables, _ANY_TABLE))

    def remember(self, region: str, tables: Iterable[str], keys: Iterable[tuple[str, Hashable]] | None) -> None:
        """A write landed in ``region``: ``keys`` are ``(table, key_fingerprint)``
        of the items it touched, or None when they could not be named;
        ``tables`` the tables it wrote ([] with ``keys`` None: unknown)."""
        if not self.seconds:
            return
        keys = list(keys) if keys is not None else None
        tables = list(tables) or ([_ANY_TABLE] if keys is None else [])
        with self._lock:
            # The time is read under the lock, so writes are kept in the
            # order of their expiry (which is taken from the front).
            now = self._clock()
            until = now + self.seconds
            self._sequence += 1
            write = (self._sequence, until, region)
            for table in tables:
                writes = self._tables.pop(table, None) or _TableWrites()
                writes.last = until
                writes.regions[region] = write
                if keys is None:
                    writes.unnamed[region] = write
                self._tables[table] = writes  # the most recent last
            for table_key in keys or ():
                self._keys.pop(table_key, None)
                self._keys[table_key] = write
            while len(self._keys) > self._maxsize:
                (table, _), forgotten = self._keys.popitem(last=False)
                # Forgotten for room, not for time: its table follows it as
                # if its items were unknown, until it would have expired.
                writes = self._tables.get(table)
                if writes is not None:
                    known = writes.unnamed.get(forgotten[2])
                    if known is None or known[0] < forgotten[0]:
                        writes.unnamed[forgotten[2]] = forgotten
            self._expire(now)

    def region_for(self, call: Call) -> str | None:
        """The region that must serve this read, if a recent write says so."""
        return self.seen_by(call).follow

    def seen_by(self, call: Call) -> WritesSeen:
        """What this read may see of the recent writes: where it must go,
        and which regions took them."""
        # Common path: nothing remembered, no lock, no work.
        if not self._tables:
            return NOTHING_SEEN
        try:  # worked out (PartiQL read) before the lock is taken
            tables: list[str | None] = list(call.tables)
            keys = call.read_keys
        except Exception:  # noqa: BLE001 - a request botocore will refuse: follow as if its tables were unknown
            tables, keys = [], None
        with self._lock:
            now = self._clock()
            self._expire(now)
            seen = self._seen(tables or list(self._tables), keys, now)  # unknown tables: any
        if not seen:
            return NOTHING_SEEN
        latest = max(seen)[2]
        return WritesSeen(None if latest == self.home else latest, frozenset(write[2] for write in seen))

    def _seen(self, tables: list[str | None], keys: list[tuple[str, Hashable]] | None, now: float) -> list[_Write]:
        """Under the lock: the live writes a read of ``tables`` (and of the
        items ``keys``, or of whatever matches: None) may see."""
        seen: list[_Write] = []
        for table in (*tables, _ANY_TABLE):
            writes = self._tables.get(table)
            if writes is not None:
                # An item read sees its tables' writes of unknown items;
                # any other read every write of its tables.
                seen.extend(write for write in (writes.unnamed if keys is not None else writes.regions).values())
        for table_key in keys or ():
            write = self._keys.get(table_key)
            if write is not None:
                seen.append(write)
        return [write for write in seen if write[1] > now]

    def _expire(self, now: float) -> None:
        while self._keys and next(iter(self._keys.values()))[1] <= now:
            self._keys.popitem(last=False)
        while self._tables and next(iter(self._tables.values())).last <= now:
            self._tables.popitem(last=False)
