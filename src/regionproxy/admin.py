"""The admin surface: status page, status JSON, evacuate/restore, metrics.

Answered only to the clients :class:`~regionproxy.access.AdminAccess`
allows (see :mod:`regionproxy.access`); everyone else gets a plain 404, as
if nothing were there. Actions (evacuate, restore, the demo's outage
buttons) also need the token or a same-origin request.

Evacuate and restore force a region's breaker open or closed, a manual
switch like Route 53 ARC routing controls; readiness follows.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any

from regionproxy.access import header
from regionproxy.health import health_json

if TYPE_CHECKING:
    from regionproxy.access import AdminAccess
    from regionproxy.health import HealthMonitor
    from regionproxy.metrics import PrometheusListener

StartResponse = Callable[..., Any]
ACTIONS = ("evacuate", "restore")
DEMO_ACTIONS = ("outage", "heal")
READ_METHODS = ("GET", "HEAD")


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
        path = header(environ, "PATH_INFO") or "/"
        method = header(environ, "REQUEST_METHOD") or "GET"
        if path == "/metrics" and self.metrics is None:
            return not_found(start_response)
        if path in ("/", "/status.json", "/metrics"):
            if method not in READ_METHODS:
                return respond(
                    start_response, "405 Method Not Allowed", b"GET or HEAD only\n", "text/plain", Allow=", ".join(READ_METHODS)
                )
            answer = self._page(start_response) if path == "/" else self._read(start_response, path)
            return [] if method == "HEAD" else answer
        # '/regions/<region>/<action>' exactly: no trailing slash, no empty segment.
        parts = path.split("/")
        if len(parts) == 4 and parts[0] == "" and parts[1] == "regions" and parts[3] in (*ACTIONS, *DEMO_ACTIONS):
            if method != "POST":
                return respond(start_response, "405 Method Not Allowed", b"POST only\n", "text/plain", Allow="POST")
            return self._act(environ, start_response, parts[2], parts[3])
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

    def _read(self, start_response: StartResponse, path: str) -> list[bytes]:
        if path == "/status.json":
            return respond(start_response, "200 OK", json.dumps(self.status()).encode(), "application/json")
        assert self.metrics is not None  # __call__ answered 404 for no metrics
        body, content_type = self.metrics.exposition()
        return respond(start_response, "200 OK", body, content_type)

    def _act(self, environ: dict[str, Any], start_response: StartResponse, region: str, action: str) -> list[bytes]:
        if not self.access.may_act(environ):
            return respond(
                start_response, "403 Forbidden", b"refused: send the admin token, or act from this host's page\n", "text/plain"
            )
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
        if "application/json" in (header(environ, "HTTP_ACCEPT") or ""):
            body = json.dumps({"region": region, "action": action, "breaker": self.session.replicas[region].breaker.state})
            return respond(start_response, "200 OK", body.encode(), "application/json")
        base = (header(environ, "SCRIPT_NAME") or "").rstrip("/")
        return respond(start_response, "303 See Other", b"", "text/plain", Location=f"{base}/")


@functools.cache
def _status_template() -> str:
    return resources.files("regionproxy").joinpath("static/status.html").read_text(encoding="utf-8")

