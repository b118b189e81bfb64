"""Shared by the cache's tests: a fake clock, a bounded wait, a wire-format
answer, and ways to compare and inspect copies."""

from __future__ import annotations

import pytest

from regionproxy._cache.store import ReadCache
from regionproxy._config.policies import CachePolicy
from tests.support import FakeClock


@pytest.fixture
def clock():
    """The shared fake clock, from zero: the cache's tests set absolute readings."""
    return FakeClock(now=0.0)


@pytest.fixture
def cache(clock):
    return ReadCache(CachePolicy(maxsize=100, ttl=5.0), clock=clock)


WIRE_ITEM = {
    "pk": {"S": "a"},
    "n": {"N": "1.50"},
    "b": {"B": b"\x00\x01"},
    "ss": {"SS": ["x", "y"]},
    "ns": {"NS": ["1", "2"]},
    "bs": {"BS": [b"x", b"y"]},
    "l": {"L": [{"S": "x"}, {"M": {"deep": {"L": [{"N": "3"}]}}}]},
    "m": {"M": {"k": {"M": {"nested": {"N": "0.1"}}}}},
    "flag": {"BOOL": True},
    "none": {"NULL": True},
}


METADATA = {
    "RequestId": "r1",
    "HTTPStatusCode": 200,
    "HTTPHeaders": {"x-amzn-requestid": "r1", "content-type": "application/x-amz-json-1.0"},
    "RetryAttempts": 0,
}


def typed(value):
    """``value`` with every type spelled out, so ``==`` cannot hide a type change."""
    if isinstance(value, dict):
        return ("dict", {repr(name): typed(part) for name, part in value.items()})
    if isinstance(value, list):
        return ("list", [typed(part) for part in value])
    if isinstance(value, set):
        return ("set", sorted(repr(part) for part in value))
    return (type(value).__name__, repr(value))


def containers(value):
    """Every mutable object in ``value``, depth first."""
    from boto3.dynamodb.types import Binary

    if isinstance(value, dict | list | set | bytearray | Binary):
        yield value
    if isinstance(value, Binary):
        yield from containers(value.value)
    elif isinstance(value, dict):
        for part in value.values():
            yield from containers(part)
    elif isinstance(value, list | tuple | set | frozenset):
        for part in value:
            yield from containers(part)


def compiled_copiers():
    """How many compiled copy functions are alive in this process."""
    import gc
    import types

    gc.collect()
    return sum(
        1
        for thing in gc.get_objects()
        if type(thing) is types.FunctionType and thing.__code__.co_filename == "<regionproxy._cache.copies copier>"
    )
