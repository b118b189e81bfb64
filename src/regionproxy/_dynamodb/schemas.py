"""Key schemas: which attributes make up a table's key.

The cache and read-your-writes need the key of an item a ``PutItem``
writes, and only the table knows which attributes that is. Schemas come
from the session's ``key_schemas`` setting (no I/O at all: right for
least-privilege IAM policies that deny ``DescribeTable``), or are learned
from ``DescribeTable`` once per table, asked through the session's breakers
like any other call so that a dead or evacuated region costs nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from regionproxy._forks import reset_after_fork

# (table, preferred region or None) -> DescribeTable's "Table"
Describe = Callable[[str, "str | None"], Mapping[str, Any]]


class KeySchemas:
    """Key attribute names per table.

    :param declared: ``{"Blog": ("PK", "SK")}``, known without I/O.
    :param describe: asks DynamoDB for a table's description, through the
        session's breakers (raises what the session raises).
    """

    def __init__(self, declared: Mapping[str, tuple[str, ...]], describe: Describe) -> None:
        self._names: dict[str, tuple[str, ...]] = dict(declared)
        self._describe = describe
        self._lock = threading.Lock()
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"KeySchemas({self._names!r})"

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def known(self, table: str) -> tuple[str, ...] | None:
        """The key names if known now, without I/O."""
        return self._names.get(table)

    def learn(self, table: str, description: Mapping[str, Any]) -> tuple[str, ...]:
        """Keep the key names from a ``DescribeTable`` answer's ``Table``."""
        names = tuple(part["AttributeName"] for part in description["KeySchema"])
        with self._lock:
            return self._names.setdefault(table, names)

    def names(self, table: str, prefer: str | None = None) -> tuple[str, ...]:
        """The key names, described once if not known (``prefer`` first)."""
        names = self._names.get(table)
        if names is not None:
            return names
        # Two threads may both describe a new table once: harmless, and the
        # lock never covers the I/O.
        return self.learn(table, self._describe(table, prefer))
