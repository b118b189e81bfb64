"""Router ordering and sticky read-your-writes."""

from __future__ import annotations

from regionproxy.calls import Call
from regionproxy.operations import CONTROL, READ, WRITE, key_fingerprint
from regionproxy.routing import Router, StickyWrites

REGIONS = ("eu-west-3", "us-east-1", "ap-south-1")


def test_reads_prefer_regions_in_order():
    assert Router(REGIONS).plan(READ) == REGIONS


def test_control_plane_goes_to_the_local_region_only():
    assert Router(REGIONS).plan(CONTROL) == ("eu-west-3",)


def test_local_write_mode_writes_like_reads():
    assert Router(REGIONS, "local").plan(WRITE) == REGIONS


def test_primary_write_mode_sends_writes_to_the_primary_only():
    assert Router(REGIONS, "primary", "us-east-1").plan(WRITE) == ("us-east-1",)


def test_primary_write_mode_with_failover_tries_the_others_after():
    assert Router(REGIONS, "primary", "us-east-1", True).plan(WRITE) == ("us-east-1", "eu-west-3", "ap-south-1")


def test_sticky_region_is_tried_first():
    assert Router(REGIONS).plan(READ, sticky="ap-south-1") == ("ap-south-1", "eu-west-3", "us-east-1")


def test_router_repr_is_readable():
    assert repr(Router(("a", "b"))) == "Router(regions=('a', 'b'), write_mode='local', primary='', write_failover=False)"


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def _get(key, table="t"):
    return Call("GetItem", {"TableName": table, "Key": key})


def test_sticky_write_is_read_from_its_region_until_the_window_ends():
    clock = Clock()
    sticky = StickyWrites(5.0, clock=clock)
    key = {"pk": {"S": "a"}}
    sticky.remember("us-east-1", ["t"], [("t", key_fingerprint(key))])
    assert sticky.region_for(_get(key)) == "us-east-1"
    assert sticky.region_for(_get({"pk": {"S": "b"}})) is None
    assert sticky.region_for(Call("Query", {"TableName": "t"})) == "us-east-1"
    assert sticky.region_for(_get(key, table="other")) is None
    clock.now = 5.1
    assert sticky.region_for(_get(key)) is None
    assert sticky.region_for(Call("Query", {"TableName": "t"})) is None


def test_sticky_keys_match_numbers_by_value():
    sticky = StickyWrites(5.0, clock=Clock())
    sticky.remember("us-east-1", ["t"], [("t", key_fingerprint({"pk": {"N": "1"}}))])
    assert sticky.region_for(_get({"pk": {"N": "1.0"}})) == "us-east-1"


def test_write_with_unknown_keys_makes_every_read_of_its_table_sticky():
    sticky = StickyWrites(5.0, clock=Clock())
    sticky.remember("us-east-1", ["t"], None)
    assert sticky.region_for(_get({"pk": {"S": "any"}})) == "us-east-1"
    assert sticky.region_for(_get({"pk": {"S": "any"}}, table="other")) is None


def test_sticky_window_zero_remembers_nothing():
    sticky = StickyWrites(0)
    key = {"pk": {"S": "a"}}
    sticky.remember("us-east-1", ["t"], [("t", key_fingerprint(key))])
    assert sticky.region_for(_get(key)) is None
