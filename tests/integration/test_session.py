"""RegionSession against the lab: real sockets, real timeouts, real faults."""

from __future__ import annotations

import multiprocessing
import threading
import time
from decimal import Decimal

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

import regionproxy as rp
from regionproxy._regions.breaker import CLOSED, HALF_OPEN, OPEN
from regionproxy.testing.lab import CREDENTIALS, wait_for
from tests.support import LOCAL, REMOTE, TABLE

# The region meant to be healthy must never miss its timeout, however loaded
# the machine: patient timeouts wherever the fault answers (refuse, reset,
# error, latency). A blackhole never answers, so its read timeout is what
# each call to it costs; but the healthy region shares that timeout (one
# Timeouts per session), so it is short next to a blackhole (a call to a
# healthy region missed 1 s on a loaded 2-core machine), not next to a call,
# and such sessions open the breaker at the first fault to pay it once.
# Only where no healthy region is called is it really short.
PATIENT = rp.Timeouts(connect=1, read=5, attempts=1)
BLACKHOLE_READ = 3.0
BLACKHOLE = rp.Timeouts(connect=1, read=BLACKHOLE_READ, attempts=1)
ONLY_THE_BLACKHOLE = rp.Timeouts(connect=1, read=0.3, attempts=1)
RESET_TIMEOUT = 0.5
FAULTS = [
    pytest.param("refuse", {}, id="refuse"),
    pytest.param("reset", {}, id="reset"),
    pytest.param("blackhole", {}, id="blackhole"),
    pytest.param("error", {"status": 500}, id="error-500"),
    pytest.param("error", {"status": 400}, id="throttling"),
]


@pytest.fixture
def session(lab):
    return lab.session(timeouts=PATIENT, breaker=rp.BreakerPolicy(fail_max=3, reset_timeout=RESET_TIMEOUT))


@pytest.fixture
def table(session):
    return session.table(TABLE)


def _faulted_session(lab, mode):
    """A session for a test about failing over from ``mode``: the first fault
    opens the breaker (a blackhole costs one timeout, not three), and no
    half-open trial comes during the test (it is not about recovery)."""
    return lab.session(
        timeouts=BLACKHOLE if mode == "blackhole" else PATIENT, breaker=rp.BreakerPolicy(fail_max=1, reset_timeout=60)
    )


@pytest.fixture
def blackhole_session(lab):
    return _faulted_session(lab, "blackhole")


@pytest.fixture
def blackhole_table(blackhole_session):
    return blackhole_session.table(TABLE)


def _seed(lab, count=5):
    """Write ``count`` items in the local region, directly, and replicate them."""
    client = lab.client(LOCAL)
    for n in range(count):
        client.put_item(TableName=TABLE, Item={"pk": {"S": f"p{n}"}, "sk": {"S": "s"}, "n": {"N": str(n)}})
    lab.wait_replicated()


def _trip_local_breaker(lab, table, session, mode="refuse", **params):
    """Fault the local region and read until its breaker opens (fail_max=3)."""
    lab.fault(LOCAL, mode, **params)
    for _ in range(3):
        table.get_item(Key={"pk": "p0", "sk": "s"})
    assert session.replicas[LOCAL].breaker.state == OPEN


def _in_threads(target, count):
    """Run ``target`` in ``count`` threads at once; the seconds from when all
    were ready until all ended."""
    ready = threading.Barrier(count + 1)

    def run():
        ready.wait(timeout=30)
        target()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    ready.wait(timeout=30)
    started = time.perf_counter()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return time.perf_counter() - started


def _served_by(lab, region, since, operation):
    return [r for r in lab.requests(region)[since:] if r.operation == operation and r.action == "forwarded"]


@pytest.mark.parametrize(("mode", "params"), FAULTS)
def test_reads_fail_over_with_zero_errors(lab, mode, params):
    table = _faulted_session(lab, mode).table(TABLE)
    _seed(lab)
    lab.fault(LOCAL, mode, **params)
    for n in range(5):
        assert table.get_item(Key={"pk": f"p{n}", "sk": "s"})["Item"]["n"] == n
        assert table.query(KeyConditionExpression=Key("pk").eq(f"p{n}"))["Count"] == 1


