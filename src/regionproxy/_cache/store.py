"""The read cache: hot items and query pages, invalidated at once by writes.

Only eventually consistent reads are cached (``ConsistentRead=True``
bypasses the cache). A write through the session drops what it touches
before it is sent and again after it returns, and a read that started
before a write never stores its (older) result after it. Concurrent misses
for one key make one DynamoDB call; the others wait for its result, for a
bounded time: a load that overruns ``wait_timeout`` (its thread is stuck,
or did not survive a fork) is taken over by the next reader. The lock
guards the entries, never the I/O: a load runs outside it, and so does the
copy a hit is made from.

The entries live in a :class:`cachetools.TLRUCache` (this is the one
module that imports cachetools): its time to use is each entry's own
expiry (``ttl`` for an item or a query page, ``negative_ttl`` for "no such
item"); it drops expired entries as it stores, and the least recently used
past ``maxsize``, and reports each drop, which the cache counts (``SIZE``,
``EXPIRED``). cachetools' caches are not thread-safe (a read reorders the
cache and reads its shared timer, in several steps), so the store is used
under the lock, but for the hit path, where TLRUCache measurably does not
serve: a hit through ``TLRUCache.__getitem__`` costs 0.57 us with the
lock, against 0.14 us for a lock-free dictionary read (Python 3.11), and
the difference is a tenth of a 10-attribute item's whole hit, which must
stay under 5 us. So a hit reads a dictionary of the same entries without
the lock and notes the key; the store replays those uses into its order
(least recently used first) before it next stores, and so before it
evicts. Up to 128 keys hit between two stores are noted: past that, the
order is what the earlier hits made it.

Entries are keyed by table and the names :mod:`regionproxy._cache.keys`
gives reads (an item's key, or a query's whole request, in wire format or in
Python values); a query page is also filed under tags, so that a write drops
every page that could hold its item. An entry holds its answer packed, and
each hit is a new answer made from it (:func:`regionproxy._cache.copies.keeper`):
no caller can change what the cache holds.

Dropping a whole table (a write whose keys cannot be named, a table
deleted or created again), or everything (a write whose tables cannot be
named), takes constant time under the lock, whatever the size of the
cache. Each entry belongs to its table's current generation, and a table's
drop ends that generation: an entry of an ended generation is never a hit,
and counts neither as an entry nor, when it goes, as an eviction; it goes
when its key is read or stored again, when it expires, or when it reaches
the least recently used end, so memory stays within ``maxsize``. Dropping
everything swaps the store for an empty one.

Staleness is bounded by the TTL plus replication lag: a write made in
another region, or in another process outside a fleet, is not seen until
the entry expires. A fleet's workers apply each other's drops
(:meth:`ReadCache.drop`, by :mod:`regionproxy._fleet.coherence`), under
the same rule as a local write's: a load in flight stores nothing after.

A fleet's cache is **bypassed while its worker cannot hear the fleet's
drops** (:meth:`ReadCache.follow_link`, :meth:`ReadCache.link_changed`):
from the moment its link goes down (and, in each process, until its first
subscription is live) the cache is empty and stays so, every read is
loaded for its caller alone (no single flight: a read must not be given an
answer loaded before a write it cannot hear of) and nothing is stored;
once the link is live again it is emptied again and used. Each change is
one step under the lock (the flag, and emptying, which ends every load in
flight: a load that began before a change stores nothing after it), and
the link's changes are numbered, so one announced late (another thread's)
never undoes a newer one. A hit reads nothing more for this: an empty
cache cannot answer; only a miss reads the flag.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from cachetools import Cache, TLRUCache

from regionproxy._cache.copies import keeper
from regionproxy._cache.keys import ITEM, TABLE, VALUES, Drop, write_drops, write_tags
from regionproxy._config.policies import CachePolicy
from regionproxy._dynamodb.operations import KeyNames
from regionproxy._forks import reset_after_fork
from regionproxy.errors import ConfigError
from regionproxy.events import CacheDropped

__all__ = ["EXPIRED", "Key", "MISS", "ReadCache", "SIZE"]

MISS = object()  # lookup(): nothing fresh under that key
SIZE, EXPIRED = "size", "expired"  # why an entry was dropped

Key = tuple[Any, ...]


class _Generation:
    """A table's entries since it was last dropped: ending it drops them all."""

    __slots__ = ("live", "entries")

    def __init__(self) -> None:
        self.live = True
        self.entries = 0  # stored entries of this generation, while it is live


