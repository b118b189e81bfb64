"""The admin surface: status page, status JSON, evacuate/restore, metrics.

Answered only to allowed clients (:class:`AdminAccess`): loopback by
default, an allow-list of networks, and optionally a bearer token compared
in constant time. Everyone else gets a plain 404, as if nothing were there.
``REMOTE_ADDR`` is the peer address: behind a reverse proxy, put
``werkzeug.middleware.proxy_fix.ProxyFix`` in front so it is the client's.

Evacuate and restore force a region's breaker open or closed, a manual
switch like Route 53 ARC routing controls; readiness follows.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
from collections.abc import Callable, Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from regionproxy.errors import ConfigError
from regionproxy.health import health_json

if TYPE_CHECKING:
    from regionproxy.health import HealthMonitor
    from regionproxy.metrics import PrometheusListener

StartResponse = Callable[..., Any]
LOOPBACK = ("127.0.0.0/8", "::1/128")
ACTIONS = ("evacuate", "restore")
DEMO_ACTIONS = ("outage", "heal")


class AdminAccess:
    """Who may use the admin surface.

    :param allow: networks (CIDR strings) whose clients are allowed.
    :param token: if set, clients must also send ``Authorization: Bearer <token>``.
    """

    def __init__(self, allow: Iterable[str] = LOOPBACK, token: str | None = None) -> None:
        try:
            self.networks = tuple(ipaddress.ip_network(network, strict=False) for network in allow)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"admin_allow: {error}", setting="admin_allow") from error
        if token is not None and (not isinstance(token, str) or len(token) < 16):
            raise ConfigError("admin_token must be a string of at least 16 characters", setting="admin_token")
        self._token = token.encode() if token else None

    def __repr__(self) -> str:
        # Never the token itself: reprs end up in logs.
        return f"AdminAccess(allow={[str(n) for n in self.networks]}, token={'set' if self._token else None})"

    def allows(self, environ: dict[str, Any]) -> bool:
        try:
            address = ipaddress.ip_address(environ.get("REMOTE_ADDR", "").split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not any(address in network for network in self.networks):
            return False
        if self._token is None:
            return True
        scheme, _, credentials = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self._token)


def respond(start_response: StartResponse, status: str, body: bytes, content_type: str, **headers: str) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *((name.replace("_", "-"), value) for name, value in headers.items()),
        ],
    )
    return [body]


def not_found(start_response: StartResponse) -> list[bytes]:
    return respond(start_response, "404 Not Found", b"Not Found\n", "text/plain; charset=utf-8")


class AdminApp:
    """WSGI app for ``<prefix>/``, ``<prefix>/status.json``, region actions
    and (when ``metrics`` is given) the metrics exposition.

    :param monitor: the health monitor (its session is the one shown).
    :param access: who may use it.
    :param metrics: the Prometheus listener, or None.
    :param lab: a :class:`~regionproxy.testing.LocalRegions` in demo mode:
        adds buttons that cause and heal a region's outage. Never in production.
    """

    def __init__(
        self,
        monitor: HealthMonitor,
        access: AdminAccess,
        *,
        metrics: PrometheusListener | None = None,
        lab: Any = None,
    ) -> None:
        self.monitor = monitor
        self.session = monitor.session
        self.access = access
        self.metrics = metrics
        self.lab = lab

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self.access.allows(environ):
            return not_found(start_response)
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path in ("", "/") and method in ("GET", "HEAD"):
            return self._page(start_response)
        if path == "/status.json" and method in ("GET", "HEAD"):
            return respond(start_response, "200 OK", json.dumps(self.status()).encode(), "application/json")
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "regions" and parts[2] in (*ACTIONS, *DEMO_ACTIONS):
            if method != "POST":
                return respond(start_response, "405 Method Not Allowed", b"POST only\n", "text/plain", Allow="POST")
            return self._act(environ, start_response, parts[1], parts[2])
        return not_found(start_response)

    def status(self) -> dict[str, Any]:
        status = self.session.status()
        status["readiness"] = health_json(self.monitor.readiness())
        if self.lab is not None:
            status["demo"] = {region: self.lab.outage(region) is not None for region in self.session.regions}
        return status

    def _page(self, start_response: StartResponse) -> list[bytes]:
        template = _status_template()
        # '</' cannot appear inside the JSON: it would end the script element.
        initial = json.dumps(self.status()).replace("</", "<\\/")
        body = template.replace("__INITIAL__", initial).encode()
        return respond(
            start_response,
            "200 OK",
            body,
            "text/html; charset=utf-8",
            Content_Security_Policy="default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            X_Frame_Options="DENY",
        )

    def _metrics(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if self.metrics is None:
            return not_found(start_response)
        body, content_type = self.metrics.exposition()
        return respond(start_response, "200 OK", body, content_type)

    def _act(self, environ: dict[str, Any], start_response: StartResponse, region: str, action: str) -> list[bytes]:
        if not _same_origin(environ):
            return respond(start_response, "403 Forbidden", b"cross-site request refused\n", "text/plain")
        if region not in self.session.regions:
            return not_found(start_response)
        if action == "evacuate":
            self.session.evacuate(region)
        elif action == "restore":
            self.session.restore(region)
        elif self.lab is None:
            return not_found(start_response)  # outage controls exist only in demo mode
        elif action == "outage":
            self.lab.fault(region, "blackhole")
        else:
            self.lab.heal(region)
        if "application/json" in environ.get("HTTP_ACCEPT", ""):
            body = json.dumps({"region": region, "action": action, "breaker": self.session.replicas[region].breaker.state})
            return respond(start_response, "200 OK", body.encode(), "application/json")
        base = environ.get("SCRIPT_NAME", "").rstrip("/")
        return respond(start_response, "303 See Other", b"", "text/plain", Location=f"{base}/")


@functools.cache
def _status_template() -> str:
    return resources.files("regionproxy").joinpath("static/status.html").read_text(encoding="utf-8")


def _same_origin(environ: dict[str, Any]) -> bool:
    """Refuse a browser's cross-site POST (CSRF): when the browser says where
    the request comes from, it must be this host."""
    if environ.get("HTTP_SEC_FETCH_SITE", "same-origin") not in ("same-origin", "none"):
        return False
    origin = environ.get("HTTP_ORIGIN")
    return origin is None or urlsplit(origin).netloc == environ.get("HTTP_HOST", "")
