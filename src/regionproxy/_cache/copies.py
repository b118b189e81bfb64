"""What a cache entry holds of its answer, and the copy each hit gets, so
that no caller can change what the cache holds.

The rule: every mutable part of a hit is new. An entry holds its answer
packed where it can (:func:`keeper`, in the second half of this module: a
few hundred bytes for an item of ten attributes, against three to four
kilobytes of objects), and each hit unpacks a new answer. What cannot be
packed is held as it came and copied by a plan. A plan (:func:`copy_plan`),
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
- The functions that unpack entries are shared, interpreted until hot and
  bounded the same way, in the same table.

What packing costs (Python 3.11, with its metadata; ``benchmarks/bench_cache.py``
has the whole hits): a 10-attribute item unpacks in 1.7 us in wire format
and 1.5 us in Python values, where a copy took 1.0 and 0.5 us, and a hit
stays under 5 us on both surfaces. An item of 100 attributes, a third of
them numbers and a third sets, unpacks in 11 us in Python values, where a
copy that shares its strings and numbers took 2.6 us: every string of a
hit is new.
"""

from __future__ import annotations

import copy
import marshal
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary

__all__ = ["HOT", "SHAPES", "compiled_copier", "copier", "copy_by", "copy_plan", "keeper", "shapes"]

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
    return _shared(plan, lambda: _warming(plan, copy_by, compiled_copier))


def _shared(key: Any, build: Callable[[], Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """The function the sharing table keeps under ``key`` (a copy plan, or
    an unpacker's description), built by ``build()`` when it has none."""
    function = _copiers.get(key)
    if function is not None:
        try:
            _copiers.move_to_end(key)
        except KeyError:  # dropped meanwhile: its entries still use it
            pass
        return function
    function = _copiers.setdefault(key, build())
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


def _warming(
    plan: Any,
    interpret: Callable[[Any, Any], Any],
    compile_: Callable[[Any], Callable[[Any], Any]],
) -> Callable[[Any], Any]:
    """A function that runs ``interpret(plan, value)`` for its first
    :data:`HOT` calls, then ``compile_(plan)``'s function, and lets the plan
    go (a copier, or an unpacker)."""
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
            return interpret(shape, value)
        compiled = compile_(shape)
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


# -- packed answers: what an entry holds ---------------------------------------------
#
# A cache entry holds its answer packed: the answer's values in one
# ``marshal`` blob (a string costs its characters there, not 50 bytes of
# object), and a shared function that unpacks the blob into a new answer per
# hit (``marshal.loads`` makes every container and string new). The
# answer's structure is that function's: the attribute names and types of
# an item (``{"Item": {...}}``, a GetItem's answer) are constants of its
# code, not in the blob; other answers (a query page) are marshalled whole.
# A value marshal does not keep as it is (a ``Decimal``, a ``Binary``, a
# set of them) is packed as text or bytes and made again per hit; any other
# (a ``bytearray``, a subclass, an object) leaves the answer unpacked: it is
# kept as it came, and copied by its plan (above).
#
# An answer's ``ResponseMetadata`` is made again too, as the loading call
# answered it (a hit names the request that loaded its answer): its names,
# its numbers and the headers that name the service (the same in every
# answer) are constants of the unpacking function, shared; its other
# strings, which differ from one answer to the next (request id, date,
# length, checksum), are in the blob, the request id once.

_SERVICE_HEADERS = frozenset({"server", "content-type", "connection"})
# In a metadata template: the load's request id goes here; one of its texts
# goes here (in order, after the request id).
_REQUEST_ID, _TEXT = object(), object()
_SCALARS = frozenset({str, bytes, int, float, bool, type(None)})  # kept by marshal as they are
_DEEPEST = 64  # nesting levels packed (DynamoDB allows 32)
# How a packed leaf is made again: as it is; a Decimal from its text; a
# Binary from its bytes; a set of either from a list. A wire-format
# attribute value is ``("wire", type)``: ``{type: leaf}``.
_AS_IS, _DECIMAL, _BINARY_LEAF, _DECIMAL_SET, _BINARY_LEAF_SET = "as-is", "decimal", "binary", "decimal-set", "binary-set"
_WIRE_TYPES = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})
_ITEM_PARTS = 256  # attributes of an item unpacked by compiled code; more: by the interpreter
# Decimals by their text, as packed lately: a hit takes a number from here (a
# dictionary read) rather than reading its text again (three times the
# cost). Decimals are immutable: hits may share them, as copies did.
_DECIMALS = 1024
_decimals: dict[str, Decimal] = {}
_FIXES = 64  # leaves made again per answer by compiled code; more: by the interpreter


