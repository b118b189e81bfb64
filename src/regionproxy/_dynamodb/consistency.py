"""What a Global Table's kind means for a strongly consistent read.

Global Tables come in two kinds. Multi-region eventual consistency (MREC,
``MultiRegionConsistency: EVENTUAL``, the default): a strongly consistent
read (``ConsistentRead=True``) is current only for writes made in its own
region; served by another region it may miss the latest ones. Multi-region
strong consistency (MRSC, ``STRONG``): a strongly consistent read in any
replica returns the latest write; the table has three replicas, or two and
a *witness* region that holds no readable data and is never a target.

The rules (the session applies them, :mod:`regionproxy._session.session`):

- A table's kind is declared (``consistency={"Orders": "strong"}``) or
  learned once from ``DescribeTable``, asked through the session's
  breakers; a failed description is remembered for ``retry_after`` seconds
  (the kind stays unknown meanwhile, without a request), and one thread at
  a time asks. An unknown kind is treated as MREC: a strongly consistent
  read is never let fail over silently on a guess.
- An MREC (or unknown) table's strongly consistent read that fails over is
  served, with a ``ConsistencyDowngraded`` event; with
  ``consistent_read_failover="refuse"`` it is not sent elsewhere, and the
  caller gets its region's error. An MRSC table's fails over like any read.
- A witness region of a table is never a target: a session that lists one
  as a region is misconfigured for that table, and once the table's
  description says so, every call of that table raises ``ConfigError``.

No I/O here: ``describe`` is handed in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from regionproxy._forks import reset_after_fork
from regionproxy.errors import ConfigError

STRONG, EVENTUAL = "strong", "eventual"

# (table, preferred region or None) -> DescribeTable's "Table"
Describe = Callable[[str, "str | None"], Mapping[str, Any]]


def kind_of(description: Mapping[str, Any]) -> str:
    """``strong`` (MRSC) or ``eventual`` (MREC, or a table that is not global)."""
    return STRONG if description.get("MultiRegionConsistency") == "STRONG" else EVENTUAL


def witnesses_of(description: Mapping[str, Any]) -> frozenset[str]:
    """The table's witness regions (an MRSC table has at most one)."""
    found = description.get("GlobalTableWitnesses") or ()
    return frozenset(w["RegionName"] for w in found if isinstance(w, Mapping) and isinstance(w.get("RegionName"), str))


class TableKinds:
    """Each table's kind, declared or learned once.

    :param declared: ``{"Orders": "strong"}``, known without I/O.
    :param regions: the session's regions (none may be a table's witness).
    :param describe: asks DynamoDB for a table's description, through the
        session's breakers (raises what the session raises).
    :param clock: monotonic seconds; tests pass a fake one.
    :param retry_after: seconds a failed ``DescribeTable`` is remembered.
    """

    def __init__(
        self,
        declared: Mapping[str, str],
        regions: Iterable[str],
        describe: Describe,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_after: float = 60.0,
    ) -> None:
        self._kinds: dict[str, str] = dict(declared)
        self._regions = frozenset(regions)
        self._describe = describe
        self._clock = clock
        self.retry_after = retry_after
        self._failed: dict[str, float] = {}  # table -> ask again at
        self._asking: set[str] = set()
        # table -> why (a witness listed as a region); read on every call, so
        # an attribute (its truth is one C check), not a method
        self.misconfigured: dict[str, str] = {}
        self._lock = threading.Lock()
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"TableKinds({self._kinds!r})"

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._asking = set()

    def known(self, table: str) -> str | None:
        """The kind if known now, without I/O."""
        return self._kinds.get(table)

    def learn(self, table: str, description: Mapping[str, Any]) -> str:
        """Keep the kind (and witnesses) from a ``DescribeTable`` answer's
        ``Table``. Raises ``ConfigError`` when a witness is one of the
        session's regions."""
        kind = kind_of(description)
        listed = sorted(witnesses_of(description) & self._regions)
        with self._lock:
            self._failed.pop(table, None)
            kind = self._kinds.setdefault(table, kind)
            if listed:
                self.misconfigured[table] = (
                    f"table {table!r} has {listed[0]} as its witness region (it holds no readable data); "
                    "remove it from the session's regions"
                )
        self.check([table])
        return kind

    def check(self, tables: Iterable[str]) -> None:
        """Raise ``ConfigError`` if one of ``tables`` has a witness among
        the session's regions (known once a description said so)."""
        if not self.misconfigured:  # the common path: a dict's size is one C call
            return
        for table in tables:
            why = self.misconfigured.get(table)
            if why is not None:
                raise ConfigError(why, setting="regions")

    def kind(self, table: str, prefer: str | None = None) -> str | None:
        """The kind, described once if not known (``prefer`` first); None
        while a failure is remembered, another thread is asking, or the
        description failed now (the caller treats it as MREC)."""
        kind = self._kinds.get(table)
        if kind is not None:
            return kind
        with self._lock:
            kind = self._kinds.get(table)
            if kind is not None:
                return kind
            if self._clock() < self._failed.get(table, 0.0) or table in self._asking:
                return None
            self._asking.add(table)
        try:
            description = self._describe(table, prefer)  # the lock never covers the I/O
        except Exception:  # noqa: BLE001 - unknown for now: asked again after retry_after
            with self._lock:
                self._asking.discard(table)
                self._failed[table] = self._clock() + self.retry_after
            return None
        except BaseException:
            with self._lock:
                self._asking.discard(table)
            raise
        with self._lock:
            self._asking.discard(table)
        return self.learn(table, description)
