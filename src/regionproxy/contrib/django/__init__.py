"""Django integration: a ``MIDDLEWARE`` entry configured from ``settings.REGIONPROXY``.

::

    INSTALLED_APPS = [..., "regionproxy.contrib.django"]      # the system check
    MIDDLEWARE = ["regionproxy.contrib.django.RegionProxyMiddleware", ...]
    REGIONPROXY = {"REGIONS": ["eu-west-3", "us-east-1"], "READINESS": "evacuate"}

Put the middleware first: health probes are answered before any other
middleware (sessions, auth, CSRF) runs. In views::

    from regionproxy.contrib.django import table
    post = table("Blog").get_item(Key={...})

The ``REGIONPROXY_*`` environment variables are read too, under the
settings (a setting wins over its variable), as the Flask extension does;
a misspelled variable or setting is a :class:`~regionproxy.ConfigError`
naming the nearest known name. The session is built once per process, on
first use (after gunicorn forks).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from regionproxy._web.middleware import RegionProxyMiddleware as WSGIMiddleware
from regionproxy.contrib import configure, environment_settings

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from regionproxy._boto3.table import RegionTable
    from regionproxy._session.session import RegionSession

_lock = threading.Lock()
_state: dict[str, Any] = {}


def _configured() -> tuple[RegionSession, dict[str, Any]]:
    if "session" not in _state:
        from django.conf import settings

        with _lock:
            if "session" not in _state:
                _state["session"], _state["options"] = configure(merged_settings(getattr(settings, "REGIONPROXY", {})))
    return _state["session"], _state["options"]


def merged_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``REGIONPROXY_*`` environment (``regionproxy lab -- python
    manage.py runserver`` exports it), with ``settings.REGIONPROXY`` over
    it: the settings win, as ``app.config`` does in the Flask extension."""
    return {**environment_settings(os.environ), **config}


def get_session() -> RegionSession:
    """This process's session, built from ``settings.REGIONPROXY``."""
    return _configured()[0]


def table(name: str) -> RegionTable:
    """Use where you would use ``boto3.resource("dynamodb").Table(name)``."""
    return get_session().table(name)


def reset() -> None:
    """Forget the session (closes it); the next use builds a new one from
    the settings. Called when a test overrides ``REGIONPROXY``."""
    with _lock:
        session = _state.pop("session", None)
        _state.pop("options", None)
        middleware = _state.pop("middleware", None)
    if middleware is not None:
        middleware.close()
    if session is not None:
        session.close()


class RegionProxyMiddleware:
    """Django middleware: health, metrics and admin paths, the session on
    ``request.regionproxy``, and ``Server-Timing`` when enabled."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    @property
    def wsgi(self) -> WSGIMiddleware:
        middleware = _state.get("middleware")
        if middleware is None:
            session, options = _configured()
            with _lock:
                middleware = _state.get("middleware")
                if middleware is None:
                    middleware = _state["middleware"] = WSGIMiddleware(_unreachable, session, **options)
        return middleware

    def __call__(self, request: HttpRequest) -> HttpResponse:
        wsgi = self.wsgi
        answer = self._answer(wsgi, request)
        if answer is not None:
            return answer
        request.regionproxy = wsgi.session  # type: ignore[attr-defined]
        if not wsgi.server_timing:
            return self.get_response(request)
        with wsgi.timing() as timing:
            response = self.get_response(request)
        response["Server-Timing"] = timing.header()
        return response

    @staticmethod
    def _answer(wsgi: WSGIMiddleware, request: HttpRequest) -> HttpResponse | None:
        from django.http import HttpResponse

        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            started.extend((status, headers))

        # request.META is the WSGI environ (REMOTE_ADDR, headers, method).
        body = wsgi.dispatch(request.META, start_response)
        if body is None:
            return None
        status, headers = started
        response = HttpResponse(b"".join(body), status=int(status.split()[0]))
        for name, value in headers:
            response[name] = value
        return response


def _unreachable(environ: Any, start_response: Any) -> Any:
    raise AssertionError("Django requests do not go through the WSGI app here")
