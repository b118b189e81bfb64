"""Read-your-writes on the lab: reads follow the session's latest write of an
item (a later write moves or ends what an earlier one made sticky), PartiQL
writes and reads take part, and the cache never keeps an answer from a
region that may not have the session's latest write.

Replication is paused in each test once the starting items are in every
region: what a region has is what the session wrote there, so a read
answered by the wrong region shows it.
"""

from __future__ import annotations

import pytest

import regionproxy as rp
from regionproxy.events import Hedged, OperationFinished
from tests.support import LOCAL, REMOTE, TABLE

KEY = {"pk": {"S": "k"}, "sk": {"S": "s"}}
PATIENT = rp.Timeouts(connect=1.0, read=5.0, attempts=1)
CACHE = [pytest.param(None, id="no-cache"), pytest.param(rp.CachePolicy(ttl=60), id="cache")]


def _session(lab, events=None, **kwargs):
    kwargs.setdefault("timeouts", PATIENT)
    return lab.session(listeners=[events.append] if events is not None else [], **kwargs)


def _seed(lab, v="old", key=KEY):
    """The item in every region, then no more replication."""
    lab.client(LOCAL).put_item(TableName=TABLE, Item={**key, "v": {"S": v}})
    lab.wait_replicated()
    lab.replicator.pause()


def _v(response):
    item = response.get("Item")
    return None if item is None else item["v"]["S"]


def _get(session, key=KEY):
    return _v(session.client.get_item(TableName=TABLE, Key=key))


def _query(session, pk="k"):
    items = session.client.query(
        TableName=TABLE, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": pk}}
    )["Items"]
    return [item["v"]["S"] for item in items]


def _select(session, pk="k"):
    items = session.client.execute_statement(Statement=f'SELECT * FROM "{TABLE}" WHERE pk = ?', Parameters=[{"S": pk}])["Items"]
    return [item["v"]["S"] for item in items]


def _in(lab, region, key=KEY):
    return _v(lab.client(region, direct=True).get_item(TableName=TABLE, Key=key))


@pytest.mark.parametrize("cache", CACHE)
def test_after_flapping_reads_return_the_second_write_that_landed_locally(lab, cache):
    session = _session(lab, cache=cache)
    _seed(lab)
    lab.fault(LOCAL, "refuse")  # the local region flaps out: the first write fails over
    session.client.put_item(TableName=TABLE, Item={**KEY, "v": {"S": "first"}})
    lab.heal(LOCAL)  # and back: the second write of the same item lands locally
    session.client.put_item(TableName=TABLE, Item={**KEY, "v": {"S": "second"}})
    assert (_in(lab, LOCAL), _in(lab, REMOTE)) == ("second", "first")
    for _ in range(3):  # with the cache on, the later ones are hits: of the second write too
        assert _get(session) == "second"
        assert _query(session) == ["second"]
        assert session.table(TABLE).get_item(Key={"pk": "k", "sk": "s"})["Item"]["v"] == "second"


def test_a_failed_over_partiql_update_is_read_back_by_get_item_and_select(lab):
    session = _session(lab)
    _seed(lab)
    lab.fault(LOCAL, "refuse")  # refused before it was sent: fails over, although not idempotent
    session.client.execute_statement(
        Statement=f"UPDATE \"{TABLE}\" SET v = 'new' WHERE pk = ? AND sk = ?", Parameters=[{"S": "k"}, {"S": "s"}]
    )
    lab.heal(LOCAL)
    assert (_in(lab, LOCAL), _in(lab, REMOTE)) == ("old", "new")
    assert _get(session) == "new"
    assert _select(session) == ["new"]
    assert session.table(TABLE).get_item(Key={"pk": "k", "sk": "s"})["Item"]["v"] == "new"


def test_a_failed_over_partiql_update_without_its_whole_key_makes_the_tables_reads_follow(lab):
    session = _session(lab)
    _seed(lab)
    lab.fault(LOCAL, "refuse")
    # Names the partition only: which item it changed is DynamoDB's to say.
    session.client.execute_statement(
        Statement=f"UPDATE \"{TABLE}\" SET v = 'new' WHERE pk = 'k' AND sk = ? AND v = 'old'", Parameters=[{"S": "s"}]
    )
    lab.heal(LOCAL)
    assert _get(session) == "new"


def test_a_select_after_a_failed_over_update_item_reads_it(lab):
    session = _session(lab)
    _seed(lab)
    lab.fault(LOCAL, "refuse")
    session.table(TABLE).update_item(
        Key={"pk": "k", "sk": "s"}, UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": "new"}
    )
    lab.heal(LOCAL)
    assert _in(lab, LOCAL) == "old"
    assert _select(session) == ["new"]


