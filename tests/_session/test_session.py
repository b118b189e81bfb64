"""RegionSession construction: no I/O, no lab (clients are built lazily)."""

from __future__ import annotations

import pytest
from boto3.dynamodb.conditions import Key
from botocore.config import Config

import regionproxy as rp
from tests.support import REGIONS, FakeClock, closed_port_url


def test_listeners_given_as_a_one_shot_iterator_all_receive_events():
    seen = []
    session = rp.RegionSession(REGIONS, listeners=iter([seen.append]))
    session.evacuate("us-east-1")
    assert [event.new for event in seen] == ["evacuated"]


def test_from_env_takes_a_client_config_and_merges_the_pool_size():
    env = {"REGIONPROXY_REGIONS": ",".join(REGIONS)}
    session = rp.RegionSession.from_env(env, config=Config(user_agent_extra="blog/1.0"))
    assert session.settings.client_config.user_agent_extra == "blog/1.0"


def test_from_env_refuses_a_misspelt_setting_by_name():
    with pytest.raises(rp.ConfigError, match="regoins"):
        rp.RegionSession.from_env({"REGIONPROXY_REGIONS": ",".join(REGIONS)}, regoins=["eu-west-3"])


# -- routing reads through the session, regions stood in for ------------------------
#
# ``Regions`` replaces the attempt loop: each region keeps its own items (no
# replication, so a region that did not take a write does not have it), and
# the region that answers is the plan's first unless a test names another
# (``answer_from``: a hedge or a failover answered). No sockets, no sleeps.

HOME, AWAY = REGIONS
TABLE = "Items"


class Regions:
    def __init__(self):
        self.items = {region: {} for region in REGIONS}
        self.calls = []  # (operation, plan, hedged, region that answered)
        self.answer_from = None

    def __call__(self, call, plan, *, hedge=True, maybe_applied=None):
        region = self.answer_from or plan[0]
        self.calls.append((call.operation, plan, hedge, region))
        items, params = self.items[region], call.params
        if call.operation == "PutItem":
            items[params["Item"]["pk"]["S"]] = params["Item"]
        elif call.operation == "GetItem":
            item = items.get(params["Key"]["pk"]["S"])
            return ({"Item": item} if item else {}), region
        elif call.operation == "Query":
            pk = next(iter(params["ExpressionAttributeValues"].values()))["S"]  # the one equality on pk
            return {"Items": [items[pk]] if pk in items else [], "Count": 1}, region
        elif call.operation == "BatchGetItem":
            found = [items[key["pk"]["S"]] for key in params["RequestItems"][TABLE]["Keys"] if key["pk"]["S"] in items]
            return {"Responses": {TABLE: found}, "UnprocessedKeys": {}}, region
        return {}, region

    def reads(self, operation="GetItem"):
        return [(plan, hedged, region) for called, plan, hedged, region in self.calls if called == operation]


def _routed(cache=None, hedge=None, clock=None):
    session = rp.RegionSession(
        REGIONS,
        endpoints=dict.fromkeys(REGIONS, closed_port_url()),  # never reached: Regions answers
        cache=cache,
        hedge=hedge,
        key_schemas={TABLE: ("pk",)},
        monotonic=clock or FakeClock(now=1000.0),
    )
    regions = Regions()
    session.attempts.run = regions
    return session, regions


def _item(pk, v):
    return {"pk": {"S": pk}, "v": {"S": v}}


def _get(session, pk="a"):
    return session.execute("GetItem", {"TableName": TABLE, "Key": {"pk": {"S": pk}}})


def _query(session, pk="a"):
    params = {"TableName": TABLE, "KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": pk}}}
    return session.execute("Query", params)


CONSISTENT_READS = [
    pytest.param("GetItem", {"TableName": TABLE, "Key": {"pk": {"S": "a"}}, "ConsistentRead": True}, id="get-item"),
    pytest.param(
        "Query",
        {
            "TableName": TABLE,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": "a"}},
            "ConsistentRead": True,
        },
        id="query",
    ),
    pytest.param("Scan", {"TableName": TABLE, "ConsistentRead": True}, id="scan"),
    pytest.param(
        "BatchGetItem", {"RequestItems": {TABLE: {"Keys": [{"pk": {"S": "a"}}], "ConsistentRead": True}}}, id="batch-get"
    ),
    pytest.param(
        "TransactGetItems", {"TransactItems": [{"Get": {"TableName": TABLE, "Key": {"pk": {"S": "a"}}}}]}, id="transact-get"
    ),
    pytest.param(
        "ExecuteStatement", {"Statement": f"SELECT * FROM \"{TABLE}\" WHERE pk = 'a'", "ConsistentRead": True}, id="partiql"
    ),
]


