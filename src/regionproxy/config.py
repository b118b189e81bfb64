"""Policies (plain values) and reading them from ``REGIONPROXY_*`` variables.

Every value is checked when it is built: a wrong setting fails at startup
with :class:`~regionproxy.errors.ConfigError` naming it, never mid-request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from regionproxy.errors import ConfigError

WRITE_MODES = ("local", "primary")


def _positive(owner: str, name: str, value: float, *, integer: bool = False, zero: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        raise ConfigError(f"{owner}.{name} must be a {'whole ' if integer else ''}number, got {value!r}", setting=name)
    if value < 0 or (value == 0 and not zero):
        raise ConfigError(f"{owner}.{name} must be {'>= 0' if zero else '> 0'}, got {value!r}", setting=name)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a region's breaker opens and closes (pybreaker's meaning).

    :param fail_max: consecutive region faults that open the breaker.
    :param reset_timeout: seconds open before one trial call is let through.
    :param success_threshold: successful trials that close it again.
    """

    fail_max: int = 3
    reset_timeout: float = 10.0
    success_threshold: int = 1

    def __post_init__(self) -> None:
        _positive("BreakerPolicy", "fail_max", self.fail_max, integer=True)
        _positive("BreakerPolicy", "reset_timeout", self.reset_timeout)
        _positive("BreakerPolicy", "success_threshold", self.success_threshold, integer=True)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per attempt, per region. Tight on purpose: a dead region should cost
    one timeout, then the next region serves.

    :param connect: seconds to open a connection.
    :param read: seconds to wait for a response.
    :param attempts: botocore attempts per region, the first included
        (``retries={"total_max_attempts": attempts, "mode": "standard"}``).
    """

    connect: float = 0.5
    read: float = 1.0
    attempts: int = 2

    def __post_init__(self) -> None:
        _positive("Timeouts", "connect", self.connect)
        _positive("Timeouts", "read", self.read)
        _positive("Timeouts", "attempts", self.attempts, integer=True)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """The read cache: at most ``maxsize`` items, each for ``ttl`` seconds."""

    maxsize: int = 10_000
    ttl: float = 5.0

    def __post_init__(self) -> None:
        _positive("CachePolicy", "maxsize", self.maxsize, integer=True)
        _positive("CachePolicy", "ttl", self.ttl)


@dataclass(frozen=True, slots=True)
class HedgePolicy:
    """Hedged reads: after ``delay`` seconds, ask the next region too."""

    delay: float = 0.05

    def __post_init__(self) -> None:
        _positive("HedgePolicy", "delay", self.delay)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a :class:`~regionproxy.RegionSession` is built from."""

    regions: tuple[str, ...]
    endpoints: Mapping[str, str] = field(default_factory=dict)
    write_mode: str = "local"
    primary_region: str | None = None
    write_failover: bool = False
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    cache: CachePolicy | None = None
    hedge: HedgePolicy | None = None
    sticky_seconds: float = 5.0
    throttling_is_fault: bool = True

    def __post_init__(self) -> None:
        regions = self.regions
        if isinstance(regions, str) or not regions or not all(isinstance(r, str) and r for r in regions):
            raise ConfigError(f"regions must be a non-empty list of region names, got {regions!r}", setting="regions")
        if len(set(regions)) != len(regions):
            raise ConfigError(f"regions must be distinct, got {list(regions)}", setting="regions")
        unknown = set(self.endpoints) - set(regions)
        if unknown:
            raise ConfigError(f"endpoints name regions not in regions: {sorted(unknown)}", setting="endpoints")
        for region, url in self.endpoints.items():
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ConfigError(f"endpoint for {region} must be an http(s) URL", setting="endpoints")
        if self.write_mode not in WRITE_MODES:
            raise ConfigError(f"write_mode must be one of {WRITE_MODES}, got {self.write_mode!r}", setting="write_mode")
        if self.primary_region is not None and self.primary_region not in regions:
            raise ConfigError(
                f"primary_region {self.primary_region!r} is not in regions {list(regions)}", setting="primary_region"
            )
        for name, kind in (("breaker", BreakerPolicy), ("timeouts", Timeouts)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"{name} must be a {kind.__name__}", setting=name)
        if self.cache is not None and not isinstance(self.cache, CachePolicy):
            raise ConfigError("cache must be a CachePolicy or None", setting="cache")
        if self.hedge is not None:
            raise ConfigError("hedged reads are not available in this version; pass hedge=None", setting="hedge")
        _positive("Settings", "sticky_seconds", self.sticky_seconds, zero=True)

    @property
    def primary(self) -> str:
        return self.primary_region or self.regions[0]


