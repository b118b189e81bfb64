"""The session's settings as one checked value: :class:`Settings` (regions,
endpoints, write mode, the policies, the botocore ``Config``, ...), and the
checks of the session's other arguments.

The policies inside it (breaker, timeouts, cache, hedging) are plain values
of :mod:`regionproxy._config.policies`; :mod:`regionproxy._config.environment`
reads the settings from ``REGIONPROXY_*`` variables.

Every value is checked when it is built, types, ranges and URL shapes
included: a wrong setting fails at startup with
:class:`~regionproxy.errors.ConfigError` naming it (``.setting``), never
mid-request and never as another exception type.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from regionproxy._config.policies import (
    TABLE_NAME,
    BreakerPolicy,
    CachePolicy,
    HedgePolicy,
    Timeouts,
    check_flag,
    check_number,
    configured_table,
    shown,
)
from regionproxy.errors import ConfigError

if TYPE_CHECKING:
    from botocore.config import Config

WRITE_MODES = ("local", "primary")
TABLE_KINDS = ("strong", "eventual")  # MRSC, MREC Global Tables
CONSISTENT_READ_FAILOVER = ("serve", "refuse")
# Every partition botocore knows: aws (eu-west-3), aws-cn, aws-us-gov
# (us-gov-west-1), aws-iso* (us-isob-east-1), aws-eusc (eusc-de-east-1).
# No "local": the lab and DynamoDB Local take real names, and a made-up
# name with no endpoint would only fail at the first call.
REGION_NAME = re.compile(r"(?:[a-z]{2}(?:-gov|-iso[a-z]*)?|eusc-[a-z]{2})-[a-z]+-[0-9]+", re.ASCII)
# Client options the session sets itself for each region; a value given in
# ``client_config`` would be silently replaced.
SESSION_OWNED_CLIENT_OPTIONS = ("connect_timeout", "read_timeout", "retries", "region_name")
SESSION_ARGUMENTS = ("boto3_session", "listeners", "breaker_storage", "clock", "monotonic")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a :class:`~regionproxy.RegionSession` is built from.

    :param regions: AWS region names, a list or tuple (order is preference,
        local first), distinct.
    :param endpoints: region -> ``http(s)://host[:port][/path]`` override.
    :param write_mode: ``local`` or ``primary``.
    :param primary_region: the write region; only with ``write_mode="primary"``.
    :param write_failover: a bool: in ``primary`` mode, writes may fail over.
    :param breaker: a :class:`BreakerPolicy`.
    :param timeouts: a :class:`Timeouts`.
    :param cache: a :class:`CachePolicy`, or None for no cache.
    :param hedge: a :class:`HedgePolicy` for hedged reads, or None.
    :param sticky_seconds: read-your-writes window, 0-3600 seconds.
    :param throttling_is_fault: a bool.
    :param key_schemas: table name -> ``(hash_key,)`` or ``(hash_key,
        range_key)``, so the session need not ask ``DescribeTable``.
    :param latency_window: seconds (0-60): remote regions whose latency
        estimates are within this of the nearest one's are equally near, and
        tried in the configured order (MongoDB's ``localThresholdMS``).
    :param consistency: table name -> ``"strong"`` (a multi-region strong
        consistency Global Table, MRSC) or ``"eventual"`` (MREC); a table not
        named is described once when a strongly consistent read needs to know.
    :param consistent_read_failover: what a ``ConsistentRead=True`` read of
        an MREC table does when its region fails: ``"serve"`` (fail over,
        and say so: a ``ConsistencyDowngraded`` event) or ``"refuse"``
        (raise the region's error).
    :param client_config: a ``botocore.config.Config`` for every region's
        client (pool size, proxies, user agent), or None; timeouts, retries
        and the region belong to the session and are refused here.
    :param fleet: a ``redis://`` or ``rediss://`` URL (password allowed):
        share breakers, evacuations, probes and cache drops with every
        process of the same fleet; None: each process on its own. Never
        shown as given: :func:`safe_redis_url` hides its password.
    :param fleet_name: the fleet's name, its namespace in Redis (letters,
        digits and ``.-_:``); by default derived from the regions, the
        endpoints and the tables named (:func:`derived_fleet_name`), so two
        apps sharing one Redis do not mix.
    :param fleet_timeout: seconds each Redis operation may take, 0.001-5.
    """

    regions: tuple[str, ...] = ()
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
    key_schemas: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    latency_window: float = 0.015
    consistency: Mapping[str, str] = field(default_factory=dict)
    consistent_read_failover: str = "serve"
    client_config: Config | None = None
    fleet: str | None = field(default=None, repr=False)  # its password must not show
    fleet_name: str | None = None
    fleet_timeout: float = 0.05

    def __post_init__(self) -> None:
        # Frozen: normalised copies go in through object.__setattr__, so a
        # caller's list or dict changed later cannot change the settings.
        object.__setattr__(self, "regions", _checked_regions(self.regions))
        object.__setattr__(self, "endpoints", _checked_endpoints(self.endpoints, self.regions))
        if not isinstance(self.write_mode, str) or self.write_mode not in WRITE_MODES:
            raise ConfigError(f"write_mode must be one of {WRITE_MODES}, got {shown(self.write_mode)}", setting="write_mode")
        _check_primary(self.primary_region, self.regions, self.write_mode)
        check_flag("write_failover", self.write_failover)
        check_flag("throttling_is_fault", self.throttling_is_fault)
        for name, kind in (("breaker", BreakerPolicy), ("timeouts", Timeouts)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"{name} must be a {kind.__name__}, got {shown(getattr(self, name))}", setting=name)
        if self.cache is not None and not isinstance(self.cache, CachePolicy):
            raise ConfigError(f"cache must be a CachePolicy or None, got {shown(self.cache)}", setting="cache")
        if self.hedge is not None and not isinstance(self.hedge, HedgePolicy):
            raise ConfigError(f"hedge must be a HedgePolicy or None, got {shown(self.hedge)}", setting="hedge")
        check_number("sticky_seconds", "sticky_seconds", self.sticky_seconds, low=0, high=3600)
        object.__setattr__(self, "key_schemas", _checked_key_schemas(self.key_schemas))
        check_number("latency_window", "latency_window", self.latency_window, low=0, high=60)
        object.__setattr__(self, "consistency", _checked_consistency(self.consistency))
        if not isinstance(self.consistent_read_failover, str) or self.consistent_read_failover not in CONSISTENT_READ_FAILOVER:
            raise ConfigError(
                f"consistent_read_failover must be one of {CONSISTENT_READ_FAILOVER}, got {shown(self.consistent_read_failover)}",
                setting="consistent_read_failover",
            )
        check_client_config(self.client_config)
        check_number("fleet_timeout", "fleet_timeout", self.fleet_timeout, low=0.001, high=5)
        if self.fleet is not None:
            check_fleet_url(self.fleet)
        if self.fleet_name is not None:
            check_fleet_name(self.fleet_name)
        elif self.fleet is not None:
            object.__setattr__(self, "fleet_name", derived_fleet_name(self))

    @property
    def primary(self) -> str:
        return self.primary_region or self.regions[0]


