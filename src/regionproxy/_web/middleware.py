"""WSGI middleware: hands the app a session and answers health and admin paths.

``RegionProxyMiddleware(app, session)`` wraps any WSGI app (Flask's
``app.wsgi_app``, Django's ``get_wsgi_application()``, plain WSGI). It puts
the session in ``environ["regionproxy._session.session"]``, answers its own paths
through small mounted WSGI apps, and passes everything else through
untouched: the body is streamed, never buffered, and the app iterable's
``close()`` is honoured.

Paths (configurable): ``/livez`` (process alive, no dependency checks),
``/readyz`` and ``/healthz`` (readiness), ``/metrics`` and
``/_regionproxy/`` (admin surface, allowed clients only).

Whether a path is the middleware's own is decided from ``PATH_INFO`` alone,
with one dict lookup and one prefix test: the app's own requests get no
werkzeug ``Request`` and no copy of the environ. The mounted apps answer
with werkzeug's ``Response`` (see :mod:`regionproxy._web.admin`). werkzeug's
``DispatcherMiddleware`` does not fit this table (werkzeug 3.1.9): it
mounts prefixes, so ``/readyz/`` and ``/livez/x`` would reach the health
endpoint rather than the app, and it rewrites ``SCRIPT_NAME`` and
``PATH_INFO`` of every request, the app's own included, after a walk of
one ``rsplit`` per path segment (0.8-1.1 us per request passed through on
a three-segment path, against 0.5 us for this table, bare app excluded).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from regionproxy._regions.canary import ReplicationCanary
from regionproxy._regions.health import FAIL, HealthMonitor, health_json
from regionproxy._web.access import LOOPBACK, LOOPBACK_HOSTS, AdminAccess
from regionproxy._web.admin import AdminApp, StartResponse, WSGIApp, answer, native_environ
from regionproxy._web.options import ADMIN_PREFIX, LIVE_PATHS, METRICS_PATH, READY_PATHS, check_options
from regionproxy._web.timeline import Timeline
from regionproxy.errors import ConfigError
from regionproxy.events import CacheLookup, CallFinished, Event

if TYPE_CHECKING:
    from regionproxy._session.session import RegionSession
    from regionproxy._web.metrics import PrometheusListener

ENVIRON_KEY = "regionproxy._session.session"
HEALTH_TYPE = "application/health+json"
PROBE_METHODS = ("GET", "HEAD", "OPTIONS")


class HealthApp:
    """``/livez`` (``ready=False``) or ``/readyz`` (``ready=True``).

    Answers GET, HEAD and OPTIONS, HTTP/1.0 without a Host header included,
    from kept state only. 200 for pass and warn, 503 for fail; 405 with
    ``Allow`` for any other method (case-sensitive: ``get`` is not GET).
    """

    def __init__(self, monitor: HealthMonitor, *, ready: bool) -> None:
        self.monitor = monitor
        self.ready = ready

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        allow = {"Allow": ", ".join(PROBE_METHODS)}
        if environ["REQUEST_METHOD"] not in PROBE_METHODS:
            return answer(b"", 405, headers=allow)(environ, start_response)
        if self.ready:
            body = health_json(self.monitor.readiness())
        else:
            body = {"status": "pass", "serviceId": "regionproxy"}  # alive: nothing else is checked
        status = 503 if body["status"] == FAIL else 200
        return answer(json.dumps(body).encode(), status, HEALTH_TYPE, allow)(environ, start_response)


class _RequestTiming:
    """DynamoDB time, calls, cache hits and regions of one request."""

    __slots__ = ("seconds", "calls", "cache_hits", "regions")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.cache_hits = 0
        self.regions: list[str] = []

    def header(self) -> str:
        regions = ",".join(self.regions)
        return (
            f'dynamodb;dur={self.seconds * 1000:.1f};desc="{self.calls} calls", '
            f'cache;desc="{self.cache_hits} hits", regions;desc="{regions}"'
        )


_timing: contextvars.ContextVar[_RequestTiming | None] = contextvars.ContextVar("regionproxy_timing", default=None)


def _record_timing(event: Event) -> None:
    """Listener: add the event to the current request's timing, if any."""
    timing = _timing.get()
    if timing is None:
        return
    if isinstance(event, CallFinished):
        timing.seconds += event.duration
        timing.calls += 1
        if event.region not in timing.regions:
            timing.regions.append(event.region)
    elif isinstance(event, CacheLookup) and event.hit:
        timing.cache_hits += 1


