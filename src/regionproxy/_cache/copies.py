"""Copying a cache hit, so that no caller can change what the cache holds.

The rule: every mutable part of a hit is new. A plan (:func:`copy_plan`),
worked out when an entry is stored, says how: immutable values are shared;
containers of immutables are copied one level; a ``Binary`` (its ``.value``
can be reassigned), alone or inside a set, is a new ``Binary``; odd values
(a ``bytearray``, a ``Binary`` holding one, a tuple or frozenset of
mutables) fall back to ``copy.deepcopy``.

The bounds. A plan names the keys of the dicts it copies, so items whose
maps are keyed by data (ids) each have a shape of their own: nothing kept
per shape may grow with the number of shapes, and a miss must not cost
more than it saves.

- Entries of one shape share one copier, through a table of at most
  :data:`SHAPES` shapes, the least recently used dropped; an entry keeps
  its copier, so what copying holds is bounded by ``maxsize`` entries plus
  :data:`SHAPES` shapes, whatever the number of shapes seen.
- A copier interprets its plan (:func:`copy_by`) until it has made
  :data:`HOT` copies; only then is the plan compiled into one function of
  straight-line code (a hit then costs about half). Compiling costs about
  what :data:`HOT` hits save, so a shape read once (a miss) is never
  compiled: a miss costs one walk of the answer and a table lookup.
- Plans too large to compile whole (a query page) are copied part by part:
  the entry keeps a loop over its parts' copiers, each shared the same way.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary

__all__ = ["HOT", "SHAPES", "compiled_copier", "copier", "copy_by", "copy_plan", "shapes"]

_IMMUTABLE = frozenset({str, int, float, bool, bytes, Decimal, type(None)})
_SHALLOW, _DICT_OF_SHALLOW, _LIST_OF_SHALLOW, _BINARY, _BINARY_SET, _DEEP = (
    "shallow",
    "dict-of-shallow",
    "list-of-shallow",
    "binary",
    "binary-set",
    "deep",
)
# A dict whose every value needs a copy is rebuilt by a display naming its
# keys (``{"SS": v["SS"].copy()}``: a third of a comprehension's cost for a
# wire-format attribute value); past this many keys of containers of
# immutables, by one comprehension that every such dict shares.
_NAMED_KEYS = 32
# A plan of more parts than this (a query page of many items), or whose keys
# add up to more characters, is copied by the copiers of its parts, not
# compiled whole: one function per page would be one per page length and mix
# of item shapes, and a compiled function holds its keys.
_COMPILED_PARTS = 64
_COMPILED_KEY_CHARS = 4_096
HOT = 32  # copies a copier makes by the interpreter before its plan is compiled
SHAPES = 256  # copiers kept for sharing between entries, the least recently used dropped

# plan -> its copier, least recently used first. Read and written without a
# lock: each operation is one C call on a key of tuples and strings, atomic
# under the GIL; a race makes two copiers of one shape or drops one early,
# both harmless (no lock also means nothing to reset after a fork).
_copiers: OrderedDict[Any, Callable[[Any], Any]] = OrderedDict()


def copy_plan(value: Any) -> Any:
    """How to copy ``value`` so that no caller can change it: None (share it:
    immutable), a code, ``("record", ((key, plan), ...))`` for a dict whose
    every value needs copying, or ``("dict"|"list", ((key, plan), ...))``
    naming only the parts that need more than sharing."""
    cls = type(value)
    if cls in _IMMUTABLE:
        return None
    if cls is set:
        return _set_plan(value)
    if cls is Binary:
        return _BINARY if type(value.value) is bytes else _DEEP
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
            return ("record", parts)
        if whole and all(plan is _SHALLOW for _, plan in parts):
            return _DICT_OF_SHALLOW if cls is dict else _LIST_OF_SHALLOW
        return ("dict" if cls is dict else "list", parts)
    if cls is frozenset and all(type(member) in _IMMUTABLE for member in value):
        return None
    return _DEEP


def _set_plan(value: set[Any]) -> Any:
    """A set's plan: its members are hashable, but a ``Binary`` member is
    still mutable (``.value``): the set gets new ones."""
    plan = _SHALLOW
    for member in value:
        cls = type(member)
        if cls in _IMMUTABLE:
            continue
        if cls is Binary and type(member.value) is bytes:
            plan = _BINARY_SET
        else:
            return _DEEP
    return plan


def _copy_binary_set(value: set[Any]) -> set[Any]:
    return {Binary(member.value) if type(member) is Binary else member for member in value}


def copy_by(plan: Any, value: Any) -> Any:
    """A copy of ``value`` made by its :func:`copy_plan` (the interpreter)."""
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
    if plan is _BINARY_SET:
        return _copy_binary_set(value)
    if plan is _DEEP:
        return copy.deepcopy(value)
    out = value.copy()  # a dict, or a list
    for index, part in plan[1]:
        out[index] = copy_by(part, value[index])
    return out


def _share(value: Any) -> Any:
    return value


def _copy_shallow(value: Any) -> Any:
    return value.copy()


# The copiers of plans that are a code: one fixed function each.
_FIXED: dict[Any, Callable[[Any], Any]] = {
    None: _share,
    _SHALLOW: _copy_shallow,
    _DICT_OF_SHALLOW: lambda value: {name: part.copy() for name, part in value.items()},
    _LIST_OF_SHALLOW: lambda value: [part.copy() for part in value],
    _BINARY: lambda value: Binary(value.value),
    _BINARY_SET: _copy_binary_set,
    _DEEP: copy.deepcopy,
}


def copier(plan: Any) -> Callable[[Any], Any]:
    """The function that copies values of ``plan`` (an entry keeps it),
    shared by the entries of its shape: it interprets the plan until
    :data:`HOT` copies make compiling it worth it."""
    if not isinstance(plan, tuple):
        return _FIXED[plan]
    if not _compilable(plan):
        # A page: its own loop over its parts' shared copiers (kept in the
        # table, its plan would hold every part's keys).
        return _composed(plan, {})
    function = _copiers.get(plan)
    if function is not None:
        try:
            _copiers.move_to_end(plan)
        except KeyError:  # dropped meanwhile: its entries still use it
            pass
        return function
    function = _copiers.setdefault(plan, _warming(plan))
    while len(_copiers) > SHAPES:
        try:
            _copiers.popitem(last=False)
        except KeyError:  # emptied by another thread meanwhile
            break
    return function


def shapes() -> int:
    """How many shapes' copiers the sharing table keeps (at most :data:`SHAPES`)."""
    return len(_copiers)


