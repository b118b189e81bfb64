"""Which regions a call may go to, in order of preference.

A :class:`Router` only orders (a pure value): the session asks each
region's breaker whether it may be tried, in this order, and stops at the
first that serves.

:class:`StickyWrites` keeps read-your-writes, by these rules:

- Every write of the session is remembered for ``sticky_seconds`` with the
  region that took it: per item it names, by the item-key fingerprint the
  cache uses too (:func:`regionproxy._dynamodb.keys.key_fingerprint`; only
  an item's latest write counts), and per table. A write whose items cannot
  be named (a put whose key schema is unknown, a PartiQL statement that
  does not state the whole key, a key the fingerprint cannot name) counts
  as a write of any item of its tables, and of any table when its tables
  cannot be read either. Likewise an item read whose keys cannot all be
  named is read as a read of its tables (:attr:`Call.read_keys` is None).
- A write failed over when it landed away from ``home`` (where writes go
  when nothing fails: the local region, or the primary). Reads follow
  failed-over writes, to the write's region first and unhedged:

  - an item read (GetItem, BatchGetItem, TransactGetItems) follows the
    latest of its items' latest writes and of its tables' failed-over
    writes whose items are unknown, if that one failed over;
  - any other read (Query, Scan, PartiQL SELECT) follows the latest
    failed-over write of its tables that is still the latest write of its
    item (or whose items are unknown).

  So a later write of an item that lands at home ends what an earlier
  failed-over write of it made sticky, for the item and, once no other
  failed-over write of the table is current, for the table's queries; one
  that fails over elsewhere moves it. A write of another item leaves both
  alone.
- An answer may be cached only if it came from the region that took every
  write the read may see (an item read: its items' latest writes and its
  tables' writes of unknown items; any other read: every write of its
  tables), wherever they landed: any other region may not have them yet.
  The answer is still returned.
- A write that failed but may have been applied (it met a fault that may
  have applied it: :class:`~regionproxy.errors.AmbiguousWriteError`, or an
  idempotent write's :class:`~regionproxy.errors.AllRegionsFailed` or later
  error after a read timeout, a dropped connection, a 5xx, ...) counts as a
  write that may be there. It is remembered like a write that landed in
  the first region it may have landed in (in the order tried), so it ends
  or moves its items' entries (or its tables', when its items are unknown)
  as such a write would: reads follow it there when that is not home,
  where they see it if it was applied. But it is *uncertain*: no region is
  known to have it, and one that may have it may still lack it, so no
  answer to a read that may see it (by the rule above) is cached, from any
  region, until it stops counting. The answer is still returned. (As for
  any write, a later write of its item takes its place for reads of that
  item; a query or scan of its table sees it until it stops counting.)

Writes that land at home matter only for the cache and to end earlier
entries: the session skips them when it has no cache and nothing of their
tables is remembered.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from regionproxy._dynamodb.operations import CONTROL, WRITE
from regionproxy._forks import reset_after_fork

if TYPE_CHECKING:
    from regionproxy._dynamodb.calls import Call


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
    :param uncertain: one of those writes may or may not have been applied.
    """

    follow: str | None = None
    regions: frozenset[str] = field(default_factory=frozenset)
    uncertain: bool = False

    def may_store(self, region: str) -> bool:
        """Whether an answer from ``region`` may be cached: it took every
        write the read may see, and none of them is uncertain."""
        return not self.uncertain and (not self.regions or self.regions == {region})


NOTHING_SEEN = WritesSeen()
# One write: (sequence number, monotonic time it stops counting, region,
# whether it is uncertain: failed, but may have been applied).
_Write = tuple[int, float, str, bool]


class _TableWrites:
    """One table's remembered writes: the latest per region (any item), the
    latest whose items are unknown per region, and the failed-over writes
    that are still their item's latest (by key fingerprint, oldest first);
    and until when its latest uncertain write, and its latest uncertain
    write of unknown items, count (a later write in the same region takes
    its place above, but does not make it certain)."""

    __slots__ = ("last", "regions", "unnamed", "away", "uncertain", "unnamed_uncertain")

    def __init__(self) -> None:
        self.last = 0.0  # when the table's latest write stops counting
        self.regions: dict[str, _Write] = {}
        self.unnamed: dict[str, _Write] = {}
        self.away: OrderedDict[Hashable, _Write] = OrderedDict()
        self.uncertain = 0.0
        self.unnamed_uncertain = 0.0


