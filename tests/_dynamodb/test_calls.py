"""Call: one DynamoDB call described once. What it is (tables, keys, whether
it may be repeated) is computed where first asked and kept on the value."""

from __future__ import annotations

import pytest

from regionproxy._dynamodb.calls import Call

ADD = {"TableName": "t", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "ADD n :one"}
SET = {"TableName": "t", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "SET v = :v"}


def test_a_call_keeps_what_it_computed_first():
    call = Call("BatchGetItem", {"RequestItems": {"t": {"Keys": [{"pk": {"S": "a"}}]}, "u": {"Keys": []}}})
    assert call.tables is call.tables  # the same list: computed once, not on every visit
    assert call.read_keys is call.read_keys
    assert sorted(call.tables) == ["t", "u"]


def test_what_a_call_computed_is_its_own():
    get_a = Call("GetItem", {"TableName": "a", "Key": {"pk": {"S": "1"}}})
    get_b = Call("GetItem", {"TableName": "b", "Key": {"pk": {"S": "1"}}})
    assert (get_a.tables, get_b.tables) == (["a"], ["b"])


@pytest.mark.parametrize(
    ("operation", "params", "marked", "repeatable"),
    [
        pytest.param("UpdateItem", SET, False, True, id="idempotent-update"),
        pytest.param("UpdateItem", ADD, False, False, id="counter-update"),
        pytest.param("UpdateItem", ADD, True, True, id="counter-update-vouched-for"),
        pytest.param("PutItem", {"TableName": "t", "Item": {}, "ConditionExpression": "x"}, False, False, id="conditional-put"),
        pytest.param("GetItem", {"TableName": "t", "Key": {}}, False, True, id="read"),
    ],
)
def test_a_write_is_repeatable_when_idempotent_or_vouched_for(operation, params, marked, repeatable):
    assert Call(operation, params, marked_idempotent=marked).repeatable is repeatable
