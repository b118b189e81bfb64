"""Event records and the hooks that carry them to listeners.

Metrics, the status page, logs and Server-Timing all listen to the same
events; none of them is threaded through the call path. A listener is any
callable taking one event. A listener that raises is logged and skipped:
instrumentation never fails a DynamoDB call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, fields
from typing import Protocol

log = logging.getLogger("regionproxy")

OK, CALLER_ERROR, FAULT, FAILED = "ok", "caller_error", "fault", "failed"
# The operation and kind of a health probe's CallFinished: not a DynamoDB
# call of the app's, so latency, hedging and live-fault listeners skip it.
PROBE, PROBE_KIND = "Probe", "probe"


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
    """A region's breaker moved from ``old`` to ``new`` state.

    ``seq`` grows with every change a breaker makes, in the order it made
    them. Changes are announced after the breaker's lock is released, so
    two of them can reach a listener newest first: a listener that shows
    the current state ignores a change older than the last it applied.
    0 means not numbered (an event built by hand).
    """

    region: str
    old: str
    new: str
    at: float
    seq: int = 0


@dataclass(frozen=True, slots=True)
class FailedOver:
    """A call went on to ``to_region`` after ``from_region`` (the preferred
    region) did not serve it, for ``reason``. ``outcome`` says how that
    attempt ended: ``ok`` (served there), ``caller_error`` or ``fault``;
    every failover attempt is counted, not only the ones that succeed."""

    operation: str
    from_region: str
    to_region: str
    reason: str
    at: float
    outcome: str = OK


@dataclass(frozen=True, slots=True)
class OperationFinished:
    """One call of the app's (all its attempts, in every region) ended.

    ``outcome`` is ``ok``, ``caller_error`` (the caller gets DynamoDB's
    error) or ``failed`` (no region could serve it); ``region`` is the
    region that answered last, if any; ``attempts`` counts the attempts.
    """

    operation: str
    kind: str
    outcome: str
    region: str | None
    duration: float
    attempts: int


@dataclass(frozen=True, slots=True)
class PoisonRequest:
    """A request failed with a server error in every region that answered
    it: the request's fault, so no breaker counted it."""

    operation: str
    regions: tuple[str, ...]
    error: str
    at: float


@dataclass(frozen=True, slots=True)
class ReplicaMissing:
    """``region`` answered that ``table`` does not exist there while
    another region has it: a Global Table without a replica in that region."""

    region: str
    table: str
    at: float


@dataclass(frozen=True, slots=True)
class Hedged:
    """A read was also sent to ``to_region`` after ``from_region`` had not
    answered within ``delay`` seconds. ``outcome``: ``won`` (the hedge
    answered first), ``lost`` (the preferred region did), ``failed``
    (neither served), or ``refused`` (the budget was spent: not sent)."""

    operation: str
    from_region: str
    to_region: str
    outcome: str
    delay: float


# -- issue 20 (r20-routing): strongly consistent reads ------------------------
@dataclass(frozen=True, slots=True)
class ConsistencyDowngraded:
    """A strongly consistent read (``ConsistentRead=True``) of ``tables``, of
    which one is an MREC Global Table (or of a kind not known), failed over
    from ``from_region`` and was served by ``to_region``: it may not show
    the latest writes made in ``from_region``. An MRSC table's reads fail
    over with their meaning intact, and raise none."""

    operation: str
    tables: tuple[str, ...]
    from_region: str
    to_region: str
    at: float


# -- end issue 20 --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameResolved:
    """A health probe resolved ``region``'s endpoint host name (every probe
    interval, in every process): ``ok`` False when it did not resolve (an
    empty DNS record, a resolver that is down); ``duration`` in seconds."""

    region: str
    ok: bool
    duration: float
    at: float


@dataclass(frozen=True, slots=True)
class ConnectionWarmed:
    """A probe thread kept a connection to ``region`` open in this process's
    pool for it (every probe interval, in every process): ``result`` is
    ``opened``, ``kept``, ``failed``, ``busy`` or ``skipped``
    (:mod:`regionproxy._regions.warming`); ``duration`` in seconds."""

    region: str
    result: str
    duration: float
    at: float


@dataclass(frozen=True, slots=True)
class RegionProbed:
    """A health probe of ``region`` by this process ended: ``ok``, or the
    ``reason`` it failed (``dns``, ``connection_refused``, ``read_timeout``,
    ``credentials_rejected``, ...)."""

    region: str
    ok: bool
    duration: float
    reason: str | None
    at: float


@dataclass(frozen=True, slots=True)
class ReplicationLag:
    """The replication canary's figure for heartbeats written in ``source``
    and read in ``replica``: ``lag`` seconds (None: not measured yet) and
    ``state`` (ok, lagging, stalled, source_down, replica_down, unknown; or
    not_measured, once, from a process that lost the canary lease to another:
    it reports no figure now)."""

    source: str
    replica: str
    lag: float | None
    state: str
    at: float


@dataclass(frozen=True, slots=True)
class RegionDemoted:
    """Hedges kept winning against ``region`` (slow, not down): reads try it
    last for ``seconds``."""

    region: str
    seconds: float
    at: float


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """A read looked in the cache."""

    table: str
    operation: str
    hit: bool


