"""The update classifier against a reference: every update expression it calls
idempotent, moto applies to a fresh item once, then again, and the item must
come out of the second application as the first left it.

moto is a stand-in, not DynamoDB (../shared/MOTO.md): it rejects some valid
expressions and answers some invalid ones with a 500. An update moto refuses
the first time proves nothing: hypothesis rejects it, and it is not counted.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections import Counter

import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from regionproxy._dynamodb.update_expressions import attribute_updates_are_idempotent, update_is_idempotent

REGION = "eu-west-3"
# About 120 of these are judged idempotent and checked, in ~10 s on a busy
# machine; the rest are judged not and cost no call.
EXAMPLES = 120
ITEM = {
    "n": {"N": "3"},
    "s": {"S": "text"},
    "l": {"L": [{"N": "1"}, {"N": "2"}, {"N": "3"}]},
    "m": {"M": {"a": {"N": "1"}, "b": {"M": {"c": {"S": "deep"}}}, "l": {"L": [{"S": "p"}]}}},
    "ns": {"NS": ["1", "2"]},
}
VALUES = {
    ":num": {"N": "7"},
    ":one_1": {"N": "1"},
    ":str": {"S": "v"},
    ":lst": {"L": [{"N": "9"}]},
    ":set": {"NS": ["2", "5"]},
    ":map": {"M": {"c": {"S": "w"}}},
}
Path = tuple[str | int, ...]
# Paths into ITEM (z is absent); ints are list indexes, l[9] is past the end.
PATHS = [
    ("n",), ("s",), ("l",), ("m",), ("ns",), ("z",),
    ("m", "a"), ("m", "b"), ("m", "b", "c"), ("m", "z"), ("m", "l"), ("m", "b", "z"),
    ("l", 0), ("l", 2), ("l", 9), ("m", "l", 0),
]  # fmt: skip
NUMBERS = [("n",), ("m", "a"), ("l", 0), ":num", ":one_1"]
# What ADD and DELETE accept, by target; other targets get SET or REMOVE.
ADDS = {("n",): [":one_1"], ("m", "a"): [":one_1"], ("ns",): [":set"], ("z",): [":one_1", ":set"]}
DELETES = {("ns",): [":set"], ("z",): [":set"]}
LISTS = [("l",), ("m", "l"), ":lst"]
# The examples, and one of each kind of trap a classifier can miss:
# every run of the property meets them, whatever it generates.
TRAPS = [
    ("SET #c = #c - :one_1", {"#c": "n"}),
    ("SET #c = #c-:one_1", {"#c": "n"}),
    ("SET #c = :num-#c", {"#c": "n"}),
    ("SET n = :num-n", {}),
    ("SET #p = #cur, #cur = :str", {"#p": "z", "#cur": "s"}),
    ("SET l[9] = :str", {}),
    ("REMOVE l[0]", {}),
    ("SET z = if_not_exists(s, :num), s = :str", {}),
    ("SET s = n, #p_n = :num", {"#p_n": "n"}),
    # Read under a written path. (Not above one: moto copies a map by
    # reference, so after 'SET z = m, m.a = :str' z has the new m.a at once.)
    ("SET z = m.b.c, m.b = :map", {}),
]
KEY_SCHEMA = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
}
_deserialize = TypeDeserializer().deserialize


class _Text:
    """Renders one drawn update as text, collecting the names it uses."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.names: dict[str, str] = {}

    def gap(self) -> str:
        """Around '=', '+', '-' and ',': '#c-:one' must read as '#c - :one'."""
        return self.draw(st.sampled_from(["", " "]))

    def path(self, path: Path) -> str:
        out = ""
        for element in path:
            if isinstance(element, int):
                out += f"[{element}]"
                continue
            # The same attribute may appear bare and under several placeholders.
            spelling = self.draw(st.sampled_from([element, f"#{element}", f"#p_{element}", f"#{element}_2"]))
            if spelling.startswith("#"):
                self.names[spelling] = element
            out += ("." if out else "") + spelling
        return out

    def operand(self, operand: Path | str) -> str:
        return operand if isinstance(operand, str) else self.path(operand)


def _right_hand_side(draw: st.DrawFn, text: _Text, target: Path, targets: list[Path]) -> str:
    # Half the paths read are ones this update writes: the trap to judge.
    reads = st.one_of(st.sampled_from(targets), st.sampled_from(PATHS))
    leaves = st.one_of(reads, st.sampled_from(sorted(VALUES)))
    # Weighted towards what the classifier may trust: those are the checked ones.
    kind = draw(st.sampled_from(["value"] * 3 + ["path", "own-if-not-exists"] * 2 + ["if-not-exists", "arithmetic", "append"]))
    if kind == "value":
        return text.operand(draw(st.sampled_from(sorted(VALUES))))
    if kind == "path":
        return text.operand(draw(reads))
    if kind in ("own-if-not-exists", "if-not-exists"):
        checked = target if kind == "own-if-not-exists" else draw(reads)
        return f"if_not_exists({text.path(checked)},{text.gap()}{text.operand(draw(leaves))})"
    if kind == "arithmetic":
        numbers = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(targets))
        left, operator, right = draw(numbers), draw(st.sampled_from("+-")), draw(numbers)
        return f"{text.operand(left)}{text.gap()}{operator}{text.gap()}{text.operand(right)}"
    lists = st.one_of(st.sampled_from(LISTS), st.sampled_from(targets))
    return f"list_append({text.operand(draw(lists))},{text.gap()}{text.operand(draw(lists))})"


