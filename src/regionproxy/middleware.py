"""WSGI middleware: hands the app a session and answers health and admin paths.

``RegionProxyMiddleware(app, session)`` wraps any WSGI app (Flask's
``app.wsgi_app``, Django's ``get_wsgi_application()``, plain WSGI). It puts
the session in ``environ["regionproxy.session"]``, answers its own paths
through small mounted WSGI apps, and passes everything else through
untouched: the body is streamed, never buffered, and the app iterable's
``close()`` is honoured.

Paths (configurable): ``/livez`` (process alive, no dependency checks),
``/readyz`` and ``/healthz`` (readiness), ``/metrics`` and
``/_regionproxy/`` (admin surface, allowed clients only).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from regionproxy.access import LOOPBACK, LOOPBACK_HOSTS, AdminAccess, AllowedHosts, admin_token, allowed_networks
from regionproxy.admin import AdminApp, StartResponse, not_found, respond
from regionproxy.errors import ConfigError
from regionproxy.events import CacheLookup, CallFinished, Event
from regionproxy.health import FAIL, POLICIES, HealthMonitor, health_json

if TYPE_CHECKING:
    from regionproxy.session import RegionSession

ENVIRON_KEY = "regionproxy.session"
HEALTH_TYPE = "application/health+json"
PROBE_METHODS = ("GET", "HEAD", "OPTIONS")


class HealthApp:
    """``/livez`` (``ready=False``) or ``/readyz`` (``ready=True``).

    Answers GET, HEAD and OPTIONS, HTTP/1.0 without a Host header included,
    from kept state only. 200 for pass and warn, 503 for fail.
    """

    def __init__(self, monitor: HealthMonitor, *, ready: bool) -> None:
        self.monitor = monitor
        self.ready = ready

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD") or "GET"
        if method not in PROBE_METHODS:  # methods are case-sensitive: 'get' is not GET
            return respond(
                start_response, "405 Method Not Allowed", b"", "text/plain", Allow=", ".join(PROBE_METHODS)
            )
        if self.ready:
            body = health_json(self.monitor.readiness())
        else:
            body = {"status": "pass", "serviceId": "regionproxy"}  # alive: nothing else is checked
        status = "503 Service Unavailable" if body["status"] == FAIL else "200 OK"
        payload = json.dumps(body).encode()
        result = respond(start_response, status, payload, HEALTH_TYPE, Allow=", ".join(PROBE_METHODS))
        return [] if method == "HEAD" else result


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


LIVE_PATHS = ("/livez",)
READY_PATHS = ("/readyz", "/healthz")
ADMIN_PREFIX = "/_regionproxy"
METRICS_PATH = "/metrics"
PROBE_INTERVALS = (0.05, 3600.0)  # seconds: faster burns CPU, slower cannot notice an outage
_PATH = re.compile(r"/[!-~]*")  # visible ASCII from a '/'
_PREFIX = re.compile(r"(?:/[^/]+)+")  # '/x' or '/x/y': no trailing slash, no empty segment


def _fail(name: str, message: str, value: Any) -> ConfigError:
    return ConfigError(f"{name} {message}, got {value!r}", setting=name)


def _readiness(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in POLICIES:
        raise _fail(name, f"must be one of {POLICIES}", value)
    return value


def _path(name: str, value: Any) -> str:
    # PATH_INFO holds no query or fragment: a path with '?' or '#' never matches.
    if not isinstance(value, str) or not _PATH.fullmatch(value) or "?" in value or "#" in value:
        raise _fail(name, "must be a path: '/' then visible ASCII, no '?' or '#'", value)
    return value


def _paths(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise _fail(name, "must be a non-empty list of paths such as ['/livez']", value)
    return tuple(_path(name, path) for path in value)


def _admin_prefix(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _PREFIX.fullmatch(_path(name, value)):
        raise _fail(name, "must start and not end with '/', with no empty segment", value)
    return value


def _metrics_path(name: str, value: Any) -> str | None:
    return None if value is None else _path(name, value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):  # "false" is a true value: refuse anything but a bool
        raise _fail(name, "must be True or False", value)
    return value


def _probe_interval(name: str, value: Any) -> float:
    low, high = PROBE_INTERVALS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        raise _fail(name, f"must be a number of seconds from {low} to {high}", value)
    return float(value)


def _probe_table(name: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value or value != value.strip()):
        raise _fail(name, "must be None or a table name", value)
    return value


def _admin_allow(name: str, value: Any) -> tuple[str, ...]:
    allowed_networks(value, name)
    return tuple(value)


def _admin_hosts(name: str, value: Any) -> tuple[str, ...]:
    AllowedHosts(value, name)
    return tuple(value)


# Middleware keyword -> check(keyword, value): the value to use, or a
# ConfigError naming the keyword. One table for the constructor and for
# framework settings, so both refuse the same things.
OPTION_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "readiness": _readiness,
    "live_paths": _paths,
    "ready_paths": _paths,
    "admin_prefix": _admin_prefix,
    "metrics_path": _metrics_path,
    "admin_allow": _admin_allow,
    "admin_token": lambda name, value: admin_token(value, name),
    "admin_hosts": _admin_hosts,
    "server_timing": _flag,
    "probe_interval": _probe_interval,
    "probe_table": _probe_table,
}
OPTIONS = frozenset(OPTION_CHECKS) | {"monitor", "lab"}  # every keyword the middleware takes


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Check middleware keywords: each value's type and range, then the paths
    against each other (defaults standing in for those not given).

    Returns the checked values; raises :class:`ConfigError` naming the first
    wrong keyword. The constructor calls it; so can a settings check.
    """
    unknown = sorted(set(options) - set(OPTION_CHECKS))
    if unknown:
        raise ConfigError(f"unknown middleware options {unknown}; known: {sorted(OPTIONS)}", setting=unknown[0])
    checked = {name: OPTION_CHECKS[name](name, value) for name, value in options.items()}
    live = checked.get("live_paths", LIVE_PATHS)
    ready = checked.get("ready_paths", READY_PATHS)
    prefix = checked.get("admin_prefix", ADMIN_PREFIX)
    metrics = checked.get("metrics_path", METRICS_PATH)
    seen: set[str] = set()
    for name, paths in (("live_paths", live), ("ready_paths", ready)):
        for path in paths:
            if path in seen or path == metrics or path == prefix or path.startswith(prefix + "/"):
                raise _fail(name, "must not repeat a path, nor overlap metrics_path or admin_prefix", path)
            seen.add(path)
    if metrics == prefix:
        raise _fail("metrics_path", "must differ from admin_prefix", metrics)
    return checked


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word not in _TRUE + _FALSE:
        raise ValueError(f"not a boolean: use one of {_TRUE + _FALSE}")
    return word in _TRUE


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