# -- environment ------------------------------------------------------------------

ENV_PREFIX = "REGIONPROXY_"
# Variable name (without prefix) -> (Settings field or policy.field, parser).
ENVIRONMENT: dict[str, tuple[str, Any]] = {
    "REGIONS": ("regions", lambda text: tuple(part.strip() for part in text.split(",") if part.strip())),
    "ENDPOINTS": ("endpoints", lambda text: _pairs(text)),
    "WRITE_MODE": ("write_mode", str),
    "PRIMARY_REGION": ("primary_region", str),
    "WRITE_FAILOVER": ("write_failover", lambda text: _boolean(text)),
    "BREAKER_FAIL_MAX": ("breaker.fail_max", int),
    "BREAKER_RESET_TIMEOUT": ("breaker.reset_timeout", float),
    "BREAKER_SUCCESS_THRESHOLD": ("breaker.success_threshold", int),
    "CONNECT_TIMEOUT": ("timeouts.connect", float),
    "READ_TIMEOUT": ("timeouts.read", float),
    "ATTEMPTS": ("timeouts.attempts", int),
    "CACHE_MAXSIZE": ("cache.maxsize", int),
    "CACHE_TTL": ("cache.ttl", float),
    "STICKY_SECONDS": ("sticky_seconds", float),
    "THROTTLING_IS_FAULT": ("throttling_is_fault", lambda text: _boolean(text)),
}
_POLICIES = {"breaker": BreakerPolicy, "timeouts": Timeouts, "cache": CachePolicy}


def settings_from_env(environ: Mapping[str, Any], **overrides: Any) -> Settings:
    """Build :class:`Settings` from ``REGIONPROXY_*`` variables in ``environ``.

    Values are strings as in the environment, or already-typed values (a
    list of regions, a dict of endpoints) as framework settings give them.

    A variable that does not parse, or a value the settings reject, raises
    :class:`ConfigError` naming the variable.
    """
    values: dict[str, Any] = {}
    policies: dict[str, dict[str, Any]] = {}
    for suffix, (target, parse) in ENVIRONMENT.items():
        variable = ENV_PREFIX + suffix
        if variable not in environ:
            continue
        raw = environ[variable]
        try:
            value = parse(raw) if isinstance(raw, str) else raw
        except ValueError as error:
            raise ConfigError(f"{variable}={environ[variable]!r}: {error}", setting=variable) from error
        owner, _, name = target.partition(".")
        if name:
            policies.setdefault(owner, {})[name] = (variable, value)
        else:
            values[owner] = (variable, value)
    if "regions" not in values and "regions" not in overrides:
        raise ConfigError(f"{ENV_PREFIX}REGIONS is not set (e.g. 'eu-west-3,us-east-1')", setting=ENV_PREFIX + "REGIONS")
    built: dict[str, Any] = {}
    for owner, fields in policies.items():
        try:
            built[owner] = _POLICIES[owner](**{name: value for name, (_, value) in fields.items()})
        except ConfigError as error:
            variable = next(var for name, (var, _) in fields.items() if name == error.setting)
            raise ConfigError(f"{variable}: {error}", setting=variable) from error
    try:
        return Settings(**{name: value for name, (_, value) in values.items()}, **built, **overrides)
    except ConfigError as error:
        variable = values.get(error.setting or "", (ENV_PREFIX + (error.setting or "").upper(), None))[0]
        raise ConfigError(f"{variable}: {error}", setting=variable) from error


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _pairs(text: str) -> dict[str, str]:
    pairs = {}
    for part in filter(None, (chunk.strip() for chunk in text.split(","))):
        region, sep, url = part.partition("=")
        if not sep or not region.strip() or not url.strip():
            raise ValueError(f"expected region=url pairs separated by commas, got {part!r}")
        pairs[region.strip()] = url.strip()
    return pairs
