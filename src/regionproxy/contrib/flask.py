"""Flask integration: ``RegionProxy(app)`` or ``RegionProxy().init_app(app)``.

Reads ``REGIONPROXY_*`` keys from the environment and ``app.config`` (the
config wins; the same names as the environment variables, plus middleware options such as
``REGIONPROXY_READINESS`` and ``REGIONPROXY_ADMIN_TOKEN``), wraps
``app.wsgi_app`` with :class:`~regionproxy.RegionProxyMiddleware`, and keeps
its state in ``app.extensions["regionproxy"]``. In views::

    from regionproxy.contrib.flask import table
    post = table("Blog").get_item(Key={...})
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app

from regionproxy._web.middleware import RegionProxyMiddleware
from regionproxy._web.options import OPTION_CHECKS, OPTIONS
from regionproxy.contrib import configure, environment_settings
from regionproxy.errors import ConfigError

if TYPE_CHECKING:
    from flask import Flask

    from regionproxy._boto3.table import RegionTable
    from regionproxy._session.session import RegionSession

PREFIX = "REGIONPROXY_"


@dataclass(frozen=True)
class RegionProxyState:
    """What ``app.extensions["regionproxy"]`` holds."""

    session: RegionSession
    middleware: RegionProxyMiddleware


class RegionProxy:
    """The Flask extension.

    :param app: the app, or None to call :meth:`init_app` later.
    :param session: a session to use instead of one built from the config.
    :param options: middleware keywords that override the config; checked
        here, so a wrong one fails before any app is wrapped.
    """

    def __init__(self, app: Flask | None = None, session: RegionSession | None = None, **options: Any) -> None:
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise ConfigError(f"unknown RegionProxy options {unknown}; known: {sorted(OPTIONS)}", setting=unknown[0])
        for name in options.keys() & OPTION_CHECKS.keys():  # paths against each other: in init_app, with the config
            OPTION_CHECKS[name](name, options[name])
        self._session = session
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> RegionProxyState:
        # The environment's REGIONPROXY_* variables, overridden by app.config.
        settings = {
            **environment_settings(os.environ),
            **{key.removeprefix(PREFIX): value for key, value in app.config.items() if key.startswith(PREFIX)},
        }
        session, options = configure(settings, self._session)
        middleware = RegionProxyMiddleware(app.wsgi_app, session, **{**options, **self._options})
        app.wsgi_app = middleware  # type: ignore[method-assign]
        state = app.extensions["regionproxy"] = RegionProxyState(session, middleware)
        return state


def session() -> RegionSession:
    """The current app's session."""
    return current_app.extensions["regionproxy"].session


def table(name: str) -> RegionTable:
    """The current app's session's table ``name``: use it where you would use
    ``boto3.resource("dynamodb").Table(name)``."""
    return session().table(name)
