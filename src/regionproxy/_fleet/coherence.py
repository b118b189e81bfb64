"""Cache coherence and read-your-writes across the workers of a fleet.

Every worker of every app server keeps its own read cache and its own
memory of recent writes (:class:`~regionproxy._routing.router.StickyWrites`).
:class:`SharedWrites` makes a write through any worker reach the others,
through the fleet's Redis link (:mod:`regionproxy._fleet.link`), by these
rules:

- A write publishes one message after DynamoDB answers (or after it failed
  in a way that may have applied it), and makes one more round trip to
  Redis, before it returns to its caller: Redis has then written the
  message to every worker's socket (a publish's own reply may come
  before the other workers' copies are written). The message carries
  the cache drops it made locally (:func:`regionproxy._cache.keys.write_drops`:
  its items, by the key fingerprint of :mod:`regionproxy._dynamodb.keys`,
  and the query pages they may change; its tables; everything) and, when
  the write counts for read-your-writes, what was remembered of it (the
  region that took it, or may have; its tables and item fingerprints;
  whether it is uncertain). A control-plane call that changes a table
  (DeleteTable, CreateTable, ...) publishes the table: every worker drops
  it from its cache and forgets its learned key schema.
- A worker applies a message in the order it was published: first what
  was remembered (so its reads of the item, and its table's queries as the
  local rule says, go to the region that took the write for the sticky
  window, counted from the message's arrival), then the drops. A drop ends
  the loads in flight of what it names, as a local write's drop does
  (:meth:`~regionproxy._cache.store.ReadCache.drop`): a reader that loaded
  the old item before the drop arrived never stores it after; and one that
  loads after the drop reads from the region the write is remembered in.
- The publishing worker ignores its own messages (it applied them before
  publishing; the link marks them ``mine``).
- **A worker that cannot hear the fleet's drops does not answer from its
  cache.** The cache is used only while this worker's subscription is
  live: from the moment its link goes down (an operation of any thread
  failed, the listener lost the subscription or its ping went unanswered,
  the link was closed), and in each process until its first subscription
  is live, the cache is bypassed (:meth:`~regionproxy._cache.store.ReadCache.link_changed`):
  emptied, every read loaded from DynamoDB for its caller alone, nothing
  stored, counted (``status()["cache"]["bypassed"]``, ``fleet_link``:
  ``down``, and :class:`~regionproxy.events.CacheBypassed`). This
  worker's own writes still drop what they touch. Once the subscription is
  live again it is emptied once more (the drops of the gap were missed;
  ``reconnect_flushes`` counts gaps) and used. The races: a drop published
  just before the link went down was either in the socket (applied in the
  listener's last round, before it found the socket closed) or is missed
  and covered by the bypass; a load that began before the link went down
  or came back stores nothing after (each change empties the cache in one
  step with the flag, which ends every load in flight, and no load is
  registered while bypassed); changes announced out of order by two
  threads are numbered by the link, and the older one is ignored; a
  request that settles while the listener is finding the socket closed
  waits for that round, and the bypass is in place before the round ends;
  the cache is used again only after the link says ``connected``, from
  when a request's settle waits for what arrived. What no worker can do:
  know at once that a *paused* Redis stopped delivering. Its listener finds
  out by a ping after a second of silence, answered or not within a
  second more, so for about two seconds after a pause a write elsewhere
  whose drop Redis could not take may be read stale here.
- A message that cannot be read empties the cache (it may have been a drop).
- A publish that fails (Redis down, slow or paused past the link's
  timeout; the link's breaker open) costs the caller nothing but that
  timeout: the write returns, and its message is kept (at most
  ``MAX_UNSENT``; past that they become one "drop everything") and sent
  first with the next one, or when the link reconnects. Until then the
  workers whose links are up and did not hear it keep their copies, stale
  for at most the cache's TTL; the writer's own link is down (its publish
  failed), so its own cache is bypassed. No Redis error reaches the caller.
- A cache hit never touches Redis: nothing here is on the read path. A
  drop is applied by the link's listener thread, shortly after the write
  returns (``benchmarks/bench_fleet.py`` measures how long). So that the
  next request, on any worker, reads the write, the request settles first
  (:meth:`SharedWrites.settle`, which the middleware calls as each request
  starts): it waits for the listener to dispatch whatever had already
  reached the process (at once when nothing has; at most a second, the
  listener's own scheduling, not Redis), so every drop published before the
  request arrived is applied before it is served, however late the
  listener thread was scheduled.

Messages are JSON-ready dicts (version ``V``): fingerprints are lists of
``[name, kind, value]``, binary values in base64.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Protocol

from regionproxy._cache.keys import EVERYTHING, ITEM, TABLE, Drop
from regionproxy._cache.store import ReadCache
from regionproxy._fleet.link import FleetMessage
from regionproxy._forks import reset_after_fork
from regionproxy._routing.router import StickyWrites
from regionproxy.events import FleetCacheFlushed, FleetDropsApplied, Hooks

__all__ = ["MAX_UNSENT", "Remembered", "SharedWrites", "TOPIC", "V"]

log = logging.getLogger("regionproxy")

TOPIC = "writes"
V = 1
MAX_UNSENT = 100  # messages kept while Redis cannot take them; past that, one "drop everything"

# What a write was remembered as (StickyWrites.remember's arguments):
# (region, tables, [(table, fingerprint)] or None, uncertain).
Remembered = tuple[str, list[str], list[tuple[str, Hashable]] | None, bool]


class Link(Protocol):
    """What :class:`SharedWrites` needs of the fleet's link."""

    def start(self) -> None: ...

    def settle(self) -> None: ...

    def publish(self, topic: str, message: dict[str, Any]) -> bool: ...

    def ping(self) -> bool: ...

    def subscribe(self, topic: str, callback: Callable[[FleetMessage], None]) -> None: ...

    def on_link(self, callback: Callable[[bool, int], None]) -> None: ...

    def on_reconnect(self, callback: Callable[[], None]) -> None: ...


