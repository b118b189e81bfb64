"""Whether applying an update twice is applying it once: update expressions
and legacy AttributeUpdates. The grammar itself is tested in
``test_update_grammar.py``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regionproxy._dynamodb.update_grammar import UpdateExpressionError, parse_update
from regionproxy._dynamodb.updates import attribute_updates_are_idempotent, update_is_idempotent

REPEATABLE = settings(derandomize=True, database=None, max_examples=200)
C = {"#c": "c"}


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        pytest.param("SET a = :v", None, id="set-value"),
        pytest.param("SET a = :a REMOVE b", None, id="set-remove"),
        pytest.param("REMOVE b SET a = :a", None, id="clauses-in-any-order"),
        pytest.param("REMOVE a, b.c, #m.#k", {"#m": "m", "#k": "k"}, id="remove-paths"),
        pytest.param("SET a = if_not_exists(a, :z)", None, id="if-not-exists-of-the-target"),
        pytest.param("SET #a = if_not_exists(a, :z)", {"#a": "a"}, id="if-not-exists-of-the-target-by-placeholder"),
        pytest.param("SET #a = if_not_exists(#a, :z)", None, id="if-not-exists-same-unresolved-placeholder"),
        pytest.param("SET a = if_not_exists(a, if_not_exists(b, :z))", None, id="if-not-exists-nested"),
        pytest.param("SET a = if_not_exists(b, :z)", None, id="if-not-exists-of-a-path-not-written"),
        pytest.param("SET a = b", None, id="copy-of-a-path-not-written"),
        pytest.param("SET m.a = m.b", None, id="copy-between-siblings"),
        pytest.param("SET a = #b, #c = :v", {"#b": "b", "#c": "c"}, id="copy-from-another-attribute"),
        pytest.param("SET a = l[0]", None, id="read-a-list-element"),
        pytest.param("SET m.#k.x = :v", {"#k": "k"}, id="nested-placeholder"),
        pytest.param("SET #a_b = :c_d", {"#a_b": "a"}, id="underscores-in-placeholders"),
        pytest.param("SET #ab = :v REMOVE a.b", {"#ab": "a.b"}, id="a-dotted-name-is-one-attribute"),
        pytest.param("  set a=:v  ", None, id="lower-case-no-spaces"),
        pytest.param("Set a = :v\n\tReMoVe b", None, id="mixed-case-tabs-newlines"),
        pytest.param("SET a . b = x [ 1 ] . c", None, id="spaces-inside-paths"),
    ],
)
def test_idempotent(expression, names):
    assert update_is_idempotent(expression, names) is True


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        # The examples.
        pytest.param("SET #c = #c - :one", C, id="issue-decrement"),
        pytest.param("SET #c = #c-:one", C, id="issue-decrement-no-spaces"),
        pytest.param("SET #c = :ten - #c", C, id="issue-subtract-from-value"),
        pytest.param("SET #c = :ten-#c", C, id="issue-subtract-from-value-no-spaces"),
        pytest.param("SET #p = #cur, #cur = :v", {"#p": "p", "#cur": "cur"}, id="issue-copy-then-overwrite"),
        pytest.param("SET l[9] = :v", None, id="issue-list-index-appends"),
        pytest.param("REMOVE l[0]", None, id="issue-remove-shifts-list"),
        # Arithmetic, list_append, ADD and DELETE.
        pytest.param("SET n = n + :one", None, id="increment"),
        pytest.param("SET n = b + :one", None, id="arithmetic-on-another-attribute"),
        pytest.param("SET a = :x+:y", None, id="arithmetic-of-values"),
        pytest.param("SET l = list_append(l, :x)", None, id="list-append"),
        pytest.param("SET l = list_append(:x, other)", None, id="list-prepend-of-another"),
        pytest.param("SET a = if_not_exists(a, list_append(b, :x))", None, id="list-append-nested"),
        pytest.param("SET n = if_not_exists(n, :zero) + :one", None, id="counter-idiom"),
        pytest.param("ADD n :one", None, id="add"),
        pytest.param("SET a = :v ADD n :one", None, id="set-and-add"),
        pytest.param("DELETE s :x", None, id="delete-from-set"),
        # Reading what the expression writes.
        pytest.param("SET a = a", None, id="copy-onto-itself"),
        pytest.param("SET b = :v, a = b", None, id="copy-of-written-path"),
        pytest.param("SET a = b, #b = :v", {"#b": "b"}, id="placeholder-and-name-are-one-attribute"),
        pytest.param("SET a = #x, b = :v", None, id="unresolved-placeholder-may-be-anything"),
        pytest.param("SET a = #x, b = :v", {"#y": "y"}, id="placeholder-missing-from-names"),
        pytest.param("SET a = b.c REMOVE b", None, id="read-under-a-removed-path"),
        pytest.param("SET a.b = :v, c = a", None, id="read-above-a-written-path"),
        pytest.param("SET a = if_not_exists(b, :v), b = :w", None, id="if-not-exists-of-another-written-path"),
        pytest.param("SET a = if_not_exists(a, b) REMOVE b", None, id="if-not-exists-fallback-reads-written"),
        pytest.param("SET a.b = if_not_exists(a, :v)", None, id="if-not-exists-of-a-prefix-of-the-target"),
        # List indexes anywhere in a written path.
        pytest.param("SET m.l[0].x = :v", None, id="set-under-a-list-index"),
        pytest.param("REMOVE l[0].x", None, id="remove-under-a-list-index"),
        # '-' ends a placeholder, as in DynamoDB (which rejects '#a-b' as a name).
        pytest.param("SET #a-b = :c-d", {"#a-b": "x"}, id="dash-is-minus-not-part-of-a-placeholder"),
        pytest.param("SET a = :c-d", None, id="dash-after-a-value-is-subtraction"),
    ],
)
def test_not_idempotent(expression, names):
    assert update_is_idempotent(expression, names) is False


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "   ",
        "SET",
        "SET a",
        "SET a =",
        "SET a = :v,",
        "SET a = :v SET b = :w",
        "set a = :v SET b = :w",
        "REMOVE",
        "REMOVE a,",
        "ADD a",
        "ADD a b",
        "DELETE a b",
        "UPDATE a = :v",
        "SET a = f(:v)",
        "SET a = IF_NOT_EXISTS(a, :v)",
        "SET a = if_not_exists(:v, :w)",
        "SET a = if_not_exists(a)",
        "SET a = if_not_exists(a, :v, :w)",
        "SET a = list_append(:x)",
        "SET a = if_not_exists a, :v",
        "SET a[x] = :v",
        "SET a[] = :v",
        "SET a[-1] = :v",
        "SET a = :v + :w + :x",
        "SET a[" + "9" * 5000 + "] = :v",
        "SET a = (:v)",
        "SET # = :v",
        "SET a = :",
        "SET a.1 = :v",
        "SET .a = :v",
        "SET a = :v;",
        "SET a = 'x'",
        "SET a = 1",
        "SET \u00e9 = :v",
        "SET set = :v",
        "REMOVE a, remove",
        "SET a = " + "if_not_exists(x, " * 50 + ":v" + ")" * 50,
        "SET a = " + "if_not_exists(x, " * 5000 + ":v" + ")" * 5000,
    ],
)
def test_malformed_is_not_idempotent(expression):
    assert update_is_idempotent(expression) is False
    with pytest.raises(UpdateExpressionError):
        parse_update(expression)


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        pytest.param(None, None, id="none"),
        pytest.param(b"SET a = :v", None, id="bytes"),
        pytest.param("SET #a = :v", ["#a"], id="names-not-a-mapping"),
    ],
)
def test_wrong_types_are_not_idempotent(expression, names):
    assert update_is_idempotent(expression, names) is False


@pytest.mark.parametrize(
    ("updates", "idempotent"),
    [
        pytest.param({"a": {"Action": "PUT", "Value": {"S": "x"}}}, True, id="put"),
        pytest.param({"a": {"Value": {"S": "x"}}}, True, id="put-by-default"),
        pytest.param({"a": {"Action": "DELETE"}}, True, id="delete-attribute"),
        pytest.param({"a": {"Action": "DELETE", "Value": {"SS": ["x"]}}}, False, id="delete-set-elements"),
        pytest.param({"a": {"Action": "ADD", "Value": {"N": "1"}}}, False, id="add"),
        pytest.param({"a": {"Action": "PUT"}, "b": {"Action": "ADD"}}, False, id="one-add-among-puts"),
        pytest.param({"a": {"Action": "UPSERT"}}, False, id="unknown-action"),
        pytest.param({"a": "PUT"}, False, id="malformed"),
        pytest.param(None, False, id="none"),
    ],
)
def test_attribute_updates(updates, idempotent):
    assert attribute_updates_are_idempotent(updates) is idempotent


# -- properties ----------------------------------------------------------------


@REPEATABLE
@given(st.one_of(st.text(alphabet="SETREMOVADLsetrmvadl #:_-+=(),.[]0123456789abxif_notexistslappend\t\n"), st.text()))
def test_judging_never_raises(text):
    assert update_is_idempotent(text, {"#a": "a"}) in (True, False)
