"""Framework integrations (Flask, Django) and the settings they share.

Both read the same names: ``REGIONS``, ``ENDPOINTS``, ... (the
``REGIONPROXY_*`` environment variables without the prefix) for the
session, and ``READINESS``, ``ADMIN_TOKEN``, ... for the middleware.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from regionproxy._config.environment import ENV_PREFIX, ENVIRONMENT
from regionproxy._web.options import MIDDLEWARE_SETTINGS, middleware_options
from regionproxy.errors import ConfigError

if TYPE_CHECKING:
    from regionproxy._session.session import RegionSession

KNOWN = frozenset(ENVIRONMENT) | frozenset(MIDDLEWARE_SETTINGS)


def check_settings(settings: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for a setting name regionproxy does not know."""
    unknown = sorted(set(settings) - KNOWN)
    if unknown:
        raise ConfigError(f"unknown regionproxy settings {unknown}; known: {sorted(KNOWN)}", setting=unknown[0])


def configure(
    settings: Mapping[str, Any], session: RegionSession | None = None
) -> tuple[RegionSession, dict[str, Any]]:
    """A session (``session`` if given) and middleware keywords from framework settings."""
    from regionproxy._session.session import RegionSession

    check_settings(settings)
    if session is not None:
        return session, middleware_options(settings)
    environ = {ENV_PREFIX + name: value for name, value in settings.items() if name in ENVIRONMENT}
    return RegionSession.from_env(environ), middleware_options(settings)