class SharedWrites:
    """Send this worker's writes to the fleet, and apply the fleet's here.

    :param link: the fleet's Redis link (publish, subscribe, on_reconnect).
    :param regions: this worker's regions: a remembered write of another
        region (a fleet name shared by apps of other regions) is ignored.
    :param cache: this worker's read cache, or None.
    :param sticky: this worker's read-your-writes memory.
    :param forget_table: forget a table's learned key schema (a table
        changed by a control-plane call in another worker).
    :param hooks: where :class:`~regionproxy.events.FleetDropsApplied` and
        :class:`~regionproxy.events.FleetCacheFlushed` are announced.
    """

    def __init__(
        self,
        link: Link,
        *,
        regions: Iterable[str],
        cache: ReadCache | None,
        sticky: StickyWrites,
        forget_table: Callable[[str], None],
        hooks: Hooks,
    ) -> None:
        self._link = link
        self._regions = frozenset(regions)
        self._cache = cache
        self._sticky = sticky
        self._forget_table = forget_table
        self._hooks = hooks
        self._lock = threading.Lock()  # guards _unsent
        self._unsent: list[dict[str, Any]] = []
        self.invalidations_applied = 0
        self.reconnect_flushes = 0
        self.sent = 0
        self.unsendable = 0  # messages Redis could not take when first sent
        if cache is not None:
            cache.follow_link()  # bypassed until the subscription is live
        link.subscribe(TOPIC, self._received)
        link.on_reconnect(self._reconnected)
        link.on_link(self._link_changed)
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"SharedWrites(applied={self.invalidations_applied}, flushes={self.reconnect_flushes}, unsent={len(self._unsent)})"

    def status(self) -> dict[str, int]:
        return {
            "invalidations_applied": self.invalidations_applied,
            "reconnect_flushes": self.reconnect_flushes,
            "sent": self.sent,
            "unsendable": self.unsendable,  # publishes Redis did not take (kept, sent later)
            "unsent": len(self._unsent),
        }

    def start(self) -> None:
        """Listen to the fleet from this process on (a no-op once it does;
        the session's joining the fleet does it, and so does a publish)."""
        self._link.start()

    def settle(self) -> None:
        """Apply every message of the fleet that has reached this process
        (a bounded wait): see :meth:`~regionproxy._fleet.link.FleetLink.settle`."""
        self._link.settle()

    # -- sending ---------------------------------------------------------------------

    def wrote(self, drops: Iterable[Drop], remembered: Remembered | None) -> None:
        """A write (or one that may have been applied) dropped ``drops``
        from this worker's cache and was ``remembered`` for read-your-writes
        (None: not remembered). Publishes both before the write returns;
        never raises."""
        write: dict[str, Any] = {}
        try:
            encoded = [_encode_drop(drop) for drop in drops]
            if encoded:
                write["d"] = encoded
            if remembered is not None:
                region, tables, keys, uncertain = remembered
                write["r"] = [
                    _text(region),
                    [_text(table) for table in tables],
                    None if keys is None else [[_text(table), _encode_fingerprint(fp)] for table, fp in keys],
                    bool(uncertain),
                ]
        except Exception:  # noqa: BLE001 - a key this module cannot encode: every worker drops everything
            log.exception("regionproxy: a write's cache drops could not be encoded; the fleet drops everything")
            write = {"d": [[EVERYTHING]]}
        if write:
            self._send(write)

    def changed(self, tables: Iterable[str]) -> None:
        """A control-plane call changed ``tables`` (or may have): every
        worker drops them and forgets their key schemas. Never raises."""
        tables = [table for table in tables if isinstance(table, str)]
        if tables:
            self._send({"c": tables})

    def _send(self, write: dict[str, Any] | None) -> None:
        """Publish ``write`` after what could not be sent before (None: only that)."""
        with self._lock:
            writes = self._unsent if write is None else [*self._unsent, write]
            self._unsent = []
        if not writes:
            return
        message = {"v": V, "w": writes}
        try:
            sent = bool(self._link.publish(TOPIC, message))
        except Exception:  # noqa: BLE001 - Redis is never a new way to fail
            log.debug("regionproxy: fleet publish failed", exc_info=True)
            sent = False
        if sent:
            self.sent += 1
            # Delivered, not only taken: once this round trip is answered,
            # every worker's socket holds the message (see FleetLink.ping),
            # so a request that settles after this write returns sees it.
            self._link.ping()
            return
        self.unsendable += 1
        with self._lock:
            # Kept in order, before any write that failed meanwhile.
            unsent = [*writes, *self._unsent]
            if len(unsent) > MAX_UNSENT:
                unsent = [{"d": [[EVERYTHING]]}]
            self._unsent = unsent

    # -- receiving -------------------------------------------------------------------

    def _received(self, heard: FleetMessage) -> None:
        """A message of the fleet (on the link's listener thread): applied
        unless it is this worker's own."""
        if heard.mine:
            return
        message = heard.body
        try:
            if message.get("v") != V:
                raise ValueError(f"message version {message.get('v')!r}")
            applied = 0
            for write in message["w"]:
                applied += self._apply(write)
        except Exception:  # noqa: BLE001 - it may have been a drop: drop everything
            log.warning("regionproxy: unreadable fleet message; the cache is emptied", exc_info=True)
            if self._cache is not None:
                self._cache.clear()
            applied = 1
        if applied:
            self.invalidations_applied += applied
            self._hooks.emit(FleetDropsApplied(applied))

    def _apply(self, write: dict[str, Any]) -> int:
        """One write of another worker: remembered first, then dropped (see
        the module's rules). Returns the number of drops applied."""
        remembered = write.get("r")
        if remembered is not None:
            region, tables, keys, uncertain = remembered
            if region in self._regions:  # else not a region reads could follow here
                self._sticky.remember(
                    region,
                    [_text(table) for table in tables],
                    None if keys is None else [(_text(table), _decode_fingerprint(fp)) for table, fp in keys],
                    uncertain=uncertain is not False,
                )
        changed = [_text(table) for table in write.get("c", ())]
        for table in changed:
            self._forget_table(table)
        cache = self._cache
        if cache is None:
            return 0
        drops = [_decode_drop(drop) for drop in write.get("d", ())]
        drops.extend((TABLE, table) for table in changed)
        cache.drop(drops)
        return len(drops)

    def _link_changed(self, connected: bool, epoch: int) -> None:
        """The link went down (the cache is bypassed) or is live (it is used
        again): in both cases emptied, see the module's rules."""
        if self._cache is not None:
            self._cache.link_changed(connected, epoch)

    def _reconnected(self) -> None:
        """The link's subscription had a gap: drops may have been missed, so
        the cache is emptied (again, as it is used again); and what this
        worker could not send is sent."""
        if self._cache is not None:
            self._cache.clear()
        self.reconnect_flushes += 1
        self._hooks.emit(FleetCacheFlushed("reconnect"))
        self._send(None)

    def _after_fork(self) -> None:
        """In a forked child: nothing of the parent's is left to send."""
        self._lock = threading.Lock()
        self._unsent = []
        self.invalidations_applied = self.reconnect_flushes = self.sent = self.unsendable = 0


