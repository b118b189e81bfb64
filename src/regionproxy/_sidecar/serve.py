"""``regionproxy serve``: the sidecar under gunicorn, or a threaded development server.

::

    regionproxy serve [--listen 127.0.0.1:8000] [--workers N] [--threads T] [--keys-file FILE] [--dev]

The session comes from ``REGIONPROXY_*`` variables (:meth:`RegionSession.from_env
<regionproxy.RegionSession.from_env>`), the health, status and metrics
options from the middleware's (``REGIONPROXY_READINESS``, ``..._ADMIN_ALLOW``,
...), the client keys from ``REGIONPROXY_SERVE_KEYS`` and/or ``--keys-file``.
It listens on loopback unless told otherwise, and refuses to start on any
other address without client keys (:func:`check_listen`): whoever reaches
it would use the sidecar's AWS credentials.

Production: gunicorn as the process manager (master, worker restarts,
``--timeout`` for stuck workers, signals, graceful stop), with the
sidecar's own worker class, :class:`~regionproxy._sidecar.worker.SidecarWorker`
(a lean HTTP/1.1 keep-alive front: the rules are in
:mod:`regionproxy._sidecar.worker`; gunicorn's ``gthread`` where there is
no ``epoll``). The app is built in the master, so a wrong setting stops
the start; each worker's clients, connection pools and probes are its
own, made after the fork; ``--threads`` per worker; keep-alive 75 s for
SDK connection reuse; gunicorn's request-line and header limits. With more than one worker, Prometheus's multiprocess
mode is set up in a temporary directory (unless
``PROMETHEUS_MULTIPROC_DIR`` is set), so ``/metrics`` of any worker is the
sum over all. Development (``--dev``): werkzeug's threaded server, HTTP/1.1
keep-alive, a socket timeout per read (a client that stops sending is cut
off) and the body deadline of :class:`~regionproxy._sidecar.protocol.DynamoDBProtocol`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from regionproxy._sidecar.protocol import sidecar_app
from regionproxy._sidecar.signatures import ClientKeys
from regionproxy._sidecar.worker import worker_class
from regionproxy._web.options import middleware_options
from regionproxy.errors import ConfigError

log = logging.getLogger("regionproxy.sidecar")

DEFAULT_LISTEN = "127.0.0.1:8000"
SOCKET_TIMEOUT = 10.0  # seconds a development-server read may wait (headers, body)


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8000`` for IPv6) -> (host, port)."""
    host, colon, port = text.strip().rpartition(":")
    if not colon or not port.isdigit() or not host or int(port) > 65535:
        raise ConfigError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8000", setting="listen")
    return host.removeprefix("[").removesuffix("]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, keys: ClientKeys) -> None:
    """Loopback, or client keys: whoever reaches the sidecar signs with its credentials."""
    if not keys and not is_loopback(host):
        raise ConfigError(
            f"regionproxy serve on {host!r} (not loopback) needs client keys: set REGIONPROXY_SERVE_KEYS=id:secret "
            "or --keys-file, or listen on 127.0.0.1",
            setting="listen",
        )


def check_endpoints(session: Any, host: str, port: int) -> None:
    """No region's endpoint is the sidecar itself (it would call itself)."""
    from urllib.parse import urlsplit

    for region, url in session.settings.endpoints.items():
        parts = urlsplit(url)
        same_host = parts.hostname == host or (is_loopback(parts.hostname or "") and is_loopback(host))
        if same_host and (parts.port or {"http": 80, "https": 443}.get(parts.scheme)) == port:
            raise ConfigError(
                f"REGIONPROXY_ENDPOINTS: {region}={url} is the sidecar's own address; it would send every request to itself",
                setting="endpoints",
            )


def build_app(environ: Mapping[str, str] | None = None, keys_file: str | None = None, listen: tuple[str, int] | None = None) -> Any:
    """The sidecar's WSGI app from the environment.

    Its regions' clients ignore ``AWS_ENDPOINT_URL`` and
    ``AWS_ENDPOINT_URL_DYNAMODB`` (botocore's ``ignore_configured_endpoint_urls``):
    those name the sidecar for the apps on the host, and would send the
    sidecar's requests to itself."""
    from botocore.config import Config

    from regionproxy._session.session import RegionSession

    environ = os.environ if environ is None else environ
    keys = ClientKeys.load(environ, keys_file)
    options = middleware_options({name.removeprefix("REGIONPROXY_"): value for name, value in environ.items() if name.startswith("REGIONPROXY_")})
    session = RegionSession.from_env(environ, config=Config(ignore_configured_endpoint_urls=True))
    if listen is not None:
        check_endpoints(session, *listen)
    return sidecar_app(session, keys, **options)


def main(args: Any) -> int:
    """Run ``regionproxy serve`` with parsed ``args`` (see :mod:`regionproxy._cli.main`)."""
    host, port = parse_listen(args.listen)
    keys = ClientKeys.load(os.environ, args.keys_file)  # checked here, before any worker starts
    check_listen(host, keys)
    if not keys:
        print("regionproxy serve: no client keys: any request on loopback is served unchecked", file=sys.stderr)
    if args.workers < 1 or args.threads < 1:
        raise ConfigError("--workers and --threads must be at least 1", setting="workers")
    metrics_dir = None
    if not args.dev and args.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Before the app (and its metrics) is built: prometheus_client reads it at import.
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="regionproxy-metrics-")
    try:
        # Built here, once: a wrong setting is a ConfigError before anything
        # listens; gunicorn's workers are forked from this process (preload).
        app = build_app(keys_file=args.keys_file, listen=(host, port))
        if args.dev:
            return run_development(host, port, app)
        return run_gunicorn(host, port, args.workers, args.threads, app)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def development_server(host: str, port: int, app: Any, *, socket_timeout: float = SOCKET_TIMEOUT) -> Any:
    """werkzeug's threaded server for ``app``, bound, not yet serving
    (``serve_forever``; ``server_port`` is the port bound)."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Handler(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: SDKs reuse connections
        timeout = socket_timeout  # per read: a client that stops sending is cut off

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass  # one line per DynamoDB call is noise; /metrics counts them

    server = make_server(host, port, app, threaded=True, request_handler=Handler)
    server.daemon_threads = True
    return server


def run_development(host: str, port: int, app: Any) -> int:
    """werkzeug's threaded server until SIGTERM or Ctrl-C."""
    server = development_server(host, port, app)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="regionproxy-serve", daemon=True)
    thread.start()
    print(f"regionproxy serve (development server): http://{host}:{server.server_port}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        thread.join(timeout=5)
        app.close()
        signal.signal(signal.SIGTERM, previous)
    return 0


def run_gunicorn(host: str, port: int, workers: int, threads: int, app: Any) -> int:
    """gunicorn (the sidecar's worker class, :func:`~regionproxy._sidecar.worker.worker_class`)
    serving ``app``, built in this process (the master) and forked into each worker."""
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError as error:
        raise ConfigError("regionproxy serve needs gunicorn (pip install 'regionproxy[serve]'), or use --dev") from error


    def child_exit(server: Any, worker: Any) -> None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(worker.pid)

    settings = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": worker_class(),
        "threads": threads,
        "timeout": 30,
        "graceful_timeout": 10,
        "keepalive": 75,  # SDKs keep connections open; longer than their idle timeouts
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "child_exit": child_exit,
        "accesslog": None,
        "proc_name": "regionproxy-serve",
        # The app (and its session) was built in the master; the session
        # makes its clients and threads in each worker after the fork.
        "preload_app": True,
    }

    class Sidecar(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name, value in settings.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            return app

    Sidecar().run()
    return 0
