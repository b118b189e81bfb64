"""Policies: plain, checked values for breakers, timeouts, the read cache
and hedged reads; and the number checks every setting uses.

Each value is checked when it is built: a wrong one fails at startup with
:class:`~regionproxy.errors.ConfigError` naming it (``.setting``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from regionproxy.errors import ConfigError

# A table name, or an ARN for one (DynamoDB takes both as TableName).
TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}|arn:[\x21-\x7e]{1,1020}", re.ASCII)
# A table's ARN, as DynamoDB takes it for a table's name; a configured one
# stands for the table's name (regionproxy._dynamodb.tables owns the rule).
TABLE_ARN = re.compile(
    r"arn:(?P<partition>[a-z][a-z0-9-]*):dynamodb:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):table/(?P<name>[A-Za-z0-9_.-]{3,255})",
    re.ASCII,
)


def configured_table(table: str, setting: str) -> str:
    """The name a configured table (a name, or a table's ARN) stands for:
    per-table settings apply to a table however a call names it. Raises
    ConfigError for an ARN that is no table's (an index's, a stream's)."""
    if not table.startswith("arn:"):
        return table
    match = TABLE_ARN.fullmatch(table)
    if match is None:
        raise ConfigError(f"{setting}: {shown(table)} is not a DynamoDB table's ARN", setting=setting)
    return match["name"]
DAY = 86_400.0
# Socket timeouts past ~9e9 s overflow the OS timer (every call then fails
# with OverflowError), and far before that a blackholed region holds each
# request for the whole timeout instead of failing over: 5 minutes at most.
MAX_TIMEOUT = 300.0


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_number(label: str, setting: str, value: Any, *, low: float, high: float, integer: bool = False, above: bool = False) -> None:
    """``low <= value <= high`` (``low < value`` with ``above``); NaN and the
    infinities fail the comparisons, and comparing (not converting) a huge
    int never overflows."""
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigError(f"{label} must be a {'whole ' if integer else ''}number, got {shown(value)}", setting=setting)
    if not ((low < value) if above else (low <= value)) or not value <= high:
        bound = f"> {low:g}" if above else f">= {low:g}"
        raise ConfigError(f"{label} must be {bound} and <= {high:g}, got {shown(value)}", setting=setting)


def check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):  # "false" is truthy: only a real bool means what it says
        raise ConfigError(f"{name} must be True or False, got {shown(value)}", setting=name)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a region's breaker opens and closes (pybreaker's meaning).

    :param fail_max: consecutive region faults that open the breaker (1-1000).
    :param reset_timeout: seconds open before one trial call is let through
        (0 < x <= 86400).
    :param success_threshold: successful trials that close it again (1-1000).
    :raises ConfigError: a value of the wrong type or out of its range
        (``.setting`` names the field), when the policy is made.
    """

    fail_max: int = 3
    reset_timeout: float = 10.0
    success_threshold: int = 1

    def __post_init__(self) -> None:
        check_number("BreakerPolicy.fail_max", "fail_max", self.fail_max, low=1, high=1000, integer=True)
        check_number("BreakerPolicy.reset_timeout", "reset_timeout", self.reset_timeout, low=0, high=DAY, above=True)
        check_number("BreakerPolicy.success_threshold", "success_threshold", self.success_threshold, low=1, high=1000, integer=True)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per attempt, per region. Tight on purpose: a dead region should cost
    one timeout, then the next region serves.

    :param connect: seconds to open a connection (0 < x <= 300).
    :param read: seconds to wait for a response (0 < x <= 300). Longer
        socket timeouts overflow the OS timer (past ~9e9 s every call fails)
        or, well before that, keep a dead region from ever failing over.
    :param attempts: attempts per region, the first included (1-10). The
        session makes them itself (botocore makes one per call): a region is
        tried again only after a fast, transient failure (a dropped
        connection, a 5xx, throttling); a timeout or a refusal fails over
        at once, and a write that may have been applied is never sent again
        unless it is idempotent.

    They also bound a credential refresh (STS, SSO) through the boto3
    session regionproxy builds when given none: ``attempts`` attempts of
    ``connect`` and ``read`` each (:mod:`regionproxy._regions.credentials`).

    :raises ConfigError: a value of the wrong type or out of its range
        (``.setting`` names the field), when the policy is made.
    """

    connect: float = 0.5
    read: float = 1.0
    attempts: int = 2

    def __post_init__(self) -> None:
        check_number("Timeouts.connect", "connect", self.connect, low=0, high=MAX_TIMEOUT, above=True)
        check_number("Timeouts.read", "read", self.read, low=0, high=MAX_TIMEOUT, above=True)
        check_number("Timeouts.attempts", "attempts", self.attempts, low=1, high=10, integer=True)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """The read cache: which answers are kept, and for how long.

    :param maxsize: at most this many entries (1-10,000,000): items, and
        cached ``Query`` pages.
    :param ttl: seconds an item or a query page is served from the cache
        (0 < x <= 86400).
    :param negative_ttl: seconds a "no such item" answer is served from the
        cache (0-86400; 0 keeps none). Short by default: an item created in
        another region or process shows up this soon.
    :param tables: the tables to cache (a list, tuple or set of names or
        table ARNs; an ARN stands for its table's name), or None for every
        table.
    :raises ConfigError: a value of the wrong type or out of its range
        (``.setting`` names the field), when the policy is made.
    """

    maxsize: int = 10_000
    ttl: float = 5.0
    negative_ttl: float = 1.0
    tables: frozenset[str] | None = None

    def __post_init__(self) -> None:
        check_number("CachePolicy.maxsize", "maxsize", self.maxsize, low=1, high=10_000_000, integer=True)
        check_number("CachePolicy.ttl", "ttl", self.ttl, low=0, high=DAY, above=True)
        check_number("CachePolicy.negative_ttl", "negative_ttl", self.negative_ttl, low=0, high=DAY)
        if self.tables is not None:
            object.__setattr__(self, "tables", _checked_tables(self.tables))

    def caches(self, table: str) -> bool:
        """Whether reads of ``table`` go through the cache."""
        return self.tables is None or table in self.tables


