"""Router ordering and sticky read-your-writes."""

from __future__ import annotations

from regionproxy._dynamodb.calls import Call
from regionproxy._dynamodb.keys import key_fingerprint
from regionproxy._dynamodb.operations import CONTROL, READ, WRITE
from regionproxy._routing.router import Router, StickyWrites
from tests.support import FakeClock

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


def _get(key, table="t"):
    return Call("GetItem", {"TableName": table, "Key": key})


def test_sticky_write_is_read_from_its_region_until_the_window_ends():
    clock = FakeClock(now=0.0)
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
    sticky = StickyWrites(5.0, clock=FakeClock(now=0.0))
    sticky.remember("us-east-1", ["t"], [("t", key_fingerprint({"pk": {"N": "1"}}))])
    assert sticky.region_for(_get({"pk": {"N": "1.0"}})) == "us-east-1"


def test_write_with_unknown_keys_makes_every_read_of_its_table_sticky():
    sticky = StickyWrites(5.0, clock=FakeClock(now=0.0))
    sticky.remember("us-east-1", ["t"], None)
    assert sticky.region_for(_get({"pk": {"S": "any"}})) == "us-east-1"
    assert sticky.region_for(_get({"pk": {"S": "any"}}, table="other")) is None


def test_sticky_window_zero_remembers_nothing():
    sticky = StickyWrites(0)
    key = {"pk": {"S": "a"}}
    sticky.remember("us-east-1", ["t"], [("t", key_fingerprint(key))])
    assert sticky.region_for(_get(key)) is None


HOME, AWAY, THIRD = REGIONS


def _key(pk, table="t"):
    return (table, key_fingerprint({"pk": {"S": pk}}))


def _sticky(**kwargs):
    return StickyWrites(5.0, home=HOME, clock=FakeClock(now=0.0), **kwargs)


def test_a_later_write_of_the_key_at_home_ends_its_sticky_entry():
    sticky = _sticky()
    sticky.remember(AWAY, ["t"], [_key("a")])  # failed over
    sticky.remember(HOME, ["t"], [_key("a")])  # the next write of it landed at home
    assert sticky.region_for(_get({"pk": {"S": "a"}})) is None
    assert sticky.region_for(Call("Query", {"TableName": "t"})) is None


def test_a_later_write_of_the_key_that_fails_over_elsewhere_moves_its_sticky_entry():
    sticky = _sticky()
    sticky.remember(AWAY, ["t"], [_key("a")])
    sticky.remember(THIRD, ["t"], [_key("a")])
    assert sticky.region_for(_get({"pk": {"S": "a"}})) == THIRD


def test_a_write_of_another_key_at_home_leaves_the_keys_and_the_tables_entries():
    sticky = _sticky()
    sticky.remember(AWAY, ["t"], [_key("a")])
    sticky.remember(HOME, ["t"], [_key("b")])
    assert sticky.region_for(_get({"pk": {"S": "a"}})) == AWAY
    assert sticky.region_for(_get({"pk": {"S": "b"}})) is None
    assert sticky.region_for(Call("Query", {"TableName": "t"})) == AWAY  # "a" is there only


def test_a_query_follows_the_latest_failed_over_write_still_current_and_ends_with_the_last_of_them():
    sticky = StickyWrites(5.0, home=HOME, clock=FakeClock(now=0.0))
    sticky.remember(AWAY, ["t"], [_key("a")])
    sticky.remember(THIRD, ["t"], [_key("b")])
    query = Call("Query", {"TableName": "t"})
    assert sticky.region_for(query) == THIRD
    sticky.remember(HOME, ["t"], [_key("b")])  # "b" written again, at home
    assert sticky.region_for(query) == AWAY  # "a" still is where it was written
    sticky.remember(HOME, ["t"], [_key("a")])
    assert sticky.region_for(query) is None


def test_an_answer_may_be_stored_only_from_the_region_of_every_write_the_read_sees():
    sticky = _sticky()
    sticky.remember(HOME, ["t"], [_key("a")])
    seen = sticky.seen_by(_get({"pk": {"S": "a"}}))
    assert (seen.follow, seen.may_store(HOME), seen.may_store(AWAY)) == (None, True, False)
    assert sticky.seen_by(_get({"pk": {"S": "other"}})).may_store(AWAY)  # no write of it
    sticky.remember(AWAY, ["t"], [_key("b")])
    query = sticky.seen_by(Call("Query", {"TableName": "t"}))
    assert (query.follow, query.may_store(HOME), query.may_store(AWAY)) == (AWAY, False, False)