@dataclass(frozen=True, slots=True)
class CacheBypassed:
    """A read of ``table`` went past the cache, to DynamoDB, and its answer
    was not kept: this worker's link to its fleet is down, so it cannot hear
    the other workers' drops (see :doc:`/concepts/fleet`)."""

    table: str
    operation: str


@dataclass(frozen=True, slots=True)
class CacheDropped:
    """``count`` entries of ``table`` left the read cache for ``reason``:
    ``size`` (evicted, least recently used first) or ``expired``."""

    table: str
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class FleetDropsApplied:
    """``count`` cache drops published by another worker of the fleet (its
    writes) were applied to this worker's cache."""

    count: int


@dataclass(frozen=True, slots=True)
class FleetCacheFlushed:
    """This worker emptied its cache because it may have missed drops of
    the fleet: ``reason`` is ``reconnect`` (a gap in its subscription)."""

    reason: str


@dataclass(frozen=True, slots=True)
class FleetChanged:
    """This process's link to its fleet's Redis went up (``connected``) or
    down (``reason`` says why); while down, the process keeps its own state."""

    fleet: str
    connected: bool
    at: float
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class FleetTraffic:
    """One message of ``topic`` was ``sent`` to the fleet or ``received``
    from it (heartbeats are not counted)."""

    fleet: str
    topic: str
    direction: str


@dataclass(frozen=True, slots=True)
class SidecarRequest:
    """The sidecar (``regionproxy serve``) answered one DynamoDB request:
    its operation ("unknown" when refused before the target was read), the
    table it names ("" for none or several), the HTTP status and seconds."""

    operation: str
    table: str
    status: int
    duration: float


Event = (
    CallFinished
    | BreakerChanged
    | FailedOver
    | OperationFinished
    | PoisonRequest
    | ReplicaMissing
    | Hedged
    | RegionDemoted
    | ConsistencyDowngraded
    | CacheLookup
    | CacheBypassed
    | CacheDropped
    | FleetDropsApplied
    | FleetCacheFlushed
    | FleetChanged
    | FleetTraffic
    | SidecarRequest
    | ConnectionWarmed
)


def _setting_slots(cls: type) -> None:
    """Give a frozen slotted dataclass an ``__init__`` that sets each slot
    through its member descriptor: the same signature, defaults and result
    as the generated one, which calls ``object.__setattr__`` by a global
    lookup per field. Two records are built on every DynamoDB call; after
    botocore's work has evicted the caches, building one took 1.1 us this
    way, 0.6 us that way.

    And a second way to build one, ``cls.build(...)``, for the records the
    attempt loop builds on every call: a twin class with the same slots and
    no ``__setattr__`` of its own stores each field as any object's
    attribute (Python's quickest store), then becomes ``cls`` (``__class__``
    assignment: the two layouts are the same). The result is the record
    ``cls(...)`` makes, frozen as it is, for half the instructions
    (``valgrind --tool=callgrind``: 3.0k against 5.8k for a ``CallFinished``).
    """
    names = [f.name for f in fields(cls)]
    scope: dict[str, object] = {"_record": cls}
    params = []
    for f in fields(cls):
        if f.default is MISSING:
            params.append(f.name)
        else:
            scope[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        scope[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
    body = "".join(f"    _set_{name}(self, {name})\n" for name in names)
    exec(f"def __init__(self, {', '.join(params)}):\n{body}", scope)  # noqa: S102 - built from the fields only
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
    cls.__init__ = init  # type: ignore[misc]
    stores = "".join(f"    self.{name} = {name}\n" for name in names)
    exec(f"def build(self, {', '.join(params)}):\n{stores}    self.__class__ = _record\n", scope)  # noqa: S102
    twin = type(cls.__name__, (), {"__slots__": cls.__slots__, "__init__": scope["build"], "__module__": cls.__module__})
    twin.__qualname__ = f"{cls.__qualname__}.build"
    twin.__doc__ = f"``{cls.__name__}.build(...)`` is ``{cls.__name__}(...)``, built for less (see ``_setting_slots``)."
    cls.build = twin  # type: ignore[attr-defined]


for _record in (
    CallFinished, BreakerChanged, FailedOver, OperationFinished, PoisonRequest, ReplicaMissing, Hedged, RegionDemoted,
    CacheLookup, CacheBypassed, CacheDropped, FleetDropsApplied, FleetCacheFlushed, FleetChanged, FleetTraffic, SidecarRequest,
):  # fmt: skip
    _setting_slots(_record)


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

    def emit_each(self, *events: Event) -> None:
        """``emit`` each of ``events`` in turn (the same deliveries, in the
        same order), for one call less: the attempt loop ends every call
        served at once with two events."""
        for event in events:
            for listener in self._listeners:  # read again for each, as emit() would
                try:
                    listener(event)
                except Exception:  # noqa: BLE001 - instrumentation must not fail a call
                    log.exception("regionproxy listener %r failed on %s", listener, type(event).__name__)
