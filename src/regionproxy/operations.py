"""What each DynamoDB operation is: a read, a write, or control-plane; and
whether a write is safe to repeat on another region.

Pure functions of the operation name and its (wire-format) parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from regionproxy.updates import attribute_updates_are_idempotent, update_is_idempotent

READ, WRITE, CONTROL = "read", "write", "control"

READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
PARTIQL = frozenset({"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"})

_SELECT = re.compile(r"^\s*select\b", re.IGNORECASE)


def kind_of(operation: str, params: Mapping[str, Any]) -> str:
    """``read``, ``write`` or ``control`` for one call."""
    if operation in READS:
        return READ
    if operation in WRITES:
        return WRITE
    if operation in PARTIQL:
        return READ if all(_SELECT.match(s) for s in _statements(operation, params)) else WRITE
    return CONTROL


def is_idempotent(operation: str, params: Mapping[str, Any]) -> bool:
    """Whether applying this write twice is the same as applying it once.

    Conditional writes are never idempotent: the repeat may fail its
    condition against the first attempt's result, or pass it when the first
    attempt should have been the only one. Update expressions are parsed
    (:mod:`regionproxy.updates`); PartiQL writes are never idempotent (the
    statement would have to be parsed, and when unsure, a write is not).
    """
    if operation in READS:
        return True
    if operation == "PutItem" or operation == "DeleteItem":
        return _unconditional(params)
    if operation == "UpdateItem":
        return _idempotent_update(params)
    if operation == "BatchWriteItem":
        return True  # puts and deletes only, never conditional
    if operation == "TransactWriteItems":
        return all(_idempotent_transact_item(item) for item in params.get("TransactItems", ()))
    return False


def _unconditional(params: Mapping[str, Any]) -> bool:
    return not params.get("ConditionExpression") and not params.get("Expected")


def _idempotent_update(params: Mapping[str, Any]) -> bool:
    if not _unconditional(params):
        return False
    expression = params.get("UpdateExpression")
    if expression is not None:
        return update_is_idempotent(expression, params.get("ExpressionAttributeNames"))
    return attribute_updates_are_idempotent(params.get("AttributeUpdates") or {})


def _idempotent_transact_item(item: Mapping[str, Any]) -> bool:
    if "ConditionCheck" in item:
        return False
    if "Put" in item:
        return _unconditional(item["Put"])
    if "Delete" in item:
        return _unconditional(item["Delete"])
    if "Update" in item:
        return _idempotent_update(item["Update"])
    return False


def _statements(operation: str, params: Mapping[str, Any]) -> list[str]:
    if operation == "ExecuteStatement":
        return [params.get("Statement", "")]
    items = params.get("Statements" if operation == "BatchExecuteStatement" else "TransactStatements", ())
    return [item.get("Statement", "") for item in items] or [""]


KeyNames = Callable[[str], tuple[str, ...]]


def written_keys(operation: str, params: Mapping[str, Any], key_names: KeyNames) -> list[tuple[str, Any]]:
    """``(table, key)`` for every item a write touches, as far as the call
    says; ``key_names(table)`` gives a table's key attributes, to find the
    key of a put item. PartiQL writes name no key without parsing SQL: []."""
    found: list[tuple[str, Any]] = []

    def item_key(table: str, item: Mapping[str, Any]) -> None:
        found.append((table, {name: item[name] for name in key_names(table) if name in item}))

    if operation in ("UpdateItem", "DeleteItem"):
        found.append((params["TableName"], params["Key"]))
    elif operation == "PutItem":
        item_key(params["TableName"], params["Item"])
    elif operation == "BatchWriteItem":
        for table, requests in params.get("RequestItems", {}).items():
            for request in requests:
                if "DeleteRequest" in request:
                    found.append((table, request["DeleteRequest"]["Key"]))
                elif "PutRequest" in request:
                    item_key(table, request["PutRequest"]["Item"])
    elif operation == "TransactWriteItems":
        for entry in params.get("TransactItems", ()):
            for action in ("Update", "Delete"):
                if action in entry:
                    found.append((entry[action]["TableName"], entry[action]["Key"]))
            if "Put" in entry:
                item_key(entry["Put"]["TableName"], entry["Put"]["Item"])
    return found


def tables_of(operation: str, params: Mapping[str, Any]) -> list[str]:
    """The tables a call names: one ``TableName``, the tables of a batch, or
    of a transaction's items. PartiQL names none without parsing SQL: []."""
    if "TableName" in params:
        return [params["TableName"]]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return list(params.get("RequestItems", {}))
    if operation in ("TransactGetItems", "TransactWriteItems"):
        return [action["TableName"] for entry in params.get("TransactItems", ()) for action in entry.values()]
    return []


def key_fingerprint(key: Any) -> Hashable:
    """A hashable, order-independent form of a wire-format key, with numbers
    by value: ``{"N": "1"}`` and ``{"N": "1.0"}`` name the same item, as
    they do in DynamoDB."""
    if not isinstance(key, Mapping):
        return repr(key)
    return tuple(sorted((str(name), _value_fingerprint(value)) for name, value in key.items()))


def _value_fingerprint(value: Any) -> Hashable:
    if isinstance(value, Mapping) and len(value) == 1:
        kind, raw = next(iter(value.items()))
        if kind == "N" and isinstance(raw, str):
            try:
                number = Decimal(raw)
            except InvalidOperation:
                return ("N", raw)
            if number.is_finite():
                return ("N", str(number.normalize()) if number else "0")
            return ("N", raw)
        if kind in ("S", "B") and isinstance(raw, str | bytes | bytearray):
            return (kind, bytes(raw) if kind == "B" and not isinstance(raw, str) else raw)
    return repr(value)