class RegionProxyMiddleware:
    """Wrap ``app``: hand it ``session``, answer health and admin paths.

    :param app: the WSGI app to wrap.
    :param session: the :class:`~regionproxy.RegionSession` to hand it.
    :param readiness: ``evacuate`` (fail while the local region is down) or ``any``.
    :param live_paths: paths of the liveness endpoint.
    :param ready_paths: paths of the readiness endpoint.
    :param admin_prefix: where the status page and actions live.
    :param metrics_path: the Prometheus endpoint, or None for none.
    :param admin_allow: networks allowed on the admin surface and metrics.
    :param admin_token: a bearer token also required there, or None.
    :param admin_hosts: ``Host`` names allowed there: names, ``*.suffix``
        forms, IP addresses and networks (loopback by default).
    :param server_timing: add a ``Server-Timing`` header to every response.
    :param probe_interval: seconds between background probes of a region.
    :param probe_table: a table to probe with ``GetItem`` (data plane).
    :param monitor: the :class:`~regionproxy.HealthMonitor` to use
        (one is made from ``probe_interval`` and ``probe_table`` by default).
    :param canary_table: a Global Table for the replication-lag canary's
        heartbeats (``REGIONPROXY_CANARY_TABLE``); None: no canary.
    :param canary_interval: seconds between heartbeats (5).
    :param lag_warn: seconds of replication lag past which readiness warns (10).
    :param lab: demo mode only: a LocalRegions whose outages the page controls.
    :raises ConfigError: ``app`` is not callable, ``session`` is not a
        ``RegionSession``, or an option is wrong; ``.setting`` names it.

    Every option is checked here (:func:`check_options`): a wrong one raises
    :class:`ConfigError` naming it, before anything is hooked up. Each option
    is also a ``REGIONPROXY_*`` variable for the Flask and Django
    integrations (docs/reference/middleware.md).

    Example::

        import regionproxy as rp

        session = rp.RegionSession.from_env()
        app.wsgi_app = rp.RegionProxyMiddleware(
            app.wsgi_app, session,
            admin_allow=["10.0.0.0/8"], admin_token="s3cret",   # the status page and /metrics
        )
    """

    def __init__(
        self,
        app: Any,
        session: RegionSession,
        *,
        readiness: str = "evacuate",
        live_paths: Sequence[str] = LIVE_PATHS,
        ready_paths: Sequence[str] = READY_PATHS,
        admin_prefix: str = ADMIN_PREFIX,
        metrics_path: str | None = METRICS_PATH,
        admin_allow: Sequence[str] = LOOPBACK,
        admin_token: str | None = None,
        admin_hosts: Sequence[str] = LOOPBACK_HOSTS,
        server_timing: bool = False,
        probe_interval: float = 2.0,
        probe_table: str | None = None,
        canary_table: str | None = None,
        canary_interval: float = 5.0,
        lag_warn: float = 10.0,
        monitor: HealthMonitor | None = None,
        lab: Any = None,
    ) -> None:
        from regionproxy._session.session import RegionSession

        if not callable(app):
            raise ConfigError(f"app must be a WSGI callable, got {app!r}", setting="app")
        if not isinstance(session, RegionSession):
            raise ConfigError(f"session must be a RegionSession, got {session!r}", setting="session")
        if monitor is not None and not isinstance(monitor, HealthMonitor):
            raise ConfigError(f"monitor must be a HealthMonitor or None, got {monitor!r}", setting="monitor")
        options = check_options(
            {
                "readiness": readiness,
                "live_paths": live_paths,
                "ready_paths": ready_paths,
                "admin_prefix": admin_prefix,
                "metrics_path": metrics_path,
                "admin_allow": admin_allow,
                "admin_token": admin_token,
                "admin_hosts": admin_hosts,
                "server_timing": server_timing,
                "probe_interval": probe_interval,
                "probe_table": probe_table,
                "canary_table": canary_table,
                "canary_interval": canary_interval,
                "lag_warn": lag_warn,
            }
        )
        self.app = app
        self.session = session
        canary = (
            ReplicationCanary(session, canary_table, interval=options["canary_interval"], lag_warn=options["lag_warn"])
            if canary_table
            else None
        )
        self.monitor = monitor or HealthMonitor(
            session, interval=options["probe_interval"], policy=readiness, probe_table=probe_table, canary=canary
        )
        access = AdminAccess(options["admin_allow"], admin_token, options["admin_hosts"])
        self.metrics = _metrics_listener(session) if metrics_path else None
        # Latency and errors over time, drawn by the status page.
        self.timeline = Timeline(session.regions)
        session.add_listener(self.timeline)
        self.admin = AdminApp(
            session, self.monitor, access, metrics=_metrics_app(self.metrics), lab=lab, timeline=self.timeline
        )
        self.server_timing = server_timing
        if server_timing:
            session.add_listener(_record_timing)
        self.admin_prefix = admin_prefix
        self.metrics_path = metrics_path
        live, ready = HealthApp(self.monitor, ready=False), HealthApp(self.monitor, ready=True)
        # Own paths, exactly; below the admin prefix (_below_prefix), the admin app.
        self._mounts: dict[str, WSGIApp] = {
            **{path: _mounted(live) for path in options["live_paths"]},
            **{path: _mounted(ready) for path in options["ready_paths"]},
            admin_prefix: _mounted(self.admin, admin_prefix, ""),
        }
        if metrics_path:
            self._mounts[metrics_path] = _mounted(self.admin, metrics_path, "/metrics")
        self._below_prefix = admin_prefix + "/"

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        own = self.dispatch(environ, start_response)
        if own is not None:
            return own
        environ[ENVIRON_KEY] = self.session
        if not self.server_timing:
            return self.app(environ, start_response)
        with self.timing() as timing:

            def timed_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                # Calls made while the body streams come after the headers
                # are sent: Server-Timing counts what happened before.
                return start_response(status, [*headers, ("Server-Timing", timing.header())], exc_info)

            return self.app(environ, timed_start_response)

    def dispatch(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes] | None:
        """Answer a health, metrics or admin path; None for any other path,
        once the fleet's messages that reached this process are applied
        (:meth:`~regionproxy.RegionSession.settle`).

        For frameworks whose middleware is not WSGI (Django): they call this
        first and handle the request themselves when it returns None.
        """
        self.monitor.start()  # once per process; a no-op after the first request
        path = environ.get("PATH_INFO")
        if isinstance(path, str):
            mounted = self._mounts.get(path)
            if mounted is not None:
                return mounted(environ, start_response)
            if path.startswith(self._below_prefix):
                return _mount(self.admin, environ, start_response, self.admin_prefix)
        # The app's request: every cache drop the fleet published before it
        # arrived is applied before it is served (a no-op without a fleet).
        # Not for our own paths: a health answer waits for nothing.
        self.session.settle()
        return None

    @staticmethod
    @contextlib.contextmanager
    def timing() -> Iterator[_RequestTiming]:
        """Collect the DynamoDB time of the code inside (one request)."""
        timing = _RequestTiming()
        token = _timing.set(timing)
        try:
            yield timing
        finally:
            _timing.reset(token)

    def close(self) -> None:
        """Stop the background probes and metrics (the session is the caller's to close)."""
        self.monitor.stop()
        self.session.remove_listener(self.timeline)
        if self.metrics is not None:
            self.session.remove_listener(self.metrics)


