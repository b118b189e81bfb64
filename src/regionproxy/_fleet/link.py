"""The one Redis link of a process: pub/sub and a few keys, never a way to fail.

:class:`FleetLink` is how every other part of :mod:`regionproxy._fleet`
(breakers, evacuation, probe leases, cache drops) talks to the fleet's
Redis. The rules it keeps, so that nothing above it has to:

- **Redis is never a new way to fail.** No Redis error (nor any other error
  of the I/O) leaves a method: each returns its default (``None``,
  ``False``, ``{}``) instead. Every operation has a short socket timeout
  (``timeout``, 50 ms by default, connect and read alike) and redis-py's
  own retries are off.
- **A dead, slow or paused Redis costs one timeout, once.** The link has a
  breaker of its own: the first operation that fails (refused, timed out,
  closed) takes the link down, and from then on every operation returns
  its default at once, without I/O, until the listener thread has
  reconnected (with a growing pause between attempts, ``retry`` seconds
  first). Calls already in flight when Redis stopped answering each pay
  their one timeout; none after them does.
- **Subscribers hear every gap.** One listener thread per process holds the
  subscription (one channel per fleet, the ``bus``; a message names its
  topic) and runs the callbacks, in the order the messages came. A
  subscriber that is idle still finds out when Redis is paused: the
  listener pings it after ``ping_after`` seconds of silence and takes the
  link down when the answer does not come within five timeouts (one
  second at least: this checks that Redis lives, not how fast it is). When the
  link went down or a connection attempt failed, the subscription may have
  missed messages: once it is live again, the ``on_reconnect`` callbacks
  run (a cache empties itself, a breaker rereads the fleet's state). The
  ``on_connect`` callbacks run every time the subscription becomes live,
  the first time included: what a subscriber reads from the keys after
  that moment, plus the messages that follow, is the whole story.
- **Subscribers hear when they stop hearing.** The ``on_link`` callbacks run
  with ``(False, epoch)`` the moment the link goes down (on the thread that
  found it: a request whose operation failed, or the listener; before the
  failure is logged or announced, and, when the listener found it in a
  round, before that round ends, so a :meth:`FleetLink.settle` that waited
  for the round returns after them), when a connection attempt fails while
  the link was thought up, and on :meth:`FleetLink.close`; and with
  ``(True, epoch)`` once the subscription is live again, after the
  ``on_connect``/``on_reconnect`` callbacks and after ``connected`` says
  so (from then on :meth:`FleetLink.settle` waits for what arrives). They
  run outside the link's lock, so two threads' may arrive out of order:
  ``epoch`` grows with every change, and a callback that gets an epoch
  older than one it already had must ignore it (a worker's read cache
  uses this, :mod:`regionproxy._fleet.coherence`). A worker cannot tell a
  paused Redis from a quiet fleet until its ping goes unanswered: it learns
  of that outage ``ping_after`` plus at most one second late.
- **A subscriber can catch up.** :meth:`FleetLink.settle` returns once
  every message that had reached this process when it was called has been
  dispatched (its callbacks have run), waiting at most ``timeout``, and
  at once (one ``select`` on the subscription's socket) when none is
  waiting: a request that settles first sees every cache drop published
  before it arrived, however late the listener thread was scheduled. The
  listener takes the messages off the socket in rounds, and marks a round
  as running before it reads anything, so a message is always either
  still in the socket or in a round that ``settle`` waits for.
- **The password never shows.** :attr:`FleetLink.safe_url` has it replaced
  by ``***``; ``repr``, logs, :meth:`FleetLink.status` and every error the
  link records or raises use that form, and error texts from redis-py are
  scrubbed of the password before they are kept.
- **Fork-safe.** gunicorn ``--preload`` builds the link in the master and
  forks workers. Nothing connects and no thread starts until the link is
  first used in a process (:meth:`FleetLink.start`, which every operation
  calls); a forked child forgets the parent's client, subscription,
  thread, locks and counters (sockets are dropped, not closed: closing
  them would cut the parent's connections), and makes its own on first use.
- Keys are namespaced ``regionproxy:{fleet name}:...``; callers name the
  part after that (:meth:`FleetLink.key` shows the full name).

This is the only module that imports redis (redis-py).
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from regionproxy._config.settings import check_fleet_name, check_fleet_url, safe_redis_url
from regionproxy._forks import reset_after_fork
from regionproxy.errors import ConfigError
from regionproxy.events import Event, FleetChanged, FleetTraffic

log = logging.getLogger("regionproxy")

DEFAULT_TIMEOUT = 0.05
SETTLE = 1.0  # the longest settle() waits for the listener
PREFIX = "regionproxy"
BUS = "bus"
HEARTBEAT_TOPIC = "member"
PONG_FLOOR = 1.0  # seconds a ping may wait for its answer, at least
MAX_MEMBERS = 1000  # members remembered before the silent ones are forgotten


@dataclass(frozen=True, slots=True)
class FleetMessage:
    """One message heard on the fleet's bus.

    ``sender`` is the sending process's member id (``host:pid:nonce``);
    ``mine`` says this process sent it (a process hears its own messages);
    ``at`` is the sender's wall clock when it sent it.
    """

    topic: str
    body: dict[str, Any]
    sender: str
    at: float
    mine: bool


class FleetLink:
    """This process's connection to the fleet's Redis.

    :param url: ``redis://[user:password@]host[:port][/db]`` or ``rediss://``
        (TLS; redis-py's query options such as ``ssl_cert_reqs`` pass through).
    :param name: the fleet's name: every key and the channel live under
        ``regionproxy:{name}:``.
    :param timeout: seconds each Redis operation may take (connect, read).
    :param retry: seconds before the first reconnection attempt; doubles
        after each failed one, up to ``retry_max``.
    :param ping_after: seconds of silence on the subscription after which
        the listener pings Redis (a paused Redis is found this way).
    :param heartbeat: seconds between this process's presence messages
        (:meth:`members` lists who was heard lately); 0: none.
    :param settle: the longest :meth:`settle` waits for the listener to
        dispatch messages already in this process (the listener's own
        scheduling, not Redis: 50 ms was overrun on a 2-core machine at a
        load average of 16).
    :param poll: how long the listener waits for a message before it looks
        at its other duties (the bound on how late it notices ``close``).
    :param clock: wall-clock seconds (times shown, and sent to other processes).
    :param monotonic: monotonic seconds (timers).
    :param listener: receives :class:`~regionproxy.events.FleetChanged` and
        :class:`~regionproxy.events.FleetTraffic` events (no lock held).
    """

    def __init__(
        self,
        url: str,
        name: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: float = 0.5,
        retry_max: float = 2.0,
        ping_after: float = 1.0,
        heartbeat: float = 5.0,
        poll: float = 0.1,
        settle: float = SETTLE,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        listener: Callable[[Event], None] | None = None,
    ) -> None:
        self._url = check_fleet_url(url)
        self._listener_callback = listener
        self.safe_url = safe_redis_url(url)
        try:
            self._password = urlsplit(url).password or ""
        except ValueError:  # pragma: no cover - check_url parsed it
            self._password = ""
        check_fleet_name(name)
        for setting, value in (("fleet_timeout", timeout), ("retry", retry), ("retry_max", retry_max), ("poll", poll)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 3600:
                raise ConfigError(f"{setting} must be a number of seconds > 0, got {value!r}", setting=setting)
        self.name = name
        self.timeout = float(timeout)
        self._retry, self._retry_max = float(retry), max(float(retry_max), float(retry))
        self._ping_after, self._heartbeat, self._poll = ping_after, heartbeat, poll
        self._settle = settle
        self._clock, self._monotonic = clock, monotonic
        self._prefix = f"{PREFIX}:{name}:"
        self._channel = self._prefix + BUS
        # Callbacks: tuples swapped whole, so the listener reads them without a lock.
        self._subscribers: dict[str, tuple[Callable[[FleetMessage], None], ...]] = {}
        self._reconnect_callbacks: tuple[Callable[[], None], ...] = ()
        self._connect_callbacks: tuple[Callable[[], None], ...] = ()
        self._link_callbacks: tuple[Callable[[bool, int], None], ...] = ()
        self._closed = False
        self._fresh_process()
        reset_after_fork(self)

    def _fresh_process(self) -> None:
        """The per-process part: nothing connected, nothing started, zero counts."""
        self._lock = threading.Lock()
        self._pid = -1  # the process whose listener runs; start() compares
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        # _up: operations may try Redis (optimistic until one fails);
        # _live: the listener holds a confirmed subscription.
        self._up = True
        self._live = False
        # The subscription's socket while live (settle() looks at it), a
        # dispatch round running, rounds done, and the round a settle()
        # gave up waiting for (the listener is stuck: later ones do not wait).
        self._subscription: Any = None
        self._dispatching = False
        self._rounds = 0
        self._stalled_at = -1
        self._round_done = threading.Condition(threading.Lock())
        self._gap = False  # down or failed since the subscription was last live
        self._epoch = 0  # link changes (down, live) in this process, for the on_link callbacks
        self._down_since: float | None = None
        self.last_error: str | None = None
        self.last_message_at: float | None = None
        self.member = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._members: dict[str, float] = {}
        # The listener's timers (monotonic): last heard, ping out, last beat.
        self._heard_at = 0.0
        self._ping_sent: float | None = None
        self._beat_at = 0.0
        self.sent = self.received = self.reconnects = self.failures = self.skipped = 0
        self.settled = self.settle_timeouts = 0  # settle() calls that waited, and that gave up

    def __repr__(self) -> str:
        return f"FleetLink({self.safe_url!r}, name={self.name!r}, connected={self.connected})"

    # -- what callers see --------------------------------------------------------

    @property
    def connected(self) -> bool:
        """The subscription is live and no operation has failed since."""
        return self._up and self._live and not self._closed

    def key(self, *parts: str) -> str:
        """The full Redis key of ``parts``: ``regionproxy:{name}:a:b``."""
        return self._prefix + ":".join(parts)

    def status(self) -> dict[str, Any]:
        """A JSON-ready picture; the URL in its safe form."""
        return {
            "url": self.safe_url,
            "name": self.name,
            "connected": self.connected,
            "member": self.member,
            "members": self.members(),
            "down_since": self._down_since,
            "last_error": self.last_error,
            "last_message_at": self.last_message_at,
            "sent": self.sent,
            "received": self.received,
            "reconnects": self.reconnects,
            "failures": self.failures,
            "skipped": self.skipped,
            "settled": self.settled,
            "settle_timeouts": self.settle_timeouts,
        }

    def members(self) -> dict[str, float]:
        """Processes heard on the bus within three heartbeats (and this one):
        member id -> when last heard (wall clock)."""
        horizon = self._horizon()
        seen = {member: at for member, at in list(self._members.items()) if at >= horizon}
        if self.connected:
            seen[self.member] = self._clock()
        return dict(sorted(seen.items()))

    def _horizon(self) -> float:
        return self._clock() - 3 * max(self._heartbeat, self._ping_after)

    def _forget_members(self) -> None:
        """Drop members not heard within the horizon (listener thread only)."""
        horizon = self._horizon()
        self._members = {member: at for member, at in self._members.items() if at >= horizon}

    def subscribe(self, topic: str, callback: Callable[[FleetMessage], None]) -> None:
        """Run ``callback(message)`` on the listener thread for each message
        of ``topic``, this process's own included (``message.mine``). Keep it
        short: the next message waits for it. An exception is logged."""
        with self._lock:
            self._subscribers[topic] = (*self._subscribers.get(topic, ()), callback)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` on the listener thread each time the
        subscription is live again after a gap (messages may have been missed)."""
        with self._lock:
            self._reconnect_callbacks = (*self._reconnect_callbacks, callback)

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` on the listener thread each time the
        subscription becomes live, the first time included."""
        with self._lock:
            self._connect_callbacks = (*self._connect_callbacks, callback)

    def on_link(self, callback: Callable[[bool, int], None]) -> None:
        """Run ``callback(connected, epoch)`` each time the link goes down
        (at once, on the thread that found it) and each time the
        subscription is live again (see the module's rules: ignore an
        ``epoch`` older than one already had)."""
        with self._lock:
            self._link_callbacks = (*self._link_callbacks, callback)

    def _changed(self, connected: bool, epoch: int) -> None:
        for callback in self._link_callbacks:
            self._callback(callback, connected, epoch)

    def start(self) -> None:
        """Start this process's listener (once per process; a no-op after)."""
        if self._pid == os.getpid() or self._closed:
            return
        with self._lock:
            if self._pid == os.getpid() or self._closed:
                return
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._listener = threading.Thread(target=self._listen, name=f"regionproxy-fleet:{self.name}", daemon=True)
            self._listener.start()

    def close(self) -> None:
        """Stop the listener and drop the connections; every operation
        returns its default from now on."""
        with self._lock:
            was_closed, self._closed = self._closed, True
            self._epoch += 1
            epoch = self._epoch
        if not was_closed:
            self._changed(False, epoch)  # nothing is heard from now on
        self._stop.set()
        self._wake.set()
        listener = self._listener
        if listener is not None and listener is not threading.current_thread():
            listener.join(timeout=self._poll + 2 * self.timeout + 1.0)
        self._listener = None
        client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    # -- operations: each returns its default rather than raise -----------------

    def publish(
        self,
        topic: str,
        message: Mapping[str, Any],
        *,
        keep: Mapping[str, str] | None = None,
        forget: Sequence[str] = (),
        unless_newer: tuple[str, float] | None = None,
    ) -> bool:
        """Send ``message`` (JSON-ready) to every process of the fleet; True
        if Redis took it. With ``keep`` (key -> value to SET) and ``forget``
        (keys to DEL), the keys change and the message goes out in one
        atomic step: a process that reads the keys and one that hears the
        messages see the same order of changes. With ``unless_newer=(key,
        at)``, nothing changes and nothing is sent if ``key`` holds a JSON
        record whose ``at`` is later (a newer word already stands; still True)."""
        return self._publish(topic, message, counted=True, keep=keep or {}, forget=forget, unless_newer=unless_newer)

    def _publish(
        self,
        topic: str,
        message: Mapping[str, Any],
        *,
        counted: bool,
        keep: Mapping[str, str] = {},  # noqa: B006 - read only
        forget: Sequence[str] = (),
        unless_newer: tuple[str, float] | None = None,
    ) -> bool:
        try:
            payload = json.dumps({"topic": topic, "from": self.member, "at": self._clock(), "body": message})
        except (TypeError, ValueError):
            log.exception("regionproxy fleet: a %s message is not JSON-ready; not sent", topic)
            return False
        if keep or forget or unless_newer:
            guard, at = unless_newer if unless_newer is not None else ("", 0.0)
            keys = [
                self._channel,
                self._prefix + guard,
                *(self._prefix + key for key in keep),
                *(self._prefix + key for key in forget),
            ]
            args = [payload, len(keep), repr(float(at)) if unless_newer else "", *keep.values()]
            result = self._run("publish", lambda redis: self._compiled(redis, _KEEP_AND_PUBLISH)(keys, args, redis), None)
        else:
            result = self._run("publish", lambda redis: redis.publish(self._channel, payload), None)
        if result is None:
            return False
        if result == -1:
            return True  # a newer word stands: nothing to send
        if counted:
            self.sent += 1
            self._emit(FleetTraffic(self.name, topic, "sent"))
        return True

    def mget(self, keys: Sequence[str]) -> list[str | None] | None:
        """The values of ``keys`` (None for a missing one) in one round
        trip; None if Redis did not answer."""
        values = self._run("mget", lambda redis: redis.mget([self._prefix + key for key in keys]), None) if keys else []
        return list(values) if values is not None else None

    def ping(self) -> bool:
        """One round trip to Redis; True if it answered. Redis writes a
        published message to every subscriber's socket before it reads its
        next command (one event loop pass), so once a ping sent after a
        :meth:`publish` is answered, the message is in every subscriber's
        socket, or on the wire to it (a publish's own reply may be written
        before the subscribers' copies)."""
        return self._run("ping", lambda redis: redis.ping(), None) is not None

    def get(self, key: str) -> str | None:
        return self._run("get", lambda redis: redis.get(self._prefix + key), None)

    def set(self, key: str, value: str, *, px: int | None = None, nx: bool = False) -> bool:
        """SET, with an expiry in milliseconds (``px``) and only if absent
        (``nx``); True if it was set."""
        return bool(self._run("set", lambda redis: redis.set(self._prefix + key, value, px=px, nx=nx), None))

    def delete(self, *keys: str) -> bool:
        return self._run("delete", lambda redis: redis.delete(*(self._prefix + key for key in keys)), None) is not None

    def hgetall(self, key: str) -> dict[str, str]:
        return self._run("hgetall", lambda redis: redis.hgetall(self._prefix + key), None) or {}

    def hset(self, key: str, mapping: Mapping[str, str]) -> bool:
        return self._run("hset", lambda redis: redis.hset(self._prefix + key, mapping=dict(mapping)), None) is not None

    def hdel(self, key: str, *fields: str) -> bool:
        return self._run("hdel", lambda redis: redis.hdel(self._prefix + key, *fields), None) is not None

    def script(self, source: str, keys: Sequence[str], args: Sequence[Any], default: Any = None) -> Any:
        """Run the Lua ``source`` atomically (EVALSHA, loading it once per
        connection as needed) with namespaced ``keys``; ``default`` on failure."""

        names = [self._prefix + key for key in keys]
        return self._run("script", lambda redis: self._compiled(redis, source)(names, list(args), redis), default)

    def _compiled(self, redis: Any, source: str) -> Callable[[list[str], list[Any], Any], Any]:
        compiled = self._scripts.get(source)
        if compiled is None:
            compiled = self._scripts[source] = redis.register_script(source)
        return lambda keys, args, client: compiled(keys=keys, args=args, client=client)

    # -- the breaker ---------------------------------------------------------------

    def _run(self, what: str, operation: Callable[[Any], Any], default: Any) -> Any:
        """``operation(client)``, or ``default`` without I/O while the link
        is down; a failure takes the link down and returns ``default``."""
        if not self._up or self._closed:
            self.skipped += 1
            return default
        self.start()
        client = self._client or self._make_client()
        if client is None:
            return default
        try:
            return operation(client)
        except Exception as error:  # noqa: BLE001 - no Redis error reaches the caller
            if _is_command_error(error):
                # Redis answered, the command was wrong (a bug of ours, not an outage).
                log.error("regionproxy fleet: %s refused by %s: %s", what, self.safe_url, self._scrub(error))
                return default
            self._trip(what, error)
            return default

    def _make_client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    self._client = _client(self._url, self.timeout)
                except Exception as error:  # noqa: BLE001 - e.g. rediss without ssl support
                    self.last_error = self._scrub(error)
                    log.error("regionproxy fleet: cannot use %s: %s", self.safe_url, self.last_error)
                    self._up = False
            return self._client

    def _trip(self, what: str, error: BaseException | str) -> None:
        """Take the link down (once per outage: later trips only count)."""
        text = self._scrub(error)
        with self._lock:
            self.failures += 1
            first = self._up
            self._up = False
            self._gap = True
            self.last_error = f"{what}: {text}"
            if first:
                self._down_since = self._clock()
                self._epoch += 1
            epoch = self._epoch
        self._wake.set()
        if first:
            self._changed(False, epoch)  # before anyone is told: the cache is bypassed first
            log.warning(
                "regionproxy fleet: redis %s unreachable (%s: %s); each worker on its own until it answers",
                self.safe_url, what, text,
            )  # fmt: skip
            self._emit(FleetChanged(self.name, False, self._clock(), self.last_error))

    def _scrub(self, error: BaseException | str) -> str:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        for secret in {self._password, quote(self._password, safe=""), unquote(self._password)}:
            if secret:
                text = text.replace(secret, "***")
        return text.replace(self._url, self.safe_url)

    # -- the listener thread -------------------------------------------------------

    def _listen(self) -> None:
        """Hold the subscription, dispatch messages, reconnect, ping, beat."""
        pause = self._retry
        pubsub: Any = None
        stop = self._stop
        while not stop.is_set():
            if pubsub is None or not self._up:
                pubsub = self._drop(pubsub)
                pubsub = self._connect()
                if pubsub is None:
                    self._wake.clear()
                    stop.wait(pause)
                    pause = min(2 * pause, self._retry_max)
                else:
                    pause = self._retry
                continue
            try:
                self._duties(pubsub)
                self._dispatch(pubsub)
            except Exception as error:  # noqa: BLE001 - the subscription is gone
                if not stop.is_set():
                    self._trip("subscription", error)
                continue
        self._live = False
        self._drop(pubsub)

    def _connect(self) -> Any:
        """A live subscription (the subscribe confirmed within the timeout),
        or None. Runs the connect and reconnect callbacks on success."""
        client = self._client or self._make_client()
        if client is None:
            return None
        pubsub = None
        try:
            if self._gap:
                # Redis may have restarted: the pool's idle connections are
                # dead, and the first command on one would fail and take the
                # link down again (a write's drop lost, a second gap). Dropped
                # now, each is made again on use.
                client.connection_pool.disconnect(inuse_connections=False)
            client.ping()
            pubsub = client.pubsub()
            pubsub.subscribe(self._channel)
            # Liveness again (as the ping): the confirmation may be slow on a loaded machine.
            deadline = self._monotonic() + max(5 * self.timeout, PONG_FLOOR)
            while True:
                message = pubsub.get_message(timeout=max(deadline - self._monotonic(), 0.0))
                if message is not None and message.get("type") == "subscribe":
                    break
                if self._monotonic() >= deadline:
                    raise TimeoutError("no subscribe confirmation")
        except Exception as error:  # noqa: BLE001 - tried again after a pause
            self._drop(pubsub)
            with self._lock:
                self.failures += 1
                self._gap = True
                was_up, self._up = self._up, False
                self.last_error = f"connect: {self._scrub(error)}"
                if was_up:
                    self._down_since = self._clock()
                    self._epoch += 1
                epoch = self._epoch
            if was_up:
                self._changed(False, epoch)
                log.warning("regionproxy fleet: redis %s unreachable (%s)", self.safe_url, self.last_error)
                self._emit(FleetChanged(self.name, False, self._clock(), self.last_error))
            return None
        with self._lock:
            gap, self._gap = self._gap, False
            was_down = not self._up
            self._up = True  # operations may use Redis again (the callbacks do)
            self._down_since = None
            self._heard_at = self._monotonic()
            self._ping_sent = None
            self._beat_at = 0.0
            if gap:
                self.reconnects += 1
            self._epoch += 1
            epoch = self._epoch
        if was_down:
            log.warning("regionproxy fleet: redis %s answers again; state shared again", self.safe_url)
        # The callbacks run before the link says it is connected: whoever
        # sees `connected` may count on the catch-up (a cache emptied, the
        # fleet's state read) having happened. Messages that arrive
        # meanwhile wait in the subscription, in order.
        for callback in (*self._connect_callbacks, *(self._reconnect_callbacks if gap else ())):
            self._callback(callback)
        self._subscription = _socket_of(pubsub)
        self._live = True
        # Last: a worker's cache is used again only once settle() waits for
        # what arrives (a drop that reached the socket meanwhile is applied
        # before a request that settles reads the cache).
        self._changed(True, epoch)
        self._emit(FleetChanged(self.name, True, self._clock()))
        return pubsub

    def _duties(self, pubsub: Any) -> None:
        """Between messages: ping a silent subscription, beat the heart."""
        now = self._monotonic()
        if self._ping_sent is not None:
            # Liveness, not latency: a loaded machine may answer a ping late
            # without having lost anything, and each gap costs subscribers
            # (a cache empties), so the pong gets more than one timeout.
            if now - self._ping_sent > max(5 * self.timeout, PONG_FLOOR) + self._poll:
                raise TimeoutError(f"no answer to a ping within {max(5 * self.timeout, PONG_FLOOR):g} s")
        elif now - self._heard_at > self._ping_after:
            self._ping_sent = now
            pubsub.ping("regionproxy")
        if self._heartbeat and now - self._beat_at > self._heartbeat:
            self._beat_at = now
            self._publish(HEARTBEAT_TOPIC, {}, counted=False)  # heartbeats are not counted as messages

    def _heard(self, raw: dict[str, Any]) -> None:
        self._heard_at = self._monotonic()
        self._ping_sent = None
        if raw.get("type") != "message":
            return
        try:
            envelope = json.loads(raw["data"])
            message = FleetMessage(
                str(envelope["topic"]), dict(envelope["body"]), str(envelope["from"]), float(envelope["at"]),
                envelope["from"] == self.member,
            )  # fmt: skip
        except (ValueError, KeyError, TypeError):
            log.warning("regionproxy fleet: an unreadable message on %s ignored", self._channel)
            return
        self._members[message.sender] = self._clock()
        if len(self._members) > MAX_MEMBERS:  # restarts leave old ids behind
            self._forget_members()
        if message.topic == HEARTBEAT_TOPIC:
            return
        self.received += 1
        self.last_message_at = self._members[message.sender]
        subscribers = self._subscribers.get(message.topic, ())
        # The topic as a label only if this process knows it: a stray
        # publisher must not grow the metrics without bound.
        self._emit(FleetTraffic(self.name, message.topic if subscribers else "other", "received"))
        for callback in subscribers:
            self._callback(callback, message)

    def _emit(self, event: Event) -> None:
        if self._listener_callback is not None:
            self._callback(self._listener_callback, event)

    def _callback(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 - one subscriber must not silence the others
            log.exception("regionproxy fleet: callback %r failed", callback)

    def _dispatch(self, pubsub: Any) -> None:
        """One round: wait up to ``poll`` for the subscription's socket, then
        dispatch every message it and redis-py's buffer hold, in order. The
        round is marked running before anything is read (see :meth:`settle`)."""
        sock = self._subscription
        if sock is not None:
            try:
                ready = select.select([sock], [], [], self._poll)[0]
            except (OSError, ValueError):  # closed under us: get_message says how
                ready = [sock]
            if not ready:
                return
        self._dispatching = True
        try:
            message = pubsub.get_message(timeout=0 if sock is not None else self._poll)
            while message is not None:
                self._heard(message)
                message = pubsub.get_message(timeout=0)
        except Exception as error:  # noqa: BLE001 - the subscription is gone
            # Taken down inside the round: a settle() that waits for this
            # round (the socket was readable: closed) returns after the
            # on_link callbacks, so its request does not read a cache that
            # stopped hearing drops.
            if not self._stop.is_set():
                self._trip("subscription", error)
        finally:
            with self._round_done:
                self._dispatching = False
                self._rounds += 1
                self._round_done.notify_all()

    def settle(self, timeout: float | None = None) -> None:
        """Return once every message that had reached this process's
        subscription when called has been dispatched (its callbacks have
        run), waiting at most ``timeout`` seconds (``settle`` by default);
        at once when none is waiting, when the subscription is not live, or
        while the listener is stuck in a round a settle already waited
        ``timeout`` for (so a stuck listener costs one request that wait,
        not every request). The wait is for this process's own listener
        thread, not for Redis. Never raises."""
        sock = self._subscription
        if sock is None or not self._live or self._stalled_at == self._rounds:
            return
        if threading.current_thread() is self._listener:
            return  # a callback's own call: its round cannot end while it waits
        try:
            # The socket first, then the round: the listener marks a round
            # as running before it reads, so a message that arrived before
            # now is still in the socket, or in the round running now, or
            # dispatched. Only those rounds are waited for, not the ones that
            # later messages start (a busy fleet never keeps a request).
            waiting = bool(select.select([sock], [], [], 0)[0])
            with self._round_done:
                running = self._dispatching
                if not waiting and not running:
                    return  # the common case: nothing has arrived
                self.settled += 1
                target = self._rounds + running + waiting
                deadline = self._monotonic() + (self._settle if timeout is None else timeout)
                while self._live and self._rounds < target:
                    remaining = deadline - self._monotonic()
                    if remaining <= 0:
                        self._stalled_at = self._rounds
                        self.settle_timeouts += 1
                        return
                    self._round_done.wait(remaining)
        except (OSError, ValueError):  # the socket closed meanwhile: a gap, which the subscribers hear of
            return

    def _drop(self, pubsub: Any) -> None:
        self._live = False
        self._subscription = None
        with self._round_done:  # a settle() waiting for a round that will not come returns now
            self._round_done.notify_all()
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001 - dropping is best effort
                pass
        return None

    # -- fork safety -------------------------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child: the parent's sockets, thread and locks are not
        ours. Forget them without closing the sockets (a close could cut the
        parent's connections); start() makes this process's own."""
        closed = self._closed
        self._fresh_process()
        self._closed = closed


def _socket_of(pubsub: Any) -> Any:
    """The socket of a redis-py subscription, or None (another redis-py: a
    listener that cannot be watched, and :meth:`FleetLink.settle` waits
    for nothing)."""
    try:
        sock = pubsub.connection._sock  # noqa: SLF001 - redis-py has no public handle on it
        sock.fileno()
    except Exception:  # noqa: BLE001 - see the docstring
        return None
    return sock


# KEYS: the channel, the guard, the keys to SET, the keys to DEL; ARGV: the
# payload, how many keys to SET, the guard's time ("": no guard), the values
# to SET. -1: the guard holds a later record, nothing done.
_KEEP_AND_PUBLISH = """
if ARGV[3] ~= '' then
  local standing = redis.call('GET', KEYS[2])
  if standing then
    local ok, record = pcall(cjson.decode, standing)
    if ok and type(record) == 'table' and tonumber(record['at']) and tonumber(record['at']) > tonumber(ARGV[3]) then
      return -1
    end
  end
end
local kept = tonumber(ARGV[2])
for i = 1, kept do redis.call('SET', KEYS[2 + i], ARGV[3 + i]) end
for i = 3 + kept, #KEYS do redis.call('DEL', KEYS[i]) end
return redis.call('PUBLISH', KEYS[1], ARGV[1])
"""


def _client(url: str, timeout: float) -> Any:
    """A redis-py client for ``url``: short timeouts, no retries of its own
    (the link's breaker decides when to try again), strings in and out."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
        decode_responses=True,
        client_name="regionproxy",
    )


def _is_command_error(error: BaseException) -> bool:
    """Redis answered with an error about the command (a script's, a wrong
    type): the server is up. Errors that mean it cannot serve (read-only
    replica, no permission, loading) count as an outage."""
    from redis import exceptions

    if not isinstance(error, exceptions.ResponseError):
        return False
    return not isinstance(error, exceptions.ReadOnlyError | exceptions.NoPermissionError | exceptions.AuthenticationError)
