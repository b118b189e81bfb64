"""Item keys: the one name of the item a DynamoDB key names.

The read cache (which entries a write drops) and read-your-writes (which
reads follow a failed-over write) both ask "is this the same item?", so
both name items by :func:`key_fingerprint`, and a key one of them names,
the other names the same.

The rule: two keys get one fingerprint exactly when DynamoDB reads them as
one item, and a key that botocore would not send as it is, or that DynamoDB
would refuse, gets None (it names no item for certain). Numbers are compared
by value at any precision, never rounded (DynamoDB keeps 38 digits; a
fingerprint read at fewer, or at any fixed precision, would name two items
as one): ``{"N": "1.0"}`` is ``{"N": "1"}``, and
``1234567890123456789012345678901`` is not ``...902``. Only what DynamoDB
reads as a number is one (``Decimal`` also reads ``"1_000"``, ``" 1"``,
``"Infinity"`` and non-ASCII digits; DynamoDB refuses them). Binary is
compared as bytes, a text value by its UTF-8 bytes, as botocore sends it.

What a user of a fingerprint does with None is its own rule: the cache does
not answer such a read (botocore or DynamoDB gives its own error) and drops
the whole table on such a write; read-your-writes treats such a write as one
whose items are unknown, and such a read as a read of its whole tables.

:func:`values_key_fingerprint` gives the same fingerprint to a key in
Python values (what the Table surface takes), read as boto3's serializer
reads it, without serialising it.

Pure functions, no I/O.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Hashable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT, Binary

__all__ = ["key_fingerprint", "values_key_fingerprint"]

# Numbers by value at any precision: a context with the default 28 digits
# (or DynamoDB's 38) would round two different keys to one.
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
# What DynamoDB reads as a number.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _number(raw: str) -> str | None:
    if _NUMBER.fullmatch(raw) is None:
        return None
    number = Decimal(raw)
    return str(number.normalize(_EXACT)) if number else "0"


def key_fingerprint(key: Any) -> Hashable | None:
    """The name of the item a wire-format key names: ``((name, (kind,
    value)), ...)`` sorted by name, numbers by value (``{"N": "1.0"}`` is
    ``{"N": "1"}``), binary as bytes (botocore sends ``{"B": "a"}`` as the
    bytes of "a"); None when the key is not one botocore would send as it
    is or DynamoDB would read (not a dict, a name that is not a string, a
    value of another type, a number DynamoDB refuses).

    The common key of strings (``{"pk": {"S": "a"}}``) takes a fast path:
    it is a cache hit's key, and its whole cost is a few microseconds."""
    if type(key) is dict:
        parts = []
        for name, value in key.items():
            if type(value) is not dict or len(value) != 1 or type(name) is not str:
                break
            raw = value.get("S")
            if type(raw) is not str:
                break
            parts.append((name, ("S", raw)))
        else:
            if parts:
                parts.sort()
                return tuple(parts)
    return _key_fingerprint(key)


def _key_fingerprint(key: Any) -> Hashable | None:
    if not isinstance(key, dict) or not key:
        return None
    parts = []
    for name, value in key.items():
        if not isinstance(name, str) or not isinstance(value, dict) or len(value) != 1:
            return None
        ((kind, raw),) = value.items()
        if kind == "S" and isinstance(raw, str):
            part: Any = ("S", str.__str__(raw))
        elif kind == "N" and isinstance(raw, str):
            number = _number(raw)
            if number is None:
                return None
            part = ("N", number)
        elif kind == "B" and isinstance(raw, bytes | bytearray):
            part = ("B", bytes(raw))
        elif kind == "B" and isinstance(raw, str):
            try:
                part = ("B", raw.encode("utf-8"))  # as botocore encodes it
            except UnicodeEncodeError:
                return None
        else:
            return None
        parts.append((str.__str__(name), part))
    parts.sort()
    return tuple(parts)


def values_key_fingerprint(key: Any) -> Hashable | None:
    """The :func:`key_fingerprint` of a key given in Python values
    (``{"pk": "a", "n": Decimal(1)}``), without serialising it; None when a
    value is not one boto3's serializer sends as it is (the uncached path
    then raises what boto3 raises): a number is read with boto3's own
    context (38 digits, rounding refused), as ``TypeSerializer`` reads it."""
    if type(key) is not dict or not key:
        return None
    parts = []
    for name, value in key.items():
        if type(name) is not str:
            return None
        cls = type(value)
        if cls is str:
            parts.append((name, ("S", value)))
        elif cls is Decimal or cls is int:
            try:
                number = DYNAMODB_CONTEXT.create_decimal(value)  # boto3's _serialize_n, or its error
            except decimal.DecimalException:
                return None
            if not number.is_finite():
                return None
            parts.append((name, ("N", str(number.normalize(_EXACT)) if number else "0")))
        elif cls is Binary:
            raw = value.value  # reassignable: boto3 sends whatever it holds
            if type(raw) is not bytes and type(raw) is not bytearray:
                return None
            parts.append((name, ("B", bytes(raw))))
        elif cls is bytes or cls is bytearray:
            parts.append((name, ("B", bytes(value))))
        else:
            return None
    parts.sort()
    return tuple(parts)