def test_after_the_window_every_answer_may_be_stored_again():
    sticky = _sticky()
    sticky.remember(HOME, ["t"], [_key("a")])
    sticky._clock.now = 5.1
    assert sticky.seen_by(_get({"pk": {"S": "a"}})).may_store(AWAY)


def test_a_write_with_unknown_keys_is_seen_by_every_item_read_of_its_table_until_a_later_write_of_the_item():
    sticky = _sticky()
    sticky.remember(AWAY, ["t"], None)
    assert sticky.region_for(_get({"pk": {"S": "any"}})) == AWAY
    sticky.remember(HOME, ["t"], [_key("a")])
    seen = sticky.seen_by(_get({"pk": {"S": "a"}}))
    assert seen.follow is None  # its latest write is at home
    assert not seen.may_store(HOME)  # but the earlier one may have changed it too, elsewhere
    assert sticky.region_for(_get({"pk": {"S": "b"}})) == AWAY


def test_a_write_whose_tables_are_unknown_is_seen_by_every_read():
    sticky = _sticky()
    sticky.remember(AWAY, [], None)
    assert sticky.region_for(_get({"pk": {"S": "a"}}, table="other")) == AWAY
    assert sticky.region_for(Call("Scan", {"TableName": "other"})) == AWAY


def test_a_partiql_select_follows_its_tables_writes():
    sticky = _sticky()
    sticky.remember(AWAY, ["t"], [_key("a")])
    assert sticky.region_for(Call("ExecuteStatement", {"Statement": "SELECT * FROM \"t\" WHERE pk = 'b'"})) == AWAY
    assert sticky.region_for(Call("ExecuteStatement", {"Statement": 'SELECT * FROM "other"'})) is None


def test_batch_and_transaction_reads_follow_the_writes_of_their_items():
    sticky = _sticky()
    sticky.remember(AWAY, ["t"], [_key("a")])
    batch = Call("BatchGetItem", {"RequestItems": {"t": {"Keys": [{"pk": {"S": "b"}}, {"pk": {"S": "a"}}]}}})
    transaction = Call("TransactGetItems", {"TransactItems": [{"Get": {"TableName": "t", "Key": {"pk": {"S": "a"}}}}]})
    assert (sticky.region_for(batch), sticky.region_for(transaction)) == (AWAY, AWAY)
    other = Call("BatchGetItem", {"RequestItems": {"t": {"Keys": [{"pk": {"S": "b"}}]}}})
    assert sticky.region_for(other) is None


def test_keys_forgotten_for_room_make_their_table_follow_as_if_unknown():
    sticky = _sticky(maxsize=2)
    sticky.remember(AWAY, ["t"], [_key("a")])
    sticky.remember(HOME, ["t"], [_key("b"), _key("c")])
    assert sticky.region_for(_get({"pk": {"S": "a"}})) == AWAY  # forgotten, still followed
    assert not sticky.seen_by(_get({"pk": {"S": "b"}})).may_store(HOME)


def test_a_malformed_read_is_routed_as_one_of_unknown_tables_not_failed():
    sticky = _sticky()
    sticky.remember(AWAY, ["t"], [_key("a")])
    assert sticky.region_for(Call("TransactGetItems", {"TransactItems": ["junk"]})) == AWAY  # tables unknown: any
    assert sticky.region_for(Call("BatchGetItem", {"RequestItems": "junk"})) == AWAY


def test_home_writes_are_worth_remembering_only_for_tables_with_entries():
    sticky = _sticky()
    assert not sticky.remembers(["t"])
    sticky.remember(AWAY, ["t"], [_key("a")])
    assert (sticky.remembers(["t"]), sticky.remembers(["other"]), sticky.remembers([])) == (True, False, True)


def test_a_write_of_unknown_items_at_home_does_not_end_the_follow_of_one_that_failed_over():
    sticky = _sticky()
    sticky.remember(AWAY, ["t"], None)
    sticky.remember(HOME, ["t"], None)  # which items either touched is unknown
    assert sticky.region_for(_get({"pk": {"S": "any"}})) == AWAY
    assert sticky.region_for(Call("Query", {"TableName": "t"})) == AWAY


