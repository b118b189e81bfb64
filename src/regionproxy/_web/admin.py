"""The admin surface: status page, status JSON, evacuate/restore, metrics.

Answered only to the clients :class:`~regionproxy._web.access.AdminAccess`
allows (see :mod:`regionproxy._web.access`); everyone else gets a plain 404, as
if nothing were there. Actions (evacuate, restore, the demo's outage
buttons) also need the token or a same-origin request.

Evacuate and restore force a region's breaker open or closed, a manual
switch like Route 53 ARC routing controls; readiness follows.

werkzeug does the HTTP work here: every answer of the middleware's own
paths is a :class:`werkzeug.wrappers.Response` (``Content-Length``, and no
body for ``HEAD`` with the length of the ``GET`` one), and the admin app
reads its request through a shallow :class:`werkzeug.wrappers.Request`
(``Accept`` negotiation, the mount point; shallow, so no body is read
whatever ``Content-Length`` claims). Where werkzeug does not fit
(werkzeug 3.1.9):

- ``Request.method`` and ``MapAdapter.match`` upper-case the method, so
  ``get`` would be served as GET; methods are case-sensitive (RFC 9110,
  9.1) and the raw ``REQUEST_METHOD`` is compared instead.
- ``Request.path`` and ``MapAdapter.match`` strip leading slashes:
  ``/_regionproxy//status.json`` would answer as ``/status.json``. So
  ``werkzeug.routing`` does not route these paths: once both are undone,
  what is left of it for three fixed paths and one action pattern is a
  ``MethodNotAllowed`` whose ``Allow`` lists a set, in hash order.
- ``Request(environ)`` assumes PEP 3333's native strings: it raises
  ``AttributeError`` for ``REQUEST_METHOD=None`` or a bytes ``PATH_INFO``
  and ``UnicodeEncodeError`` for a ``PATH_INFO`` or ``QUERY_STRING`` beyond
  latin-1, and ``Response`` reads ``environ["REQUEST_METHOD"]`` (KeyError
  when absent). A server or framework that puts such values there must not
  make these paths fail, so the middleware hands its own apps
  :func:`native_environ`'s copy.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from werkzeug.urls import iri_to_uri
from werkzeug.wrappers import Request, Response

from regionproxy._regions.health import health_json

if TYPE_CHECKING:
    from regionproxy._regions.health import HealthMonitor
    from regionproxy._web.access import AdminAccess


class Administered(Protocol):
    """What the admin app asks of the session it shows and acts on
    (a :class:`~regionproxy.RegionSession`)."""

    @property
    def regions(self) -> tuple[str, ...]: ...

    def status(self) -> dict[str, Any]: ...

    def breaker_state(self, region: str) -> str: ...

    def evacuate(self, region: str, *, by: str | None = None) -> None: ...

    def restore(self, region: str, *, by: str | None = None) -> None: ...

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
ACTIONS = ("evacuate", "restore")
DEMO_ACTIONS = ("outage", "heal")
READ_METHODS = ("GET", "HEAD")
PLAIN = "text/plain; charset=utf-8"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
    "X-Frame-Options": "DENY",
}


def native_environ(environ: Mapping[Any, Any]) -> dict[str, Any]:
    """A copy of ``environ`` in which every CGI value is a native string
    (PEP 3333), for werkzeug's ``Request`` and ``Response``.

    A CGI key (one without a dot: ``REQUEST_METHOD``, ``HTTP_HOST``, ...)
    whose value is not a string is dropped, as if the client had sent
    nothing usable there; a string with code points beyond latin-1 keeps
    its length with each of them replaced by ``?``, so a malformed value
    stays malformed (an ``HTTP_HOST`` is refused, never taken as absent).
    ``REQUEST_METHOD`` defaults to ``GET``; ``wsgi.*`` and other dotted
    keys are kept as they are.
    """
    native: dict[str, Any] = {}
    for key, value in environ.items():
        if not isinstance(key, str):
            continue
        if "." in key:
            native[key] = value
        elif isinstance(value, str):
            native[key] = value if value.isascii() else value.encode("latin-1", "replace").decode("latin-1")
    if not native.get("REQUEST_METHOD"):
        native["REQUEST_METHOD"] = "GET"
    return native


def answer(body: bytes = b"", status: int = 200, content_type: str = PLAIN, headers: Mapping[str, str] | None = None) -> Response:
    """A response of the middleware's own paths, which no cache may store."""
    # The reason phrase as RFC 9110 spells it: from an int, werkzeug sends '404 NOT FOUND'.
    response = Response(body, f"{status} {HTTPStatus(status).phrase}", headers, content_type=content_type)
    response.cache_control.no_store = True
    return response


def not_found() -> Response:
    """The plain 404 of a path that is not there, or not there for this client."""
    return answer(b"Not Found\n", 404)


def redirect(location: str, status: int) -> Response:
    """A redirect to a path on this server, however odd the mount point.

    ``iri_to_uri`` leaves what a header can carry (ASCII, percent-encoded;
    line breaks dropped), and leading slashes collapse to one: ``//host/x``
    would be a network path to another host.
    """
    return answer(b"", status, headers={"Location": iri_to_uri("/" + location.lstrip("/"))})