class StickyWrites:
    """Remember, for a short window, which region took each of the session's
    writes, or may have (a write that failed after an attempt that may have
    applied it: *uncertain*, it moves entries as a write there would, and
    keeps every answer that may see it out of the cache); say where a read
    must go and whether its answer may be cached (the rules are in
    :mod:`regionproxy._routing.router`).

    :param seconds: the window; 0 turns read-your-writes off.
    :param home: the region writes go to when nothing fails (the local
        region, or the primary); a write that landed elsewhere failed over.
    :param maxsize: bound on remembered items; the oldest are forgotten,
        and count from then on as writes of unknown items of their tables.
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
        # Whether any write is remembered: set under the lock whenever the
        # tables change, read without it on every call (the common path:
        # nothing remembered, and no call made to find that out).
        self.remembering = False
        reset_after_fork(self)

    def __repr__(self) -> str:
        tables = sorted(str(table) for table in self._tables)
        return f"StickyWrites(seconds={self.seconds}, home={self.home!r}, keys={len(self._keys)}, tables={tables})"

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def remembers_any(self) -> bool:
        """Whether any write is remembered (no lock: :attr:`remembering`)."""
        return self.remembering

    def remembers(self, tables: Iterable[str]) -> bool:
        """Whether a write of ``tables`` may change what reads follow (an
        entry of one of them, or of unknown tables, is remembered)."""
        if not self._tables:  # the common path, read without the lock: a dict's size is one C call
            return False
        tables = list(tables)
        return not tables or any(table in self._tables for table in (*tables, _ANY_TABLE))

    def remember(
        self,
        region: str,
        tables: Iterable[str],
        keys: Iterable[tuple[str, Hashable]] | None,
        *,
        uncertain: bool = False,
    ) -> None:
        """A write landed in ``region``: ``keys`` are ``(table, key_fingerprint)``
        of the items it touched, or None when they could not be named (so is
        a fingerprint: None when the fingerprint cannot name a key);
        ``tables`` the tables it wrote ([] with ``keys`` None: unknown).
        ``uncertain``: it failed, and may (or may not) have landed there."""
        if not self.seconds:
            return
        uncertain = bool(uncertain)
        keys = list(keys) if keys is not None else None
        if keys is not None and any(fingerprint is None for _, fingerprint in keys):
            # A key that names no item for certain: the write counts as one
            # of unknown items of its tables (those of its other keys too).
            tables = list(dict.fromkeys([*tables, *(table for table, _ in keys)]))
            keys = None
        tables = list(tables) or ([_ANY_TABLE] if keys is None else [])
        tables.extend(table for table, _ in keys or () if table not in tables)
        with self._lock:
            # The time is read under the lock, so writes are kept in the
            # order of their expiry (which is taken from the front).
            now = self._clock()
            self._sequence += 1
            write = (self._sequence, now + self.seconds, region, uncertain)
            for table in tables:
                writes = self._tables.pop(table, None) or _TableWrites()
                writes.last = write[1]
                writes.regions[region] = write
                if uncertain:
                    writes.uncertain = write[1]
                if keys is None:
                    writes.unnamed[region] = write
                    if uncertain:
                        writes.unnamed_uncertain = write[1]
                self._tables[table] = writes  # the most recent last
            for table, fingerprint in keys or ():
                self._forget((table, fingerprint))
                self._keys[(table, fingerprint)] = write
                if region != self.home:
                    self._tables[table].away[fingerprint] = write
            while len(self._keys) > self._maxsize:
                table_key, forgotten = next(iter(self._keys.items()))
                self._forget(table_key)
                # Forgotten for room, not for time: from now on it counts as
                # a write of an unknown item of its table, until it expires.
                writes = self._tables.get(table_key[0])
                if writes is not None:
                    known = writes.unnamed.get(forgotten[2])
                    if known is None or known[0] < forgotten[0]:
                        writes.unnamed[forgotten[2]] = forgotten
                    if forgotten[3]:
                        writes.unnamed_uncertain = max(writes.unnamed_uncertain, forgotten[1])
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
            tables = [*(tables or self._tables), _ANY_TABLE]  # unknown tables: any
            follow = self._follow(tables, keys, now)
            regions, uncertain = self._regions(tables, keys, now)
        if follow is None and not regions and not uncertain:
            return NOTHING_SEEN
        return WritesSeen(follow, regions, uncertain)

    def _follow(self, tables: list[str | None], keys: list[tuple[str, Hashable]] | None, now: float) -> str | None:
        """Under the lock: the region of the failed-over write the read must
        follow (see the module's rules), or None."""
        candidates: list[_Write] = []
        for table in tables:
            writes = self._tables.get(table)
            if writes is None:
                continue
            candidates.extend(write for region, write in writes.unnamed.items() if region != self.home)
            if keys is None and writes.away:
                candidates.append(next(reversed(writes.away.values())))  # the table's latest still current
        for table_key in keys or ():
            write = self._keys.get(table_key)
            if write is not None:
                candidates.append(write)
        live = [write for write in candidates if write[1] > now]
        if not live:
            return None
        region = max(live)[2]
        return None if region == self.home else region

    def _regions(
        self, tables: list[str | None], keys: list[tuple[str, Hashable]] | None, now: float
    ) -> tuple[frozenset[str], bool]:
        """Under the lock: the regions of every write the read may see, and
        whether one of them is uncertain."""
        seen: list[_Write] = []
        uncertain = False
        for table in tables:
            writes = self._tables.get(table)
            if writes is not None:
                # An item read sees its tables' writes of unknown items;
                # any other read every write of its tables.
                seen.extend((writes.unnamed if keys is not None else writes.regions).values())
                uncertain = uncertain or (writes.unnamed_uncertain if keys is not None else writes.uncertain) > now
        for table_key in keys or ():
            write = self._keys.get(table_key)
            if write is not None:
                seen.append(write)
        live = [write for write in seen if write[1] > now]
        return frozenset(write[2] for write in live), uncertain or any(write[3] for write in live)

    def _forget(self, table_key: tuple[str, Hashable]) -> None:
        """Under the lock: drop an item's entry (and its table's mark of it)."""
        write = self._keys.pop(table_key, None)
        writes = self._tables.get(table_key[0])
        if write is not None and writes is not None and writes.away.get(table_key[1]) is write:
            del writes.away[table_key[1]]

    def _expire(self, now: float) -> None:
        while self._keys and next(iter(self._keys.values()))[1] <= now:
            self._forget(next(iter(self._keys)))
        while self._tables and next(iter(self._tables.values())).last <= now:
            self._tables.popitem(last=False)
        self.remembering = bool(self._tables)