def _checked_tables(tables: Any) -> frozenset[str]:
    # A str is iterable too: tables="Blog" would cache tables "B", "l", ...
    if isinstance(tables, str | bytes) or not isinstance(tables, list | tuple | set | frozenset):
        raise ConfigError(f"CachePolicy.tables must be a list of table names or None, got {shown(tables)}", setting="tables")
    if not tables:
        raise ConfigError("CachePolicy.tables must name at least one table (None caches every table)", setting="tables")
    for table in tables:
        if not isinstance(table, str) or not TABLE_NAME.fullmatch(table):
            raise ConfigError(f"CachePolicy.tables: {shown(table)} is not a table name", setting="tables")
    return frozenset(configured_table(table, "tables") for table in tables)


_HEDGE_FLOOR = 0.005


@dataclass(frozen=True, slots=True)
class HedgePolicy:
    """Hedged reads: when the preferred region has not answered a read after
    ``delay``, send the same read to the next admitted region too; the first
    success wins. Writes are never hedged.

    :param delay: seconds (0 < x <= 60), or ``"p95"``: the preferred region's
        recently observed p95 latency, kept between ``floor`` and ``ceiling``.
    :param budget: at most this fraction of reads (0 < x <= 1) is hedged over
        the last ``window`` seconds, on top of ``min_per_second``.
    :param min_per_second: hedges per second always allowed (0-1000), however
        quiet the site: ``min_per_second x window`` hedges over the window
        (Finagle's ``minRetriesPerSec``). 0: the fraction alone, plus one.
    :param floor: the least ``"p95"`` delay, seconds.
    :param ceiling: the most ``"p95"`` delay, seconds.
    :param window: seconds over which the budget is counted (1-3600).
    :param demote_after: this many hedges in a row won against a region
        (it answered later than the next region) make reads prefer the next
        region for ``demote_for`` seconds: a brownout, which never opens a
        breaker, then costs one remote round trip instead of the hedge
        delay for every read. 0: never (0-1000).
    :param demote_for: seconds a slow region is tried last for reads (0-3600).
    :raises ConfigError: a value of the wrong type or out of its range
        (``.setting`` names the field), when the policy is made.
    """

    delay: float | str = 0.05
    budget: float = 0.1
    min_per_second: float = 3.0
    floor: float = _HEDGE_FLOOR
    ceiling: float = 1.0
    window: float = 10.0
    demote_after: int = 5
    demote_for: float = 5.0

    def __post_init__(self) -> None:
        if self.delay != "p95":
            check_number("HedgePolicy.delay", "delay", self.delay, low=0, high=60, above=True)
        check_number("HedgePolicy.budget", "budget", self.budget, low=0, high=1, above=True)
        check_number("HedgePolicy.min_per_second", "min_per_second", self.min_per_second, low=0, high=1000)
        check_number("HedgePolicy.floor", "floor", self.floor, low=0, high=60, above=True)
        check_number("HedgePolicy.ceiling", "ceiling", self.ceiling, low=0, high=60, above=True)
        if self.floor > self.ceiling:
            # Blame the one moved from its default (the caller's change).
            blamed = "floor" if self.floor != _HEDGE_FLOOR else "ceiling"
            raise ConfigError(f"HedgePolicy.floor ({self.floor}) must be <= ceiling ({self.ceiling})", setting=blamed)
        check_number("HedgePolicy.window", "window", self.window, low=1, high=3600)
        check_number("HedgePolicy.demote_after", "demote_after", self.demote_after, low=0, high=1000, integer=True)
        check_number("HedgePolicy.demote_for", "demote_for", self.demote_for, low=0, high=3600, above=True)