@pytest.mark.parametrize(("mode", "params"), FAULTS)
def test_idempotent_writes_fail_over_with_zero_errors(lab, mode, params):
    table = _faulted_session(lab, mode).table(TABLE)
    lab.fault(LOCAL, mode, **params)
    for n in range(5):
        table.put_item(Item={"pk": f"w{n}", "sk": "s"})
        table.update_item(Key={"pk": f"w{n}", "sk": "s"}, UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": n})
    table.delete_item(Key={"pk": "w0", "sk": "s"})
    remote = lab.client(REMOTE)
    items = remote.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    assert sorted(item["pk"]["S"] for item in items) == ["w1", "w2", "w3", "w4"]


def test_conditional_check_failure_reaches_the_caller_unchanged(session, table):
    table.put_item(Item={"pk": "c", "sk": "s"})
    for _ in range(5):
        with pytest.raises(session.client.exceptions.ConditionalCheckFailedException) as caught:
            table.put_item(Item={"pk": "c", "sk": "s"}, ConditionExpression=Attr("pk").not_exists())
        assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert session.replicas[LOCAL].breaker.state == CLOSED
    assert session.status()["failovers"]["total"] == 0


def test_validation_error_reaches_the_caller_unchanged_and_never_fails_over(lab, session):
    # moto answers this one with DynamoDB's own 400 (MOTO.md lists those it gets wrong).
    since = len(lab.requests(REMOTE))
    for _ in range(5):
        with pytest.raises(ClientError) as caught:
            session.client.put_item(TableName=TABLE, Item={"pk": {"S": "no-sort-key"}})
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        assert type(caught.value).__name__ == "ClientError"
    assert session.replicas[LOCAL].breaker.state == CLOSED
    assert lab.requests(REMOTE)[since:] == []


def test_missing_table_is_the_callers_error(session):
    with pytest.raises(session.client.exceptions.ResourceNotFoundException):
        session.table("NoSuchTable").get_item(Key={"pk": "a"})


def test_breaker_opens_after_fail_max_and_stops_sending_to_the_region(lab, table, session):
    _trip_local_breaker(lab, table, session, "error", status=500)
    sent = len(lab.requests(LOCAL))
    for _ in range(10):
        table.get_item(Key={"pk": "x", "sk": "s"})
    assert len(lab.requests(LOCAL)) == sent


def test_traffic_returns_to_the_local_region_after_healing(lab, table, session):
    _seed(lab, count=1)
    _trip_local_breaker(lab, table, session)
    lab.heal(LOCAL)
    time.sleep(RESET_TIMEOUT)  # the breaker's reset_timeout, in real time: this test drives real sockets
    since = len(lab.requests(LOCAL))
    for _ in range(5):
        assert table.get_item(Key={"pk": "p0", "sk": "s"})["Item"]["n"] == 0
    assert session.replicas[LOCAL].breaker.state == CLOSED
    assert len(_served_by(lab, LOCAL, since, "GetItem")) == 5


def test_half_open_region_gets_one_trial_while_the_rest_fail_over(lab, table, session):
    _seed(lab, count=1)
    _trip_local_breaker(lab, table, session)
    lab.heal(LOCAL)
    # The trial is slow, so the others arrive while it is out: they start
    # once the breaker shows it half-open (trial admitted), and seven
    # parallel reads end long before a 2 s delay does.
    lab.fault(LOCAL, "latency", delay=2.0)
    time.sleep(RESET_TIMEOUT)
    since = {region: len(lab.requests(region)) for region in (LOCAL, REMOTE)}

    def read():
        assert table.get_item(Key={"pk": "p0", "sk": "s"})["Item"]["n"] == 0

    trial = threading.Thread(target=read)
    trial.start()
    try:
        assert wait_for(lambda: session.replicas[LOCAL].breaker.state == HALF_OPEN, timeout=10)
        _in_threads(read, 7)
        assert session.replicas[LOCAL].breaker.state == HALF_OPEN, "the trial ended before the others: not a test"
    finally:
        trial.join(timeout=30)
    assert len(_served_by(lab, LOCAL, since[LOCAL], "GetItem")) == 1
    assert len(_served_by(lab, REMOTE, since[REMOTE], "GetItem")) == 7
    assert session.replicas[LOCAL].breaker.state == CLOSED


def test_non_idempotent_update_during_blackhole_is_ambiguous_and_not_repeated(lab):
    table = lab.session(timeouts=ONLY_THE_BLACKHOLE).table(TABLE)  # only the blackholed region is called
    _seed(lab, count=1)
    lab.fault(LOCAL, "blackhole")
    since = len(lab.requests(REMOTE))
    with pytest.raises(rp.AmbiguousWriteError) as caught:
        table.update_item(Key={"pk": "p0", "sk": "s"}, UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": 1})
    assert caught.value.region == LOCAL
    assert caught.value.operation == "UpdateItem"
    assert type(caught.value.__cause__).__name__ == "ReadTimeoutError"
    assert _served_by(lab, REMOTE, since, "UpdateItem") == []
    assert lab.client(REMOTE).get_item(TableName=TABLE, Key={"pk": {"S": "p0"}, "sk": {"S": "s"}})["Item"]["n"] == {
        "N": "0"
    }


def test_non_idempotent_write_refused_before_sending_fails_over(lab, table):
    _seed(lab, count=1)
    lab.fault(LOCAL, "refuse")
    table.update_item(Key={"pk": "p0", "sk": "s"}, UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": 1})
    assert lab.client(REMOTE).get_item(TableName=TABLE, Key={"pk": {"S": "p0"}, "sk": {"S": "s"}})["Item"]["n"] == {
        "N": "1"
    }


def test_caller_may_mark_a_write_idempotent(lab, blackhole_session, blackhole_table):
    session, table = blackhole_session, blackhole_table
    _seed(lab, count=1)
    lab.fault(LOCAL, "blackhole")
    with session.idempotent():
        table.put_item(Item={"pk": "p0", "sk": "s", "n": 7}, ConditionExpression=Attr("pk").exists())
    assert table.get_item(Key={"pk": "p0", "sk": "s"})["Item"]["n"] == 7


def test_primary_mode_sends_every_write_to_the_primary(lab):
    session = lab.session(write_mode="primary", primary_region=REMOTE, timeouts=PATIENT)
    table = session.table(TABLE)
    since = {region: len(lab.requests(region)) for region in (LOCAL, REMOTE)}
    for n in range(4):
        table.put_item(Item={"pk": f"m{n}", "sk": "s"})
    table.get_item(Key={"pk": "m0", "sk": "s"})
    assert len(_served_by(lab, REMOTE, since[REMOTE], "PutItem")) == 4
    assert _served_by(lab, LOCAL, since[LOCAL], "PutItem") == []
    assert len(_served_by(lab, LOCAL, since[LOCAL], "GetItem")) == 1


def test_primary_mode_does_not_fail_writes_over_unless_configured(lab):
    timeouts = PATIENT
    strict = lab.session(write_mode="primary", primary_region=REMOTE, timeouts=timeouts)
    lab.fault(REMOTE, "refuse")
    with pytest.raises(rp.AllRegionsFailed) as caught:
        strict.table(TABLE).put_item(Item={"pk": "p", "sk": "s"})
    assert list(caught.value.errors) == [REMOTE]
    lenient = lab.session(write_mode="primary", primary_region=REMOTE, write_failover=True, timeouts=timeouts)
    lenient.table(TABLE).put_item(Item={"pk": "p", "sk": "s"})
    assert "Item" in lab.client(LOCAL).get_item(TableName=TABLE, Key={"pk": {"S": "p"}, "sk": {"S": "s"}})


def test_every_region_down_raises_all_regions_failed_with_each_error(lab, table):
    lab.fault(LOCAL, "refuse")
    lab.fault(REMOTE, "error", status=500)
    with pytest.raises(rp.AllRegionsFailed) as caught:
        table.get_item(Key={"pk": "a", "sk": "s"})
    assert set(caught.value.errors) == {LOCAL, REMOTE}
    assert caught.value.errors[REMOTE].response["Error"]["Code"] == "InternalServerError"


def test_failover_write_is_read_back_from_its_region(lab, table):
    lab.replicator.pause()  # replication must not be what makes the read succeed
    lab.fault(LOCAL, "refuse")
    table.put_item(Item={"pk": "ryw", "sk": "s", "v": "new"})
    lab.heal(LOCAL)
    assert table.get_item(Key={"pk": "ryw", "sk": "s"})["Item"]["v"] == "new"
    assert "Item" not in lab.client(LOCAL).get_item(TableName=TABLE, Key={"pk": {"S": "ryw"}, "sk": {"S": "s"}})


def test_reads_in_parallel_threads_cost_one_read_timeout_not_eight(lab, blackhole_table):
    table = blackhole_table
    _seed(lab, count=1)
    lab.fault(LOCAL, "blackhole")
    results, errors = [], []

    def read():
        try:
            results.append(table.get_item(Key={"pk": "p0", "sk": "s"})["Item"]["n"])
        except Exception as error:  # noqa: BLE001 - counted below
            errors.append(error)

    elapsed = _in_threads(read, 8)
    assert errors == [] and results == [0] * 8
    # Serialised behind the dead region, eight reads take at least eight
    # read timeouts; half that leaves seconds for the work on any machine.
    assert elapsed < 4 * BLACKHOLE_READ, f"8 reads took {elapsed:.2f} s: serialised behind the dead region"


def test_threads_against_a_slow_region_run_in_parallel(lab, table):
    _seed(lab, count=1)
    delay = 0.5
    lab.fault(LOCAL, "latency", delay=delay)
    since = len(lab.requests(LOCAL))

    def read():
        table.get_item(Key={"pk": "p0", "sk": "s"})

    parallel = _in_threads(read, 8)
    assert len(_served_by(lab, LOCAL, since, "GetItem")) == 8
    # Each read waits `delay` in the region, so one after another they take
    # at least 8 * delay; half that leaves seconds for the work itself.
    assert parallel < 4 * delay, f"8 threads took {parallel:.3f} s, one after another at least {8 * delay} s"


def test_status_reports_breakers_calls_latency_and_failovers(lab, table, session):
    _seed(lab, count=1)
    lab.fault(LOCAL, "refuse")
    for _ in range(4):
        table.get_item(Key={"pk": "p0", "sk": "s"})
    status = session.status()
    local, remote = status["regions"][LOCAL], status["regions"][REMOTE]
    assert (local["breaker"], remote["breaker"]) == (OPEN, CLOSED)
    assert local["errors"] == 3 and local["last_error"] == "connection_refused"
    assert remote["calls"] >= 4 and remote["latency_ms"]["p50"] > 0
    assert status["failovers"]["total"] == 4
    assert status["failovers"]["recent"][-1]["reason"] == "breaker_open"


def test_evacuate_and_restore_move_traffic(lab, session, table):
    _seed(lab, count=1)
    session.evacuate(LOCAL)
    since = len(lab.requests(LOCAL))
    table.get_item(Key={"pk": "p0", "sk": "s"})
    assert lab.requests(LOCAL)[since:] == []
    session.restore(LOCAL)
    table.get_item(Key={"pk": "p0", "sk": "s"})
    assert len(_served_by(lab, LOCAL, since, "GetItem")) == 1


# -- drop-in surfaces -------------------------------------------------------------


def test_table_answers_like_a_boto3_resource_table(lab, table):
    resource = boto3.session.Session(**CREDENTIALS).resource(
        "dynamodb", region_name=LOCAL, endpoint_url=lab.endpoints[LOCAL]
    )
    theirs = resource.Table(TABLE)
    item = {"pk": "same", "sk": "s", "n": Decimal("1.5"), "tags": {"a", "b"}, "nested": {"l": [1, "x", None]}}
    table.put_item(Item=item)
    ours = table.get_item(Key={"pk": "same", "sk": "s"})
    reference = theirs.get_item(Key={"pk": "same", "sk": "s"})
    assert ours["Item"] == reference["Item"] == item
    assert table.query(KeyConditionExpression=Key("pk").eq("same"))["Items"] == [item]
    assert table.scan(FilterExpression=Attr("n").gt(1))["Items"] == [item]
    updated = table.update_item(
        Key={"pk": "same", "sk": "s"},
        UpdateExpression="SET n = :n",
        ExpressionAttributeValues={":n": 2},
        ReturnValues="ALL_NEW",
    )
    assert updated["Attributes"]["n"] == 2
    assert table.delete_item(Key={"pk": "same", "sk": "s"}, ReturnValues="ALL_OLD")["Attributes"]["n"] == 2


def test_table_does_not_change_the_callers_arguments(table):
    kwargs = {"Item": {"pk": "args", "sk": "s", "v": 1}}
    table.put_item(**kwargs)
    assert kwargs == {"Item": {"pk": "args", "sk": "s", "v": 1}}


def test_batch_writer_writes_and_deletes_many_items(lab, table):
    with table.batch_writer() as batch:
        for n in range(60):
            batch.put_item(Item={"pk": "batch", "sk": f"{n:03}"})
        batch.delete_item(Key={"pk": "batch", "sk": "000"})
    items = table.query(KeyConditionExpression=Key("pk").eq("batch"))["Items"]
    assert len(items) == 59


def test_client_paginator_walks_every_page(table, session):
    with table.batch_writer() as batch:
        for n in range(25):
            batch.put_item(Item={"pk": "page", "sk": f"{n:03}"})
    pages = list(
        session.client.get_paginator("query").paginate(
            TableName=TABLE,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "page"}},
            PaginationConfig={"PageSize": 10},
        )
    )
    assert [page["Count"] for page in pages] == [10, 10, 5]


def test_client_exposes_every_data_plane_operation(session):
    for name in ("get_item", "batch_get_item", "transact_write_items", "execute_statement", "describe_table"):
        assert callable(getattr(session.client, name))
    with pytest.raises(AttributeError):
        session.client.no_such_operation  # noqa: B018


def test_transactions_and_partiql_route_through_the_session(lab, session):
    client = session.client
    client.transact_write_items(
        TransactItems=[{"Put": {"TableName": TABLE, "Item": {"pk": {"S": "tx"}, "sk": {"S": str(n)}}}} for n in range(2)]
    )
    got = client.transact_get_items(
        TransactItems=[{"Get": {"TableName": TABLE, "Key": {"pk": {"S": "tx"}, "sk": {"S": "0"}}}}]
    )
    assert got["Responses"][0]["Item"]["pk"] == {"S": "tx"}
    rows = client.execute_statement(Statement=f"SELECT * FROM \"{TABLE}\" WHERE pk = 'tx'")["Items"]
    assert len(rows) == 2


# -- cache ------------------------------------------------------------------------


def test_cached_reads_skip_dynamodb_until_a_write_invalidates(lab):
    session = lab.session(cache=rp.CachePolicy(maxsize=100, ttl=60), timeouts=PATIENT)
    table = session.table(TABLE)
    table.put_item(Item={"pk": "hot", "sk": "s", "v": 1})
    since = len(lab.requests(LOCAL))
    for _ in range(5):
        assert table.get_item(Key={"pk": "hot", "sk": "s"})["Item"]["v"] == 1
    assert len(_served_by(lab, LOCAL, since, "GetItem")) == 1
    table.update_item(Key={"pk": "hot", "sk": "s"}, UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": 2})
    assert table.get_item(Key={"pk": "hot", "sk": "s"})["Item"]["v"] == 2
    table.get_item(Key={"pk": "hot", "sk": "s"}, ConsistentRead=True)
    assert len(_served_by(lab, LOCAL, since, "GetItem")) == 3
    assert session.status()["cache"]["hits"] == 4


# -- processes --------------------------------------------------------------------


def _read_in_child(session, pipe):
    try:
        item = session.table(TABLE).get_item(Key={"pk": "fork", "sk": "s"})["Item"]
        pipe.send(("ok", item["v"]))
    except Exception as error:  # noqa: BLE001 - reported to the parent
        pipe.send(("error", repr(error)))


def test_session_built_before_fork_works_in_the_child(lab, session, table):
    table.put_item(Item={"pk": "fork", "sk": "s", "v": "parent"})  # the parent's client exists now
    parent_client = session.replicas[LOCAL].client
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_read_in_child, args=(session, sender))
    child.start()
    assert receiver.poll(10)
    assert receiver.recv() == ("ok", "parent")
    child.join(5)
    assert session.replicas[LOCAL].client is parent_client


def test_wait_for_helper_reports_success():
    flag = []
    threading.Timer(0.05, lambda: flag.append(1)).start()
    assert wait_for(lambda: flag, timeout=30)
