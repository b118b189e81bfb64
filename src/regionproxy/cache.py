"""The read cache: hot ``GetItem`` results, invalidated at once by writes.

Only eventually consistent reads are cached (``ConsistentRead=True``
bypasses the cache). A write through the session drops what it touches
before it is sent and again after it returns, and a read that started
before a write never stores its (older) result after it. Concurrent misses
for one key make one DynamoDB call; the others wait for its result. The
lock guards the dictionaries, never the I/O.

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
from regionproxy.operations import KeyNames, key_fingerprint, tables_of, written_keys


class _Flight:
    """One in-progress load that other readers of the same key wait for."""

    __slots__ = ("done", "result", "error", "stale")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        # Set by an invalidation while loading: the result may predate a
        # write, so it is returned to its readers but never stored.
        self.stale = False


class ReadCache:
    """A TTL cache of responses with single-flight loading.

    :param policy: ``maxsize`` entries, each for ``ttl`` seconds.
    :param clock: monotonic seconds; tests pass a fake one.
    """

    def __init__(self, policy: CachePolicy, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._entries: cachetools.TTLCache[tuple[str, Hashable], Any] = cachetools.TTLCache(
            maxsize=policy.maxsize, ttl=policy.ttl, timer=clock
        )
        self._lock = threading.Lock()
        self._flights: dict[tuple[str, Hashable], _Flight] = {}

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
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return copy.deepcopy(flight.result), False
        try:
            flight.result = load()
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                del self._flights[key]
                if flight.error is None and not flight.stale:
                    self._entries[key] = flight.result
            flight.done.set()
        return copy.deepcopy(flight.result), False

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
