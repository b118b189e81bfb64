"""A sidecar (``regionproxy serve``'s app, on the front its gunicorn workers
run, :class:`~regionproxy._sidecar.worker.HttpFront`, or on werkzeug's
threaded server of ``--dev``) over the shared lab, for the sidecar's
integration tests: one per test module."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

import regionproxy as rp
from regionproxy._sidecar.protocol import sidecar_app
from regionproxy._sidecar.serve import development_server
from regionproxy._sidecar.signatures import ClientKeys
from regionproxy._sidecar.worker import HttpFront
from tests.support import KEY_SCHEMA, LOCAL, REGIONS, TABLE

KEY_ID, SECRET = "wordpress", "local-secret-for-tests"


@dataclass
class Sidecar:
    lab: Any
    session: rp.RegionSession
    app: Any
    url: str

    def client(self, secret: str = SECRET, key_id: str = KEY_ID, **config: Any) -> Any:
        """A plain boto3 client pointed at the sidecar, as an app would make it."""
        return boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=self.url,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(**config) if config else None,
        )

    def resource(self) -> Any:
        return boto3.resource(
            "dynamodb", region_name="us-east-1", endpoint_url=self.url, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET
        )

    def forwarded(self) -> int:
        """Requests the lab's regions have seen so far (every region)."""
        return sum(len(self.lab.requests(region)) for region in self.lab.regions)

    def heal(self) -> None:
        """No fault, replication caught up, every breaker closed."""
        self.lab.heal()
        self.lab.wait_replicated(timeout=20)
        for region in self.lab.regions:
            self.session.restore(region)


FRONTS = ("worker", "dev")  # regionproxy serve's gunicorn worker; --dev's werkzeug


@contextlib.contextmanager
def front_serving(app: Any, *, front: str = "worker", socket_timeout: float = 10.0, threads: int = 8) -> Iterator[str]:
    """``app`` served on a free loopback port for the block, by ``front``
    (``socket_timeout``: the worker's header and body deadlines, werkzeug's
    per-read timeout); its URL."""
    if front == "dev":
        server = development_server("127.0.0.1", 0, app, socket_timeout=socket_timeout)
        thread = threading.Thread(target=server.serve_forever, name="sidecar-under-test", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            thread.join(timeout=10)
        return
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    http_front = HttpFront(app, [listener], threads=threads)
    http_front.header_timeout = http_front.body_timeout = socket_timeout
    thread = threading.Thread(target=http_front.serve_until_stopped, kwargs={"graceful_timeout": 5.0}, name="sidecar-under-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        http_front.alive = False
        http_front.wake()
        thread.join(timeout=10)
        listener.close()


@contextlib.contextmanager
def serving(lab: Any, session: rp.RegionSession, *, socket_timeout: float = 10.0, front: str = "worker", **app_options: Any) -> Iterator[Sidecar]:
    """The sidecar for ``session`` on a free loopback port, for the block."""
    app = sidecar_app(session, ClientKeys({KEY_ID: SECRET}), probe_interval=0.25, **app_options)
    try:
        with front_serving(app, front=front, socket_timeout=socket_timeout) as url:
            yield Sidecar(lab, session, app, url)
    finally:
        app.close()


@contextlib.contextmanager
def running_sidecar(shared: Any, *, socket_timeout: float = 10.0, front: str = "worker", **app_options: Any) -> Iterator[Sidecar]:
    """The shared lab (held for the whole module) with the test table, a
    session over it and the sidecar serving it on a free loopback port."""
    lab = shared.get(list(REGIONS))
    try:
        lab.create_table(TableName=TABLE, **KEY_SCHEMA)
        session = lab.session(
            timeouts=rp.Timeouts(connect=0.3, read=1.0),
            breaker=rp.BreakerPolicy(fail_max=2, reset_timeout=300),
            cache=rp.CachePolicy(maxsize=1000, ttl=5.0),
        )
        with serving(lab, session, socket_timeout=socket_timeout, front=front, **app_options) as sidecar:
            yield sidecar
    finally:
        shared.release(lab)


__all__ = ["FRONTS", "KEY_ID", "LOCAL", "SECRET", "TABLE", "Sidecar", "front_serving", "running_sidecar", "serving"]