# Framework settings (Flask's REGIONPROXY_* config, Django's REGIONPROXY
# dict) -> middleware keyword, and how to read a string value.
MIDDLEWARE_SETTINGS: dict[str, tuple[str, Any]] = {
    "READINESS": ("readiness", str.strip),
    "LIVE_PATHS": ("live_paths", _parse_list),
    "READY_PATHS": ("ready_paths", _parse_list),
    "ADMIN_PREFIX": ("admin_prefix", str.strip),
    "METRICS_PATH": ("metrics_path", lambda text: text.strip() or None),
    "ADMIN_ALLOW": ("admin_allow", _parse_list),
    "ADMIN_HOSTS": ("admin_hosts", _parse_list),
    "ADMIN_TOKEN": ("admin_token", str),
    "SERVER_TIMING": ("server_timing", _parse_bool),
    "PROBE_INTERVAL": ("probe_interval", float),
    "PROBE_TABLE": ("probe_table", str.strip),
}


def middleware_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Middleware keywords from framework settings without the prefix
    (``{"READINESS": "any", ...}``): strings are parsed, and every value is
    checked, a wrong one raising :class:`ConfigError` that names
    ``REGIONPROXY_<NAME>``."""
    options = {}
    for name, value in settings.items():
        if name not in MIDDLEWARE_SETTINGS:
            continue
        keyword, parse = MIDDLEWARE_SETTINGS[name]
        variable = f"REGIONPROXY_{name}"
        try:
            options[keyword] = OPTION_CHECKS[keyword](keyword, parse(value) if isinstance(value, str) else value)
        except ValueError as error:  # ConfigError is a ValueError too
            shown = "<hidden>" if name == "ADMIN_TOKEN" else repr(value)  # errors end up in logs
            raise ConfigError(f"{variable}={shown}: {error}", setting=variable) from error
    return options


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
    :param lab: demo mode only: a LocalRegions whose outages the page controls.

    Every option is checked here (:func:`check_options`): a wrong one raises
    :class:`ConfigError` naming it, before anything is hooked up.
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
        monitor: HealthMonitor | None = None,
        lab: Any = None,
    ) -> None:
        from regionproxy.session import RegionSession

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
            }
        )
        self.app = app
        self.session = session
        self.monitor = monitor or HealthMonitor(
            session, interval=options["probe_interval"], policy=readiness, probe_table=probe_table
        )
        access = AdminAccess(options["admin_allow"], admin_token, options["admin_hosts"])
        self.metrics = _metrics_listener(session) if metrics_path else None
        self.admin = AdminApp(self.monitor, access, metrics=self.metrics, lab=lab)
        self.server_timing = server_timing
        if server_timing:
            session.hooks.add(_record_timing)
        self.admin_prefix = admin_prefix
        self.metrics_path = metrics_path
        live, ready = HealthApp(self.monitor, ready=False), HealthApp(self.monitor, ready=True)
        self._mounts: dict[str, Any] = {**{p: live for p in options["live_paths"]}, **{p: ready for p in options["ready_paths"]}}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        answer = self.dispatch(environ, start_response)
        if answer is not None:
            return answer
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
        """Answer a health, metrics or admin path; None for any other path.

        For frameworks whose middleware is not WSGI (Django): they call this
        first and handle the request themselves when it returns None.
        """
        self.monitor.start()  # once per process; a no-op after the first request
        path = environ.get("PATH_INFO")
        if not isinstance(path, str):
            return None
        mounted = self._mounts.get(path)
        if mounted is not None:
            return mounted(environ, start_response)
        if path == self.metrics_path:
            return self._mounted_admin(environ, start_response, "/metrics", self.metrics_path)
        if path == self.admin_prefix:  # the page's relative links need the slash
            if not self.admin.access.allows(environ):
                return not_found(start_response)
            location = _script_name(environ) + path + "/"
            return respond(start_response, "308 Permanent Redirect", b"", "text/plain", Location=location)
        if path.startswith(self.admin_prefix + "/"):
            return self._mounted_admin(environ, start_response, path[len(self.admin_prefix) :], self.admin_prefix)
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

    def _mounted_admin(self, environ: dict[str, Any], start_response: StartResponse, path: str, script: str) -> Any:
        # Like werkzeug's DispatcherMiddleware: the mount point moves from
        # PATH_INFO to SCRIPT_NAME, so the admin app sees paths of its own.
        inner = dict(environ)
        inner["SCRIPT_NAME"] = _script_name(environ) + script
        inner["PATH_INFO"] = path
        return self.admin(inner, start_response)

    def close(self) -> None:
        """Stop the background probes and metrics (the session is the caller's to close)."""
        self.monitor.stop()
        if self.metrics is not None:
            self.session.hooks.remove(self.metrics)


def _script_name(environ: dict[str, Any]) -> str:
    name = environ.get("SCRIPT_NAME")
    return name if isinstance(name, str) else ""


def _metrics_listener(session: RegionSession) -> Any:
    from regionproxy.metrics import PrometheusListener

    try:
        listener = PrometheusListener(regions=session.regions)
    except ImportError as error:  # prometheus_client is the 'metrics' extra
        raise ConfigError(
            "metrics need prometheus-client (pip install regionproxy[metrics]); or pass metrics_path=None",
            setting="metrics_path",
        ) from error
    session.hooks.add(listener)
    return listener