class AdminApp:
    """WSGI app for ``<prefix>/``, ``<prefix>/status.json``, region actions
    and (when ``metrics`` is given) the metrics exposition.

    :param session: the session shown and acted on.
    :param monitor: the health monitor of that session (readiness).
    :param access: who may use it.
    :param metrics: the metrics endpoint (a WSGI app such as
        :class:`~regionproxy._web.metrics.MetricsApp`), or None.
    :param timeline: a :class:`~regionproxy._web.timeline.Timeline` the
        status page draws (latency and errors over time), or None.
    :param lab: a :class:`~regionproxy.testing.LocalRegions` in demo mode:
        adds buttons that cause and heal a region's outage. Never in production.

    Its paths, below the mount point: ``""`` (a redirect to ``/``), ``/``,
    ``/status.json``, ``/metrics`` and ``/regions/<region>/<action>``
    exactly: no trailing slash, no empty segment, no ``..``.
    """

    def __init__(
        self,
        session: Administered,
        monitor: HealthMonitor,
        access: AdminAccess,
        *,
        metrics: WSGIApp | None = None,
        lab: Any = None,
        timeline: Any = None,
    ) -> None:
        self.session = session
        self.monitor = monitor
        self.access = access
        self.metrics = metrics
        self.lab = lab
        self.timeline = timeline

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self.access.allows(environ):
            return not_found()(environ, start_response)
        path = environ.get("PATH_INFO") or ""
        if path == "/metrics" and self.metrics is not None:
            return self.metrics(environ, start_response)
        return self._respond(Request(environ, shallow=True), path)(environ, start_response)

    def _respond(self, request: Request, path: str) -> Response:
        method = request.environ["REQUEST_METHOD"]  # raw: Request.method is upper-cased
        if not path:  # the mount point itself: the page's relative links need the slash
            return redirect(request.root_path + "/", 308)
        if path in ("/", "/status.json"):
            if method not in READ_METHODS:
                return answer(b"GET or HEAD only\n", 405, headers={"Allow": ", ".join(READ_METHODS)})
            return self._page() if path == "/" else answer(json.dumps(self.status()).encode(), content_type="application/json")
        # '/regions/<region>/<action>' exactly: no trailing slash, no empty segment.
        parts = path.split("/")
        if len(parts) == 4 and parts[0] == "" and parts[1] == "regions" and parts[3] in (*ACTIONS, *DEMO_ACTIONS):
            if method != "POST":
                return answer(b"POST only\n", 405, headers={"Allow": "POST"})
            return self._act(request, parts[2], parts[3])
        return not_found()

    def status(self) -> dict[str, Any]:
        status = self.session.status()
        status["readiness"] = health_json(self.monitor.readiness())
        canary = getattr(self.monitor, "canary", None)  # a stand-in monitor may have none
        status["replication"] = canary.status() if canary is not None else {"enabled": False}
        if self.timeline is not None:
            status["timeline"] = self.timeline.snapshot()
        if self.lab is not None:
            status["demo"] = {region: self.lab.outage(region) is not None for region in self.session.regions}
        return status

    def _page(self) -> Response:
        # '</' cannot appear inside the JSON: it would end the script element.
        initial = json.dumps(self.status()).replace("</", "<\\/")
        body = _status_template().replace("__INITIAL__", initial).encode()
        return answer(body, content_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    def _act(self, request: Request, region: str, action: str) -> Response:
        if not self.access.may_act(request.environ):
            return answer(b"refused: send the admin token, or act from this host's page\n", 403)
        if region not in self.session.regions:
            return not_found()
        if action == "evacuate":
            self.session.evacuate(region, by=_actor(request.environ))
        elif action == "restore":
            self.session.restore(region, by=_actor(request.environ))
        elif self.lab is None:
            return not_found()  # outage controls exist only in demo mode
        elif action == "outage":
            self.lab.fault(region, "blackhole")
        else:
            self.lab.heal(region, "blackhole")  # the outage only: the demo's latency profile stays
        # JSON for a client that prefers it to HTML (on a tie, and for '*/*'
        # as curl sends, the redirect back to the page).
        if request.accept_mimetypes.best_match(("text/html", "application/json")) == "application/json":
            body = {"region": region, "action": action, "breaker": self.session.breaker_state(region)}
            return answer(json.dumps(body).encode(), content_type="application/json")
        return redirect(request.root_path + "/", 303)


def _actor(environ: Mapping[str, Any]) -> str:
    """Who pressed the button, as the status page shows it: the admin
    surface and the client's address (the one access control judged)."""
    address = environ.get("REMOTE_ADDR")
    return f"admin from {address}" if isinstance(address, str) and address else "admin"


@functools.cache
def _status_template() -> str:
    return resources.files("regionproxy._web").joinpath("static/status.html").read_text(encoding="utf-8")
