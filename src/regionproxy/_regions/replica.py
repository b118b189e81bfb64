"""One region's DynamoDB replica: its endpoint, its client, its breaker.

The boto3 client is created lazily, once per process: gunicorn and uwsgi
often build the session before they fork, and a client's connection pool
does not survive a fork. Each call checks the pid (one integer compare) and
a forked worker gets a client of its own.

A call whose parameters are a :class:`~regionproxy._regions.wire.JsonRequest`
(the sidecar's: a client's DynamoDB JSON body) goes out as its raw body,
through the region's :class:`~regionproxy._regions.wire.WireSender`, built
per process beside the client from its endpoint, config and credentials,
and the TLS verification and proxies the client uses.

:meth:`Replica.warm` keeps a connection open in the client's pool, ready
for the first call that fails over here (:mod:`regionproxy._regions.warming`),
and in the raw sender's pool, where the process sends raw: the rule is
that warming reaches every pool this process's calls to the region go
through, and builds nothing a process never uses. A process sends raw
once its replica is marked :attr:`Replica.sends_raw` (the sidecar's app
marks its session's replicas when it is built, before gunicorn forks):
warming then builds the raw sender (in the probe thread, not on a call's
path) and warms its pool too; elsewhere a raw sender someone's call built
is warmed, and none is built.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import boto3
from botocore import xform_name
from botocore.config import Config

from regionproxy._config.policies import Timeouts
from regionproxy._regions import redaction
from regionproxy._regions.breaker import RegionBreaker
from regionproxy._regions.credentials import owned_session
from regionproxy._regions.warming import BUSY, FAILED, KEPT, OPENED, SKIPPED, warm
from regionproxy._regions.wire import JsonRequest, WireSender

# Threaded servers run more threads than botocore's default pool of 10
# connections per client; past the pool, botocore warns and blocks.
DEFAULT_POOL = 50


def client_config(timeouts: Timeouts, user: Config | None = None) -> Config:
    """botocore settings for one region: the caller's ``Config`` (pool size,
    user agent, proxies, ...) under the session's own timeouts and retries.

    botocore makes one attempt: the session makes every attempt itself, so
    that it sees each one and never repeats a write that may have been
    applied unless the write is idempotent. ("legacy" mode: with one
    attempt, "standard" stamps ``MaxAttemptsReached`` on every successful
    response, which plain boto3's responses do not carry.)
    """
    owned = Config(
        connect_timeout=timeouts.connect,
        read_timeout=timeouts.read,
        retries={"mode": "legacy", "total_max_attempts": 1},
    )
    if user is None:
        return Config(max_pool_connections=DEFAULT_POOL).merge(owned)
    return user.merge(owned)


# pid -> the Timeouts a session's credential refreshes are bounded by -> its boto3 session
_SESSIONS: dict[int, dict[Timeouts, boto3.session.Session]] = {}
_SESSIONS_LOCK = threading.RLock()
# At most this many boto3 sessions of our own per process (one per Timeouts in use).
MAX_OWNED_SESSIONS = 8


def _after_fork_in_child() -> None:
    # The parent's lock may be held by a thread that does not exist here, and
    # its boto3 sessions belong to the parent: start over.
    global _SESSIONS_LOCK
    _SESSIONS_LOCK = threading.RLock()
    _SESSIONS.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)

# botocore's DEBUG wire trace carries session tokens: redact them (see redaction.py).
redaction.install()


class Replica:
    """The replica of a Global Table in one region.

    :param region: the AWS region name.
    :param breaker: the region's breaker.
    :param timeouts: per-attempt timeouts for its client.
    :param endpoint: an endpoint URL override (a lab, a VPC endpoint).
    :param boto3_session: where credentials come from; when None, a boto3
        session of regionproxy's own, one per process and ``timeouts``,
        whose credential refreshes (STS, SSO) are bounded by ``timeouts``
        (:mod:`regionproxy._regions.credentials`). All regions share one, so
        error classes are shared too.
    :param config: a botocore ``Config`` the session's timeouts and retries
        are merged onto.
    :param prepare: called with each client made, before its first use
        (the session takes the caller's per-call handlers off it).
    """

    def __init__(
        self,
        region: str,
        breaker: RegionBreaker,
        timeouts: Timeouts,
        *,
        endpoint: str | None = None,
        boto3_session: boto3.session.Session | None = None,
        config: Config | None = None,
        prepare: Callable[[Any], None] | None = None,
    ) -> None:
        self.region = region
        self.breaker = breaker
        self.endpoint = endpoint
        self._config = client_config(timeouts, config)
        self._timeouts = timeouts
        self._boto3_session = boto3_session
        self._prepare = prepare
        self._pid = -1
        self._client: Any = None
        self._methods: dict[str, Any] = {}
        self._wire: WireSender | None = None
        # Calls to this region go out raw (JsonRequest) in every process:
        # warming builds and warms the raw sender too.
        self.sends_raw = False

    def __repr__(self) -> str:
        return f"Replica({self.region!r}, breaker={self.breaker.state!r})"

    @property
    def client(self) -> Any:
        """This process's boto3 DynamoDB client for the region."""
        if self._pid != os.getpid():
            self._create_client()
        return self._client

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one operation (``"GetItem"``) to this region's client."""
        if self._pid != os.getpid():  # self.client's check, without a second call on every call
            self._create_client()
        if params.__class__ is JsonRequest:
            return self._wire_sender().send(operation, params)
        client = self._client
        method = self._methods.get(operation)
        if method is None:
            method = self._methods[operation] = getattr(client, xform_name(operation))
        return method(**params)

    def warm(self) -> str:
        """Keep a connection open to the region in this process's client
        pool, and in its raw sender's (module docstring), ready for a call
        (:mod:`regionproxy._regions.warming`): what it did, ``kept``,
        ``opened``, ``failed``, ``busy`` or ``skipped``; for two pools the
        first of ``failed``, ``opened``, ``kept``, ``busy``, ``skipped``
        that either did."""
        result = warm(self.client)  # builds this process's client (and forgets a parent's sender)
        wire = self._wire
        try:
            if wire is None and self.sends_raw:
                wire = self._wire_sender()
        except Exception:  # noqa: BLE001 - closed meanwhile, no credentials yet: the call will say so
            return _worst(result, SKIPPED)
        return result if wire is None else _worst(result, wire.warm())

    def close(self) -> None:
        with _SESSIONS_LOCK:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
                if self._wire is not None:
                    self._wire.close()
            self._client, self._pid, self._methods, self._wire = None, -1, {}, None

    def _wire_sender(self) -> WireSender:
        """This process's raw sender (the client is built: ``call`` checked the pid)."""
        wire = self._wire
        if wire is None:
            with _SESSIONS_LOCK:
                wire = self._wire
                if wire is None:
                    session = self._boto3_session or _process_session(self._timeouts)
                    meta = self._client.meta
                    http_session = getattr(getattr(self._client, "_endpoint", None), "http_session", None)
                    wire = self._wire = WireSender(
                        self.region,
                        meta.endpoint_url,
                        meta.config,
                        session.get_credentials(),
                        user_agent=meta.config.user_agent or "",
                        verify=getattr(http_session, "_verify", True),  # AWS_CA_BUNDLE, verify=: as the client verifies
                        # config.proxies, or HTTPS_PROXY/NO_PROXY: where the client's requests go through a proxy, so do these
                        proxies=getattr(getattr(http_session, "_proxy_config", None), "_proxies", None),
                    )
        return wire

    def _create_client(self) -> None:
        # boto3 sessions are not safe for concurrent client creation, and all
        # regions may share one: one lock for every replica's creation.
        with _SESSIONS_LOCK:
            if self._pid == os.getpid():
                return  # another thread created it while we waited
            session = self._boto3_session or _process_session(self._timeouts)
            client = session.client("dynamodb", region_name=self.region, endpoint_url=self.endpoint, config=self._config)
            if self._prepare is not None:
                self._prepare(client)
            self._client = client
            self._methods = {}
            self._wire = None  # a parent's (after a fork), or none yet
            self._pid = os.getpid()


_ORDER = (FAILED, OPENED, KEPT, BUSY, SKIPPED)


def _worst(*results: str) -> str:
    """What warming two pools did, as one result (:meth:`Replica.warm`)."""
    return min(results, key=lambda result: _ORDER.index(result) if result in _ORDER else 0)


def _process_session(timeouts: Timeouts | None = None) -> boto3.session.Session:
    """One boto3 session per process and per ``timeouts`` for sessions built
    without one, its credential refreshes bounded by them
    (:mod:`regionproxy._regions.credentials`); called with _SESSIONS_LOCK held."""
    timeouts = timeouts if timeouts is not None else Timeouts()
    pid = os.getpid()
    if pid not in _SESSIONS:
        _SESSIONS.clear()  # an ancestor's, after a fork: never used here again
        _SESSIONS[pid] = {}
    sessions = _SESSIONS[pid]
    session = sessions.pop(timeouts, None)
    if session is None:
        session = owned_session(timeouts)
        if len(sessions) >= MAX_OWNED_SESSIONS:
            # Sessions made with ever new timeouts must not keep a boto3 session
            # each: forget the least recently used. Its clients keep working;
            # a replica that asks again gets a new one.
            del sessions[next(iter(sessions))]
    sessions[timeouts] = session  # last: the most recently used
    return session
