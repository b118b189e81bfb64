"""One region's DynamoDB replica: its endpoint, its client, its breaker.

The boto3 client is created lazily, once per process: gunicorn and uwsgi
often build the session before they fork, and a client's connection pool
does not survive a fork. Each call checks the pid (one integer compare) and
a forked worker gets a client of its own.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore import xform_name
from botocore.config import Config

from regionproxy.breakers import RegionBreaker
from regionproxy.config import Timeouts


def client_config(timeouts: Timeouts) -> Config:
    """botocore settings for one region: tight timeouts, few attempts, so a
    dead region costs one timeout and the next region serves."""
    return Config(
        connect_timeout=timeouts.connect,
        read_timeout=timeouts.read,
        retries={"mode": "standard", "total_max_attempts": timeouts.attempts},
    )


_SESSIONS: dict[int, boto3.session.Session] = {}
_SESSIONS_LOCK = threading.RLock()


class Replica:
    """The replica of a Global Table in one region.

    :param region: the AWS region name.
    :param breaker: the region's breaker.
    :param timeouts: per-attempt timeouts for its client.
    :param endpoint: an endpoint URL override (a lab, a VPC endpoint).
    :param boto3_session: where credentials come from; the default session
        when None. All regions share one, so error classes are shared too.
    """

    def __init__(
        self,
        region: str,
        breaker: RegionBreaker,
        timeouts: Timeouts,
        *,
        endpoint: str | None = None,
        boto3_session: boto3.session.Session | None = None,
    ) -> None:
        self.region = region
        self.breaker = breaker
        self.endpoint = endpoint
        self._config = client_config(timeouts)
        self._boto3_session = boto3_session
        self._pid = -1
        self._client: Any = None
        self._methods: dict[str, Any] = {}

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
        client = self.client
        method = self._methods.get(operation)
        if method is None:
            method = self._methods[operation] = getattr(client, xform_name(operation))
        return method(**params)

    def close(self) -> None:
        with _SESSIONS_LOCK:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client, self._pid, self._methods = None, -1, {}

    def _create_client(self) -> None:
        # boto3 sessions are not safe for concurrent client creation, and all
        # regions may share one: one lock for every replica's creation.
        with _SESSIONS_LOCK:
            if self._pid == os.getpid():
                return  # another thread created it while we waited
            session = self._boto3_session or _process_session()
            self._client = session.client(
                "dynamodb", region_name=self.region, endpoint_url=self.endpoint, config=self._config
            )
            self._methods = {}
            self._pid = os.getpid()


def _process_session() -> boto3.session.Session:
    """One boto3 session per process for sessions built without one
    (called with _SESSIONS_LOCK held)."""
    pid = os.getpid()
    if pid not in _SESSIONS:
        _SESSIONS[pid] = boto3.session.Session()
    return _SESSIONS[pid]
