"""Key schemas: which attributes make up a table's key.

The cache and read-your-writes need the key of an item a ``PutItem``
writes, and only the table knows which attributes that is. Schemas come
from the session's ``key_schemas`` setting (no I/O at all: right for
least-privilege IAM policies that deny ``DescribeTable``), or are learned
from ``DescribeTable`` once per table, asked through the session's breakers
like any other call so that a dead or evacuated region costs nothing.

The rules:

- A failed ``DescribeTable`` (denied by IAM, no such table, every region
  down) is remembered: the table's key names stay unknown, without a
  request, for ``retry_after`` seconds (a minute by default), then it is
  asked again. Each denial is an entry in the account's audit log, and a
  write must not add one, let alone two.
- One thread at a time asks about a table: another thread that needs its
  names meanwhile is told they are unknown, at once (its caller falls back
  to the whole table), rather than asking too or waiting.
- A learned schema belongs to the table it described: a table-level
  control-plane call through the session (DeleteTable, CreateTable, ...)
  makes the session :meth:`~KeySchemas.forget` it. Declared schemas are
  configuration and stay.

Callers treat :class:`KeySchemaUnknown` like any failure to learn: the
cache drops the whole table, read-your-writes follows the whole table.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from regionproxy._forks import reset_after_fork

# (table, preferred region or None) -> DescribeTable's "Table"
Describe = Callable[[str, "str | None"], Mapping[str, Any]]


class KeySchemaUnknown(LookupError):
    """A table's key names are not known now, and are not being asked for:
    a recent ``DescribeTable`` failed, or another thread is asking."""

    def __init__(self, table: str, reason: str) -> None:
        super().__init__(f"key schema of table {table!r} unknown: {reason}")
        self.table = table


class KeySchemas:
    """Key attribute names per table.

    :param declared: ``{"Blog": ("PK", "SK")}``, known without I/O.
    :param describe: asks DynamoDB for a table's description, through the
        session's breakers (raises what the session raises).
    :param clock: monotonic seconds; tests pass a fake one.
    :param retry_after: seconds a failed ``DescribeTable`` is remembered
        before the table is described again.
    """

    def __init__(
        self,
        declared: Mapping[str, tuple[str, ...]],
        describe: Describe,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_after: float = 60.0,
    ) -> None:
        self._declared = dict(declared)
        self._names: dict[str, tuple[str, ...]] = dict(declared)
        self._describe = describe
        self._clock = clock
        self.retry_after = retry_after
        self._failed: dict[str, tuple[float, str]] = {}  # table -> (ask again at, why)
        self._asking: set[str] = set()  # tables being described by some thread
        self._superseded: set[str] = set()  # of those, tables forgotten meanwhile
        self._lock = threading.Lock()
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"KeySchemas({self._names!r})"

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._asking = set()  # the parent's threads will not finish asking here
        self._superseded = set()

    def known(self, table: str) -> tuple[str, ...] | None:
        """The key names if known now, without I/O."""
        return self._names.get(table)

    def learn(self, table: str, description: Mapping[str, Any]) -> tuple[str, ...]:
        """Keep the key names from a ``DescribeTable`` answer's ``Table``."""
        names = tuple(part["AttributeName"] for part in description["KeySchema"])
        with self._lock:
            self._failed.pop(table, None)
            return self._names.setdefault(table, names)

    def forget(self, table: str) -> None:
        """Forget what was learned of ``table`` (its key names, or that
        describing it failed): it was deleted, created or changed."""
        with self._lock:
            self._failed.pop(table, None)
            if table in self._asking:
                self._superseded.add(table)
            if table not in self._declared:
                self._names.pop(table, None)

    def names(self, table: str, prefer: str | None = None) -> tuple[str, ...]:
        """The key names, described once if not known (``prefer`` first).

        Raises what describing raised, or :class:`KeySchemaUnknown` while a
        failure is remembered or another thread is asking.
        """
        names = self._names.get(table)
        if names is not None:
            return names
        with self._lock:
            names = self._names.get(table)
            if names is not None:
                return names
            failed = self._failed.get(table)
            if failed is not None and self._clock() < failed[0]:
                raise KeySchemaUnknown(table, f"DescribeTable failed ({failed[1]}); asked again later")
            if table in self._asking:
                raise KeySchemaUnknown(table, "another thread is describing it")
            self._asking.add(table)
            self._superseded.discard(table)
        try:
            # The lock never covers the I/O.
            description = self._describe(table, prefer)
            names = tuple(part["AttributeName"] for part in description["KeySchema"])
        except Exception as error:
            with self._lock:
                if not self._done_asking(table):
                    self._failed[table] = (self._clock() + self.retry_after, f"{type(error).__name__}: {error}")
            raise
        except BaseException:
            with self._lock:
                self._done_asking(table)
            raise
        with self._lock:
            if self._done_asking(table):
                return names  # for this caller only
            self._failed.pop(table, None)
            return self._names.setdefault(table, names)

    def _done_asking(self, table: str) -> bool:
        """Under the lock: ``table`` is no longer being asked about; whether
        it was forgotten meanwhile (the answer may describe the table as it
        was: it is not kept)."""
        self._asking.discard(table)
        superseded = table in self._superseded
        self._superseded.discard(table)
        return superseded
