"""DynamoDB update expressions: their grammar, and whether an update is
safe to apply twice.

A write whose outcome is unknown (a read timeout after the request left)
may be sent again, to another region, only if applying it twice leaves the
item as applying it once did. For ``UpdateItem`` that depends on the update
expression: ``SET a = :v`` repeats harmlessly, ``SET n = n - :one`` does
not.

The grammar: an ``UpdateExpression`` string (``SET a = :v REMOVE b``) is
tokenised as DynamoDB tokenises it (``#a-b`` is ``#a - b``) and parsed by
recursive descent into frozen values: :class:`UpdateExpression` holds the
actions of each clause, as :class:`Assignment` and :class:`Path` values
whose operands are :class:`Path`, :class:`Value`, :class:`FunctionCall` or
:class:`Arithmetic`. :func:`parse_update` reads an expression; it raises
:class:`UpdateExpressionError` for one that does not parse.

The verdict: when unsure, an update is not idempotent: an expression that
does not parse, ADD and DELETE clauses, arithmetic, ``list_append``, a list
index in a written path, and any value read from a path the same
expression writes. Use :func:`update_is_idempotent` for a verdict on an
``UpdateExpression`` string, :func:`parsed_update_is_idempotent` for a
parsed one, and :func:`attribute_updates_are_idempotent` for legacy
``AttributeUpdates``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn

from regionproxy.errors import RegionProxyError

# Placeholders and names are letters, digits and '_' only, as in DynamoDB
# (a '-' ends them): reading '#c-:one' as one name is how a regex once
# missed the subtraction in 'SET #c = #c-:one'. A list index of ten digits
# or more is two tokens, so a syntax error, never an int() too long to parse.
_TOKEN = re.compile(
    r"(?P<space>[ \t\r\n]+)|(?P<nameref>\#\w+)|(?P<valref>:\w+)|(?P<integer>[0-9]{1,9})"
    r"|(?P<name>[A-Za-z]\w*)|(?P<punct>[=+\-(),.\[\]])",
    re.ASCII,
)
_CLAUSES = ("SET", "REMOVE", "ADD", "DELETE")
_ARITY = {"if_not_exists": 2, "list_append": 2}
_MAX_NESTING = 16  # deeper function calls are refused, never a RecursionError


class UpdateExpressionError(RegionProxyError, ValueError):
    """An update expression that does not parse.

    :param position: the offset in the expression where parsing stopped.
    """

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(f"{message} at offset {position}")
        self.position = position


@dataclass(frozen=True, slots=True)
class Path:
    """A document path: names (``#placeholders`` as written) and list indexes."""

    elements: tuple[str | int, ...]

    @property
    def has_index(self) -> bool:
        return any(isinstance(element, int) for element in self.elements)

    def __str__(self) -> str:
        return "".join(f"[{e}]" if isinstance(e, int) else f".{e}" if i else e for i, e in enumerate(self.elements))


@dataclass(frozen=True, slots=True)
class Value:
    """A ``:placeholder`` for a value from ExpressionAttributeValues."""

    placeholder: str

    def __str__(self) -> str:
        return self.placeholder


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """``if_not_exists(path, operand)`` or ``list_append(operand, operand)``."""

    function: str
    arguments: tuple[Operand, ...]

    def __str__(self) -> str:
        return f"{self.function}({', '.join(map(str, self.arguments))})"


Operand = Path | Value | FunctionCall


@dataclass(frozen=True, slots=True)
class Arithmetic:
    """``operand + operand`` or ``operand - operand``, on the right of a SET."""

    left: Operand
    operator: str
    right: Operand

    def __str__(self) -> str:
        return f"{self.left} {self.operator} {self.right}"


@dataclass(frozen=True, slots=True)
class Assignment:
    """One SET action, ``path = value``; also one ADD or DELETE action (``path :value``)."""

    path: Path
    value: Operand | Arithmetic


@dataclass(frozen=True, slots=True)
class UpdateExpression:
    """A parsed update expression: the actions of each clause, in order."""

    set: tuple[Assignment, ...] = ()
    remove: tuple[Path, ...] = ()
    add: tuple[Assignment, ...] = ()
    delete: tuple[Assignment, ...] = ()

    @property
    def written(self) -> tuple[Path, ...]:
        """Every path some action writes."""
        return (*(a.path for a in self.set + self.add + self.delete), *self.remove)

    def __str__(self) -> str:
        clauses = [
            ("SET", [f"{a.path} = {a.value}" for a in self.set]),
            ("REMOVE", [str(path) for path in self.remove]),
            ("ADD", [f"{a.path} {a.value}" for a in self.add]),
            ("DELETE", [f"{a.path} {a.value}" for a in self.delete]),
        ]
        return " ".join(f"{keyword} {', '.join(actions)}" for keyword, actions in clauses if actions)


def parse_update(expression: str) -> UpdateExpression:
    """Parse an update expression; :class:`UpdateExpressionError` if it does not."""
    return _Parser(expression).update()


# -- parsing -------------------------------------------------------------------


class _Token(NamedTuple):
    kind: str  # space, nameref, valref, integer, name, punct, end
    text: str
    position: int


def _tokens(expression: str) -> list[_Token]:
    found, position = [], 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None:
            raise UpdateExpressionError(f"unexpected character {expression[position]!r}", position=position)
        if match.lastgroup != "space":
            found.append(_Token(match.lastgroup, match.group(), position))
        position = match.end()
    found.append(_Token("end", "", len(expression)))
    return found


class _Parser:
    """Recursive descent over DynamoDB's update-expression grammar::

    update  := clause+                      each clause at most once
    clause  := SET path '=' rhs (',' ...)* | REMOVE path (',' path)*
             | ADD path VALREF (',' ...)*  | DELETE path VALREF (',' ...)*
    rhs     := operand (('+' | '-') operand)?
    operand := VALREF | function '(' operand (',' operand)* ')' | path
    path    := (NAME | NAMEREF) ('.' (NAME | NAMEREF) | '[' INTEGER ']')*
    """

    def __init__(self, expression: str) -> None:
        self._tokens = _tokens(expression)
        self._at = 0

    def update(self) -> UpdateExpression:
        clauses: dict[str, tuple[Any, ...]] = {}
        while self._peek().kind != "end":
            keyword = self._peek().text.upper()
            if keyword not in _CLAUSES:
                self._fail("expected SET, REMOVE, ADD or DELETE")
            if keyword in clauses:
                self._fail(f"a second {keyword} clause")
            self._next()
            action = {"SET": self._set_action, "REMOVE": self._path}.get(keyword, self._value_action)
            actions = [action()]
            while self._accept(","):
                actions.append(action())
            clauses[keyword] = tuple(actions)
        if not clauses:
            self._fail("an empty update expression")
        return UpdateExpression(**{keyword.lower(): actions for keyword, actions in clauses.items()})

    def _set_action(self) -> Assignment:
        path = self._path()
        self._expect("=")
        left = self._operand(0)
        for operator in "+-":
            if self._accept(operator):
                return Assignment(path, Arithmetic(left, operator, self._operand(0)))
        return Assignment(path, left)

    def _value_action(self) -> Assignment:
        path = self._path()
        token = self._next()
        if token.kind != "valref":
            self._fail("expected a :value", token)
        return Assignment(path, Value(token.text))

    def _operand(self, depth: int) -> Operand:
        token = self._peek()
        if token.kind == "valref":
            self._next()
            return Value(token.text)
        if token.kind == "name" and self._peek(1).text == "(":
            return self._call(depth)
        return self._path()

    def _call(self, depth: int) -> FunctionCall:
        name = self._next()
        if name.text not in _ARITY:
            self._fail(f"unknown function {name.text!r}", name)
        if depth >= _MAX_NESTING:
            self._fail("functions nested too deep", name)
        self._expect("(")
        arguments = [self._operand(depth + 1)]
        while self._accept(","):
            arguments.append(self._operand(depth + 1))
        self._expect(")")
        if len(arguments) != _ARITY[name.text] or (name.text == "if_not_exists" and not isinstance(arguments[0], Path)):
            self._fail(f"wrong arguments to {name.text}", name)
        return FunctionCall(name.text, tuple(arguments))

    def _path(self) -> Path:
        elements: list[str | int] = [self._component()]
        while True:
            if self._accept("."):
                elements.append(self._component())
            elif self._accept("["):
                token = self._next()
                if token.kind != "integer":
                    self._fail("expected a list index", token)
                elements.append(int(token.text))
                self._expect("]")
            else:
                return Path(tuple(elements))

    def _component(self) -> str:
        token = self._next()
        if token.kind == "nameref" or (token.kind == "name" and token.text.upper() not in _CLAUSES):
            return token.text
        self._fail("expected an attribute name", token)

    def _peek(self, ahead: int = 0) -> _Token:
        return self._tokens[min(self._at + ahead, len(self._tokens) - 1)]

    def _next(self) -> _Token:
        token = self._peek()
        self._at = min(self._at + 1, len(self._tokens) - 1)
        return token

    def _accept(self, text: str) -> bool:
        if self._peek().kind == "punct" and self._peek().text == text:
            self._next()
            return True
        return False

    def _expect(self, text: str) -> None:
        if not self._accept(text):
            self._fail(f"expected {text!r}")

    def _fail(self, message: str, token: _Token | None = None) -> NoReturn:
        token = token or self._peek()
        found = repr(token.text) if token.text else "the end"
        raise UpdateExpressionError(f"{message}, found {found}", position=token.position)


# -- whether an update is safe to apply twice ---------------------------------


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
    if isinstance(value, Arithmetic) or any(isinstance(o, FunctionCall) and o.function == "list_append" for o in _walk(value)):
        return False
    if isinstance(value, FunctionCall) and value.function == "if_not_exists":
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
    if isinstance(operand, FunctionCall):
        for argument in operand.arguments:
            yield from _walk(argument)