class _Unpackable(Exception):
    """A value marshal would not keep as it is."""


def keeper(value: Any) -> tuple[Any, Callable[[Any], Any]]:
    """``(held, copy)``: what a cache entry holds of the answer ``value``,
    and the function that makes each hit's answer from it, ``copy(held)``:
    equal to ``value``, and new in every mutable part. ``held`` is ``value``
    itself when it cannot be packed."""
    try:
        return _packed(value)
    except (_Unpackable, ValueError, RecursionError):  # (marshal's limits too)
        return value, copier(copy_plan(value))


def _packed(value: Any) -> tuple[bytes, Callable[[Any], Any]]:
    body, template, texts = value, None, None
    if type(value) is dict and value and next(reversed(value)) == "ResponseMetadata":
        found = _template(value["ResponseMetadata"])
        if found is not None:
            template, texts = found
            body = dict(value)
            del body["ResponseMetadata"]
    if type(body) is dict and (not body or (len(body) == 1 and type(body.get("Item")) is dict)):
        item = body.get("Item")
        try:
            names, leaves = _item_leaves(item) if item is not None else (None, ())
        except _Unpackable:
            pass
        else:
            blob = marshal.dumps((leaves, texts) if template is not None else leaves)
            spec: Any = ("item", names, template)
            return blob, _shared(spec, lambda: _warming(spec, _unpack_item, _compiled_unpacker))
    fixes: list[tuple[tuple[Any, ...], str]] = []
    packed = _leaf(body, (), fixes, 0)
    blob = marshal.dumps((packed, texts) if template is not None else packed)
    if not fixes and template is None:
        return blob, marshal.loads
    spec = ("whole", tuple(fixes), template)
    return blob, _shared(spec, lambda: _warming(spec, _unpack_whole, _compiled_unpacker))


def _template(metadata: Any) -> tuple[tuple[Any, ...], tuple[str, ...]] | None:
    """``(template, texts)`` of a ``ResponseMetadata`` of strings and
    numbers: the template is its names in order, its numbers, the headers
    that name the service, and where its texts go (:data:`_REQUEST_ID`: the request id, in ``RequestId`` and in
    the ``x-amzn-requestid`` header; :data:`_TEXT`: the next text); the
    texts are the request id and the other strings, in order (they differ
    from one answer to the next, so they are packed with it). None when it
    holds anything else: it is then packed with the answer, whole."""
    if type(metadata) is not dict:
        return None
    request_id = metadata.get("RequestId")
    if type(request_id) is not str:
        return None
    parts: list[tuple[str, Any]] = []
    texts = [request_id]
    for name, value in metadata.items():
        if type(name) is not str:
            return None
        if name == "RequestId":
            parts.append((name, _REQUEST_ID))
        elif name == "HTTPHeaders":
            if type(value) is not dict:
                return None
            headers: list[tuple[str, Any]] = []
            for header, text in value.items():
                if type(header) is not str or type(text) is not str:
                    return None
                if header == "x-amzn-requestid" and text == request_id:
                    headers.append((header, _REQUEST_ID))
                elif header in _SERVICE_HEADERS:
                    headers.append((header, text))
                else:
                    headers.append((header, _TEXT))
                    texts.append(text)
            parts.append((name, tuple(headers)))
        elif type(value) is str:
            parts.append((name, _TEXT))
            texts.append(value)
        elif type(value) in (int, bool) or value is None:
            parts.append((name, value))
        else:
            return None
    return tuple(parts), tuple(texts)