def _text(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"not a name: {value!r}")
    return value


def _encode_fingerprint(fingerprint: Hashable | None) -> list[list[str]] | None:
    if fingerprint is None:
        return None
    encoded = []
    for name, (kind, value) in fingerprint:  # type: ignore[misc, attr-defined]
        encoded.append([_text(name), kind, base64.b64encode(value).decode("ascii") if kind == "B" else _text(value)])
    return encoded


def _decode_fingerprint(encoded: list[list[str]] | None) -> Hashable | None:
    if encoded is None:
        return None
    parts = []
    for name, kind, value in encoded:
        if not isinstance(name, str) or kind not in ("S", "N", "B") or not isinstance(value, str):
            raise ValueError(f"not a key fingerprint: {encoded!r}")
        parts.append((name, (kind, base64.b64decode(value, validate=True) if kind == "B" else value)))
    return tuple(parts)


def _encode_drop(drop: Drop) -> list[Any]:
    if drop[0] == ITEM:
        return [ITEM, _text(drop[1]), _encode_fingerprint(drop[2])]
    if drop[0] == TABLE:
        return [TABLE, _text(drop[1])]
    return [EVERYTHING]


def _decode_drop(encoded: list[Any]) -> Drop:
    kind = encoded[0]
    if kind == ITEM and isinstance(encoded[1], str) and encoded[2] is not None:
        return (ITEM, encoded[1], _decode_fingerprint(encoded[2]))
    if kind == TABLE and isinstance(encoded[1], str):
        return (TABLE, encoded[1])
    if kind == EVERYTHING:
        return (EVERYTHING,)
    raise ValueError(f"not a cache drop: {encoded!r}")