@pytest.mark.parametrize("cache", [None, rp.CachePolicy(ttl=60)], ids=["no-cache", "cache"])
@pytest.mark.parametrize(("operation", "params"), CONSISTENT_READS)
def test_strongly_consistent_reads_are_neither_hedged_nor_sent_elsewhere_first_by_a_demotion(operation, params, cache):
    session, regions = _routed(cache=cache, hedge=rp.HedgePolicy(delay=0.05, demote_after=1, demote_for=60))
    session.attempts.hedger._judge(HOME)  # a hedge won against the local region: demoted, reads try it last
    session.execute(operation, params)
    assert regions.reads(operation) == [(tuple(REGIONS), False, HOME)]
    session.close()


def test_eventually_consistent_reads_are_hedged_and_reordered_by_a_demotion():
    session, regions = _routed(hedge=rp.HedgePolicy(delay=0.05, demote_after=1, demote_for=60))
    session.attempts.hedger._judge(HOME)
    _get(session)
    assert regions.reads() == [((AWAY, HOME), True, AWAY)]
    session.close()


@pytest.mark.parametrize("cache", [None, rp.CachePolicy(ttl=60)], ids=["no-cache", "cache"])
def test_after_flapping_reads_return_the_later_write_that_landed_at_home(cache):
    session, regions = _routed(cache=cache)
    regions.answer_from = AWAY  # the local region is out: the first write fails over
    session.execute("PutItem", {"TableName": TABLE, "Item": _item("a", "first")})
    regions.answer_from = None  # back: the second write of the key lands locally
    session.execute("PutItem", {"TableName": TABLE, "Item": _item("a", "second")})
    for _ in range(2):
        assert _get(session)["Item"]["v"] == {"S": "second"}
        assert _query(session)["Items"][0]["v"] == {"S": "second"}
    assert {plan[0] for plan, _, _ in regions.reads() + regions.reads("Query")} == {HOME}


def test_a_later_write_that_fails_over_elsewhere_moves_the_keys_reads_with_it():
    session, regions = _routed()
    session.execute("PutItem", {"TableName": TABLE, "Item": _item("a", "first")})
    regions.answer_from = AWAY
    session.execute("PutItem", {"TableName": TABLE, "Item": _item("a", "second")})
    regions.answer_from = None
    assert _get(session)["Item"]["v"] == {"S": "second"}
    assert regions.reads() == [((AWAY, HOME), False, AWAY)]


def _select(pk="a"):
    return {"Statement": f"SELECT * FROM \"{TABLE}\" WHERE pk = ?", "Parameters": [{"S": pk}]}


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"Statement": f"UPDATE \"{TABLE}\" SET v = 'new' WHERE pk = 'a'"}, id="update"),
        pytest.param({"Statement": f"DELETE FROM {TABLE} WHERE pk = ?", "Parameters": [{"S": "a"}]}, id="delete"),
        pytest.param({"Statement": f"INSERT INTO \"{TABLE}\" VALUE {{'pk': 'a', 'v': 'new'}}"}, id="insert"),
    ],
)
def test_a_failed_over_partiql_write_is_read_back_from_its_region(params):
    session, regions = _routed()
    regions.answer_from = AWAY
    session.execute("ExecuteStatement", params)
    regions.answer_from = None
    _get(session)
    session.execute("ExecuteStatement", _select())
    _get(session, pk="other")  # its key is named: other items are read as usual
    assert [plan[0] for _, plan, _, _ in regions.calls[1:]] == [AWAY, AWAY, HOME]


def test_a_failed_over_partiql_write_in_a_batch_or_transaction_is_read_back_from_its_region():
    session, regions = _routed()
    regions.answer_from = AWAY
    statement = {"Statement": f"UPDATE \"{TABLE}\" SET v = 'new' WHERE pk = 'a'"}
    session.execute("BatchExecuteStatement", {"Statements": [statement]})
    session.execute("ExecuteTransaction", {"TransactStatements": [{"Statement": f"DELETE FROM \"{TABLE}\" WHERE pk = 'b'"}]})
    regions.answer_from = None
    _get(session, "a")
    _get(session, "b")
    assert [plan[0] for plan, _, _ in regions.reads()] == [AWAY, AWAY]


def test_a_select_after_a_failed_over_update_item_follows_it():
    session, regions = _routed()
    regions.answer_from = AWAY
    session.execute(
        "UpdateItem",
        {
            "TableName": TABLE,
            "Key": {"pk": {"S": "a"}},
            "UpdateExpression": "SET v = :v",
            "ExpressionAttributeValues": {":v": {"S": "new"}},
        },
    )
    regions.answer_from = None
    session.execute("ExecuteStatement", _select())
    assert regions.reads("ExecuteStatement") == [((AWAY, HOME), False, AWAY)]


