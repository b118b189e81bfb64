"""How the read cache names reads and writes, so that a write finds every
cached answer it affects.

A ``GetItem`` answer is stored under ``(table, key fingerprint)`` in wire
format and ``(table, key fingerprint, VALUES)`` in Python values (what the
Table surface returns: a hit deserialises nothing); a query page under
``(table, QUERY, request)`` and ``(table, QUERY, request, VALUES)``. The
key fingerprint is the one item name read-your-writes uses too
(:mod:`regionproxy._dynamodb.keys`: numbers by value, exactly, binary as
bytes, whichever form the key came in), so a write names the same entries
as the reads of its item; a request fingerprint tells apart requests that
botocore would send differently. Which reads are cached at all, and under
which key, is :func:`read_cache_key` (and :func:`get_item_cache_key`, which
the session asks before it describes a GetItem).

A query page is also filed under tags: ``(table, attribute, value)`` for
each equality of its key condition, or ``(table, None)`` when it has none
or queries an index (:func:`query_tags`); a write drops the tags of its
key's attributes and the table's ``None`` tag (:func:`write_tags`).

What these functions cannot name exactly gets None: such a read bypasses
the cache, and such a write drops its whole table. Use them to build the
keys :class:`~regionproxy._cache.store.ReadCache` stores under.

A request the SDK would refuse before sending never gets a name: its
answer is never a hit (the uncached call then raises the SDK's own error).
For keys in Python values that means boto3's own serializer rules, numbers
included: a number of more than 38 digits (``10**40``) is refused by boto3
(``decimal.Rounded``), although a number of the same value
(``Decimal("1E+40")``) is accepted and may be cached.

Table-level control-plane calls that change a table's items or key schema
(:func:`regionproxy._dynamodb.operations.changed_tables`: DeleteTable, CreateTable, UpdateTable, restores,
ImportTable) drop the whole table, whatever their outcome.

What a write drops is a value, :func:`write_drops`: ``(ITEM, table,
fingerprint)`` (the item in both forms and the query pages its key's tags
name), ``(TABLE, table)`` (a write whose keys cannot be named), or
``(EVERYTHING,)`` (a write whose tables cannot be named). The store
applies it (:meth:`~regionproxy._cache.store.ReadCache.drop`), and the
fleet sends the same value to every other worker (:mod:`regionproxy._fleet.coherence`),
so a drop means one thing wherever it is applied.
"""
from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from decimal import Decimal
from typing import Any

from regionproxy._dynamodb.keys import key_fingerprint
from regionproxy._dynamodb.operations import KeyNames, tables_of, written_keys
from regionproxy._dynamodb.tables import ARN_PREFIX, BATCHES, TRANSACTIONS, named, names_arn, table_name

VALUES = "values"  # the third part of a Python-value item key
# What a drop names (write_drops): one item, one table, everything.
ITEM, TABLE, EVERYTHING = "item", "table", "all"
Drop = tuple[Any, ...]
QUERY = "Query"  # the second part of a query key


# Only plain eventually consistent GetItems are cached: ConsistentRead,
# projections and capacity reports change the answer, so they bypass it.
CACHEABLE_GET = frozenset({"TableName", "Key", "ConsistentRead"})


def get_item_cache_key(params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The cache's key for a wire-format GetItem, ``(table, key
    fingerprint)``, or None when it bypasses the cache. The session looks a
    GetItem up by it before it describes the call (a hit then builds
    nothing); :func:`read_cache_key` gives the same key."""
    table = params.get("TableName")
    if not isinstance(table, str) or "Key" not in params:
        return None
    if table[:4] == ARN_PREFIX:  # the table's name (regionproxy._dynamodb.tables): a slice, no call, for a name
        table = table_name(table)
    # Both are there: so the keys are within CACHEABLE_GET, ConsistentRead
    # False, when there are two of them, or three with ConsistentRead False
    # (a length test costs a third of ``params.keys() <= CACHEABLE_GET``).
    if len(params) != 2 and (len(params) != 3 or params.get("ConsistentRead", True) is not False):
        return None
    fingerprint = key_fingerprint(params["Key"])  # None: not a key botocore sends as it is
    return None if fingerprint is None else (table, fingerprint)


def read_cache_key(operation: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The cache's key for a wire-format read, or None when it bypasses the
    cache: a GetItem of a whole item, ``(table, key fingerprint)``; an
    eventually consistent Query without a capacity report, ``(table, QUERY,
    the whole request)``. BatchGetItem is cached item by item."""
    if operation == "GetItem":
        return get_item_cache_key(params)
    if operation == "Query":
        table = params.get("TableName")
        if table.__class__ is str and table[:4] == ARN_PREFIX:
            table = table_name(table)
        if (
            params.get("ConsistentRead", False) is False
            and isinstance(table, str)
            and params.get("ReturnConsumedCapacity", "NONE") == "NONE"
        ):
            fingerprint = request_fingerprint(params)
            return None if fingerprint is None else (table, QUERY, fingerprint)
    return None


class _Unknown(Exception):
    """A request holds a value :func:`request_fingerprint` cannot name exactly."""


def request_fingerprint(value: Any) -> Hashable | None:
    """A hashable form of a whole (wire-format) request, or None (not
    cacheable) when it holds a value of a type botocore would not send as
    it is. Values that Python calls equal but botocore does not (``1``,
    ``1.0``, ``True``, ``Decimal(1)``; a dict and another mapping) get
    different forms, so a request botocore refuses never hits the answer to
    one it accepted. Exact dicts, lists and strings are told by their type
    first (a third of the cost of ``isinstance``: it is a query hit's key)."""
    try:
        return _request_fingerprint(value)
    except _Unknown:
        return None


