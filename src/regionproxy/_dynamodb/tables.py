"""A table named by its name or by its ARN: one table to the session.

DynamoDB takes a table's ARN, ``arn:<partition>:dynamodb:<region>:<account>:table/<name>``,
wherever a call takes a table's name ("table name overloading": a
``TableName``, the keys of a batch's ``RequestItems``, a transaction item's
``TableName``); botocore passes it through as it is. What DynamoDB and
botocore do with one (the sources are in ``docs/concepts/tables.md``):

- DynamoDB refuses an ARN whose region is not the endpoint's own
  (``ValidationException: Invalid AWS region in '<arn>'``); an index or
  stream ARN, or a malformed one, is a ``ValidationException`` too.
- An ARN's account may be another account's (cross-account access with a
  resource-based policy): the call reaches that account's table.
- botocore never routes by an ARN's region: a client sends to its own
  region's endpoint (with an account-ID endpoint, ``<account>.ddb.<region>``,
  only when the ARN names the client's region).

The rules this module owns, which every part of the session keeps:

1. **Identity.** A table is its name: :func:`table_name` reads a
   well-formed table ARN as the name it ends with, whatever its region
   and account. Cache keys, drops (and the fleet's, which carry the same
   values), read-your-writes, per-table settings (``CachePolicy.tables``,
   table kinds), events and metric labels all use it, through
   :class:`~regionproxy._dynamodb.calls.Call`'s ``named`` parameters
   (:func:`named`). Labels get the name, never the ARN: an account id is
   not a label value a dashboard should carry, and one table is one series
   however callers name it. A malformed ARN is its own identity (DynamoDB
   refuses it; nothing is cached under it).
2. **Sending.** A call is sent to a region with each table ARN that names
   one of the session's regions rewritten to that region
   (:func:`in_region`: same partition, account and name: a global table's
   replicas share both), as a copy: the caller's parameters are never
   changed. An ARN naming a region the session does not serve, or a
   malformed one, is sent unchanged, so DynamoDB answers it as it answers
   a plain boto3 client (a ``ValidationException``, a caller error that
   fails over nowhere); the session does not guess a replica it was not
   given.
3. **Answers.** Where DynamoDB echoes a rewritten ARN (a batch's
   ``Responses``, ``UnprocessedKeys``/``UnprocessedItems``,
   ``ItemCollectionMetrics``, ``ConsumedCapacity``), :func:`restore` puts
   the caller's own back: the caller gets the answer its request asked.

What it costs a call by name: :class:`~regionproxy._dynamodb.calls.Call`
tests ``TableName[:4] == "arn:"`` (no function call); nothing else runs.

Known limit: a session is one account's. Two tables of one name in two
accounts, one called by name and one by ARN through one session, are one
table to the cache: leave such a table out of ``CachePolicy.tables``.
PartiQL statements are not rewritten (a statement naming a table by ARN is
sent as written).
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

from regionproxy._config.policies import TABLE_ARN

ARN_PREFIX = "arn:"
# Where a batch's answer is keyed by the tables of its request.
_KEYED_BY_TABLE = ("Responses", "UnprocessedKeys", "UnprocessedItems", "ItemCollectionMetrics")
BATCHES = frozenset({"BatchGetItem", "BatchWriteItem"})
TRANSACTIONS = frozenset({"TransactGetItems", "TransactWriteItems"})


def table_name(table: Any) -> Any:
    """The table ``table`` names: itself, or the name a well-formed table
    ARN ends with (anything else is returned as it is)."""
    if _is_arn(table):
        match = TABLE_ARN.fullmatch(table)
        if match is not None:
            return match["name"]
    return table


def _is_arn(table: Any) -> bool:
    return table.__class__ is str and table[:4] == ARN_PREFIX


def names_arn(operation: str, params: Mapping[str, Any]) -> bool:
    """Whether a batch or transaction names a table by ARN (a single-table
    call is tested where it is described: one slice, no call)."""
    try:
        if operation in BATCHES:
            request = params.get("RequestItems")
            return isinstance(request, Mapping) and any(_is_arn(table) for table in request)
        if operation in TRANSACTIONS:
            return any(
                _is_arn(action.get("TableName"))
                for entry in params.get("TransactItems") or ()
                for action in entry.values()
                if isinstance(action, Mapping)
            )
    except (AttributeError, TypeError):
        return False  # malformed: botocore refuses it
    return False


def _renamed(operation: str, params: Mapping[str, Any], rename: Any) -> dict[str, Any]:
    """A copy of ``params`` with each table ``rename(table)`` (the copy's
    type is the request's own: a sidecar request stays JSON-protocol)."""
    copy = type(params)(params)  # type: ignore[call-arg]
    if operation in BATCHES:
        request = params.get("RequestItems")
        if isinstance(request, Mapping):
            copy["RequestItems"] = {rename(table): spec for table, spec in request.items()}
    elif operation in TRANSACTIONS:
        items = params.get("TransactItems")
        if isinstance(items, list | tuple):
            copy["TransactItems"] = [
                {
                    action: {**spec, "TableName": rename(spec["TableName"])}
                    if isinstance(spec, Mapping) and "TableName" in spec
                    else spec
                    for action, spec in entry.items()
                }
                if isinstance(entry, Mapping)
                else entry
                for entry in items
            ]
    elif "TableName" in params:
        copy["TableName"] = rename(params["TableName"])
    return copy


def named(operation: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """``params`` with every table ARN read as its name: what the session's
    bookkeeping reads (never sent)."""
    return _renamed(operation, params, table_name)


def in_region(operation: str, params: Mapping[str, Any], region: str, served: Container[str]) -> tuple[Any, dict[str, str]]:
    """``params`` to send to ``region``: a copy with each table ARN that
    names another of the ``served`` regions rewritten to ``region``, and
    the rewritten ARNs (new to the caller's), for :func:`restore`; or
    ``params`` itself when nothing needs rewriting."""
    renames: dict[str, str] = {}

    def rename(table: Any) -> Any:
        match = TABLE_ARN.fullmatch(table) if _is_arn(table) else None
        if match is None or match["region"] == region or match["region"] not in served:
            return table
        start, end = match.span("region")
        rewritten = table[:start] + region + table[end:]
        renames[rewritten] = table
        return rewritten

    copy = _renamed(operation, params, rename)
    return (copy, renames) if renames else (params, renames)


def restore(answer: Any, renames: Mapping[str, str]) -> Any:
    """``answer`` (a fresh answer of the region's, changed in place) with
    the caller's ARNs back where DynamoDB echoed the rewritten ones."""
    if not renames or not isinstance(answer, dict):
        return answer
    for field in _KEYED_BY_TABLE:
        keyed = answer.get(field)
        if isinstance(keyed, dict) and any(table in renames for table in keyed):
            answer[field] = {renames.get(table, table): value for table, value in keyed.items()}
    capacity = answer.get("ConsumedCapacity")
    for entry in capacity if isinstance(capacity, list) else (capacity,):
        if isinstance(entry, dict) and entry.get("TableName") in renames:
            entry["TableName"] = renames[entry["TableName"]]
    return answer
