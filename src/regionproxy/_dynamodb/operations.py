"""What each DynamoDB operation is: a read, a write, or control-plane;
whether a write is safe to repeat on another region; whether a read is
strongly consistent; and which tables and items a call names.

Pure functions of the operation name and its (wire-format) parameters.

PartiQL statements are read, not executed, all by one reader (comments
and spaces skipped, as DynamoDB skips them), so that what a statement is
and what it names never disagree: it is a read when its verb is
``SELECT`` (anything else, no verb included, is a write); it names its
table (``FROM``, ``INTO``, ``UPDATE``), and a write names its item when its
``WHERE`` clause is a conjunction that states the whole key with literals
or ``?`` parameters (``UPDATE``, ``DELETE``), or when it inserts a tuple or
parameter that holds the key (``INSERT``). What cannot be read so is
unknown, never guessed: its keys raise :class:`UnnamedKeys` (a write then
affects its whole table), and a statement whose table cannot be read makes
the call's tables unknown (``[]``: everything).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from regionproxy._dynamodb.tables import table_name
from regionproxy._dynamodb.update_expressions import attribute_updates_are_idempotent, update_is_idempotent

READ, WRITE, CONTROL = "read", "write", "control"

READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
PARTIQL = frozenset({"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"})


def kind_of(operation: str, params: Mapping[str, Any]) -> str:
    """``read``, ``write`` or ``control`` for one call. A PartiQL call is a
    read when every statement's verb, as the statement reader reads it
    (comments and spaces skipped, as DynamoDB skips them), is ``SELECT``;
    anything else, a statement it cannot read included, is a write."""
    if operation in READS:
        return READ
    if operation in WRITES:
        return WRITE
    if operation in PARTIQL:
        return READ if all(_read_statement(s)[0] == "SELECT" for s in _statements(operation, params)) else WRITE
    return CONTROL


def is_idempotent(operation: str, params: Mapping[str, Any]) -> bool:
    """Whether applying this write twice is the same as applying it once.

    Conditional writes are never idempotent: the repeat may fail its
    condition against the first attempt's result, or pass it when the first
    attempt should have been the only one. Update expressions are parsed
    (:mod:`regionproxy._dynamodb.update_expressions`); PartiQL writes are never idempotent (the
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
    return [statement for statement, _ in _partiql(operation, params)] or [""]


def _partiql(operation: str, params: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    """``(statement, parameters)`` of each statement of a PartiQL call."""
    if operation == "ExecuteStatement":
        return [(params.get("Statement", ""), params.get("Parameters"))]
    items = params.get("Statements" if operation == "BatchExecuteStatement" else "TransactStatements", ())
    if not isinstance(items, list | tuple):
        return [("", None)]  # botocore refuses it
    return [
        (item.get("Statement", ""), item.get("Parameters")) if isinstance(item, Mapping) else ("", None) for item in items
    ]


def is_strongly_consistent(operation: str, params: Mapping[str, Any]) -> bool:
    """Whether a read must see every write acknowledged before it:
    ``ConsistentRead`` on a GetItem, Query, Scan or PartiQL statement, on
    any table of a BatchGetItem or any statement of a batch (one call, one
    region); every transaction. A ``ConsistentRead`` that is not a bool
    counts too (botocore refuses it anyway)."""
    if operation in ("TransactGetItems", "ExecuteTransaction"):
        return True
    if operation in ("GetItem", "Query", "Scan", "ExecuteStatement"):  # every read: _consistent inline
        value = params.get("ConsistentRead")
        return value is not None and value is not False
    if operation == "BatchGetItem":
        request = params.get("RequestItems")
        return isinstance(request, Mapping) and any(_consistent(spec) for spec in request.values())
    if operation == "BatchExecuteStatement":
        statements = params.get("Statements")
        return isinstance(statements, list | tuple) and any(_consistent(item) for item in statements)
    return False


def _consistent(spec: Any) -> bool:
    if not isinstance(spec, Mapping):
        return False
    value = spec.get("ConsistentRead")
    return value is not None and value is not False


KeyNames = Callable[[str], tuple[str, ...]]


class UnnamedKeys(ValueError):
    """A write whose items cannot be named from the call (a PartiQL
    statement that does not state its item's whole key)."""


def written_keys(operation: str, params: Mapping[str, Any], key_names: KeyNames) -> list[tuple[str, Any]]:
    """``(table, key)`` for every item a write touches, as far as the call
    says; ``key_names(table)`` gives a table's key attributes, to find the
    key of a put item. Raises what ``key_names`` raises, and
    :class:`UnnamedKeys` for a PartiQL write whose item it cannot name."""
    if operation in PARTIQL:
        return _partiql_written_keys(operation, params, key_names)
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
    of a transaction's items, or of each PartiQL statement ([] when one
    statement's table cannot be read: the call's tables are unknown)."""
    try:
        if "TableName" in params:
            return [params["TableName"]]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            request = params.get("RequestItems", {})
            return list(request) if isinstance(request, Mapping) else []
        if operation in ("TransactGetItems", "TransactWriteItems"):
            return [action["TableName"] for entry in params.get("TransactItems", ()) for action in entry.values()]
    except (KeyError, TypeError, AttributeError):
        return []  # a request botocore refuses: it will say why
    if operation in PARTIQL:
        tables = []
        for statement, _ in _partiql(operation, params):
            table = _read_statement(statement)[1]
            if table is None:
                return []
            if table not in tables:
                tables.append(table)
        return tables
    return []


def read_keys(operation: str, params: Mapping[str, Any]) -> list[tuple[str, Any]] | None:
    """``(table, key)`` of each item a read names (GetItem, BatchGetItem,
    TransactGetItems); None for a read of whatever matches (Query, Scan,
    PartiQL SELECT), or a request too malformed to say (botocore refuses it)."""
    try:
        if operation == "GetItem":
            return [(params["TableName"], params["Key"])]
        if operation == "BatchGetItem":
            return [(table, key) for table, spec in params["RequestItems"].items() for key in spec["Keys"]]
        if operation == "TransactGetItems":
            return [(entry["Get"]["TableName"], entry["Get"]["Key"]) for entry in params["TransactItems"]]
    except (KeyError, TypeError, AttributeError):
        return None
    return None


# -- PartiQL: which table and item a statement names ---------------------------------

_PARTIQL_TOKEN = re.compile(
    r"""
    (?P<space>\s+|--[^\n]*|/\*.*?\*/)
    | '(?P<string>(?:[^']|'')*)'
    | "(?P<name>(?:[^"]|"")*)"
    | (?P<parameter>\?)
    | (?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<symbol><<|>>|<=|>=|<>|!=|\|\||[=<>(){}\[\],:.*+\-/%;])
    """,
    re.VERBOSE | re.DOTALL,
)
_OPEN, _CLOSE = frozenset({"(", "[", "{", "<<"}), frozenset({")", "]", "}", ">>"})
_Token = tuple[str, Any]  # (kind, value); a parameter's value is its index among the statement's ``?``


# DynamoDB refuses longer statements, so no such write succeeds: not worth
# reading past the verb (and a bound on the work of reading one).
_LONGEST_STATEMENT = 8192


def _tokens(statement: Any) -> tuple[list[_Token], bool]:
    """The statement's tokens (comments and spaces skipped), and whether
    they are the whole statement: reading stops at the first thing this
    reader cannot take apart, and keeps what it read before it (the verb of
    a statement whose rest it cannot read is still its verb)."""
    if not isinstance(statement, str):
        return [], False
    end = min(len(statement), _LONGEST_STATEMENT)  # a longer one is read only as far as its verb
    tokens: list[_Token] = []
    parameters = 0
    position = 0
    while position < end:
        match = _PARTIQL_TOKEN.match(statement, position, end)
        if match is None:
            return tokens, False
        position = match.end()
        kind = match.lastgroup or ""
        if kind == "space":
            continue
        if kind == "parameter":
            tokens.append((kind, parameters))
            parameters += 1
        elif kind == "string":
            tokens.append((kind, match.group(kind).replace("''", "'")))
        elif kind == "name":
            tokens.append((kind, match.group(kind).replace('""', '"')))
        else:
            tokens.append((kind, match.group(kind)))
        if end < len(statement):
            return tokens, False  # the verb is all it needs
    return tokens, end == len(statement)


def _is_word(token: _Token, word: str) -> bool:
    return token[0] == "word" and token[1].upper() == word


def _is_symbol(token: _Token, symbols: frozenset[str]) -> bool:
    return token[0] == "symbol" and token[1] in symbols


def _read_statement(statement: Any) -> tuple[str, str | None, list[_Token]]:
    """``(verb, table, tokens)``: the statement's first word in capitals
    ("" when it has none), the table it names (None when it cannot be read),
    its tokens. This is the one reading of a statement: its kind
    (:func:`kind_of`), tables and written keys all come from it."""
    tokens, whole = _tokens(statement)
    verb = tokens[0][1].upper() if tokens and tokens[0][0] == "word" else ""
    if not whole:
        return verb, None, []
    at: int | None = None
    if verb == "UPDATE":
        at = 1
    elif verb in ("INSERT", "DELETE") and len(tokens) > 1 and _is_word(tokens[1], "INTO" if verb == "INSERT" else "FROM"):
        at = 2
    elif verb == "SELECT" or (verb == "EXISTS" and len(tokens) > 1 and tokens[1] == ("symbol", "(")):
        # EXISTS(SELECT ... FROM t ...), a transaction's condition check.
        at = next((n + 1 for n, token in _top_level(tokens, 0 if verb == "SELECT" else 2) if _is_word(token, "FROM")), None)
    if at is None or at >= len(tokens) or tokens[at][0] not in ("name", "word"):
        return verb, None, tokens
    return verb, table_name(tokens[at][1]), tokens  # "arn:...:table/t" names t (regionproxy._dynamodb.tables)


def _top_level(tokens: list[_Token], start: int = 0) -> list[tuple[int, _Token]]:
    """The tokens from ``start`` outside any brackets, with their index; up
    to a bracket that closes one opened before ``start``."""
    found, depth = [], 0
    for n in range(start, len(tokens)):
        token = tokens[n]
        if _is_symbol(token, _CLOSE):
            depth -= 1
            if depth < 0:
                break
        elif depth == 0:
            found.append((n, token))
        if _is_symbol(token, _OPEN):
            depth += 1
    return found


def _partiql_written_keys(operation: str, params: Mapping[str, Any], key_names: KeyNames) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for statement, parameters in _partiql(operation, params):
        verb, table, tokens = _read_statement(statement)
        if verb in ("SELECT", "EXISTS"):
            continue  # a read or a condition check: writes nothing
        if table is None or verb not in ("INSERT", "UPDATE", "DELETE"):
            raise UnnamedKeys(f"cannot read the table of {_shown(statement)}")
        names = key_names(table)
        values = _inserted(tokens, parameters) if verb == "INSERT" else _where(tokens, parameters)
        if not names or any(values.get(name) is None for name in names):
            raise UnnamedKeys(f"{_shown(statement)} does not state the whole key of {table!r} {names}")
        found.append((table, {name: values[name] for name in names}))
    return found


def _shown(statement: Any) -> str:
    text = statement if isinstance(statement, str) else repr(statement)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _where(tokens: list[_Token], parameters: Any) -> dict[str, Any]:
    """``name -> wire value`` of each ``name = value`` the WHERE clause
    states for certain: the clause must be a conjunction (no OR, no NOT
    anywhere in it); a bracketed part is one opaque operand (an AND inside
    it splits nothing); a name stated twice has no value (None)."""
    top = _top_level(tokens)
    start = next((n for n, token in top if _is_word(token, "WHERE")), None)
    if start is None:
        return {}
    end = next((n for n, token in top if n > start and _is_word(token, "RETURNING")), len(tokens))
    if any(_is_word(token, "OR") or _is_word(token, "NOT") for token in tokens[start:end]):
        return {}
    conjuncts: list[list[_Token]] = [[]]
    for n, token in _top_level(tokens[:end], start + 1):
        if _is_word(token, "AND") and _count(conjuncts[-1], "BETWEEN") <= _count(conjuncts[-1], "AND"):
            conjuncts.append([])
        else:  # (the AND of ``a BETWEEN x AND y`` splits nothing)
            conjuncts[-1].append(token if not _is_symbol(token, _OPEN) else ("bracket", n))
    found: dict[str, Any] = {}
    for conjunct in conjuncts:
        if conjunct.count(("symbol", "=")) != 1:
            continue
        at = conjunct.index(("symbol", "="))
        for name, value in ((conjunct[:at], conjunct[at + 1 :]), (conjunct[at + 1 :], conjunct[:at])):
            if len(name) == 1 and name[0][0] in ("word", "name") and _is_value(value):
                _state(found, name[0][1], _value(value, parameters))
                break
    return found


def _count(tokens: list[_Token], word: str) -> int:
    return sum(1 for token in tokens if _is_word(token, word))


def _inserted(tokens: list[_Token], parameters: Any) -> dict[str, Any]:
    """``name -> wire value`` of the top-level attributes of the item an
    ``INSERT INTO t VALUE {...}`` (or ``VALUE ?``, a map parameter) names;
    an attribute whose value is not one a key can hold has None."""
    at = next((n for n, token in enumerate(tokens) if _is_word(token, "VALUE")), None)
    if at is None or at + 1 >= len(tokens):
        return {}
    if tokens[at + 1][0] == "parameter" and at + 2 == len(tokens):
        item = _value(tokens[at + 1 :], parameters, kind="M")
        return dict(item["M"]) if isinstance(item, Mapping) and isinstance(item.get("M"), Mapping) else {}
    if tokens[at + 1] != ("symbol", "{"):
        return {}
    found: dict[str, Any] = {}
    entry: list[_Token] = []
    for n, token in [*_top_level(tokens, at + 2), (-1, ("symbol", ","))]:
        if token != ("symbol", ","):
            entry.append(token if not _is_symbol(token, _OPEN) else ("bracket", n))
            continue
        if len(entry) >= 3 and entry[0][0] == "string" and entry[1] == ("symbol", ":"):
            _state(found, entry[0][1], _value(entry[2:], parameters) if _is_value(entry[2:]) else None)
        entry = []
    return found


def _state(found: dict[str, Any], name: str, value: Any) -> None:
    """Record ``name = value``; stated twice with two values, it has none."""
    found[name] = value if name not in found or found[name] == value else None


def _is_value(tokens: list[_Token]) -> bool:
    """A string, a number, ``-`` a number, or a parameter."""
    if len(tokens) == 1:
        return tokens[0][0] in ("string", "number", "parameter")
    return len(tokens) == 2 and tokens[0] == ("symbol", "-") and tokens[1][0] == "number"


def _value(tokens: list[_Token], parameters: Any, *, kind: str | None = None) -> Any:
    """The wire-format value of :func:`_is_value` tokens, or None (a
    parameter that is missing or not an attribute value)."""
    if len(tokens) == 2:
        return {"N": "-" + tokens[1][1]}
    token_kind, value = tokens[0]
    if token_kind == "string":
        return {"S": value}
    if token_kind == "number":
        return {"N": value}
    if isinstance(parameters, list | tuple) and value < len(parameters):
        parameter = parameters[value]
        if isinstance(parameter, Mapping) and len(parameter) == 1 and (kind is None or kind in parameter):
            return parameter
    return None


# Table-level control-plane calls that change a table's items or key schema,
# and the path to the table's name in each.
_TABLE_CHANGES: dict[str, tuple[str, ...]] = {
    "CreateTable": ("TableName",),
    "DeleteTable": ("TableName",),
    "UpdateTable": ("TableName",),  # an index deleted: its cached query pages
    "RestoreTableFromBackup": ("TargetTableName",),
    "RestoreTableToPointInTime": ("TargetTableName",),
    "ImportTable": ("TableCreationParameters", "TableName"),
}


def changed_tables(operation: str, params: Mapping[str, Any]) -> tuple[str, ...]:
    """The tables whose items or key schema the control-plane call
    ``operation`` changes (or may have changed, whatever its outcome): what
    it drops from the cache, and whose learned key schema it forgets. A
    name that is not a string names nothing (botocore refuses the call)."""
    path = _TABLE_CHANGES.get(operation)
    if path is None:
        return ()
    value: Any = params
    for step in path:
        value = value.get(step) if isinstance(value, Mapping) else None
    return (value,) if isinstance(value, str) else ()
