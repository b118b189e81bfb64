"""Item keys: one fingerprint, exact, for the cache and read-your-writes."""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from types import MappingProxyType

import pytest


def test_values_key_fingerprint_matches_the_wire_keys():
    from decimal import Decimal

    from boto3.dynamodb.types import Binary

    from regionproxy._dynamodb.keys import key_fingerprint, values_key_fingerprint

    assert values_key_fingerprint({"pk": "a", "n": Decimal("10")}) == key_fingerprint({"n": {"N": "1E+1"}, "pk": {"S": "a"}})
    assert values_key_fingerprint({"pk": 0, "b": Binary(b"x")}) == key_fingerprint({"pk": {"N": "0.00"}, "b": {"B": b"x"}})
    assert values_key_fingerprint({"pk": 1.5}) is None, "floats: boto3 refuses them, so the uncached path must run"


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        pytest.param({"n": {"N": "1"}}, {"n": {"N": "1.00"}}, True, id="numbers-by-value"),
        pytest.param({"n": {"N": "1234567890123456789012345678901"}}, {"n": {"N": "1234567890123456789012345678902"}}, False,
                     id="numbers-differing-past-28-digits"),
        pytest.param({"b": {"B": b"a"}}, {"b": {"B": "a"}}, True, id="binary-as-text-is-its-utf8-bytes"),
        pytest.param({"b": {"B": b"a"}}, {"b": {"B": bytearray(b"a")}}, True, id="bytes-or-bytearray"),
        pytest.param({"s": {"S": "1"}}, {"s": {"N": "1"}}, False, id="string-or-number"),
    ],
)  # fmt: skip
def test_item_key_fingerprints_name_the_same_item_as_dynamodb_does(one, other, same):
    from regionproxy._dynamodb.keys import key_fingerprint

    assert (key_fingerprint(one) == key_fingerprint(other)) is same
    assert key_fingerprint(one) == key_fingerprint(OrderedDict(one)), "the fast path names it as the general one does"


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(MappingProxyType({"pk": {"S": "a"}}), id="a-mapping-not-a-dict"),
        pytest.param({1: {"S": "a"}}, id="a-name-not-a-string"),
        pytest.param({"pk": {"N": "1_000"}}, id="a-number-only-python-reads"),
        pytest.param({"pk": {"N": "Infinity"}}, id="not-a-finite-number"),
        pytest.param({"pk": {"S": ["a"]}}, id="a-list-for-a-string"),
        pytest.param({"pk": {"B": memoryview(b"a")}}, id="a-memoryview"),
        pytest.param({}, id="empty"),
    ],
)
def test_keys_botocore_or_dynamodb_refuse_have_no_fingerprint(key):
    from regionproxy._cache.keys import get_item_cache_key
    from regionproxy._dynamodb.keys import key_fingerprint

    assert key_fingerprint(key) is None
    assert get_item_cache_key({"TableName": "t", "Key": key}) is None, "the cache does not answer it"


def test_python_value_keys_past_28_digits_are_different_items():
    from regionproxy._dynamodb.keys import key_fingerprint, values_key_fingerprint

    big = Decimal("1234567890123456789012345678901")
    assert values_key_fingerprint({"n": big}) != values_key_fingerprint({"n": big + 1})
    assert values_key_fingerprint({"n": big}) == key_fingerprint({"n": {"N": str(big)}})


# -- one fingerprint for both of its users -----------------------------------------

_SAME_ITEM_KEYS = [
    pytest.param({"n": {"N": "1234567890123456789012345678901"}}, id="a-number-past-28-digits"),
    pytest.param({"n": {"N": "1.0"}}, id="a-number-with-a-trailing-zero"),
    pytest.param({"b": {"B": "a"}}, id="binary-as-text"),
    pytest.param({"pk": {"S": "a"}, "sk": {"N": "12345678901234567890123456789.5"}}, id="a-string-and-a-long-number"),
]


@pytest.mark.parametrize("key", _SAME_ITEM_KEYS)
def test_read_your_writes_and_the_cache_name_an_item_by_one_fingerprint(key):
    from regionproxy._cache.keys import get_item_cache_key
    from regionproxy._dynamodb.calls import Call
    from regionproxy._dynamodb.keys import key_fingerprint

    params = {"TableName": "t", "Key": key}
    assert Call("GetItem", params).read_keys == [("t", key_fingerprint(key))]
    assert get_item_cache_key(params) == ("t", key_fingerprint(key))


def _sticky():
    from regionproxy._routing.router import StickyWrites

    return StickyWrites(60, home="eu-west-3", clock=lambda: 0.0)


def _get(key):
    from regionproxy._dynamodb.calls import Call

    return Call("GetItem", {"TableName": "t", "Key": key})


def test_a_write_at_home_of_a_key_differing_past_28_digits_leaves_the_failed_over_write_followed():
    """A 28-digit fingerprint names both keys one item: the second write
    would end what the first made sticky, and the first item's next read
    would go to a region that may not have it yet."""
    from regionproxy._dynamodb.keys import key_fingerprint

    first, second = {"n": {"N": "1234567890123456789012345678901"}}, {"n": {"N": "1234567890123456789012345678902"}}
    sticky = _sticky()
    sticky.remember("us-east-1", ["t"], [("t", key_fingerprint(first))])  # failed over
    sticky.remember("eu-west-3", ["t"], [("t", key_fingerprint(second))])  # at home
    assert sticky.region_for(_get(first)) == "us-east-1"
    assert sticky.region_for(_get(second)) is None


def test_a_failed_over_write_of_a_key_no_fingerprint_names_makes_reads_of_its_table_follow_it():
    from regionproxy._dynamodb.keys import key_fingerprint

    unnamed = {"pk": {"N": "1_000"}}  # Python reads it as 1000; DynamoDB does not
    assert key_fingerprint(unnamed) is None
    sticky = _sticky()
    sticky.remember("us-east-1", ["t"], [("t", key_fingerprint({"pk": {"S": "a"}})), ("t", key_fingerprint(unnamed))])
    assert sticky.region_for(_get({"pk": {"N": "1000"}})) == "us-east-1"
    assert sticky.region_for(_get({"pk": {"S": "b"}})) == "us-east-1", "any item of the table"
    assert sticky.seen_by(_get({"pk": {"S": "b"}})).regions == {"us-east-1"}


def test_an_item_read_of_a_key_no_fingerprint_names_follows_its_tables_failed_over_writes():
    from regionproxy._dynamodb.keys import key_fingerprint

    sticky = _sticky()
    sticky.remember("us-east-1", ["t"], [("t", key_fingerprint({"pk": {"N": "1000"}}))])
    read = _get({"pk": {"N": "1_000"}})
    assert read.read_keys is None
    assert sticky.region_for(read) == "us-east-1"