def test_a_failed_over_partiql_write_that_does_not_name_its_key_makes_every_read_of_its_table_follow():
    session, regions = _routed()
    regions.answer_from = AWAY
    session.execute("ExecuteStatement", {"Statement": f"UPDATE \"{TABLE}\" SET v = 'new' WHERE v = 'old'"})
    regions.answer_from = None
    _get(session, "anything")
    session.execute("GetItem", {"TableName": "Other", "Key": {"pk": {"S": "a"}}})
    assert [plan[0] for plan, _, _ in regions.reads()] == [AWAY, HOME]


MIXED_TRANSACTION = {
    "TransactItems": [
        {
            "Update": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "updated"}},
                "UpdateExpression": "SET v = :v",
                "ExpressionAttributeValues": {":v": {"S": "new"}},
            }
        },
        {"Put": {"TableName": TABLE, "Item": _item("put", "new")}},
        {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "deleted"}}}},
        {"ConditionCheck": {"TableName": TABLE, "Key": {"pk": {"S": "checked"}}, "ConditionExpression": "attribute_exists(pk)"}},
    ]
}


def test_a_failed_over_mixed_transaction_makes_reads_of_each_item_it_wrote_follow_it():
    session, regions = _routed()
    regions.answer_from = AWAY
    session.execute("TransactWriteItems", MIXED_TRANSACTION)
    regions.answer_from = None
    for pk in ("updated", "put", "deleted", "checked"):
        _get(session, pk)
    assert [plan[0] for plan, _, _ in regions.reads()] == [AWAY, AWAY, AWAY, HOME]


def test_a_mixed_transaction_drops_each_item_it_wrote_from_the_cache():
    session, regions = _routed(cache=rp.CachePolicy(ttl=60))
    for pk in ("updated", "put", "deleted", "checked"):
        _get(session, pk)
    session.execute("TransactWriteItems", MIXED_TRANSACTION)
    for pk in ("updated", "put", "deleted", "checked"):
        _get(session, pk)
    reloaded = [call for call in regions.calls[5:] if call[0] == "GetItem"]
    assert len(reloaded) == 3, "the put, updated and deleted items are read again; the checked one is a hit"


SURFACES = {
    "client": lambda session: _get(session).get("Item", {}).get("v", {}).get("S"),
    "table": lambda session: session.table(TABLE).get_item(Key={"pk": "a"}).get("Item", {}).get("v"),
    "query": lambda session: (_query(session)["Items"] or [{}])[0].get("v", {}).get("S"),
    "table-query": lambda session: (session.table(TABLE).query(KeyConditionExpression=Key("pk").eq("a"))["Items"] or [{}])[
        0
    ].get("v"),
    "batch": lambda session: next(
        iter(session.execute("BatchGetItem", {"RequestItems": {TABLE: {"Keys": [{"pk": {"S": "a"}}]}}})["Responses"][TABLE]),
        {},
    ).get("v", {}).get("S"),
}


@pytest.mark.parametrize("surface", list(SURFACES))
@pytest.mark.parametrize("written_at", [HOME, AWAY])
def test_an_answer_from_a_region_without_the_sessions_latest_write_is_returned_but_not_cached(surface, written_at):
    # The session writes "new" (locally, or failed over); the next read is
    # answered by the other region (a hedge, a failover), which has "old".
    read = SURFACES[surface]
    session, regions = _routed(cache=rp.CachePolicy(ttl=60))
    other = AWAY if written_at == HOME else HOME
    regions.items[other]["a"] = _item("a", "old")
    regions.answer_from = written_at
    session.execute("PutItem", {"TableName": TABLE, "Item": _item("a", "new")})
    regions.answer_from = other
    assert read(session) == "old"  # what that region had: returned
    regions.answer_from = None  # healed
    assert read(session) == "new"  # not a hit on the old item
    assert read(session) == "new"


def test_after_the_window_answers_of_any_region_are_cached_again():
    clock = FakeClock(now=1000.0)
    session, regions = _routed(cache=rp.CachePolicy(ttl=600), clock=clock)
    session.execute("PutItem", {"TableName": TABLE, "Item": _item("a", "new")})
    clock.now += 5.1  # past sticky_seconds
    regions.answer_from = AWAY
    _get(session)
    regions.answer_from = None
    _get(session)
    assert len(regions.reads()) == 1, "the second read was a hit"


def test_without_a_cache_writes_at_home_ask_for_no_key_schema():
    session = rp.RegionSession(REGIONS, endpoints=dict.fromkeys(REGIONS, closed_port_url()))
    regions = Regions()
    session.attempts.run = regions
    session.key_schemas._describe = lambda table, prefer: pytest.fail("DescribeTable for a write nothing needs the key of")
    session.execute("PutItem", {"TableName": TABLE, "Item": _item("a", "new")})
    assert regions.calls == [("PutItem", tuple(REGIONS), True, HOME)]
