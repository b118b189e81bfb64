"""The middleware's keyword options: their checks, and reading them from framework settings.

:func:`check_options` checks each keyword's type and range, then the paths
against each other; the middleware's constructor calls it, and so can a
settings check. :func:`middleware_options` reads the same keywords from
Flask's ``REGIONPROXY_*`` config or Django's ``REGIONPROXY`` dict
(:data:`MIDDLEWARE_SETTINGS`), parsing strings and checking every value
with the same table, so both refuse the same things.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from regionproxy._regions.health import POLICIES
from regionproxy._web.access import AllowedHosts, admin_token, allowed_networks
from regionproxy.errors import ConfigError

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


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value < 86400:
        raise _fail(name, "must be a number of seconds > 0", value)
    return float(value)


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
    "canary_table": _probe_table,
    "canary_interval": _seconds,
    "lag_warn": _seconds,
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
    # A clash is blamed on an option the caller gave, never on a default
    # they did not write: ``live_paths=['/readyz']`` clashes with the
    # default ready_paths, and the error names live_paths.
    defaults = {"live_paths": LIVE_PATHS, "ready_paths": READY_PATHS, "metrics_path": METRICS_PATH, "admin_prefix": ADMIN_PREFIX}
    # The middleware passes every keyword, defaults included: "given" means a value other than the default.
    given = {name for name in defaults if name in checked and checked[name] != defaults[name]}
    seen: dict[str, str] = {}  # path -> the option that holds it
    for name, paths in (("live_paths", live), ("ready_paths", ready)):
        for path in paths:
            if path in seen:
                other = seen[path]
                culprit = name if name in given or other not in given else other
                also = other if culprit == name else name
                where = "twice" if other == name else f"also in {also}" + ("" if also in given else " (its default)")
                raise _fail(culprit, f"must not repeat a path: {path!r} is {where}", path)
            if path == metrics or path == prefix or path.startswith(prefix + "/"):
                owner = "metrics_path" if path == metrics else "admin_prefix"
                if name in given or owner not in given:
                    raise _fail(name, f"must not overlap metrics_path ({metrics!r}) or admin_prefix ({prefix!r})", path)
                raise _fail(owner, f"must not overlap {name} ({list(paths)!r})", checked[owner])
            seen[path] = name
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
    "CANARY_TABLE": ("canary_table", str.strip),
    "CANARY_INTERVAL": ("canary_interval", float),
    "LAG_WARN": ("lag_warn", float),
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
