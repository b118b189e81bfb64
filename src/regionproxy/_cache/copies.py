"""Copying a cache hit, so that no caller can change what the cache holds.

A plan (:func:`copy_plan`) is worked out once, when an entry is stored:
immutable values are shared, containers of immutables are copied one
level, and only odd values fall back to ``copy.deepcopy``. Entries of one
shape share one plan, and one plan compiles to one function
(:func:`copier`), so a hit costs one call whatever the nesting.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary

_IMMUTABLE = frozenset({str, int, float, bool, bytes, Decimal, type(None), frozenset})
_SHALLOW, _DICT_OF_SHALLOW, _LIST_OF_SHALLOW, _BINARY, _DEEP = "shallow", "dict-of-shallow", "list-of-shallow", "binary", "deep"
# A dict whose every value needs a copy is rebuilt by a display naming its
# keys (``{"SS": v["SS"].copy()}``: a third of a comprehension's cost for a
# wire-format attribute value); past this many keys of containers of
# immutables, by one comprehension that every such dict shares.
_NAMED_KEYS = 32
# A plan of more parts than this (a query page of many items) is copied by
# the compiled copiers of its parts, not compiled whole: one function per
# page would be one per page length and mix of item shapes, each tens of
# kilobytes, kept for good and compiled on every miss.
_COMPILED_PARTS = 64
_plans: dict[Any, Any] = {}  # interned plans: entries of one shape share one


def copy_plan(value: Any) -> Any:
    """How to copy ``value`` so that no caller can change it: None (share it:
    immutable), a code, ``("record", ((key, plan), ...))`` for a dict whose
    every value needs copying, or ``("dict"|"list", ((key, plan), ...))``
    naming only the parts that need more than sharing."""
    cls = type(value)
    if cls in _IMMUTABLE:
        return None
    if cls is set:
        return _SHALLOW  # members are hashable: str, Decimal, bytes, Binary
    if cls is Binary:
        return _BINARY
    if cls is dict or cls is list:
        parts = tuple(
            (index, plan)
            for index, plan in ((k, copy_plan(v)) for k, v in (value.items() if cls is dict else enumerate(value)))
            if plan is not None
        )
        if not parts:
            return _SHALLOW
        whole = len(parts) == len(value)
        if cls is dict and whole and (len(parts) <= _NAMED_KEYS or not all(plan is _SHALLOW for _, plan in parts)):
            plan = ("record", parts)
        elif whole and all(plan is _SHALLOW for _, plan in parts):
            return _DICT_OF_SHALLOW if cls is dict else _LIST_OF_SHALLOW
        else:
            plan = ("dict" if cls is dict else "list", parts)
        if len(parts) <= _COMPILED_PARTS and len(_plans) < 10_000:  # bounded: odd shapes are simply not shared
            plan = _plans.setdefault(plan, plan)
        return plan
    return _DEEP


def copy_by(plan: Any, value: Any) -> Any:
    """A copy of ``value`` made by its :func:`copy_plan`."""
    if plan is None:
        return value
    if plan is _DICT_OF_SHALLOW:
        return {name: part.copy() for name, part in value.items()}
    if plan is _SHALLOW:
        return value.copy()
    if plan is _LIST_OF_SHALLOW:
        return [part.copy() for part in value]
    if plan is _BINARY:
        return Binary(value.value)
    if plan is _DEEP:
        return copy.deepcopy(value)
    out = value.copy()  # a dict, or a list
    for index, part in plan[1]:
        out[index] = copy_by(part, value[index])
    return out


_copiers: dict[Any, Callable[[Any], Any]] = {}


def copier(plan: Any) -> Callable[[Any], Any]:
    """:func:`copy_by` for one plan, compiled into one function of straight
    line code (dict displays naming the keys, item assignments), shared by
    every entry of that plan. A hit then costs one call instead of one per
    nested container."""
    function = _copiers.get(plan)
    if function is None:
        if isinstance(plan, tuple) and _parts(plan) > _COMPILED_PARTS:
            return _composed(plan)
        if len(_copiers) >= 10_000:  # bounded: odd shapes copy the slow way
            return lambda value: copy_by(plan, value)
        lines: list[str] = []
        scope: dict[str, Any] = {"Binary": Binary, "copy_by": copy_by}
        result = _expression(plan, "v0", iter(range(1, 1_000_000)), lines, scope)
        source = "def copy_(v0):\n" + "".join(f"    {line}\n" for line in lines) + f"    return {result}\n"
        exec(compile(source, "<regionproxy._cache.copies copier>", "exec"), scope)  # noqa: S102 - code built from the plan only
        function = _copiers.setdefault(plan, scope["copy_"])
    return function


def _parts(plan: Any) -> int:
    """How many parts ``plan`` names, at every level (at most a little past
    :data:`_COMPILED_PARTS`: counting stops there)."""
    count = 0
    pending = [plan]
    while pending and count <= _COMPILED_PARTS:
        for _, part in pending.pop()[1]:
            count += 1
            if isinstance(part, tuple):
                pending.append(part)
    return count


def _composed(plan: Any) -> Callable[[Any], Any]:
    """A copier for a large container plan: a loop over its parts, each
    copied by its own (compiled, shared) copier."""
    kind, parts = plan
    copiers = tuple((index, copier(part)) for index, part in parts)
    if kind == "record":

        def copy_record(value: Any) -> Any:
            return {index: copy_part(value[index]) for index, copy_part in copiers}

        return copy_record

    def copy_container(value: Any) -> Any:
        out = value.copy()
        for index, copy_part in copiers:
            out[index] = copy_part(value[index])
        return out

    return copy_container


def _expression(plan: Any, value: str, names: Any, lines: list[str], scope: dict[str, Any]) -> str:
    """Python source that copies the object named ``value`` by ``plan``,
    after the statements it appends to ``lines``. Keys are embedded with
    ``repr`` (only str dict keys and int list indexes: anything else falls
    back to :func:`copy_by`)."""
    if plan is None:
        return value
    if plan is _SHALLOW:
        return f"{value}.copy()"
    if plan is _DICT_OF_SHALLOW:
        return f"{{k: x.copy() for k, x in {value}.items()}}"
    if plan is _LIST_OF_SHALLOW:
        return f"[x.copy() for x in {value}]"
    if plan is _BINARY:
        return f"Binary({value}.value)"
    name = f"v{next(names)}"
    if plan is _DEEP or not all(type(key) is (int if plan[0] == "list" else str) for key, _ in plan[1]):
        scope[f"plan_{name}"] = plan
        return f"copy_by(plan_{name}, {value})"
    if plan[0] == "record":
        if not value.isidentifier() and len(plan[1]) > 1:  # read more than once: bind it
            lines.append(f"{name} = {value}")
            value = name
        parts = ", ".join(f"{key!r}: {_expression(part, f'{value}[{key!r}]', names, lines, scope)}" for key, part in plan[1])
        return f"{{{parts}}}"
    # Copy the container (sharing its immutables), then replace the parts
    # that need copies: each read from the copy is still the original part.
    lines.append(f"{name} = {value}.copy()")
    for key, part in plan[1]:
        lines.append(f"{name}[{key!r}] = {_expression(part, f'{name}[{key!r}]', names, lines, scope)}")
    return name
