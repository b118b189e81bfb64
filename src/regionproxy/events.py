"""Event records and the hooks that carry them to listeners.

Metrics, the status page, logs and Server-Timing all listen to the same
events; none of them is threaded through the call path. A listener is any
callable taking one event. A listener that raises is logged and skipped:
instrumentation never fails a DynamoDB call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("regionproxy")

OK, CALLER_ERROR, FAULT = "ok", "caller_error", "fault"


@dataclass(frozen=True, slots=True)
class CallFinished:
    """One attempt against one region ended.

    ``outcome`` is ``ok``, ``caller_error`` (DynamoDB answered, the request
    was wrong) or ``fault`` (the region failed); ``error`` is the error code
    or exception class name.
    """

    region: str
    operation: str
    kind: str
    duration: float
    outcome: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class BreakerChanged:
    """A region's breaker moved from ``old`` to ``new`` state."""

    region: str
    old: str
    new: str
    at: float


@dataclass(frozen=True, slots=True)
class FailedOver:
    """A call was served by ``to_region`` instead of ``from_region``."""

    operation: str
    from_region: str
    to_region: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """A read looked in the cache."""

    table: str
    operation: str
    hit: bool


Event = CallFinished | BreakerChanged | FailedOver | CacheLookup


class Listener(Protocol):
    def __call__(self, event: Event) -> None: ...


class Hooks:
    """Deliver each event to every listener, in the order they were added."""

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        # A tuple swapped whole on change: emit() reads it without a lock.
        self._listeners: tuple[Listener, ...] = tuple(listeners)

    def add(self, listener: Listener) -> None:
        """Add ``listener``; adding one already there changes nothing (so two
        middlewares on one session do not count each event twice)."""
        if listener not in self._listeners:
            self._listeners = (*self._listeners, listener)

    def remove(self, listener: Listener) -> None:
        # == not "is": each `obj.method` access makes a new, equal, bound method.
        self._listeners = tuple(known for known in self._listeners if known != listener)

    def emit(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - instrumentation must not fail a call
                log.exception("regionproxy listener %r failed on %s", listener, type(event).__name__)
