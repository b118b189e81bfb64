"""Copies of cache hits: equal to the original, sharing nothing mutable;
copiers shared by shape and compiled once hot."""

from __future__ import annotations

import pytest
from boto3.dynamodb.types import Binary

from tests._cache.conftest import METADATA, WIRE_ITEM, compiled_copiers, containers, typed


def _copy_cases():
    from decimal import Decimal

    from boto3.dynamodb.types import Binary

    python_item = {"s": "x", "n": Decimal("1.5"), "ss": {"a"}, "b": Binary(b"1"), "l": [1, [2], {"m": {3}}], "none": None}
    return [
        pytest.param({"Item": python_item, "ResponseMetadata": METADATA}, id="python-values"),
        pytest.param({"Item": WIRE_ITEM, "ResponseMetadata": METADATA}, id="wire-format"),
        pytest.param({f"a{n}": {"SS": [str(n)]} for n in range(40)}, id="many-keys-of-containers"),
        pytest.param({f"a{n}": {"S": str(n)} if n % 2 else "x" for n in range(40)}, id="many-keys-some-shared"),
        pytest.param({f"a{n}": [str(n)] for n in range(40)}, id="many-keys-of-containers-of-immutables"),
        pytest.param([{"a": [1]}, "x", {"b": {"c": [2]}}, [[3]]], id="list-some-shared"),
        pytest.param([[1], {2}, {"x": 3}], id="list-of-containers"),
        pytest.param({1: [1], (2, 3): {"x": [4]}, "s": ["y"]}, id="keys-that-are-not-strings"),
        pytest.param({"odd": bytearray(b"xy"), "deep": [bytearray(b"z")]}, id="odd-values-deep-copied"),
        pytest.param({"bs": {Binary(b"x"), Binary(b"y"), b"z"}, "l": [{Binary(b"w")}]}, id="binary-in-sets"),
        pytest.param({"b": Binary(bytearray(b"x")), "l": [Binary(bytearray(b"y"))]}, id="binary-holding-a-bytearray"),
        pytest.param({"f": frozenset({Binary(b"x")}), "t": (Binary(b"y"),)}, id="immutable-containers-of-binary"),
    ]


@pytest.mark.parametrize("value", _copy_cases())
def test_copies_equal_the_original_with_the_same_types_and_share_nothing_mutable(value):
    import copy

    from regionproxy._cache.copies import HOT, compiled_copier, copier, copy_by, copy_plan

    before = copy.deepcopy(value)
    plan = copy_plan(value)
    copy_ = copier(plan)
    copies = [copy_(value) for _ in range(HOT + 1)]  # interpreted, then compiled once hot
    for copied in (copies[0], copies[-1], compiled_copier(plan)(value), copy_by(plan, value)):
        assert typed(copied) == typed(value)
        originals = {id(part) for part in containers(value)}
        assert originals and not originals & {id(part) for part in containers(copied)}
    assert typed(value) == typed(before), "copying changed nothing"


def test_a_hot_shape_is_compiled_once_and_shared_by_its_entries():
    from regionproxy._cache import copies

    def item(key):
        return {"Item": {"pk": {"S": key}, "hot-shape": {"SS": ["a", "b"]}}, "ResponseMetadata": METADATA}

    before = compiled_copiers()
    copiers = [copies.copier(copies.copy_plan(item(key))) for key in ("a", "b", "c")]
    assert copiers[0] is copiers[1] is copiers[2], "entries of one shape share one copier"
    for _ in range(copies.HOT):
        for copy_ in copiers:
            assert copy_(item("z")) == item("z")
    assert compiled_copiers() - before == 1


def test_pages_of_one_item_shape_share_their_compiled_copiers_whatever_their_length():
    """A compiled copier per page would be one per length and per mix of
    shapes: tens of kilobytes each, kept for good, compiled on every miss."""
    from regionproxy._cache import copies

    def page(length):
        items = [{"pk": "p", "sk": str(n), "tags": {"a"}, "l": ["x", {"m": [1]}]} for n in range(length)]
        return {"Items": items, "Count": length, "ResponseMetadata": {"HTTPHeaders": {"h": "v"}}}

    copy_pages = []
    before = compiled_copiers()
    for length in range(40, 100):
        value = page(length)
        copy_page = copies.copier(copies.copy_plan(value))
        copy_pages.append(copy_page)  # alive, as a cache entry keeps it
        for _ in range(40):
            copied = copy_page(value)
        assert typed(copied) == typed(value)
        assert not {id(part) for part in containers(value)} & {id(part) for part in containers(copied)}
    assert compiled_copiers() - before <= 5


# -- packed answers: what an entry holds --------------------------------------------

_EXCHANGE = {"date": "Tue, 25 Nov 2026 09:43:00 GMT", "content-length": "350", "x-amz-crc32": "1234567890"}


