"""Whether a DynamoDB update is safe to apply twice.

A write whose outcome is unknown (a read timeout after the request left)
may be sent again, to another region, only if applying it twice leaves the
item as applying it once did. For ``UpdateItem`` that depends on the update
expression: ``SET a = :v`` repeats harmlessly, ``SET n = n - :one`` does
not. This module judges the expression as parsed by
:mod:`regionproxy._dynamodb.update_grammar` (DynamoDB's grammar, tokenised as DynamoDB
tokenises it: ``#a-b`` is ``#a - b``). When unsure, an update is not
idempotent: an expression that does not parse, ADD and DELETE clauses,
arithmetic, ``list_append``, a list index in a written path, and any value
read from a path the same expression writes.

Use :func:`update_is_idempotent` for a verdict on an ``UpdateExpression``,
:func:`attribute_updates_are_idempotent` for legacy ``AttributeUpdates``, and
:func:`parse_update` for the parsed value (re-exported here with the rest of
the grammar's values).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from regionproxy._dynamodb.update_grammar import (
    Arithmetic,
    Assignment,
    Call,
    Operand,
    Path,
    UpdateExpression,
    UpdateExpressionError,
    Value,
    parse_update,
)

__all__ = [
    "Arithmetic",
    "Assignment",
    "Call",
    "Operand",
    "Path",
    "UpdateExpression",
    "UpdateExpressionError",
    "Value",
    "attribute_updates_are_idempotent",
    "parse_update",
    "parsed_update_is_idempotent",
    "update_is_idempotent",
]


def update_is_idempotent(expression: str, names: Mapping[str, str] | None = None) -> bool:
    """Whether applying ``expression`` twice is the same as applying it once.

    Never raises: what does not parse, or is not a string, is not idempotent.

    :param names: the call's ExpressionAttributeNames, so that ``#a`` and
        ``a`` are known for the same attribute.
    """
    if not isinstance(expression, str) or not (names is None or isinstance(names, Mapping)):
        return False
    try:
        return parsed_update_is_idempotent(parse_update(expression), names)
    except UpdateExpressionError:
        return False


def attribute_updates_are_idempotent(updates: Mapping[str, Any]) -> bool:
    """The same verdict for legacy ``AttributeUpdates``: PUT and a DELETE of
    the whole attribute repeat harmlessly; ADD does not, and DELETE of set
    elements is kept out as the DELETE clause is."""
    if not isinstance(updates, Mapping):
        return False
    for update in updates.values():
        if not isinstance(update, Mapping):
            return False
        action = update.get("Action", "PUT")
        if not (action == "PUT" or (action == "DELETE" and "Value" not in update)):
            return False
    return True


def parsed_update_is_idempotent(update: UpdateExpression, names: Mapping[str, Any] | None = None) -> bool:
    """The verdict of :func:`update_is_idempotent` on a parsed update
    (also :meth:`UpdateExpression.is_idempotent`).

    :param names: ExpressionAttributeNames; a ``#placeholder`` missing
        from it may be any attribute.
    """
    if update.add or update.delete:
        return False  # ADD adds to the current value; DELETE (of set elements) is kept out too
    if any(path.has_index for path in update.written):
        return False  # SET l[9] appends past the end, REMOVE l[0] shifts the list
    names = names or {}
    written = [_resolve(path, names) for path in update.written]
    return all(_repeats(action, names, written) for action in update.set)


# -- judging -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Unresolved:
    """A ``#placeholder`` missing from ExpressionAttributeNames: any name."""

    placeholder: str


def _resolve(path: Path, names: Mapping[str, Any]) -> tuple[object, ...]:
    return tuple(names.get(e, _Unresolved(e)) if isinstance(e, str) and e.startswith("#") else e for e in path.elements)


def _may_overlap(one: tuple[object, ...], other: tuple[object, ...]) -> bool:
    # One is a prefix of the other: 'a' and 'a.b' read or write the same data.
    return all(x == y or isinstance(x, _Unresolved) or isinstance(y, _Unresolved) for x, y in zip(one, other, strict=False))


def _repeats(action: Assignment, names: Mapping[str, Any], written: list[tuple[object, ...]]) -> bool:
    value = action.value
    if isinstance(value, Arithmetic) or any(isinstance(o, Call) and o.function == "list_append" for o in _walk(value)):
        return False
    if isinstance(value, Call) and value.function == "if_not_exists":
        checked, fallback = value.arguments
        if isinstance(checked, Path) and _resolve(checked, names) == _resolve(action.path, names):
            # The first application leaves the target present, so a repeat
            # keeps it; the fallback still must not read what is written.
            value = fallback
    reads = [_resolve(o, names) for o in _walk(value) if isinstance(o, Path)]
    return not any(_may_overlap(read, path) for read in reads for path in written)


def _walk(operand: Operand | Arithmetic) -> Iterator[Operand]:
    if isinstance(operand, Arithmetic):
        yield from _walk(operand.left)
        yield from _walk(operand.right)
        return
    yield operand
    if isinstance(operand, Call):
        for argument in operand.arguments:
            yield from _walk(argument)
