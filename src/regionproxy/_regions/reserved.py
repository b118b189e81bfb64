"""Reserved keys: a key of a table's own key types that no app item has.

The health probe (``probe_table``: a ``GetItem`` of a key no item has) and
the replication canary (its heartbeat items) both send a key the app never
uses, in a table whose key attributes may be strings, numbers or binary.
A key of the wrong type is DynamoDB's ``ValidationException``: an answer
that proves nothing of the table's data plane (the probe would judge the
region up without reading a partition; the canary could write nothing).
So both build their keys here, from the table's key types.

Rules:

- :func:`reserved_key`: in every key attribute, ``prefix + tag`` as a
  string for an ``S`` attribute and as its UTF-8 bytes for a ``B`` one;
  for an ``N`` attribute a reserved number, ``-9.<crc32 of tag, 10
  digits>1E+125``, near the most negative number DynamoDB stores (an
  attribute of an unknown type is taken for a string).
- :class:`KeyTypes`: the key attributes' types come from the table's
  ``DescribeTable`` (asked once per process and user; learned by the
  session too, :meth:`learn_table`). While it fails, e.g. denied by IAM
  with the key names declared, the attributes are taken for strings and
  it is asked again :data:`DESCRIBE_AGAIN` seconds later; with the key
  names unknown too, its error is raised (nothing to build a key from).
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from regionproxy._forks import reset_after_fork
from regionproxy.errors import ConfigError

DESCRIBE_AGAIN = 60.0  # seconds before a failed DescribeTable (for key types) is asked again
TYPES = ("S", "N", "B")


def reserved_key(attributes: tuple[tuple[str, str], ...], prefix: str, tag: str) -> dict[str, Any]:
    """A key no app item has (the module's rules): ``attributes`` are the
    table's key attributes, ``(name, type)`` with type ``S``, ``N`` or ``B``."""
    values = {
        "S": {"S": prefix + tag},
        "B": {"B": (prefix + tag).encode()},
        "N": {"N": f"-9.{zlib.crc32(tag.encode()):010d}1E+125"},
    }
    return {name: values.get(kind, values["S"]) for name, kind in attributes}


def key_types(description: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The types (``S``, ``N``, ``B``) of ``names`` in a ``DescribeTable`` answer's ``Table``."""
    defined = {d.get("AttributeName"): d.get("AttributeType") for d in description.get("AttributeDefinitions", ()) if isinstance(d, Mapping)}
    return {name: defined[name] for name in names if defined.get(name) in TYPES}


class KeyNames(Protocol):
    """What :class:`KeyTypes` asks of the session."""

    def key_names(self, table: str) -> tuple[str, ...] | None: ...

    def learn_table(self, table: str, description: dict[str, Any]) -> None: ...


class KeyTypes:
    """``table``'s key attributes with their types, learned from ``DescribeTable``.

    :param session: gives the key names (declared or learned) and learns the description.
    :param table: the table.
    :param setting: the setting named in the :class:`ConfigError` of a
        table without a key schema.
    """

    def __init__(self, session: KeyNames, table: str, setting: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.session = session
        self.table = table
        self.setting = setting
        self._clock = clock
        self._lock = threading.Lock()
        self._types: dict[str, str] | None = None  # key attribute -> S, N or B, from DescribeTable
        self._failed_at = float("-inf")  # when a DescribeTable for key types last failed
        reset_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    @property
    def learned(self) -> bool:
        """True once the types came from a ``DescribeTable``."""
        return self._types is not None

    def attributes(self, describe: Callable[[], dict[str, Any]]) -> tuple[tuple[str, str], ...]:
        """The key attributes, ``(name, type)``; ``describe()`` (the table's
        ``DescribeTable`` answer's ``Table``) is called while the types are
        not known (the module's rules), outside the lock."""
        names = self.session.key_names(self.table)
        with self._lock:
            types, failed_at = self._types, self._failed_at
        if types is None and (names is None or self._clock() - failed_at >= DESCRIBE_AGAIN):
            try:
                description = describe()
            except Exception:
                if names is None:
                    raise  # nothing to build a key from
                with self._lock:
                    self._failed_at = self._clock()  # strings meanwhile; asked again later
            else:
                self.session.learn_table(self.table, description)
                names = self.session.key_names(self.table)
                types = key_types(description, names or ())
                with self._lock:
                    self._types = types
            if names is None:
                raise ConfigError(f"no key schema for table {self.table!r}", setting=self.setting)
        return tuple((name, (types or {}).get(name, "S")) for name in names)