def _mount(app: WSGIApp, environ: dict[str, Any], start_response: StartResponse, script: str = "", path: str | None = None) -> Any:
    """Call one of the middleware's own apps on a copy of ``environ`` that
    werkzeug can read (:func:`~regionproxy._web.admin.native_environ`). Like
    werkzeug's ``DispatcherMiddleware``, the mount point ``script`` moves
    from ``PATH_INFO`` to ``SCRIPT_NAME`` (``PATH_INFO`` becomes ``path``
    when given), so the app sees paths of its own."""
    inner = native_environ(environ)
    if script:
        inner["SCRIPT_NAME"] = inner.get("SCRIPT_NAME", "") + script
        inner["PATH_INFO"] = inner["PATH_INFO"][len(script) :] if path is None else path
    return app(inner, start_response)


def _mounted(app: WSGIApp, script: str = "", path: str | None = None) -> WSGIApp:
    return functools.partial(_mount, app, script=script, path=path)


def _metrics_app(listener: PrometheusListener | None) -> WSGIApp | None:
    if listener is None:
        return None
    from regionproxy._web.metrics import MetricsApp

    return MetricsApp(listener)


def _metrics_listener(session: RegionSession) -> Any:
    from regionproxy._web.metrics import PrometheusListener

    try:
        listener = PrometheusListener(regions=session.regions, fleet=session.fleet is not None)
    except ImportError as error:  # prometheus_client is the 'metrics' extra
        raise ConfigError(
            "metrics need prometheus-client (pip install regionproxy[metrics]); or pass metrics_path=None",
            setting="metrics_path",
        ) from error
    session.add_listener(listener)
    return listener