MIXED = [
    ("put", "Put"),
    ("updated", "Update"),
    ("deleted", "Delete"),
    ("checked", "ConditionCheck"),
]


def _key(pk):
    return {"pk": {"S": pk}, "sk": {"S": "s"}}


def _mixed_transaction(session):
    session.client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {**_key("put"), "v": {"S": "new"}}}},
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": _key("updated"),
                    "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"S": "new"}},
                }
            },
            {"Delete": {"TableName": TABLE, "Key": _key("deleted")}},
            {"ConditionCheck": {"TableName": TABLE, "Key": _key("checked"), "ConditionExpression": "attribute_exists(pk)"}},
        ]
    )


def _seed_mixed(lab):
    for pk, _ in MIXED:
        lab.client(LOCAL).put_item(TableName=TABLE, Item={**_key(pk), "v": {"S": "old"}})
    lab.wait_replicated()
    lab.replicator.pause()


def test_a_failed_over_mixed_transaction_is_read_back_item_by_item(lab):
    session = _session(lab)
    _seed_mixed(lab)
    lab.fault(LOCAL, "refuse")
    _mixed_transaction(session)
    lab.heal(LOCAL)
    assert [_in(lab, LOCAL, _key(pk)) for pk, _ in MIXED] == ["old"] * 4
    assert [_get(session, _key(pk)) for pk, _ in MIXED] == ["new", "new", None, "old"]


def test_a_mixed_transaction_drops_every_item_it_wrote_from_the_cache(lab):
    session = _session(lab, cache=rp.CachePolicy(ttl=60))
    _seed_mixed(lab)
    assert [_get(session, _key(pk)) for pk, _ in MIXED] == ["old"] * 4  # cached
    _mixed_transaction(session)
    assert [_get(session, _key(pk)) for pk, _ in MIXED] == ["new", "new", None, "old"]


def test_a_hedged_answer_from_a_region_without_the_sessions_write_is_returned_not_cached(lab):
    # Only the fault is timed: a healthy read after the heal must not be
    # hedged (the remote region would answer "old"), so the hedge waits
    # longer than any healthy read on a loaded machine, and the fault is
    # longer still.
    events = []
    session = _session(lab, events, cache=rp.CachePolicy(ttl=60), hedge=rp.HedgePolicy(delay=1.0, budget=1.0))
    _seed(lab)
    session.client.put_item(TableName=TABLE, Item={**KEY, "v": {"S": "new"}})  # lands locally
    lab.fault(LOCAL, "latency", delay=3.0)  # the next read is hedged, and the remote region answers first
    _get(session)  # "old" if the hedge won: returned, as the remote region has it
    lab.heal(LOCAL)
    assert _get(session) == "new"
    assert session.table(TABLE).get_item(Key={"pk": "k", "sk": "s"})["Item"]["v"] == "new"
    # (Should the local answer come first, the test passes as if fixed: the
    # race can only make it pass.)
    assert [e.outcome for e in events if isinstance(e, Hedged)] in (["won"], ["lost"])


@pytest.mark.parametrize("surface", ["client", "table", "query"])
def test_a_failed_over_read_from_a_region_without_the_sessions_write_is_returned_not_cached(lab, surface):
    read = {
        "client": _get,
        "table": lambda session: session.table(TABLE).get_item(Key={"pk": "k", "sk": "s"})["Item"]["v"],
        "query": lambda session: _query(session)[0],
    }[surface]
    events = []
    session = _session(lab, events, cache=rp.CachePolicy(ttl=60), breaker=rp.BreakerPolicy(fail_max=10))
    _seed(lab)
    session.client.put_item(TableName=TABLE, Item={**KEY, "v": {"S": "new"}})  # lands locally
    lab.fault(LOCAL, "refuse")
    assert read(session) == "old"  # failed over: what the remote region has
    lab.heal(LOCAL)
    assert read(session) == "new"
    assert read(session) == "new"
    served = [e.region for e in events if isinstance(e, OperationFinished) and e.kind == "read"]
    assert served == [REMOTE, LOCAL], "the remote answer was not kept; the local one was"


def test_a_read_of_a_failed_over_write_that_fails_over_again_is_not_cached(lab):
    # The write is in the remote region only; the read follows it there, the
    # remote region fails, and the local one (without the write) answers.
    session = _session(lab, cache=rp.CachePolicy(ttl=60), breaker=rp.BreakerPolicy(fail_max=10))
    _seed(lab)
    lab.fault(LOCAL, "refuse")
    session.client.put_item(TableName=TABLE, Item={**KEY, "v": {"S": "new"}})
    lab.heal(LOCAL)
    lab.fault(REMOTE, "refuse")
    assert _get(session) == "old"
    lab.heal(REMOTE)
    assert _get(session) == "new"