def _request_fingerprint(value: Any) -> Hashable:
    cls = type(value)
    if cls is str:
        return value
    if cls is dict:
        parts = []
        for name, part in value.items():
            if type(name) is not str:
                raise _Unknown
            parts.append((name, _request_fingerprint(part)))
        parts.sort()
        return tuple(parts)
    if cls is list:
        items: list[Hashable] = ["["]
        for part in value:
            items.append(_request_fingerprint(part))
        return tuple(items)
    if cls is int or cls is bool or cls is float or cls is Decimal or value is None:
        return (cls, value)
    if cls is bytes or cls is bytearray:
        return (bytes, bytes(value))  # botocore sends either as the same blob
    if isinstance(value, dict):  # OrderedDict, ...: botocore takes dict subclasses
        return _request_fingerprint(dict(value))
    if isinstance(value, list | tuple):
        return _request_fingerprint(list(value))
    if isinstance(value, str):
        return str.__str__(value)
    raise _Unknown  # sets, other mappings, file-like blobs, ...: not cached


# ``name = :value`` or ``:value = name`` in a key condition (``<=``, ``>=``
# never match: their ``<``/``>`` is no name character).
_EQUALITY = re.compile(r"([#:]?[A-Za-z0-9_.\-]+)\s*=\s*([#:]?[A-Za-z0-9_.\-]+)")


def query_tags(table: str, params: Mapping[str, Any]) -> tuple[Hashable, ...]:
    """What invalidates a cached query of ``table``: ``(table, attribute,
    value)`` for each equality its key condition states, or ``(table,
    None)`` (every write to the table) for an index query or when none can
    be read.

    Every item a base-table query can return has its key attributes equal
    to those values, and every write names its item's whole key: so a write
    that can change the answer always drops one of its tags. Equalities on
    the sort key only invalidate more often, never less.
    """
    if "IndexName" in params:
        return ((table, None),)
    tags: list[Hashable] = []
    expression = params.get("KeyConditionExpression")
    if isinstance(expression, str):
        names = params.get("ExpressionAttributeNames")
        values = params.get("ExpressionAttributeValues")
        names = names if isinstance(names, dict) else {}  # anything else: botocore refuses the query
        values = values if isinstance(values, dict) else {}
        for left, right in _EQUALITY.findall(expression):
            if left.startswith(":") == right.startswith(":"):
                continue
            name, placeholder = (right, left) if left.startswith(":") else (left, right)
            name = names.get(name, name) if name.startswith("#") else name
            if placeholder in values:
                tags.append(_equality_tag(table, name, values[placeholder]))
    elif isinstance(params.get("KeyConditions"), dict):
        for name, condition in params["KeyConditions"].items():
            if isinstance(condition, dict) and condition.get("ComparisonOperator") == "EQ":
                operands = condition.get("AttributeValueList")
                if isinstance(operands, list | tuple) and len(operands) == 1:
                    tags.append(_equality_tag(table, name, operands[0]))
    return tuple(tags) or ((table, None),)


def _equality_tag(table: str, name: Any, value: Any) -> Hashable:
    """The tag of ``name = value`` in a key condition; ``(table, None)``
    when the value names no key exactly (every write to the table drops it)."""
    fingerprint = key_fingerprint({name: value})
    return (table, *fingerprint[0]) if fingerprint else (table, None)


def write_tags(table: str, fingerprint: Hashable) -> tuple[Hashable, ...]:
    """The query tags a write of the item with key ``fingerprint`` drops."""
    parts = fingerprint if isinstance(fingerprint, tuple) else ()
    return ((table, None), *((table, *part) for part in parts))


def write_drops(operation: str, params: Mapping[str, Any], key_names: KeyNames) -> tuple[Drop, ...]:
    """What a write drops from the cache: ``(ITEM, table, fingerprint)`` for
    each item it names; ``(TABLE, table)`` for a table whose written key the
    fingerprint cannot name, or for each of its tables when its keys cannot
    be named (the key schema is unknown, a PartiQL write that does not state
    its whole key); ``(EVERYTHING,)`` when its tables cannot be named
    either. A table name that is not a string names nothing (botocore
    refuses the write). A table named by ARN is named by its name
    (:mod:`regionproxy._dynamodb.tables`), whichever way the reads named it."""
    if "TableName" in params:  # one slice, no call, for a write by name
        table = params["TableName"]
        if table.__class__ is str and table[:4] == ARN_PREFIX:
            params = named(operation, params)
    elif (operation in BATCHES or operation in TRANSACTIONS) and names_arn(operation, params):
        params = named(operation, params)
    try:
        keys = written_keys(operation, params, key_names)
    except Exception:  # noqa: BLE001 - the key schema is unknown: drop the tables
        keys = []
    drops: list[Drop] = []
    for table, key in keys:
        if not isinstance(table, str):
            continue
        fingerprint = key_fingerprint(key)
        # None: not a key botocore sends as it is: the write may still name the item
        drop = (TABLE, table) if fingerprint is None else (ITEM, table, fingerprint)
        if drop not in drops:
            drops.append(drop)
    if keys:
        return tuple(drops)
    try:
        tables = tables_of(operation, params)
    except Exception:  # noqa: BLE001 - malformed: botocore will say why; drop everything meanwhile
        tables = []
    if not tables:
        return ((EVERYTHING,),)
    return tuple(dict.fromkeys((TABLE, table) for table in tables if isinstance(table, str)))