@st.composite
def updates(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """(expression, ExpressionAttributeNames) over ITEM, PATHS and VALUES."""
    text = _Text(draw)
    targets = draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3, unique_by=lambda path: path[0]))
    actions: dict[str, list[str]] = {}
    for target in targets:
        clause = draw(st.sampled_from(["SET"] * 3 + ["REMOVE"] + ["ADD"] * (target in ADDS) + ["DELETE"] * (target in DELETES)))
        if clause == "SET":
            action = f"{text.path(target)}{text.gap()}={text.gap()}{_right_hand_side(draw, text, target, targets)}"
        elif clause == "REMOVE":
            action = text.path(target)
        else:
            value = draw(st.sampled_from((ADDS if clause == "ADD" else DELETES)[target]))
            action = f"{text.path(target)} {text.operand(value)}"
        actions.setdefault(clause, []).append(action)
    clauses = [
        f"{draw(st.sampled_from([clause, clause.lower(), clause.title()]))} {f',{text.gap()}'.join(found)}"
        for clause, found in actions.items()
    ]
    separator = draw(st.sampled_from([" ", "\n", "  "]))
    return separator.join(draw(st.permutations(clauses))), text.names


class _FreshItems:
    """Copies of ITEM under distinct keys, written 25 to a call (BatchWriteItem's
    limit): one PutItem per example would be a fifth of the test's calls."""

    def __init__(self, client, table: str) -> None:
        self.client, self.table = client, table
        self.ready: list[dict] = []
        self.numbers = itertools.count()

    def take(self) -> dict:
        if not self.ready:
            self.ready = [{"pk": {"S": f"item-{next(self.numbers)}"}} for _ in range(25)]
            requests = [{"PutRequest": {"Item": {**key, **ITEM}}} for key in self.ready]
            assert not self.client.batch_write_item(RequestItems={self.table: requests}).get("UnprocessedItems")
        return self.ready.pop()


def _item(client, table: str, key: dict) -> dict:
    item = client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    return {name: _deserialize(value) for name, value in item.items()}  # sets compare unordered


def _apply(client, table: str, key: dict, **update) -> dict | None:
    """The item after one application, or None if moto refused it."""
    try:
        client.update_item(TableName=table, Key=key, **update)
    except ClientError:
        return None
    return _item(client, table, key)


@pytest.fixture
def table(local_regions):
    name = f"Updates-{uuid.uuid4().hex[:8]}"
    local_regions.create_table(TableName=name, **KEY_SCHEMA)
    return local_regions.client(REGION, direct=True), name


def _request(expression: str, names: dict[str, str]) -> dict:
    request: dict = {"UpdateExpression": expression}
    if names:
        request["ExpressionAttributeNames"] = names
    if values := {value: VALUES[value] for value in re.findall(r":\w+", expression)}:
        request["ExpressionAttributeValues"] = values
    return request


@pytest.mark.parametrize("local_regions", [[REGION]], indirect=True)
def test_every_update_judged_idempotent_leaves_the_item_alone_when_repeated(table, capsys):
    client, name = table
    fresh = _FreshItems(client, name)
    tally: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(updates())
    def repeat(update: tuple[str, dict[str, str]]) -> None:
        expression, names = update
        if not update_is_idempotent(expression, names):
            # Only what the classifier trusts needs the reference; the rest
            # would spend the test's time on moto calls that assert nothing.
            tally["judged not idempotent (not applied)"] += 1
            return
        key, request = fresh.take(), _request(expression, names)
        once = _apply(client, name, key, **request)
        if once is None:
            tally["judged idempotent, refused by moto"] += 1
            reject()
        tally["judged idempotent, checked"] += 1
        twice = _apply(client, name, key, **request)
        assert twice == once, f"{expression!r} {names}: once {once}, twice {twice}"

    for trap in TRAPS:
        repeat = example(trap)(repeat)
    repeat()
    with capsys.disabled():
        print(f"\nupdate expressions against moto: {dict(tally)}")
    # Not a vacuous property: enough of the examples must be ones the classifier trusts.
    assert tally["judged idempotent, checked"] >= EXAMPLES // 4


@pytest.mark.parametrize("local_regions", [[REGION]], indirect=True)
def test_the_traps_change_the_item_when_repeated_and_are_judged_so(table):
    client, name = table
    fresh = _FreshItems(client, name)
    for expression, names in TRAPS:
        key, request = fresh.take(), _request(expression, names)
        once = _apply(client, name, key, **request)
        assert once is not None and _apply(client, name, key, **request) != once, expression
        assert update_is_idempotent(expression, names) is False, expression


@pytest.mark.parametrize("local_regions", [[REGION]], indirect=True)
def test_legacy_attribute_updates_judged_idempotent_leave_the_item_alone_when_repeated(table):
    client, name = table
    fresh = _FreshItems(client, name)
    trusted = [
        {"s": {"Action": "PUT", "Value": {"S": "new"}}, "m": {"Value": {"M": {}}}},
        {"s": {"Action": "DELETE"}, "z": {"Action": "DELETE"}},
    ]
    for updates_ in trusted:
        key = fresh.take()
        once = _apply(client, name, key, AttributeUpdates=updates_)
        assert attribute_updates_are_idempotent(updates_)
        assert once is not None and _apply(client, name, key, AttributeUpdates=updates_) == once, updates_
