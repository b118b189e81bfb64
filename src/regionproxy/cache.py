"""The read cache: hot ``GetItem`` results, invalidated at once by writes.

Only eventually consistent reads are cached (``ConsistentRead=True``
bypasses the cache). A write through the session drops what it touches
before it is sent and again after it returns, and a read that started
before a write never stores its (older) result after it. Concurrent misses
for one key make one DynamoDB call; the others wait for its result, for a
bounded time: a load that overruns ``wait_timeout`` (its thread is stuck,
or did not survive a fork) is taken over by the next reader. The lock
guards the dictionaries, never the I/O.

Staleness is bounded by the TTL plus replication lag: a write made in
another region (or another process) is not seen until the entry expires.

This is the only module that imports cachetools.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import cachetools

from regionproxy.config import CachePolicy
from regionproxy.errors import ConfigError
from regionproxy.forks import reset_after_fork
from regionproxy.operations import KeyNames, key_fingerprint, tables_of, written_keys


class _Flight:
    """One in-progress load that other readers of the same key wait for."""

    __slots__ = ("done", "result", "error", "stale", "leader")

    def __init__(self) -> None:
        self.done = threading.Event()
        # The loading thread: if its load reads the same key again (an event
        # listener making a DynamoDB call), waiting would wait for itself.
        self.leader = threading.get_ident()
        self.result: Any = None
        self.error: BaseException | None = None
        # Set by an invalidation while loading: the result may predate a
        # write, so it is returned to its readers but never stored.
        self.stale = False


class ReadCache:
    """A TTL cache of responses with single-flight loading.

    :param policy: ``maxsize`` entries, each for ``ttl`` seconds.
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
        self.wait_timeout = wait_timeout
        self._clock = clock
        self._entries = self._new_entries()
        self._lock = threading.Lock()
        self._flights: dict[tuple[str, Hashable], _Flight] = {}
        reset_after_fork(self)

    def __len__(self) -> int:
        return len(self._entries)

    def get_or_load(self, key: tuple[str, Hashable], load: Callable[[], Any]) -> tuple[Any, bool]:
        """The cached response for ``key`` (``(table, ...)``), or ``load()``'s;
        and whether it was a hit."""
        with self._lock:
            try:
                return copy.deepcopy(self._entries[key]), True
            except KeyError:
                pass
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        assert flight is not None
        if not leader:
            if flight.leader == threading.get_ident():
                # A load that reads its own key: load for this caller alone.
                return copy.deepcopy(self._load(key, _Flight(), load)), False
            if flight.done.wait(self.wait_timeout):
                if flight.error is not None:
                    raise flight.error
                return copy.deepcopy(flight.result), False
            flight = self._take_over(key, flight)
        return copy.deepcopy(self._load(key, flight, load)), False

    def _take_over(self, key: tuple[str, Hashable], overdue: _Flight) -> _Flight:
        """The flight this reader leads after ``overdue``'s leader overran
        ``wait_timeout`` (its thread is stuck, or did not survive a fork).

        The reader takes the key over, so later readers wait for a load that
        is making progress, and the overdue leader no longer stores what it
        loads. If another reader took over first, this one loads for itself
        alone and stores nothing (its own flight is registered nowhere).
        """
        with self._lock:
            if self._flights.get(key) is overdue:
                flight = self._flights[key] = _Flight()
                return flight
        return _Flight()

    def _load(self, key: tuple[str, Hashable], flight: _Flight, load: Callable[[], Any]) -> Any:
        """Run ``load()`` for ``flight``'s waiters; store the result if the
        flight still owns the key and no write overtook it."""
        try:
            flight.result = load()
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                # Not ours any more after a take-over (or a fork): leave the
                # key, and its successor's flight, alone.
                if self._flights.get(key) is flight:
                    del self._flights[key]
                    if flight.error is None and not flight.stale:
                        self._entries[key] = flight.result
            flight.done.set()
        return flight.result

    def invalidate(self, key: tuple[str, Hashable]) -> None:
        with self._lock:
            self._entries.pop(key, None)
            flight = self._flights.get(key)
            if flight is not None:
                flight.stale = True

    def invalidate_table(self, table: str) -> None:
        """Drop every entry of ``table`` (a write whose keys are unknown)."""
        with self._lock:
            for key in [key for key in self._entries if key[0] == table]:
                del self._entries[key]
            for key, flight in self._flights.items():
                if key[0] == table:
                    flight.stale = True

    def invalidate_write(self, operation: str, params: dict[str, Any], key_names: KeyNames) -> None:
        """Drop what a write touches: its keys; its tables when the keys
        cannot be named; everything for a PartiQL write (table unknown)."""
        try:
            keys = written_keys(operation, params, key_names)
        except Exception:  # noqa: BLE001 - the key schema is unknown: drop the tables
            keys = []
        for table, key in keys:
            self.invalidate((table, key_fingerprint(key)))
        if keys:
            return
        tables = tables_of(operation, params)
        for table in tables:
            self.invalidate_table(table)
        if not tables:
            self.clear()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            for flight in self._flights.values():
                flight.stale = True

    def _new_entries(self) -> cachetools.TTLCache[tuple[str, Hashable], Any]:
        return cachetools.TTLCache(maxsize=self.policy.maxsize, ttl=self.policy.ttl, timer=self._clock)

    def _after_fork(self) -> None:
        """In a forked child: the lock and the loads in flight belonged to the
        parent's threads. A reader in the child must not wait for a load that
        no thread will finish, so it starts its own."""
        if self._lock.locked():
            # Another thread was changing the entries at the fork: the
            # TTLCache's links may be half-updated. Start empty.
            self._entries = self._new_entries()
        self._lock = threading.Lock()
        self._flights = {}