def _item_leaves(item: dict[str, Any]) -> tuple[tuple[tuple[str, Any], ...], tuple[Any, ...]]:
    """An item's ``((name, how), ...)`` (its shape, shared) and its packed
    leaves, one per attribute (the blob's)."""
    names, leaves = [], []
    for name, value in item.items():
        if type(name) is not str:
            raise _Unpackable
        if type(value) is dict and len(value) == 1:
            ((kind, raw),) = value.items()
            if type(kind) is str and kind in _WIRE_TYPES and _marshals(raw, 0):
                names.append((name, ("wire", kind)))
                leaves.append(raw)
                continue
        how, leaf = _item_leaf(value)
        names.append((name, how))
        leaves.append(leaf)
    return tuple(names), tuple(leaves)


def _item_leaf(value: Any) -> tuple[str, Any]:
    """How an attribute value in Python values is made again, and its packed leaf."""
    cls = type(value)
    if cls is Decimal:
        text = str(value)
        if len(_decimals) >= _DECIMALS:  # bounded: start again (each operation is atomic under the GIL)
            _decimals.clear()
        _decimals.setdefault(text, value)
        return _DECIMAL, text
    if cls is Binary and type(value.value) is bytes:
        return _BINARY_LEAF, value.value
    if cls is set and value:
        kinds = {type(member) for member in value}
        if kinds == {Decimal}:
            return _DECIMAL_SET, [str(member) for member in value]
        if kinds == {Binary} and all(type(member.value) is bytes for member in value):
            return _BINARY_LEAF_SET, [member.value for member in value]
    if _marshals(value, 0):
        return _AS_IS, value
    raise _Unpackable


def _marshals(value: Any, depth: int) -> bool:
    """Whether marshal keeps ``value`` as it is: its containers and scalars
    of exact types (a ``bytearray`` would come back as ``bytes``)."""
    cls = type(value)
    if cls in _SCALARS:
        return True
    if depth > _DEEPEST:
        return False
    if cls is dict:
        return all(type(key) in _SCALARS and _marshals(part, depth + 1) for key, part in value.items())
    if cls is list or cls is tuple:
        return all(_marshals(part, depth + 1) for part in value)
    if cls is set or cls is frozenset:
        return all(type(member) in _SCALARS for member in value)
    return False


def _leaf(value: Any, path: tuple[Any, ...], fixes: list[tuple[tuple[Any, ...], str]], depth: int) -> Any:
    """``value`` as marshal keeps it: a leaf made again per hit is packed as
    text or bytes, and ``(path, how)`` noted in ``fixes``; raises
    :class:`_Unpackable` for anything else."""
    cls = type(value)
    if cls in _SCALARS:
        return value
    if depth > _DEEPEST:
        raise _Unpackable
    if cls is dict:
        out = {}
        for key, part in value.items():
            if type(key) is not str and type(key) is not int:
                raise _Unpackable
            out[key] = _leaf(part, (*path, key), fixes, depth + 1)
        return out
    if cls is list:
        return [_leaf(part, (*path, index), fixes, depth + 1) for index, part in enumerate(value)]
    if cls is Decimal or cls is Binary or cls is set:
        how, leaf = _item_leaf(value)
        if how != _AS_IS:
            if not path:
                raise _Unpackable
            fixes.append((path, how))
        return leaf
    if (cls is tuple or cls is frozenset) and _marshals(value, depth):
        return value
    raise _Unpackable


def _decimal(text: str) -> Decimal:
    """The Decimal whose text is ``text`` (exact: a Decimal's text is read
    back as the same Decimal, whatever the context)."""
    return _decimals.get(text) or Decimal(text)


_MAKE: dict[str, Callable[[Any], Any]] = {
    _AS_IS: _share,
    _DECIMAL: _decimal,
    _BINARY_LEAF: Binary,
    _DECIMAL_SET: lambda leaf: set(map(Decimal, leaf)),
    _BINARY_LEAF_SET: lambda leaf: set(map(Binary, leaf)),
}


def _metadata(template: tuple[Any, ...], texts: tuple[str, ...]) -> dict[str, Any]:
    """A ``ResponseMetadata`` made from its template and texts, by the interpreter."""
    following = iter(texts[1:])

    def text(marker: Any) -> Any:
        return texts[0] if marker is _REQUEST_ID else next(following) if marker is _TEXT else marker

    metadata: dict[str, Any] = {}
    for name, part in template:
        metadata[name] = {header: text(marker) for header, marker in part} if type(part) is tuple else text(part)
    return metadata