def test_expired_writes_are_dropped_while_their_table_keeps_being_written():
    clock = FakeClock(now=0.0)
    sticky = StickyWrites(5.0, home=HOME, clock=clock)
    for n in range(3):
        sticky.remember(AWAY, ["t"], [_key(str(n))])
    clock.now = 5.1
    sticky.remember(HOME, ["t"], [_key("later")])
    assert sticky.region_for(Call("Query", {"TableName": "t"})) is None
    assert sticky.region_for(_get({"pk": {"S": "0"}})) is None
    assert "keys=1," in repr(sticky)


# -- a write that failed but may have been applied: uncertain


def _stores(seen):
    """The regions an answer to this read may be cached from."""
    return {region for region in REGIONS if seen.may_store(region)}


def test_an_uncertain_write_at_home_ends_the_keys_entry_and_no_answer_of_it_is_stored_in_the_window():
    sticky = _sticky()
    sticky.remember(AWAY, ["t"], [_key("a")])  # failed over
    sticky.remember(HOME, ["t"], [_key("a")], uncertain=True)  # then may have landed at home
    read = _get({"pk": {"S": "a"}})
    seen = sticky.seen_by(read)
    assert (seen.follow, seen.uncertain, _stores(seen)) == (None, True, set())
    assert _stores(sticky.seen_by(Call("Query", {"TableName": "t"}))) == set()
    assert _stores(sticky.seen_by(_get({"pk": {"S": "b"}}))) == set(REGIONS)  # another item: no write of it
    sticky._clock.now = 5.1
    assert _stores(sticky.seen_by(read)) == set(REGIONS)


def test_an_uncertain_write_away_moves_the_keys_entry_there_and_no_answer_of_it_is_stored():
    sticky = _sticky()
    sticky.remember(AWAY, ["t"], [_key("a")])
    sticky.remember(THIRD, ["t"], [_key("a")], uncertain=True)
    seen = sticky.seen_by(_get({"pk": {"S": "a"}}))
    assert (seen.follow, _stores(seen)) == (THIRD, set())  # not even from THIRD: it may lack it
    query = sticky.seen_by(Call("Query", {"TableName": "t"}))
    assert (query.follow, _stores(query)) == (THIRD, set())


def test_an_uncertain_write_of_unknown_items_keeps_every_read_of_its_table_out_of_the_cache():
    sticky = _sticky()
    sticky.remember(HOME, ["t"], None, uncertain=True)
    assert _stores(sticky.seen_by(_get({"pk": {"S": "any"}}))) == set()
    assert _stores(sticky.seen_by(Call("Scan", {"TableName": "t"}))) == set()
    assert _stores(sticky.seen_by(_get({"pk": {"S": "any"}}, table="other"))) == set(REGIONS)


def test_a_later_write_of_the_item_ends_its_uncertainty_for_item_reads_not_for_the_tables_queries():
    # Only an item's latest write counts for reads of the item (as for any
    # write); a query may see the uncertain write's item, whatever was
    # written after it, until the window ends.
    sticky = _sticky()
    sticky.remember(HOME, ["t"], [_key("a")], uncertain=True)
    sticky.remember(HOME, ["t"], [_key("a")])
    sticky.remember(HOME, ["t"], [_key("b")])
    assert _stores(sticky.seen_by(_get({"pk": {"S": "a"}}))) == {HOME}
    assert _stores(sticky.seen_by(Call("Query", {"TableName": "t"}))) == set()


def test_an_uncertain_write_forgotten_for_room_stays_uncertain_for_its_tables_item_reads():
    sticky = _sticky(maxsize=1)
    sticky.remember(HOME, ["t"], [_key("a")], uncertain=True)
    sticky.remember(HOME, ["t"], [_key("b")])  # "a" is forgotten: now a write of an unknown item of "t"
    assert _stores(sticky.seen_by(_get({"pk": {"S": "a"}}))) == set()


def test_with_the_window_off_an_uncertain_write_is_not_remembered():
    sticky = StickyWrites(0, home=HOME)
    sticky.remember(AWAY, ["t"], [_key("a")], uncertain=True)
    seen = sticky.seen_by(_get({"pk": {"S": "a"}}))
    assert (seen.follow, _stores(seen)) == (None, set(REGIONS))