_ENDED = _Generation()  # the generation of an entry not stored yet: never a hit
_ENDED.live = False


class _Entry:
    """One stored answer: what is held of it and how a hit is made from it
    (:func:`~regionproxy._cache.copies.keeper`), when it expires, the query
    tags it is filed under, and its table's generation."""

    __slots__ = ("value", "copy", "expires", "tags", "generation")

    def __init__(self, value: Any, expires: float, tags: tuple[Hashable, ...] = ()) -> None:
        self.value, self.copy = keeper(value)
        self.expires = expires
        self.tags = tags
        self.generation = _ENDED


def _time_to_use(key: Key, entry: _Entry, now: float) -> float:
    return entry.expires


# Keys hit since the last store, kept to replay their use into the store's
# order (least recently used first); more are not kept until then.
_USED = 128


class _Entries(TLRUCache):
    """The stored entries: a :class:`cachetools.TLRUCache` whose time to use
    is each entry's own expiry, least recently used dropped past
    ``maxsize``. It tells ``dropped(key, entry, reason)`` of each entry it
    drops itself (``SIZE``: for room; ``EXPIRED``).

    cachetools' caches are not thread-safe: all of it runs under the
    :class:`ReadCache`'s lock, but for two methods a hit calls without it.
    :meth:`peek` reads a dictionary of the same entries (one C call, atomic
    under the GIL; the entries never change once stored), and :meth:`used`
    notes the key, whose use :meth:`__setitem__` replays into the
    cache's order before it stores (and may evict)."""

    def __init__(self, maxsize: int, timer: Callable[[], float], dropped: Callable[[Key, _Entry, str], None]) -> None:
        super().__init__(maxsize, _time_to_use, timer)
        self._dropped = dropped
        self._view: dict[Key, _Entry] = {}
        self.peek = self._view.get
        self._used: dict[Key, None] = {}
        self._note = self._used.setdefault

    def used(self, key: Key) -> None:
        """A hit of ``key`` (without the lock: a note lost to a race is a use
        not counted). Up to ``_USED`` keys between two stores."""
        if len(self._used) < _USED:
            self._note(key)

    def __setitem__(self, key: Key, entry: _Entry) -> None:
        used = list(self._used)  # the same dict stays: a hit may be noting a key in it right now
        self._used.clear()
        for hit in used:  # in the order they were first hit since the last store
            if hit in self._view:
                self.get(hit)  # (its use: now the most recently used)
        super().__setitem__(key, entry)
        if Cache.__contains__(self, key):  # (not when it expired meanwhile: refused)
            self._view[key] = entry

    def __delitem__(self, key: Key) -> None:
        self._view.pop(key, None)
        super().__delitem__(key)

    def popitem(self) -> tuple[Key, _Entry]:
        key, entry = super().popitem()
        self._dropped(key, entry, SIZE)
        return key, entry

    def expire(self, time: float | None = None) -> list[tuple[Key, _Entry]]:
        expired = super().expire(time)
        for key, entry in expired:
            self._view.pop(key, None)
            self._dropped(key, entry, EXPIRED)
        return expired

    def take(self, key: Key) -> _Entry | None:
        """Remove and return the entry under ``key``, expired or not."""
        entry = self._view.get(key)
        if entry is None:
            return None
        try:
            del self[key]
        except KeyError:  # it had expired: removed all the same
            pass
        return entry


