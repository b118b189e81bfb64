"""DynamoDB's update-expression grammar: what an expression parses into, where
a parse fails, and that an expression's text parses back to itself."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regionproxy._dynamodb.update_grammar import (
    Arithmetic,
    Assignment,
    Call,
    Path,
    UpdateExpression,
    UpdateExpressionError,
    Value,
    parse_update,
)
from regionproxy.errors import RegionProxyError

REPEATABLE = settings(derandomize=True, database=None, max_examples=200)


def test_parse_gives_each_clause_its_actions():
    parsed = parse_update("remove x[2], #y SET a.b[3].#c = if_not_exists(d, :v) - :w, e = :f ADD n :one DELETE s :s")
    assert parsed == UpdateExpression(
        set=(
            Assignment(
                Path(("a", "b", 3, "#c")),
                Arithmetic(Call("if_not_exists", (Path(("d",)), Value(":v"))), "-", Value(":w")),
            ),
            Assignment(Path(("e",)), Value(":f")),
        ),
        remove=(Path(("x", 2)), Path(("#y",))),
        add=(Assignment(Path(("n",)), Value(":one")),),
        delete=(Assignment(Path(("s",)), Value(":s")),),
    )
    assert str(parsed) == "SET a.b[3].#c = if_not_exists(d, :v) - :w, e = :f REMOVE x[2], #y ADD n :one DELETE s :s"


def test_parse_error_says_where_and_is_a_value_error():
    with pytest.raises(UpdateExpressionError) as caught:
        parse_update("SET a = :v SET b = :w")
    assert caught.value.position == 11
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, RegionProxyError)


# -- properties ----------------------------------------------------------------

_names = st.sampled_from(["a", "b", "m", "#a", "#b", "#x_1"])
_paths = st.builds(
    lambda root, rest: Path((root, *rest)),
    _names,
    st.lists(st.one_of(_names, st.integers(0, 12)), max_size=3).map(tuple),
)
_values = st.sampled_from([":v", ":w", ":one_2"]).map(Value)
_operands = st.recursive(
    st.one_of(_paths, _values),
    lambda inner: st.one_of(
        st.builds(lambda p, o: Call("if_not_exists", (p, o)), _paths, inner),
        st.builds(lambda x, y: Call("list_append", (x, y)), inner, inner),
    ),
    max_leaves=4,
)
_rhs = st.one_of(_operands, st.builds(Arithmetic, _operands, st.sampled_from("+-"), _operands))
_updates = st.builds(
    UpdateExpression,
    set=st.lists(st.builds(Assignment, _paths, _rhs), max_size=3).map(tuple),
    remove=st.lists(_paths, max_size=2).map(tuple),
    add=st.lists(st.builds(Assignment, _paths, _values), max_size=1).map(tuple),
    delete=st.lists(st.builds(Assignment, _paths, _values), max_size=1).map(tuple),
).filter(lambda update: update.set or update.remove or update.add or update.delete)


@REPEATABLE
@given(_updates)
def test_an_update_parses_back_from_its_text(update):
    assert parse_update(str(update)) == update