def _unpack_item(spec: Any, blob: bytes) -> dict[str, Any]:
    """An item's answer from its blob, by the interpreter."""
    _, names, template = spec
    leaves, texts = marshal.loads(blob) if template is not None else (marshal.loads(blob), None)
    answer: dict[str, Any] = {}
    if names is not None:
        answer["Item"] = {
            name: {how[1]: leaf} if type(how) is tuple else _MAKE[how](leaf) for (name, how), leaf in zip(names, leaves, strict=True)
        }
    if template is not None:
        answer["ResponseMetadata"] = _metadata(template, texts)
    return answer


def _unpack_whole(spec: Any, blob: bytes) -> Any:
    """A whole answer from its blob, by the interpreter."""
    _, fixes, template = spec
    answer, texts = marshal.loads(blob) if template is not None else (marshal.loads(blob), None)
    for path, how in fixes:
        parent = answer
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = _MAKE[how](parent[path[-1]])
    if template is not None:
        answer["ResponseMetadata"] = _metadata(template, texts)
    return answer


def _compiled_unpacker(spec: Any) -> Callable[[bytes], Any]:
    """An unpacker compiled into straight-line code (the interpreter's, past
    :data:`_ITEM_PARTS` attributes or :data:`_FIXES` leaves)."""
    kind, parts, template = spec
    interpret = _unpack_item if kind == "item" else _unpack_whole
    if parts is not None and len(parts) > (_ITEM_PARTS if kind == "item" else _FIXES):
        return lambda blob: interpret(spec, blob)
    scope: dict[str, Any] = {"loads": marshal.loads, "Decimal": Decimal, "Binary": Binary, "make": _MAKE, "known": _decimals.get}
    lines = ["v, t = loads(blob)" if template is not None else "v = loads(blob)"]
    metadata = "" if template is None else _metadata_source(template)
    if kind == "item":
        answer = []
        if parts is not None:
            attributes = ", ".join(f"{name!r}: {_made(how, f'v[{n}]')}" for n, (name, how) in enumerate(parts))
            answer.append(f"'Item': {{{attributes}}}")
        if metadata:
            answer.append(f"'ResponseMetadata': {metadata}")
        lines.append(f"return {{{', '.join(answer)}}}")
    else:
        for path, how in parts:
            place = "v" + "".join(f"[{step!r}]" for step in path)
            lines.append(f"{place} = {_made(how, place)}")
        if metadata:
            lines.append(f"v['ResponseMetadata'] = {metadata}")
        lines.append("return v")
    source = "def unpack_(blob):\n" + "".join(f"    {line}\n" for line in lines)
    try:
        exec(compile(source, "<regionproxy._cache.copies copier>", "exec"), scope)  # noqa: S102 - names and constants by repr only
    except (SyntaxError, RecursionError, MemoryError):
        return lambda blob: interpret(spec, blob)
    return scope["unpack_"]


def _made(how: Any, leaf: str) -> str:
    """Source that makes an attribute value again from the source ``leaf``."""
    if type(how) is tuple:
        return f"{{{how[1]!r}: {leaf}}}"
    if how == _AS_IS:
        return leaf
    if how == _DECIMAL:
        return f"(known({leaf}) or Decimal({leaf}))"
    if how == _BINARY_LEAF:
        return f"Binary({leaf})"
    return f"make[{how!r}]({leaf})"


def _metadata_source(template: tuple[Any, ...]) -> str:
    """Source of :func:`_metadata` for one template (its texts in ``t``)."""
    following = iter(range(1, 1_000_000))

    def text(marker: Any) -> str:
        return "t[0]" if marker is _REQUEST_ID else f"t[{next(following)}]" if marker is _TEXT else repr(marker)

    parts = []
    for name, part in template:
        if type(part) is tuple:
            headers = ", ".join(f"{header!r}: {text(marker)}" for header, marker in part)
            parts.append(f"{name!r}: {{{headers}}}")
        else:
            parts.append(f"{name!r}: {text(part)}")
    return f"{{{', '.join(parts)}}}"