class _Flight:
    """One in-progress load that other readers of the same key wait for."""

    __slots__ = ("done", "entry", "error", "stale", "leader", "tags")

    def __init__(self, tags: tuple[Hashable, ...] = ()) -> None:
        self.done = threading.Event()
        # The loading thread: if its load reads the same key again (an event
        # listener making a DynamoDB call), waiting would wait for itself.
        self.leader = threading.get_ident()
        self.entry: _Entry | None = None
        self.error: BaseException | None = None
        # Set by an invalidation while loading: the result may predate a
        # write, so it is returned to its readers but never stored.
        self.stale = False
        self.tags = tags  # filed under them from the start: a write during the load marks it stale


class ReadCache:
    """A cache of read answers with per-entry TTLs and single-flight loading.

    :param policy: ``maxsize`` entries, ``ttl`` seconds each (``negative_ttl``
        for "no such item"), the ``tables`` to cache.
    :param clock: monotonic seconds; tests pass a fake one.
    :param wait_timeout: the longest a reader waits for another thread's
        load of the same key before it loads the key itself; the session
        passes its worst-case call time.
    """

    def __init__(
        self,
        policy: CachePolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait_timeout: float = 10.0,
    ) -> None:
        if not wait_timeout > 0:
            raise ConfigError(f"wait_timeout must be positive, not {wait_timeout!r}", setting="wait_timeout")
        self.policy = policy
        self.caches = policy.caches
        self.wait_timeout = wait_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._entries = self._new_entries()
        self._by_tag: dict[Hashable, set[Key]] = {}
        # table -> its live generation, while it has stored entries.
        self._generations: dict[str, _Generation] = {}
        self._ended = 0  # entries of ended generations still in _entries
        self._flights: dict[Key, _Flight] = {}
        self.evictions = 0
        self.expiries = 0
        self._dropped: dict[tuple[str, str], int] = {}  # (table, reason) -> count, until taken
        # A fleet's cache (follow_link): the link change last applied, and
        # whether reads bypass the cache (the link is down).
        self._link_epoch: int | None = None
        self.bypassing = False
        self.bypassed = 0  # reads loaded past the cache while bypassing
        reset_after_fork(self)

    def _new_entries(self) -> _Entries:
        return _Entries(self.policy.maxsize, self._clock, self._drop)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries) - self._ended

    def __repr__(self) -> str:
        return f"ReadCache({self.policy!r}, entries={len(self)})"

    # -- reading ----------------------------------------------------------------------

    def lookup(self, key: Key) -> Any:
        """A copy of the fresh answer under ``key``, or :data:`MISS`.

        Without the lock (the common path): a hit that races an
        invalidation is a read that happened just before the write."""
        entries = self._entries
        entry = entries.peek(key)
        if entry is None:
            return MISS
        if not entry.generation.live:  # its table was dropped: it goes now
            with self._lock:
                if self._entries.peek(key) is entry:
                    self._entries.take(key)
                    self._drop(key, entry, EXPIRED)
            return MISS
        if not self._clock() < entry.expires:
            return MISS
        entries.used(key)
        return entry.copy(entry.value)

    def get_or_load(
        self,
        key: Key,
        load: Callable[[], Any],
        *,
        negative: Callable[[Any], bool] | None = None,
        tags: tuple[Hashable, ...] = (),
    ) -> tuple[Any, bool | None]:
        """The cached answer for ``key`` (``(table, ...)``), or ``load()``'s;
        and whether it was a hit. ``negative(answer)`` says it is a "no such
        item" answer (kept ``negative_ttl``); ``tags`` file it for query
        invalidation. ``hit`` is None for a read that bypassed the cache (a
        fleet's link is down: see :meth:`link_changed`)."""
        result = self.lookup(key)
        if result is not MISS:
            return result, True
        with self._lock:
            # (Read under the lock: no flight is registered after a bypass began.)
            if self.bypassing:
                self.bypassed += 1
                flight, leader = None, False
            else:
                flight = self._flights.get(key)
                leader = flight is None
                if leader:
                    flight = self._flights[key] = _Flight(tags)
                    self._file(key, tags)
        if flight is None:  # bypassed: loaded for this caller alone, never stored
            return load(), None
        if not leader:
            if flight.leader == threading.get_ident():
                # A load that reads its own key: load for this caller alone.
                return self._load(key, _Flight(), load, negative, tags), False
            if flight.done.wait(self.wait_timeout):
                if flight.error is not None:
                    raise flight.error
                if flight.entry is None:
                    # A batch load that got no answer for this key (unprocessed):
                    # load it for this caller alone.
                    return self._load(key, _Flight(), load, negative, tags), False
                return flight.entry.copy(flight.entry.value), False
            flight = self._take_over(key, flight)
        return self._load(key, flight, load, negative, tags), False

    def _take_over(self, key: Key, overdue: _Flight) -> _Flight:
        """The flight this reader leads after ``overdue``'s leader overran
        ``wait_timeout`` (its thread is stuck, or did not survive a fork).

        The reader takes the key over, so later readers wait for a load that
        is making progress, and the overdue leader no longer stores what it
        loads. If another reader took over first, this one loads for itself
        alone and stores nothing (its own flight is registered nowhere).
        """
        with self._lock:
            if self._flights.get(key) is overdue:
                flight = self._flights[key] = _Flight(overdue.tags)
                return flight
        return _Flight()

    def _load(
        self,
        key: Key,
        flight: _Flight,
        load: Callable[[], Any],
        negative: Callable[[Any], bool] | None,
        tags: tuple[Hashable, ...],
    ) -> Any:
        """Run ``load()`` for ``flight``'s waiters; store the result if the
        flight still owns the key and no write overtook it. The loader gets
        the answer itself, unless the entry holds it as it is (then a copy)."""
        try:
            value = load()
            ttl = self.policy.negative_ttl if negative is not None and negative(value) else self.policy.ttl
            entry = flight.entry = _Entry(value, self._clock() + ttl, tags)
        except BaseException as error:
            flight.error = error
            raise
        finally:
            self.finish(key, flight)
        return entry.copy(entry.value) if entry.value is value else value

    # -- loads of many keys (BatchGetItem) --------------------------------------------

    def begin(self, keys: Iterable[Key]) -> dict[Key, _Flight]:
        """Register a load of each of ``keys`` that no other reader is
        loading; :meth:`finish` each flight returned (only those may store)."""
        flights = {}
        with self._lock:
            if self.bypassing:  # nothing stored: each key is loaded, and counted, as bypassed
                self.bypassed += sum(1 for _ in keys)
                return flights
            for key in keys:
                if key not in self._flights:
                    flights[key] = self._flights[key] = _Flight()
        return flights

    def answer(self, flight: _Flight, value: Any, negative: bool) -> None:
        """Give ``flight`` its answer (stored by :meth:`finish`)."""
        ttl = self.policy.negative_ttl if negative else self.policy.ttl
        entry = _Entry(value, self._clock() + ttl)
        if entry.value is value:
            # Held as it is: the batch's caller gets ``value``'s parts (its
            # items, its metadata) in the response; the cache keeps a copy.
            entry.value = entry.copy(value)
        flight.entry = entry

    def finish(self, key: Key, flight: _Flight) -> None:
        """End ``flight``: store its entry if it still owns ``key`` and no
        write overtook it; wake its waiters (those of an unanswered flight
        load for themselves)."""
        with self._lock:
            # Not ours any more after a take-over (or a fork): leave the
            # key, and its successor's flight, alone.
            if self._flights.get(key) is flight:
                del self._flights[key]
                entry = flight.entry
                if (
                    entry is not None
                    and flight.error is None
                    and not flight.stale
                    and not self.bypassing  # (no flight outlives a bypass's start: a second guard)
                    and entry.expires > self._clock()
                ):
                    self._store(key, entry)
                elif key not in self._entries:
                    self._unfile(key, flight.tags)
        flight.done.set()

    def _store(self, key: Key, entry: _Entry) -> None:
        """Under the lock: keep ``entry`` in its table's live generation (the
        store drops expired entries, and the least recently used past
        ``maxsize``)."""
        old = self._entries.take(key)
        if old is not None:
            self._forget(key, old)
            if old.generation.live and not self._clock() < old.expires:
                self._count(key[0], EXPIRED)
            if old.tags != entry.tags:
                self._unfile(key, old.tags)
        generation = self._generations.get(key[0])
        if generation is None:
            generation = self._generations[key[0]] = _Generation()
        generation.entries += 1
        entry.generation = generation
        self._file(key, entry.tags)
        self._entries[key] = entry

    def _forget(self, key: Key, entry: _Entry) -> None:
        """Under the lock: count ``entry``, which has just left ``_entries``,
        out of its generation."""
        generation = entry.generation
        if not generation.live:
            self._ended -= 1
            return
        generation.entries -= 1
        if not generation.entries:  # the table's live generation, and now no entry has it
            del self._generations[key[0]]

    def _drop(self, key: Key, entry: _Entry, reason: str) -> None:
        """Under the lock: ``entry`` has left ``_entries`` (expired, for room,
        or its table was dropped)."""
        self._forget(key, entry)
        flight = self._flights.get(key)
        # A load of the key in flight is filed under its own tags: a write
        # during the load must still find it.
        self._unfile(key, entry.tags if flight is None else tuple(tag for tag in entry.tags if tag not in flight.tags))
        if entry.generation.live:  # dropped with its table already: neither evicted nor expired
            self._count(key[0], reason)

    def _count(self, table: str, reason: str) -> None:
        if reason == SIZE:
            self.evictions += 1
        else:
            self.expiries += 1
        self._dropped[(table, reason)] = self._dropped.get((table, reason), 0) + 1

    def _file(self, key: Key, tags: tuple[Hashable, ...]) -> None:
        for tag in tags:
            self._by_tag.setdefault(tag, set()).add(key)

    def _unfile(self, key: Key, tags: tuple[Hashable, ...]) -> None:
        for tag in tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]

    def take_dropped(self) -> list[CacheDropped]:
        """The drops counted since the last call, as events to emit."""
        if not self._dropped:  # the common case, read without the lock
            return []
        with self._lock:
            dropped, self._dropped = self._dropped, {}
        return [CacheDropped(table, reason, count) for (table, reason), count in dropped.items()]

    def counts(self) -> dict[str, Any]:
        counts: dict[str, Any] = {"entries": len(self), "evictions": self.evictions, "expiries": self.expiries}
        if self._link_epoch is not None:
            counts["fleet_link"] = "down" if self.bypassing else "live"
            counts["bypassed"] = self.bypassed
        return counts

    # -- a fleet's link (regionproxy._fleet.coherence) ---------------------------------

    def follow_link(self) -> None:
        """Use this cache only while a fleet's link says it hears the fleet's
        drops: bypassed from now until :meth:`link_changed` says it is live."""
        with self._lock:
            self._link_epoch = -1
            self._bypass(True)

    def link_changed(self, connected: bool, epoch: int) -> None:
        """The link went down (``connected`` False: bypass the cache) or is
        live again (use it); ``epoch`` numbers the link's changes, and one
        older than the last applied is ignored. Either way the cache is
        emptied, in the same step: what it held, or what a load in flight
        would store, may have missed drops."""
        with self._lock:
            if self._link_epoch is None or epoch <= self._link_epoch:
                return
            self._link_epoch = epoch
            self._bypass(not connected)

    def _bypass(self, bypassing: bool) -> None:
        """Under the lock: empty the cache, and bypass it or not."""
        self._clear()
        self.bypassing = bypassing

    # -- invalidation -----------------------------------------------------------------

    def invalidate(self, key: Key) -> None:
        with self._lock:
            self._invalidate(key)

    def _invalidate(self, key: Key) -> None:
        entry = self._entries.take(key)
        if entry is not None:
            self._forget(key, entry)
            self._unfile(key, entry.tags)
        self._ground(key)

    def _ground(self, key: Key) -> None:
        """Under the lock: the load in flight for ``key`` may predate a
        write. It stores nothing, and a reader who comes after the write
        must not wait for its answer (the writer reading its own write would
        get the old item): it starts a load of its own."""
        flight = self._flights.pop(key, None)
        if flight is not None:
            flight.stale = True
            self._unfile(key, flight.tags)

    def invalidate_item(self, table: str, fingerprint: Hashable) -> None:
        """Drop an item in both forms and every query a write of it may change."""
        if not isinstance(table, str):  # botocore refuses the write: nothing is cached under it
            return
        with self._lock:
            self._invalidate((table, fingerprint))
            self._invalidate((table, fingerprint, VALUES))
            if self._by_tag:
                self._invalidate_tags(write_tags(table, fingerprint))

    def _invalidate_tags(self, tags: Iterable[Hashable]) -> None:
        for tag in tags:
            for key in self._by_tag.pop(tag, ()):
                self._invalidate(key)

    def invalidate_table(self, table: str) -> None:
        """Drop every entry of ``table`` (a write whose keys are unknown, a
        table deleted or created again): its generation ends, in constant
        time, and its loads in flight (few: one per key being read) store
        nothing."""
        if not isinstance(table, str):  # botocore refuses the write: nothing is cached under it
            return
        with self._lock:
            generation = self._generations.pop(table, None)
            if generation is not None:
                generation.live = False
                self._ended += generation.entries
            if self._flights:
                for key in [key for key in self._flights if key[0] == table]:
                    self._ground(key)

    def invalidate_write(self, operation: str, params: Mapping[str, Any], key_names: KeyNames) -> tuple[Drop, ...]:
        """Drop what a write touches (:func:`~regionproxy._cache.keys.write_drops`):
        its keys (both forms) and the queries they may change; its tables
        when the keys cannot be named; everything for a PartiQL write
        (table unknown). Returns the drops, for other workers to apply."""
        drops = write_drops(operation, params, key_names)
        self.drop(drops)
        return drops

    def drop(self, drops: Iterable[Drop]) -> None:
        """Apply drops made by :func:`~regionproxy._cache.keys.write_drops`
        (here, or in another worker of the fleet). A drop ends the loads in
        flight of what it names as a local write's does: a read that loaded
        before the drop never stores its answer after it."""
        for drop in drops:
            if drop[0] == ITEM:
                self.invalidate_item(drop[1], drop[2])
            elif drop[0] == TABLE:
                self.invalidate_table(drop[1])
            else:
                self.clear()

    def clear(self) -> None:
        """Drop everything (a write whose tables cannot be named). The
        entries are swapped for an empty store under the lock and freed
        after it."""
        with self._lock:
            dropped = self._clear()
        del dropped

    def _clear(self) -> tuple[Any, ...]:
        """Under the lock: swap the store for an empty one and end every
        load in flight; returns what was dropped, to free after the lock."""
        dropped = self._entries, self._by_tag
        self._entries = self._new_entries()
        self._by_tag = {}
        self._generations = {}
        self._ended = 0
        for flight in self._flights.values():
            flight.stale = True
        self._flights = {}
        return dropped

    def _after_fork(self) -> None:
        """In a forked child: the lock and the loads in flight belonged to the
        parent's threads. A reader in the child must not wait for a load that
        no thread will finish, so it starts its own."""
        if self._lock.locked():
            # Another thread was changing the entries at the fork: the
            # store may be half-updated. Start empty.
            self._entries = self._new_entries()
            self._by_tag = {}
            self._generations = {}
            self._ended = 0
            self._dropped = {}
        self._lock = threading.Lock()
        self._flights = {}
        if self._link_epoch is not None:
            # The child's link has heard nothing yet: bypassed until its own
            # subscription is live (its changes are numbered from 1 again).
            self._link_epoch = -1
            self._bypass(True)
            self.bypassed = 0
