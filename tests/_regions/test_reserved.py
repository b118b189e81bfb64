"""Reserved keys (:mod:`regionproxy._regions.reserved`): a key of the
table's own types, the types learned from ``DescribeTable`` once, strings
while it is denied with the key names declared, asked again later."""

from __future__ import annotations

import pytest

from regionproxy._regions.reserved import DESCRIBE_AGAIN, KeyTypes, reserved_key
from regionproxy.errors import ConfigError

DESCRIPTION = {
    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "B"}, {"AttributeName": "at", "AttributeType": "N"}],
}


class Session:
    def __init__(self, declared: tuple[str, ...] | None) -> None:
        self.names = declared

    def key_names(self, table):
        return self.names

    def learn_table(self, table, description):
        self.names = tuple(k["AttributeName"] for k in description["KeySchema"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_key_is_of_each_attribute_s_type_and_never_an_app_s():
    key = reserved_key((("s", "S"), ("b", "B"), ("n", "N")), "__mark__#", "eu-west-1")
    assert key["s"] == {"S": "__mark__#eu-west-1"}
    assert key["b"] == {"B": b"__mark__#eu-west-1"}
    assert key["n"]["N"].startswith("-9.") and key["n"]["N"].endswith("1E+125")


def test_types_come_from_describe_table_asked_once():
    calls = []
    keys = KeyTypes(Session(None), "T", "probe_table")
    describe = lambda: calls.append(1) or DESCRIPTION  # noqa: E731
    assert keys.attributes(describe) == (("id", "B"), ("at", "N"))
    assert keys.attributes(describe) == (("id", "B"), ("at", "N"))
    assert len(calls) == 1


def test_describe_denied_with_names_declared_is_strings_then_asked_again_later():
    clock, calls = Clock(), []
    keys = KeyTypes(Session(("id", "at")), "T", "probe_table", clock=clock)

    def denied():
        calls.append(clock.now)
        raise PermissionError("AccessDeniedException")

    assert keys.attributes(denied) == (("id", "S"), ("at", "S"))
    clock.now += DESCRIBE_AGAIN / 2
    assert keys.attributes(denied) == (("id", "S"), ("at", "S"))
    assert len(calls) == 1  # not asked again before DESCRIBE_AGAIN
    clock.now += DESCRIBE_AGAIN
    assert keys.attributes(lambda: DESCRIPTION) == (("id", "B"), ("at", "N"))


def test_describe_failing_with_no_names_known_raises_its_error():
    keys = KeyTypes(Session(None), "T", "probe_table")
    with pytest.raises(PermissionError):
        keys.attributes(lambda: (_ for _ in ()).throw(PermissionError("denied")))


def test_a_description_without_a_key_schema_is_a_config_error():
    class Nameless(Session):
        def learn_table(self, table, description):
            pass

    with pytest.raises(ConfigError):
        KeyTypes(Nameless(None), "T", "probe_table").attributes(lambda: {"AttributeDefinitions": []})