def _packing_cases():
    from decimal import Decimal

    numbers = {"n": Decimal("1.50"), "zero": Decimal("-0"), "big": Decimal("1E+40"), "long": Decimal("1." + "1" * 40)}
    python_item = {
        "s": "x",
        **numbers,
        "ss": {"a", "b"},
        "ns": {Decimal("1"), Decimal("2.0")},
        "b": Binary(b"\x00"),
        "bs": {Binary(b"x"), Binary(b"y")},
        "l": [Decimal(1), [Binary(b"z")], {"m": {Decimal(3)}}],
        "m": {"deep": {"er": [Decimal("0.1")]}},
        "none": None,
        "flag": True,
        "empty": set(),
    }
    return [
        pytest.param({"Item": python_item, "ResponseMetadata": METADATA}, id="a-get-item-in-python-values"),
        pytest.param({"Item": WIRE_ITEM, "ResponseMetadata": METADATA}, id="a-get-item-in-wire-format"),
        pytest.param({"ResponseMetadata": METADATA}, id="no-such-item"),
        pytest.param(
            {"Items": [WIRE_ITEM, WIRE_ITEM], "Count": 2, "ScannedCount": 2, "LastEvaluatedKey": {"pk": {"S": "a"}},
             "ResponseMetadata": METADATA}, id="a-query-page-in-wire-format"),  # fmt: skip
        pytest.param({"Items": [python_item] * 3, "Count": 3, "ResponseMetadata": METADATA}, id="a-query-page-in-python-values"),
        pytest.param({"Item": {"pk": {"S": "a"}}, "ResponseMetadata": {**METADATA, "HTTPHeaders": 5}}, id="odd-metadata-kept-whole"),
        pytest.param({"v": [1, 2.5, b"x", None, True, (1, "t"), frozenset({"f"})], 3: {"x"}}, id="plain-values"),
    ]


@pytest.mark.parametrize("value", _packing_cases())
def test_packed_answers_unpack_equal_with_the_same_types_sharing_nothing_mutable(value):
    from regionproxy._cache.copies import HOT, keeper

    held, copy_ = keeper(value)
    assert type(held) is bytes, "held packed"
    copies = [copy_(held) for _ in range(HOT + 1)]  # interpreted, then compiled once hot
    for copied in (copies[0], copies[-1]):
        assert typed(copied) == typed(value)
        mine = {id(part) for part in containers(copied)}
        assert not {id(part) for part in containers(value)} & mine
        assert not {id(part) for part in containers(copies[1])} & mine, "nor with another hit"


def _nested(depth):
    value = ["bottom"]
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"Item": {"s": bytearray(b"x")}}, id="a-bytearray"),
        pytest.param({"Item": {"s": type("Text", (str,), {})("x")}}, id="a-str-subclass"),
        pytest.param({"Item": {"b": {Binary(b"x"), "y"}}}, id="a-set-of-mixed-types"),
        pytest.param({"Items": [{"b": Binary(bytearray(b"x"))}]}, id="a-binary-holding-a-bytearray"),
        pytest.param({(1, 2): "x"}, id="a-key-that-is-not-a-string-or-an-int"),
        pytest.param({"Item": {"l": _nested(80)}}, id="nested-deeper-than-dynamodb-allows"),
        pytest.param(object(), id="an-object"),
    ],
)
def test_answers_marshal_would_change_are_held_as_they_are_and_copied(value):
    from regionproxy._cache.copies import keeper

    held, copy_ = keeper(value)
    assert held is value
    copied = copy_(held)
    if type(value) is not object:
        assert typed(copied) == typed(value)
        assert not {id(part) for part in containers(value)} & {id(part) for part in containers(copied)}


def test_a_hits_metadata_is_the_loading_calls_in_boto3s_order():
    from regionproxy._cache.copies import keeper

    loaded = {**METADATA, "HTTPHeaders": {**METADATA["HTTPHeaders"], **_EXCHANGE}, "RetryAttempts": 1}
    held, copy_ = keeper({"Item": WIRE_ITEM, "ResponseMetadata": loaded})
    metadata = copy_(held)["ResponseMetadata"]
    assert typed(metadata) == typed(loaded)
    assert list(metadata) == list(loaded) and list(metadata["HTTPHeaders"]) == list(loaded["HTTPHeaders"])


def test_answers_of_one_shape_and_metadata_share_one_unpacker():
    from regionproxy._cache.copies import keeper

    def answer(key, request_id):
        headers = {**METADATA["HTTPHeaders"], "x-amzn-requestid": request_id, **_EXCHANGE}
        metadata = {**METADATA, "RequestId": request_id, "HTTPHeaders": headers}
        return {"Item": {"pk": {"S": key}, "v": {"N": "1"}}, "ResponseMetadata": metadata}

    kept = [keeper(answer(key, f"r-{key}")) for key in ("a", "b")]
    assert kept[0][1] is kept[1][1]
    assert [copy_(held)["ResponseMetadata"]["RequestId"] for held, copy_ in kept] == ["r-a", "r-b"]
    assert [copy_(held)["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"] for held, copy_ in kept] == ["r-a", "r-b"]
