"""botocore event emitters: the surfaces' own, and the caller's handlers.

Where botocore runs a handler decides what it sees. boto3 copies a session's
emitter onto every client it makes, so a handler registered on a boto3
session (``boto3_session.events.register(...)``) runs on every client of
it. Here the caller's clients are the surfaces (``session.client``, the
resource client); the regional clients underneath are the session's own,
and a call through a surface may make several attempts in several regions.

The rule: a handler registered on the caller's boto3 session for one of
the per-call events (:data:`PER_CALL_EVENTS`: ``provide-client-params``,
``before-parameter-build``, ``before-call``, ``after-call``,
``after-call-error``) runs on the surfaces, once per call, on what the
caller passed (Python values on the resource client), as it would on
boto3's clients; it is copied onto each surface's emitter when the surface
is built (:func:`copy_onto`), before boto3's transformations, as boto3's
resource client has it, and taken off each regional client when the
session makes one (:func:`take_off`). A handler for a per-attempt event
(``request-created``, ``before-sign``, ``before-send``, ``needs-retry``,
...) stays on the regional clients, where botocore emits those events once
per attempt, as it does for boto3's own retries. botocore's own handlers
(``botocore.handlers.BUILTIN_HANDLERS``) stay on the regional clients
alone: they belong to the client that builds and sends the request.

botocore offers no way to list an emitter's handlers, so
:func:`caller_registrations` reads its private ``_PrefixTrie`` (unchanged
since botocore 1.4); if that ever changes shape it returns None and the
caller's handlers stay where botocore put them, with a warning
(tests/_boto3/test_emitters.py pins the shape).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.handlers import BUILTIN_HANDLERS
from botocore.hooks import EventAliaser, HierarchicalEmitter

log = logging.getLogger("regionproxy")

# The events botocore's BaseClient._make_api_call emits once per call, which
# the surfaces emit (see regionproxy._boto3.client).
PER_CALL_EVENTS = ("provide-client-params", "before-parameter-build", "before-call", "after-call", "after-call-error")
_SERVICE_PARTS = ("dynamodb", "*")
_SECTIONS = ("first", "middle", "last")  # botocore's _FIRST, _MIDDLE, _LAST, in that order
_BUILTIN = frozenset((spec[0], spec[1]) for spec in BUILTIN_HANDLERS)

Handler = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Registration:
    """One handler as it was registered: its event name (``before-call``,
    ``before-call.dynamodb.PutItem``, ...), where among the event's handlers
    (``first``, ``middle``, ``last``), and its unique id and use count."""

    event: str
    handler: Handler
    section: str = "middle"
    unique_id: str | None = None
    count: int | None = None  # registered with unique_id_uses_count: how many times


class ClientEvents(EventAliaser):
    """botocore's client emitter (an ``EventAliaser`` over a
    ``HierarchicalEmitter``) that notes whether it may hold handlers other
    than its client's own.

    ``custom`` is true when it was built with the caller's handlers, and
    turns true at the first ``register*`` or ``unregister`` after it was
    built, for good: while it is false, its handlers are exactly its
    client's own, and the client may do their work without emitting.

    :param own: the client's own handlers (boto3's transformations on the
        resource client), registered last.
    :param callers: the caller's handlers (:func:`caller_registrations`),
        registered first, as a copy of the boto3 session's emitter has them.
    """

    def __init__(self, *, own: tuple[Registration, ...] = (), callers: tuple[Registration, ...] = ()) -> None:
        super().__init__(HierarchicalEmitter())
        copy_onto(self, callers)
        copy_onto(self, own)
        self.custom = bool(callers)

    # Marked before the change: a call that sees the mark emits, which is
    # right whichever way the change then goes.

    def register(self, *args: Any, **kwargs: Any) -> None:
        self.custom = True
        super().register(*args, **kwargs)

    def register_first(self, *args: Any, **kwargs: Any) -> None:
        self.custom = True
        super().register_first(*args, **kwargs)

    def register_last(self, *args: Any, **kwargs: Any) -> None:
        self.custom = True
        super().register_last(*args, **kwargs)

    def unregister(self, *args: Any, **kwargs: Any) -> None:
        self.custom = True
        super().unregister(*args, **kwargs)


def caller_registrations(events: Any) -> tuple[Registration, ...] | None:
    """The handlers registered on ``events`` (a boto3 session's ``events``)
    for the per-call events of DynamoDB calls, botocore's own left out, in
    the order each event calls them; None if ``events`` is not shaped as
    botocore's emitters are (then nothing can be told apart)."""
    try:
        emitter = events._emitter if isinstance(events, EventAliaser) else events
        root = emitter._handlers._root
        unique_ids = {id(entry["handler"]): (unique_id, entry.get("count")) for unique_id, entry in emitter._unique_id_handlers.items()}
        found: list[Registration] = []
        pending: list[tuple[tuple[str, ...], dict[str, Any]]] = [((), root)]
        while pending:
            path, node = pending.pop(0)  # breadth first: stable, and the order within a node is kept
            if path and not _per_call(path):
                continue
            values = node["values"]
            if values and path:
                event = ".".join(path)
                for section, handlers in zip(_SECTIONS, values, strict=True):
                    for handler in handlers:
                        if (event, handler) not in _BUILTIN:
                            # The trie does not keep unique ids: one handler
                            # registered under one, and elsewhere without,
                            # gets it at its first place found.
                            unique_id, count = unique_ids.pop(id(handler), (None, None))
                            found.append(Registration(event, handler, section, unique_id, count))
            pending.extend(((*path, chunk), child) for chunk, child in node["children"].items())
        return tuple(found)
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError):  # RuntimeError: changed while read
        log.warning(
            "regionproxy: cannot list the handlers of %r (botocore changed?): handlers registered on the boto3 "
            "session run on each region's client, once per attempt",
            events,
        )
        return None


def _per_call(path: tuple[str, ...]) -> bool:
    """Whether an emitter's node at ``path`` can hold handlers of a
    per-call event of DynamoDB (``before-call``, ``before-call.dynamodb``,
    ``before-call.*.PutItem``, ``before-call.dynamodb.PutItem``)."""
    return path[0] in PER_CALL_EVENTS and (len(path) == 1 or path[1] in _SERVICE_PARTS)


def copy_onto(events: Any, registrations: tuple[Registration, ...]) -> None:
    """Register each of ``registrations`` on ``events`` as it was registered."""
    for registration in registrations:
        register = {"first": events.register_first, "last": events.register_last}.get(registration.section, events.register)
        for _ in range(registration.count or 1):
            register(
                registration.event,
                registration.handler,
                unique_id=registration.unique_id,
                unique_id_uses_count=registration.count is not None,
            )


def take_off(events: Any, registrations: tuple[Registration, ...]) -> None:
    """Unregister each of ``registrations`` from ``events`` (a client's
    copy of the emitter they were registered on)."""
    for registration in registrations:
        for _ in range(registration.count or 1):
            events.unregister(
                registration.event,
                registration.handler,
                unique_id=registration.unique_id,
                unique_id_uses_count=registration.count is not None,
            )