def compiled_copier(plan: Any) -> Callable[[Any], Any]:
    """``plan`` compiled into one function of straight-line code (a plan
    too large to compile whole: copied part by part)."""
    if not isinstance(plan, tuple):
        return _FIXED[plan]
    if not _compilable(plan):
        return _composed(plan, {})
    try:
        return _compile(plan)
    except (SyntaxError, RecursionError, MemoryError):  # e.g. nesting past the parser's limits
        return lambda value: copy_by(plan, value)


def _warming(plan: Any) -> Callable[[Any], Any]:
    """A copier that interprets ``plan`` for its first :data:`HOT` copies,
    then compiles it and lets the plan go."""
    copies = 0
    compiled: Callable[[Any], Any] | None = None

    def copy_warming(value: Any) -> Any:
        nonlocal copies, compiled, plan
        # The plan is read first: it is let go only after ``compiled`` is set.
        shape = plan
        if compiled is not None:
            return compiled(value)
        copies += 1  # two threads may count one copy: it only compiles a little later
        if copies < HOT:
            return copy_by(shape, value)
        compiled = compiled_copier(shape)
        plan = None
        copy_warming.compiled = compiled  # type: ignore[attr-defined] - for a page's copier to call it directly
        return compiled(value)

    return copy_warming


def _compilable(plan: Any) -> bool:
    """Whether ``plan`` is small enough to compile whole: at most
    :data:`_COMPILED_PARTS` parts at every level, and its keys at most
    :data:`_COMPILED_KEY_CHARS` characters (counting stops past either)."""
    parts = chars = 0
    pending = [plan]
    while pending:
        for key, part in pending.pop()[1]:
            parts += 1
            chars += len(key) if type(key) is str else 8
            if parts > _COMPILED_PARTS or chars > _COMPILED_KEY_CHARS:
                return False
            if isinstance(part, tuple):
                pending.append(part)
    return True


def _composed(plan: Any, memo: dict[Any, Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """A copier for a plan too large to compile whole: a loop over its
    parts, each copied by its shape's shared copier (parts of one shape
    share one: ``memo``). After :data:`HOT` copies its parts' copiers have
    compiled their plans: the loop then calls the compiled functions
    directly."""
    kind, parts = plan
    pairs = []
    for index, part in parts:
        function = memo.get(part)
        if function is None:
            function = memo[part] = copier(part)
        pairs.append((index, function))
    copiers = tuple(pairs)
    copies = 0

    def resolved() -> tuple[tuple[Any, Callable[[Any], Any]], ...]:
        nonlocal copies, copiers
        copies += 1  # two threads may count one copy: it only resolves a little later
        if copies > HOT:
            copiers = tuple((index, getattr(function, "compiled", function)) for index, function in copiers)
        return copiers

    if kind == "record":

        def copy_record(value: Any) -> Any:
            pairs = copiers if copies > HOT else resolved()
            return {index: copy_part(value[index]) for index, copy_part in pairs}

        return copy_record

    def copy_container(value: Any) -> Any:
        out = value.copy()
        for index, copy_part in copiers if copies > HOT else resolved():
            out[index] = copy_part(value[index])
        return out

    return copy_container


def _compile(plan: Any) -> Callable[[Any], Any]:
    """:func:`copy_by` for one plan, compiled into one function of straight
    line code (dict displays naming the keys, item assignments): a hit then
    costs one call instead of one per nested container."""
    lines: list[str] = []
    scope: dict[str, Any] = {"Binary": Binary, "copy_by": copy_by, "copy_binary_set": _copy_binary_set}
    result = _expression(plan, "v0", iter(range(1, 1_000_000)), lines, scope)
    source = "def copy_(v0):\n" + "".join(f"    {line}\n" for line in lines) + f"    return {result}\n"
    exec(compile(source, "<regionproxy._cache.copies copier>", "exec"), scope)  # noqa: S102 - code built from the plan only
    return scope["copy_"]


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
    if plan is _BINARY_SET:
        return f"copy_binary_set({value})"
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
