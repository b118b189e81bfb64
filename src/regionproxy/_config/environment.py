"""Reading :class:`~regionproxy._config.settings.Settings` from ``REGIONPROXY_*`` variables.

:func:`settings_from_env` builds the settings from the environment (or
from framework settings given in the same form); :data:`ENVIRONMENT` lists
every variable it reads, and :func:`unknown_variables` the likely typos.
The values it builds are checked where they are defined
(:mod:`regionproxy._config.settings` and :mod:`regionproxy._config.policies`);
this module only reads text into them.

A misspelled name fails, it is never ignored: every reader of the
environment (:meth:`RegionSession.from_env`, so the sidecar and the
command line; the Flask and Django integrations, for the environment and
their own settings) refuses a ``REGIONPROXY_*`` name that no part of
regionproxy reads, with a :class:`ConfigError` naming the nearest known
name (:func:`check_variables`).

Rules, the same for every variable: surrounding whitespace is stripped;
an empty value is an error (it is usually a template that expanded to
nothing), except ENDPOINTS and KEY_SCHEMAS, where it means none; the
error suggests unsetting the variable only where it has a default
(:data:`REQUIRED` lists those without); a parser that accepts a word
besides numbers (HEDGE_DELAY's ``p95``) names the word when it refuses; an
empty entry in a list ("eu-west-3,,us-east-1", a trailing comma) is an
error for the same reason; numbers are plain ASCII decimals; booleans
are true/false, 1/0, yes/no, on/off in any case.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from regionproxy._config.policies import BreakerPolicy, CachePolicy, HedgePolicy, Timeouts, check_number, shown
from regionproxy._config.settings import Settings, check_client_config
from regionproxy.errors import ConfigError

if TYPE_CHECKING:
    from botocore.config import Config

_INTEGER = re.compile(r"[-+]?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


class _Empty(ValueError):
    """An empty value: the message's hint depends on whether the variable
    has a default (see :data:`REQUIRED`)."""


def _text(text: str) -> str:
    text = text.strip()
    if not text:
        raise _Empty("is empty")
    return text


def _integer(text: str) -> int:
    text = _text(text)
    if not _INTEGER.fullmatch(text) or len(text) > 20:
        raise ValueError("expected a whole number")
    return int(text)


def _decimal(text: str) -> float:
    text = _text(text)
    if not _DECIMAL.fullmatch(text) or len(text) > 40:
        raise ValueError("expected a number such as 0.5")
    return float(text)


def _boolean(text: str) -> bool:
    lowered = _text(text).lower()
    if lowered not in _BOOLEANS:
        raise ValueError("expected true or false (also 1/0, yes/no, on/off)")
    return _BOOLEANS[lowered]


def _entries(text: str, example: str) -> list[str]:
    entries = [entry.strip() for entry in text.split(",")]
    if not all(entries):
        raise ValueError(f"has an empty entry between commas; expected e.g. {example!r}")
    return entries


def _region_list(text: str) -> tuple[str, ...]:
    return tuple(_entries(_text(text), "eu-west-3,us-east-1"))


def _pairs(text: str, example: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    if not text.strip():
        return pairs
    for entry in _entries(text, example):
        key, sep, value = (part.strip() for part in entry.partition("="))
        if not sep or not key or not value:
            raise ValueError(f"expected name=value pairs separated by commas (e.g. {example!r}), got {entry!r}")
        if key in pairs:
            raise ValueError(f"names {key!r} twice")
        pairs[key] = value
    return pairs


def _table_list(text: str) -> tuple[str, ...]:
    return tuple(_entries(_text(text), "Blog,Users"))


def _strong_tables(text: str) -> dict[str, str]:
    return dict.fromkeys(_table_list(text), "strong")


def _hedge_delay(text: str) -> float | str:
    # A parser that accepts a word as well as a number names the word in its
    # error: "p99" must learn that "p95" is the one accepted.
    if _text(text).lower() == "p95":
        return "p95"
    try:
        return _decimal(text)
    except ValueError:
        raise ValueError("expected seconds such as 0.05, or the word p95 (the preferred region's p95 latency)") from None


def _endpoint_pairs(text: str) -> dict[str, str]:
    return _pairs(text, "eu-west-3=http://127.0.0.1:4501")


def _key_schema_pairs(text: str) -> dict[str, tuple[str, ...]]:
    schemas = {}
    for table, names in _pairs(text, "Blog=PK:SK,Users=id").items():
        parts = tuple(part.strip() for part in names.split(":"))
        if not all(parts):
            raise ValueError(f"{table}={names!r}: expected hash_key or hash_key:range_key")
        schemas[table] = parts
    return schemas


ENV_PREFIX = "REGIONPROXY_"
# Variable name (without prefix) -> (Settings field or owner.field, parser of
# its text). Framework settings may give typed values instead of text
# (a list of regions, a dict of endpoints, a number): those are not
# parsed, and the settings check them the same way.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "REGIONS": ("regions", _region_list),
    "ENDPOINTS": ("endpoints", _endpoint_pairs),
    "WRITE_MODE": ("write_mode", _text),
    "PRIMARY_REGION": ("primary_region", _text),
    "WRITE_FAILOVER": ("write_failover", _boolean),
    "BREAKER_FAIL_MAX": ("breaker.fail_max", _integer),
    "BREAKER_RESET_TIMEOUT": ("breaker.reset_timeout", _decimal),
    "BREAKER_SUCCESS_THRESHOLD": ("breaker.success_threshold", _integer),
    "CONNECT_TIMEOUT": ("timeouts.connect", _decimal),
    "READ_TIMEOUT": ("timeouts.read", _decimal),
    "ATTEMPTS": ("timeouts.attempts", _integer),
    "CACHE_MAXSIZE": ("cache.maxsize", _integer),
    "CACHE_TTL": ("cache.ttl", _decimal),
    "CACHE_NEGATIVE_TTL": ("cache.negative_ttl", _decimal),
    "CACHE_TABLES": ("cache.tables", _table_list),
    "STICKY_SECONDS": ("sticky_seconds", _decimal),
    "THROTTLING_IS_FAULT": ("throttling_is_fault", _boolean),
    "KEY_SCHEMAS": ("key_schemas", _key_schema_pairs),
    "MAX_POOL_CONNECTIONS": ("client_config.max_pool_connections", _integer),
    "HEDGE_DELAY": ("hedge.delay", _hedge_delay),
    "HEDGE_BUDGET": ("hedge.budget", _decimal),
    "FLEET_URL": ("fleet", _text),
    "FLEET_NAME": ("fleet_name", _text),
    "FLEET_TIMEOUT": ("fleet_timeout", _decimal),
    "HEDGE_MIN_PER_SECOND": ("hedge.min_per_second", _decimal),
    "LATENCY_WINDOW": ("latency_window", _decimal),
    "STRONG_TABLES": ("consistency", _strong_tables),
    "CONSISTENT_READ_FAILOVER": ("consistent_read_failover", _text),
}
# REGIONPROXY_* variables other parts read (without the prefix): the
# middleware's options (regionproxy._web.options.MIDDLEWARE_SETTINGS, which a
# test keeps in step), the sidecar's client keys, the lab's control address,
# the test Redis binary and the soak tests' length, faults, read timeout and
# event log. Not typos.
OTHER_VARIABLES = frozenset(
    {
        "READINESS", "LIVE_PATHS", "READY_PATHS", "ADMIN_PREFIX", "METRICS_PATH", "ADMIN_ALLOW", "ADMIN_HOSTS",
        "ADMIN_TOKEN", "SERVER_TIMING", "PROBE_INTERVAL", "PROBE_TABLE", "CANARY_TABLE", "CANARY_INTERVAL", "LAG_WARN",
        "SERVE_KEYS", "LAB_CONTROL", "REDIS_SERVER", "SOAK_SECONDS", "SOAK_FAULTS", "SOAK_READ_TIMEOUT", "SOAK_EVENTS",
    }
)  # fmt: skip
# Variables without a default (name without prefix -> an example value):
# an empty one is an error that must not suggest unsetting it.
REQUIRED = {"REGIONS": "eu-west-3,us-east-1"}
_POLICIES = {"breaker": BreakerPolicy, "timeouts": Timeouts, "cache": CachePolicy, "hedge": HedgePolicy}


def settings_from_env(environ: Mapping[str, Any], **overrides: Any) -> Settings:
    """Build :class:`Settings` from ``REGIONPROXY_*`` variables in ``environ``.

    Values are strings as in the environment, or already-typed values (a
    list of regions, a dict of endpoints) as framework settings give them.
    ``overrides`` are :class:`Settings` fields; each replaces whatever the
    environment says about that field (``breaker=`` replaces every
    ``BREAKER_*`` variable), except that ``client_config`` is merged over
    ``MAX_POOL_CONNECTIONS``.

    A variable that does not parse, or a value the settings reject, raises
    :class:`ConfigError` naming the variable; a bad override, naming the
    override. A ``REGIONPROXY_*`` name that no part of regionproxy reads
    (a typo) raises :class:`ConfigError` naming the nearest known name
    (:func:`check_variables`); those other parts read are left to them.
    """
    unknown = sorted(set(overrides) - set(Settings.__dataclass_fields__))
    if unknown:
        raise ConfigError(
            f"{unknown[0]!r} is not a setting; settings are {sorted(Settings.__dataclass_fields__)}", setting=unknown[0]
        )
    if not isinstance(environ, Mapping):
        raise ConfigError(f"environ must be a mapping of variables, got {shown(environ)}", setting="environ")
    check_variables(environ)
    values: dict[str, Any] = {}  # field or owner.field -> value
    variables: dict[str, str] = {}  # field or owner.field -> the variable it came from
    for suffix, (target, parse) in ENVIRONMENT.items():
        variable = ENV_PREFIX + suffix
        owner = target.partition(".")[0]
        if variable not in environ or (owner in overrides and owner != "client_config"):
            continue  # an override replaces the variable (client_config is merged over it instead)
        raw = environ[variable]
        try:
            values[target] = parse(raw) if isinstance(raw, str) else raw
        except _Empty as error:
            hint = f"it is required, e.g. {REQUIRED[suffix]!r}" if suffix in REQUIRED else "unset the variable for the default"
            raise ConfigError(f"{variable}={shown(raw)}: {error} ({hint})", setting=variable) from error
        except ValueError as error:
            raise ConfigError(f"{variable}={shown(raw)}: {error}", setting=variable) from error
        variables[target] = variable
    if "regions" not in values and "regions" not in overrides:
        raise ConfigError(f"{ENV_PREFIX}REGIONS is not set (e.g. 'eu-west-3,us-east-1')", setting=ENV_PREFIX + "REGIONS")

    def named(error: ConfigError, target: str) -> ConfigError:
        variable = variables.get(target)
        if variable is None:  # an override, or a setting no variable gave
            return error
        return ConfigError(f"{variable}: {error}", setting=variable)

    kwargs = {target: value for target, value in values.items() if "." not in target}
    for owner, policy in _POLICIES.items():
        fields = {target.partition(".")[2]: value for target, value in values.items() if target.startswith(owner + ".")}
        if fields:
            try:
                kwargs[owner] = policy(**fields)
            except ConfigError as error:
                raise named(error, f"{owner}.{error.setting}") from error
    if "client_config.max_pool_connections" in values:
        kwargs["client_config"] = _pool_config(
            values["client_config.max_pool_connections"],
            variables["client_config.max_pool_connections"],
            overrides.pop("client_config", None),
        )
    try:
        return Settings(**kwargs, **overrides)
    except ConfigError as error:
        raise named(error, error.setting or "") from error


def _pool_config(pool: Any, variable: str, override: Any) -> Config:
    """``Config(max_pool_connections=pool)`` with ``override`` merged over it
    (an option the caller's config sets wins over the environment's)."""
    from botocore.config import Config

    check_client_config(override)
    check_number(variable, variable, pool, low=1, high=1000, integer=True)
    config = Config(max_pool_connections=pool)
    return config.merge(override) if override is not None else config


def unknown_variables(environ: Mapping[str, Any], known: Iterable[str] = ()) -> list[str]:
    """The ``REGIONPROXY_*`` names in ``environ`` that no part of regionproxy
    reads (:data:`ENVIRONMENT`, :data:`OTHER_VARIABLES`) and ``known`` does
    not list (with or without the prefix): typos, which
    :func:`check_variables` refuses."""
    names = set(ENVIRONMENT) | OTHER_VARIABLES | {name.removeprefix(ENV_PREFIX) for name in known}
    return sorted(
        name
        for name in environ
        if isinstance(name, str) and name.startswith(ENV_PREFIX) and name.removeprefix(ENV_PREFIX) not in names
    )


def nearest_name(name: str, names: Iterable[str], prefix: str = ENV_PREFIX) -> str:
    """``"; did you mean X?"`` for the known name closest to ``name``
    (difflib), or a pointer to the reference when none is close."""
    import difflib

    if not isinstance(name, str):
        return "; every variable is in docs/reference/configuration.md"
    stem = name.removeprefix(prefix)
    close = difflib.get_close_matches(stem, sorted(names), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {prefix}{close[0]}?"
    return "; every variable is in docs/reference/configuration.md"


def check_variables(environ: Mapping[str, Any], known: Iterable[str] = ()) -> None:
    """Raise :class:`ConfigError` for a ``REGIONPROXY_*`` name in ``environ``
    that nothing reads (a typo such as ``REGIONPROXY_REGION``), naming the
    nearest known one. Every reader of the environment calls it (see the
    module docstring)."""
    unknown = unknown_variables(environ, known)
    if unknown:
        name = unknown[0]
        names = set(ENVIRONMENT) | OTHER_VARIABLES | {other.removeprefix(ENV_PREFIX) for other in known}
        raise ConfigError(f"{name} is not a regionproxy variable{nearest_name(name, names)}", setting=name)