def _checked_regions(regions: Any) -> tuple[str, ...]:
    if not isinstance(regions, (list, tuple)):  # a set or a str has no order of preference
        raise ConfigError(f"regions must be a list of region names, local first, got {shown(regions)}", setting="regions")
    if not regions:
        raise ConfigError("regions must name at least one region", setting="regions")
    for region in regions:
        if not isinstance(region, str) or not REGION_NAME.fullmatch(region):
            raise ConfigError(f"regions: {shown(region)} is not an AWS region name such as 'eu-west-3'", setting="regions")
    if len(set(regions)) != len(regions):
        raise ConfigError(f"regions must be distinct, got {list(regions)}", setting="regions")
    return tuple(regions)


def _checked_endpoints(endpoints: Any, regions: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(endpoints, Mapping):
        raise ConfigError(f"endpoints must be a mapping of region -> URL, got {shown(endpoints)}", setting="endpoints")
    for region, url in endpoints.items():
        if region not in regions:
            raise ConfigError(f"endpoints: {shown(region)} is not one of regions {list(regions)}", setting="endpoints")
        problem = endpoint_problem(url)
        if problem:
            raise ConfigError(f"endpoints: {region}={_redacted(url)} {problem}", setting="endpoints")
    return dict(endpoints)


_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
_HOST_NAME = re.compile(r"(?:(?!-)[A-Za-z0-9-]{1,63}(?<!-)\.)*(?!-)[A-Za-z0-9-]{1,63}(?<!-)", re.ASCII)  # botocore's
_DOTTED_NUMBERS = re.compile(r"[0-9.]+", re.ASCII)


def endpoint_problem(url: Any) -> str | None:
    """What is wrong with an endpoint URL (a phrase), or None if botocore and
    a socket will take it: ``http(s)://host[:port][/path]``, printable ASCII,
    no credentials, query or fragment."""
    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

    if not isinstance(url, str):
        return "must be a URL string"
    if not url.isascii() or not url.isprintable() or any(char.isspace() for char in url):
        return "must be printable ASCII with no spaces"
    try:
        parts = urlsplit(url)
    except ValueError as error:
        return f"is not a URL ({error})"
    if parts.scheme not in ("http", "https") or not url.lower().startswith(parts.scheme + "://"):
        return "must start with http:// or https://"
    if "@" in parts.netloc:
        return "must not carry credentials (user:password@)"
    if "?" in url or "#" in url:
        return "must not have a query or fragment"
    host, port = parts.netloc, None
    if ":" in host and not host.endswith("]"):
        host, _, port = host.rpartition(":")
    if port is not None and (not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535):
        return f"has port {port!r}; a port is 1-65535"
    if not host:
        return "has no host"
    if host.startswith("["):
        return None if host.endswith("]") and is_valid_ipv6_endpoint_url(url) else "has an invalid IPv6 address"
    # Check the host as split here too: urlsplit reads "h:80:90" as host "h".
    if len(host) > 255 or not _HOST_NAME.fullmatch(host.removesuffix(".")) or not is_valid_endpoint_url(url):
        return "has an invalid host name"
    if _DOTTED_NUMBERS.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "has an invalid IPv4 address"
    return None


def _redacted(url: Any) -> str:
    """The URL for a message, without any user:password@ in it."""
    if isinstance(url, str):
        url = re.sub(r"(//)[^/?#]*@", r"\1***@", url)
    return shown(url)


FLEET_SCHEMES = ("redis", "rediss")
# redis-py's URL options that would override what the fleet's link sets
# itself (its timeouts, no retries of redis-py's own, the protocol its
# subscription reads); TLS options (ssl_ca_certs=..., ...) pass through.
FLEET_OWNED_URL_OPTIONS = frozenset(
    {"socket_timeout", "socket_connect_timeout", "timeout", "retry_on_timeout", "retry_on_error", "health_check_interval",
     "protocol", "decode_responses", "db", "max_connections"}
)  # fmt: skip
_FLEET_NAME = re.compile(r"[A-Za-z0-9._:-]{1,100}", re.ASCII)


def safe_redis_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: the only form
    of a fleet URL that logs, status pages and errors show."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable redis URL>"
    if password is None:
        return url
    user = quote(parts.username, safe="") if parts.username else ""
    host = parts.netloc.rpartition("@")[2]
    # urlsplit drops tabs and line breaks, so its netloc may not be a
    # substring of url: then the rest is left out rather than guessed.
    start = url.find(parts.netloc)
    rest = url[start + len(parts.netloc) :] if start >= 0 else ""
    return f"{parts.scheme}://{user}:***@{host}{rest}"


def check_fleet_url(url: Any, *, setting: str = "fleet") -> str:
    """``url`` if it is ``redis://`` or ``rediss://`` with a host, a valid
    port and a numeric database; else :class:`ConfigError`, which shows
    only the :func:`safe_redis_url` form."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{setting} must be a redis:// or rediss:// URL, got {type(url).__name__}", setting=setting)
    safe = safe_redis_url(url)
    if not url.isascii() or not url.isprintable() or any(char.isspace() for char in url):
        raise ConfigError(f"{setting} must be printable ASCII with no spaces: {safe}", setting=setting)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{setting}: not a valid URL: {safe}", setting=setting) from None
    if parts.scheme not in FLEET_SCHEMES or not url.lower().startswith(parts.scheme + "://"):
        raise ConfigError(f"{setting} must be a redis:// or rediss:// URL, got {safe}", setting=setting)
    if not parts.hostname:
        raise ConfigError(f"{setting} names no host: {safe}", setting=setting)
    if port == 0:
        raise ConfigError(f"{setting}: port 0 is not a port: {safe}", setting=setting)
    database = parts.path.strip("/")
    if database and not (database.isdigit() and int(database) < 100_000):
        raise ConfigError(f"{setting}: the path must be a database number (/0), got {safe}", setting=setting)
    if parts.fragment:
        raise ConfigError(f"{setting}: a URL fragment means nothing here: {safe}", setting=setting)
    owned = sorted(FLEET_OWNED_URL_OPTIONS & set(parse_qs(parts.query, keep_blank_values=True)))
    if owned:
        raise ConfigError(
            f"{setting}: {', '.join(owned)} in the URL would override the fleet's own settings (fleet_timeout; "
            f"the database is the URL's path): {safe}",
            setting=setting,
        )
    return url


def check_fleet_name(name: Any, *, setting: str = "fleet_name") -> str:
    if not isinstance(name, str) or not _FLEET_NAME.fullmatch(name):
        raise ConfigError(
            f"{setting} must be 1-100 letters, digits or . - _ : (it names keys in Redis), got {shown(name)}", setting=setting
        )
    return name


def derived_fleet_name(settings: Settings) -> str:
    """The default fleet name: the regions in order (the first is the
    fleet's home), then a digest of the tables the settings name
    (``key_schemas``, the cache's ``tables``), so that two apps on one Redis
    do not share state by accident. Endpoints are left out: app servers of
    one fleet may reach the same regions through different endpoints. Apps
    that name no tables and use the same regions get the same name: set
    ``fleet_name`` to keep them apart."""
    cached = settings.cache.tables if settings.cache is not None else None
    tables = sorted({*settings.key_schemas, *(cached or ())})
    digest = hashlib.sha256(",".join(tables).encode()).hexdigest()[:8]
    return f"{'.'.join(settings.regions)}.{digest}"


def _check_primary(primary: Any, regions: tuple[str, ...], write_mode: str) -> None:
    if primary is None:
        return
    if not isinstance(primary, str) or primary not in regions:
        raise ConfigError(f"primary_region {shown(primary)} is not one of regions {list(regions)}", setting="primary_region")
    if write_mode != "primary":
        raise ConfigError(
            f"primary_region={primary!r} applies only with write_mode='primary'; in 'local' mode writes go to "
            "the preferred healthy region",
            setting="primary_region",
        )


def _checked_consistency(consistency: Any) -> dict[str, str]:
    if not isinstance(consistency, Mapping):
        raise ConfigError(
            f"consistency must be a mapping of table -> 'strong' or 'eventual', got {shown(consistency)}", setting="consistency"
        )
    checked = {}
    for table, kind in consistency.items():
        if not isinstance(table, str) or not TABLE_NAME.fullmatch(table):
            raise ConfigError(f"consistency: {shown(table)} is not a DynamoDB table name", setting="consistency")
        if not isinstance(kind, str) or kind not in TABLE_KINDS:
            raise ConfigError(f"consistency[{table!r}] must be one of {TABLE_KINDS}, got {shown(kind)}", setting="consistency")
        checked[configured_table(table, "consistency")] = kind
    return checked


def _checked_key_schemas(schemas: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(schemas, Mapping):
        raise ConfigError(f"key_schemas must be a mapping of table -> key names, got {shown(schemas)}", setting="key_schemas")
    checked = {}
    for table, names in schemas.items():
        if not isinstance(table, str) or not TABLE_NAME.fullmatch(table):
            raise ConfigError(f"key_schemas: {shown(table)} is not a DynamoDB table name", setting="key_schemas")
        if isinstance(names, str):
            raise ConfigError(
                f"key_schemas[{table!r}] must be a tuple; for a hash key alone write ({names!r},)", setting="key_schemas"
            )
        if not isinstance(names, (list, tuple)) or len(names) not in (1, 2):
            raise ConfigError(
                f"key_schemas[{table!r}] must be (hash_key,) or (hash_key, range_key), got {shown(names)}",
                setting="key_schemas",
            )
        for name in names:
            if not isinstance(name, str) or not 1 <= len(name.encode("utf-8", "replace")) <= 255 or not name.isprintable():
                raise ConfigError(
                    f"key_schemas[{table!r}]: {shown(name)} is not a key attribute name (1-255 bytes of printable text)",
                    setting="key_schemas",
                )
        if len(set(names)) != len(names):
            raise ConfigError(f"key_schemas[{table!r}] names one attribute twice: {shown(names)}", setting="key_schemas")
        checked[configured_table(table, "key_schemas")] = tuple(names)
    return checked


def check_client_config(config: Any) -> None:
    """``config`` is None or a ``botocore.config.Config`` with no option
    the session sets itself, and a sane pool size."""
    if config is None:
        return
    from botocore.config import Config

    if not isinstance(config, Config):
        raise ConfigError(f"client_config must be a botocore.config.Config or None, got {shown(config)}", setting="client_config")
    # botocore keeps what the caller passed apart from its defaults (merge() relies on it).
    given = getattr(config, "_user_provided_options", {})
    owned = [name for name in SESSION_OWNED_CLIENT_OPTIONS if name in given]
    if owned:
        raise ConfigError(
            f"client_config sets {owned}, which the session sets per region: use timeouts=Timeouts(...) "
            "for timeouts and attempts, and regions for the region",
            setting="client_config",
        )
    if "max_pool_connections" in given:
        pool = given["max_pool_connections"]
        check_number("client_config max_pool_connections", "client_config", pool, low=1, high=1000, integer=True)


def check_session_arguments(
    *,
    boto3_session: Any,
    listeners: Any,
    breaker_storage: Any,
    clock: Any,
    monotonic: Any,
    sleep: Any = time.sleep,
) -> tuple[Callable[..., Any], ...]:
    """Check the :class:`~regionproxy.RegionSession` arguments that are not
    settings; returns ``listeners`` as a tuple (pass that on: a one-shot
    iterator has been used up). The clocks are called once each, to check
    that they answer seconds; ``sleep`` is only checked to be callable."""
    if boto3_session is not None:
        import boto3.session

        if not isinstance(boto3_session, boto3.session.Session):
            raise ConfigError(
                f"boto3_session must be a boto3.session.Session or None, got {shown(boto3_session)}", setting="boto3_session"
            )
    if callable(listeners) or isinstance(listeners, (str, bytes, Mapping)) or not isinstance(listeners, Iterable):
        raise ConfigError(
            f"listeners must be a list of callables (for one, [listener]), got {shown(listeners)}", setting="listeners"
        )
    listeners = tuple(listeners)
    for listener in listeners:
        if not callable(listener):
            raise ConfigError(f"listeners: {shown(listener)} is not callable", setting="listeners")
    if breaker_storage is not None and not callable(breaker_storage):
        raise ConfigError(
            f"breaker_storage must be a function region -> pybreaker storage, got {shown(breaker_storage)}",
            setting="breaker_storage",
        )
    if not callable(sleep):
        raise ConfigError(f"sleep must be a function taking seconds, got {shown(sleep)}", setting="sleep")
    for name, function in (("clock", clock), ("monotonic", monotonic)):
        if not callable(function):
            raise ConfigError(f"{name} must be a function returning seconds, got {shown(function)}", setting=name)
        try:
            now = function()
        except Exception as error:
            raise ConfigError(f"{name}() raised {type(error).__name__}: {error}", setting=name) from error
        check_number(f"{name}()", name, now, low=-1e12, high=1e12)
    return listeners
