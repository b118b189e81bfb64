"""Framework integrations (Flask, Django) and the settings they share.

Both read the same names: ``REGIONS``, ``ENDPOINTS``, ... (the
``REGIONPROXY_*`` environment variables without the prefix) for the
session, and ``READINESS``, ``ADMIN_TOKEN``, ... for the middleware; both
read the ``REGIONPROXY_*`` environment first and their own settings over it
(the settings win), and both refuse a name they do not know, naming the
nearest known one (:func:`environment_settings`, :func:`check_settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from regionproxy._config.environment import ENV_PREFIX, ENVIRONMENT, check_variables, nearest_name
from regionproxy._web.options import MIDDLEWARE_SETTINGS, middleware_options
from regionproxy.errors import ConfigError

if TYPE_CHECKING:
    from regionproxy._session.session import RegionSession

KNOWN = frozenset(ENVIRONMENT) | frozenset(MIDDLEWARE_SETTINGS)


def check_settings(settings: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for a setting name regionproxy does not
    know, naming the nearest known one."""
    unknown = sorted(set(settings) - KNOWN)
    if unknown:
        hint = nearest_name(unknown[0], KNOWN, prefix="")
        raise ConfigError(f"unknown regionproxy setting {unknown[0]!r}{hint} (known: {sorted(KNOWN)})", setting=unknown[0])


def environment_settings(environ: Mapping[str, Any]) -> dict[str, Any]:
    """The framework settings (names without the prefix) that ``environ``'s
    ``REGIONPROXY_*`` variables give; a misspelled variable raises
    :class:`ConfigError` naming the nearest known one. Variables other
    parts read (the sidecar's keys, ...) are left out."""
    check_variables(environ)
    return {
        name.removeprefix(ENV_PREFIX): value
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX) and name.removeprefix(ENV_PREFIX) in KNOWN
    }


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