# -- a write that failed but may have landed: it counts, uncertain
#
# The session's window is long here (60 s), so a loaded machine cannot end
# it during a test; the lab's "drop" fault forwards the request (DynamoDB
# applies it) and then drops the connection: the caller hears "maybe".


def _conditional_update(session, value):
    # Not idempotent (a condition): a dropped answer is AmbiguousWriteError.
    session.client.update_item(
        TableName=TABLE,
        Key=KEY,
        UpdateExpression="SET v = :v",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeValues={":v": {"S": value}},
    )


def _fail_over_first(lab, session):
    """Write "first" with the local region refusing: it lands remotely, and
    reads of the item follow it there."""
    lab.fault(LOCAL, "refuse")
    session.client.put_item(TableName=TABLE, Item={**KEY, "v": {"S": "first"}})
    lab.heal(LOCAL)


@pytest.mark.parametrize("cache", CACHE)
def test_an_ambiguous_write_at_home_ends_the_items_failed_over_entry_and_is_not_cached(lab, cache):
    session = _session(lab, cache=cache, sticky_seconds=60, breaker=rp.BreakerPolicy(fail_max=10))
    _seed(lab)
    _fail_over_first(lab, session)
    lab.fault(LOCAL, "drop")
    with pytest.raises(rp.AmbiguousWriteError) as caught:
        _conditional_update(session, "second")
    assert caught.value.region == LOCAL
    lab.heal(LOCAL)
    assert (_in(lab, LOCAL), _in(lab, REMOTE)) == ("second", "first")
    assert _get(session) == "second"  # the write may be at home: reads no longer follow "first"
    assert _query(session) == ["second"]
    # Replication catches up: every region has the session's write. Nothing
    # kept from before says otherwise.
    lab.client(REMOTE, direct=True).put_item(TableName=TABLE, Item={**KEY, "v": {"S": "second"}})
    assert _get(session) == "second"
    assert session.table(TABLE).get_item(Key={"pk": "k", "sk": "s"})["Item"]["v"] == "second"


@pytest.mark.parametrize("cache", CACHE)
def test_an_ambiguous_failed_over_write_is_followed_and_no_answer_of_it_is_cached(lab, cache):
    session = _session(lab, cache=cache, sticky_seconds=60, breaker=rp.BreakerPolicy(fail_max=10))
    _seed(lab)
    session.evacuate(LOCAL)
    lab.fault(REMOTE, "drop")
    with pytest.raises(rp.AmbiguousWriteError) as caught:
        _conditional_update(session, "new")
    assert caught.value.region == REMOTE
    lab.heal(REMOTE)
    session.restore(LOCAL)
    assert (_in(lab, LOCAL), _in(lab, REMOTE)) == ("old", "new")
    assert _get(session) == "new"  # the region it may have landed in
    assert _query(session) == ["new"]
    assert _select(session) == ["new"]
    # Even that region's answer is not kept: it may have lacked the write.
    lab.client(REMOTE, direct=True).put_item(TableName=TABLE, Item={**KEY, "v": {"S": "newer"}})
    assert _get(session) == "newer"
    assert _query(session) == ["newer"]


@pytest.mark.parametrize("cache", CACHE)
def test_an_idempotent_write_that_failed_everywhere_but_may_have_landed_at_home_counts_there(lab, cache):
    session = _session(lab, cache=cache, sticky_seconds=60, breaker=rp.BreakerPolicy(fail_max=10))
    _seed(lab)
    _fail_over_first(lab, session)
    lab.fault(LOCAL, "drop")  # applied, answer lost: it fails over (safe to repeat)...
    lab.fault(REMOTE, "refuse")  # ...and is refused there
    with pytest.raises(rp.AllRegionsFailed):
        session.client.put_item(TableName=TABLE, Item={**KEY, "v": {"S": "second"}})
    lab.heal()
    assert (_in(lab, LOCAL), _in(lab, REMOTE)) == ("second", "first")
    assert _get(session) == "second"
    lab.client(REMOTE, direct=True).put_item(TableName=TABLE, Item={**KEY, "v": {"S": "second"}})
    lab.client(LOCAL, direct=True).put_item(TableName=TABLE, Item={**KEY, "v": {"S": "third"}})
    assert _get(session) == "third"  # the answer before was not kept
