"""One DynamoDB call, described once and passed down.

The session, the attempt loop, the cache and read-your-writes all need to
know what a call is: its kind, the tables and keys it touches, whether it
is safe to repeat. :class:`Call` computes each of those where it is first
asked and keeps it (like botocore's ``OperationModel``, built once per call
and handed to every part), so no module parses the parameters again.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Hashable, Mapping
from typing import Any, Generic, TypeVar

from regionproxy._dynamodb.keys import key_fingerprint
from regionproxy._dynamodb.operations import (
    CONTROL,
    KeyNames,
    is_idempotent,
    is_strongly_consistent,
    kind_of,
    read_keys,
    tables_of,
    written_keys,
)
from regionproxy._dynamodb.tables import ARN_PREFIX, BATCHES, TRANSACTIONS, in_region, named, names_arn, restore

_T = TypeVar("_T")


class _lazy(Generic[_T]):
    """``functools.cached_property`` without the lock it takes on every
    first access in Python 3.11 (a microsecond on a cache hit's path): the
    value is computed on first access and kept in the instance's
    ``__dict__``. Two threads of one hedged call may both compute it: the
    computations are pure, so either answer is the answer."""

    def __init__(self, compute: Callable[[Any], _T]) -> None:
        self.compute = compute
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


class Call:
    """One operation with its wire-format parameters.

    :param operation: the DynamoDB operation name, e.g. ``"GetItem"``.
    :param params: wire-format parameters, as ``boto3.client`` takes them.
    :param marked_idempotent: the caller vouched that repeating this write
        is safe (``RegionSession.idempotent()``).

    A call that names a table by ARN (``by_arn``) is read through
    ``named``, its parameters with each ARN read as its table's name, and
    sent as :meth:`params_in` a region gives it
    (:mod:`regionproxy._dynamodb.tables`); for a call by name both are
    ``params``.
    """

    def __init__(self, operation: str, params: dict[str, Any], *, marked_idempotent: bool = False) -> None:
        self.operation = operation
        self.params = params
        self.kind = kind_of(operation, params)
        self.marked_idempotent = marked_idempotent
        # A call by name (the common case) pays one slice and no call here.
        if "TableName" in params:
            table = params["TableName"]
            self.by_arn = table.__class__ is str and table[:4] == ARN_PREFIX
        else:
            self.by_arn = (operation in BATCHES or operation in TRANSACTIONS) and names_arn(operation, params)
        self.named: Mapping[str, Any] = named(operation, params) if self.by_arn else params

    def __repr__(self) -> str:
        return f"Call({self.operation!r}, kind={self.kind!r}, tables={self.tables!r})"

    @_lazy
    def tables(self) -> list[str]:
        """The tables the call names; for PartiQL, those its statements name
        ([] when one cannot be read)."""
        return tables_of(self.operation, self.named)

    @_lazy
    def strongly_consistent(self) -> bool:
        """A read that must see every write acknowledged before it
        (``ConsistentRead``, a transaction): never hedged, never reordered
        (:func:`regionproxy._dynamodb.operations.is_strongly_consistent`)."""
        return is_strongly_consistent(self.operation, self.named)

    @_lazy
    def read_keys(self) -> list[tuple[str, Hashable]] | None:
        """``(table, key fingerprint)`` of each item a read names (GetItem,
        BatchGetItem, TransactGetItems); None for a read of whatever matches
        (Query, Scan, PartiQL SELECT), and for one that names a key
        :func:`~regionproxy._dynamodb.keys.key_fingerprint` cannot name (it
        is read as a read of its whole tables)."""
        keys = read_keys(self.operation, self.named)
        if keys is None:
            return None
        named = [(table, key_fingerprint(key)) for table, key in keys]
        return None if any(fingerprint is None for _, fingerprint in named) else named

    @_lazy
    def repeatable(self) -> bool:
        """Whether sending it again (in this region or another) is safe when
        an earlier attempt may have been applied."""
        return self.marked_idempotent or is_idempotent(self.operation, self.params)

    def written_keys(self, key_names: KeyNames) -> list[tuple[str, Mapping[str, Any]]]:
        """``(table, key)`` of every item the write touches; raises what
        ``key_names`` raises when a put's key cannot be named, and
        :class:`~regionproxy._dynamodb.operations.UnnamedKeys` for a PartiQL write
        whose item its statement does not name."""
        return written_keys(self.operation, self.named, key_names)

    def params_in(self, region: str, served: Container[str]) -> tuple[Any, dict[str, str]]:
        """The parameters to send to ``region`` (each table ARN naming one of
        the ``served`` regions rewritten to it; the caller's never changed),
        and the rewrites, for :meth:`answer_for_caller`. A control-plane
        call is sent as the caller wrote it (to the local region, as every
        control-plane call): which replica it changes is the caller's to say."""
        if self.kind == CONTROL:
            return self.params, {}
        return in_region(self.operation, self.params, region, served)

    @staticmethod
    def answer_for_caller(answer: Any, renames: Mapping[str, str]) -> Any:
        """A region's answer with the caller's table ARNs where it echoed
        rewritten ones."""
        return restore(answer, renames)
