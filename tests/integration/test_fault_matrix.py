"""The fault matrix: every fault x every kind of operation.

Each case sends one call through a fresh session over the lab (replication
paused, so each region's effects are its own), then asserts which region
served, what the caller saw, and how many times the request was applied in
each region: the number of times it reached that region's server (the lab
proxy forwards a request; with ``late`` it answers after the client gave
up, with ``drop`` it resets the connection instead of answering, with
``corrupt`` it answers with a wrong checksum). A write that may have been
applied is never applied twice, and a caller told "ok" has its write
applied exactly once.

Most rows fault the local region; the ``refuse / ...`` rows refuse the local
region and fault the failover region too, so what the session does after a
failover is under test as well. The ``tls-handshake`` row runs on a lab of
its own with https endpoints (``LocalRegions(tls=True)``). The
``unresolvable`` row gives the session the lab's host names
(``lab.named_endpoints``) and makes the local one stop resolving, as an
empty DNS record does: no connection, nothing sent, every kind fails over
at once and nothing is retried in the region.

A second matrix, on the same harness, puts reads under the faults that test
what a read means rather than whether it is served: a slow local region
with hedged reads (eventually consistent ones are hedged, strongly
consistent ones never, even once a demotion is in place; a caller error
from the hedge region is not the answer while the local region can give
one), and read-your-writes after flapping (a write that failed over, then a
later write of the same item that landed locally: reads return the later
one, with the cache off and on).

The tables of outcomes in docs/reference/faults.md are this module's EXPECTED and
READ_EXPECTED tables.
"""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

import regionproxy as rp
from regionproxy._regions.breaker import OPEN
from regionproxy.errors import ReplicaMissingError
from regionproxy.events import CallFinished, FailedOver, Hedged, OperationFinished, RegionDemoted
from regionproxy.testing import LocalRegions
from regionproxy.testing.lab import wait_for
from tests.support import KEY_SCHEMA, LOCAL, REMOTE

# The healthy region's timeout is generous (in-process moto on a loaded
# machine); blackhole and late hold their answers far longer than it.
TIMEOUTS = rp.Timeouts(connect=1.0, read=1.0, attempts=2)
LATE_HOLD = 3.0

# Each case's faults: region -> (mode, parameters).
FAULTS = {
    "refuse": {LOCAL: ("refuse", {})},
    "reset": {LOCAL: ("reset", {})},
    "blackhole": {LOCAL: ("blackhole", {})},
    "late": {LOCAL: ("late", {"delay": LATE_HOLD})},
    "error-500-all": {LOCAL: ("error", {"status": 500})},
    "error-500-30pct": {LOCAL: ("error", {"status": 500, "rate": 0.3})},
    "throttling": {LOCAL: ("error", {"status": 400})},
    "replica-missing": {LOCAL: ("refuse", {})},  # and the remote region has no replica of the table
    "flapping": {LOCAL: ("flap", {"delay": 0.5})},
    "corrupt": {LOCAL: ("corrupt", {})},
    "tls-handshake": {LOCAL: ("handshake", {})},
    "unresolvable": {LOCAL: ("unresolvable", {})},
    "refuse/drop": {LOCAL: ("refuse", {}), REMOTE: ("drop", {})},
    "refuse/reset": {LOCAL: ("refuse", {}), REMOTE: ("reset", {})},
}
TLS_FAULTS = frozenset({"tls-handshake", "tls-blackhole"})
# Cases whose session reaches the lab by its host names.
NAMED_FAULTS = frozenset({"unresolvable"})
# Cases with no healthy region left: nothing can serve.
NO_HEALTHY_REGION = frozenset({"replica-missing", "refuse/drop", "refuse/reset"})

# (fault, kind) -> what the caller sees: the region that served, or the
# error class; and how often the request reached each server (local,
# remote): applied, except under replica-missing, where the remote server
# rejects it (no such table) and the local one was never reached.
# None: depends on timing (reset races the send, 30% errors, flapping);
# those cases are checked by the invariants alone.
# A dropped or corrupt answer is retried once in its region (attempts=2),
# unless the write is not idempotent: each try is an arrival.
REMOTE_OK = ("served", REMOTE)
AMBIGUOUS = ("error", "AmbiguousWriteError")
ALL_FAILED = ("error", "AllRegionsFailed")
EXPECTED = {
    ("refuse", "read"): (REMOTE_OK, (0, 1)),
    ("refuse", "idempotent-write"): (REMOTE_OK, (0, 1)),
    ("refuse", "non-idempotent-write"): (REMOTE_OK, (0, 1)),
    ("refuse", "transaction"): (REMOTE_OK, (0, 1)),
    ("refuse", "partiql-write"): (REMOTE_OK, (0, 1)),
    ("reset", "read"): (REMOTE_OK, (0, 1)),
    ("reset", "idempotent-write"): (REMOTE_OK, (0, 1)),
    ("blackhole", "read"): (REMOTE_OK, (0, 1)),
    ("blackhole", "idempotent-write"): (REMOTE_OK, (0, 1)),
    ("blackhole", "non-idempotent-write"): (AMBIGUOUS, (0, 0)),
    ("blackhole", "transaction"): (AMBIGUOUS, (0, 0)),
    ("blackhole", "partiql-write"): (AMBIGUOUS, (0, 0)),
    ("late", "read"): (REMOTE_OK, (1, 1)),
    ("late", "idempotent-write"): (REMOTE_OK, (1, 1)),
    ("late", "non-idempotent-write"): (AMBIGUOUS, (1, 0)),
    ("late", "transaction"): (AMBIGUOUS, (1, 0)),
    ("late", "partiql-write"): (AMBIGUOUS, (1, 0)),
    ("error-500-all", "read"): (REMOTE_OK, (0, 1)),
    ("error-500-all", "idempotent-write"): (REMOTE_OK, (0, 1)),
    ("error-500-all", "non-idempotent-write"): (AMBIGUOUS, (0, 0)),
    ("error-500-all", "transaction"): (AMBIGUOUS, (0, 0)),
    ("error-500-all", "partiql-write"): (AMBIGUOUS, (0, 0)),
    ("throttling", "read"): (REMOTE_OK, (0, 1)),
    ("throttling", "idempotent-write"): (REMOTE_OK, (0, 1)),
    ("throttling", "non-idempotent-write"): (REMOTE_OK, (0, 1)),
    ("throttling", "transaction"): (REMOTE_OK, (0, 1)),
    ("throttling", "partiql-write"): (REMOTE_OK, (0, 1)),
    ("replica-missing", "read"): (ALL_FAILED, (0, 1)),
    ("replica-missing", "idempotent-write"): (ALL_FAILED, (0, 1)),
    ("replica-missing", "non-idempotent-write"): (ALL_FAILED, (0, 1)),
    ("replica-missing", "transaction"): (ALL_FAILED, (0, 1)),
    # ("replica-missing", "partiql-write"): moto answers PartiQL on a missing
    # table with HTTP 500 (a KeyError), DynamoDB with ResourceNotFoundException:
    # checked by the invariants only (MOTO.md).
    ("corrupt", "read"): (REMOTE_OK, (2, 1)),
    ("corrupt", "idempotent-write"): (REMOTE_OK, (2, 1)),
    ("corrupt", "non-idempotent-write"): (AMBIGUOUS, (1, 0)),
    ("corrupt", "transaction"): (AMBIGUOUS, (1, 0)),
    ("corrupt", "partiql-write"): (AMBIGUOUS, (1, 0)),
    ("tls-handshake", "read"): (REMOTE_OK, (0, 1)),
    ("tls-handshake", "idempotent-write"): (REMOTE_OK, (0, 1)),
    ("tls-handshake", "non-idempotent-write"): (REMOTE_OK, (0, 1)),
    ("tls-handshake", "transaction"): (REMOTE_OK, (0, 1)),
    ("tls-handshake", "partiql-write"): (REMOTE_OK, (0, 1)),
    ("unresolvable", "read"): (REMOTE_OK, (0, 1)),
    ("unresolvable", "idempotent-write"): (REMOTE_OK, (0, 1)),
    ("unresolvable", "non-idempotent-write"): (REMOTE_OK, (0, 1)),
    ("unresolvable", "transaction"): (REMOTE_OK, (0, 1)),
    ("unresolvable", "partiql-write"): (REMOTE_OK, (0, 1)),
    ("refuse/drop", "read"): (ALL_FAILED, (0, 2)),
    ("refuse/drop", "idempotent-write"): (ALL_FAILED, (0, 2)),
    ("refuse/drop", "non-idempotent-write"): (AMBIGUOUS, (0, 1)),
    ("refuse/drop", "transaction"): (AMBIGUOUS, (0, 1)),
    ("refuse/drop", "partiql-write"): (AMBIGUOUS, (0, 1)),
    ("refuse/reset", "read"): (ALL_FAILED, (0, 0)),
    ("refuse/reset", "idempotent-write"): (ALL_FAILED, (0, 0)),
    # Writes that are not idempotent under refuse/reset: AmbiguousWriteError
    # (the reset dropped a sent request) or AllRegionsFailed (it refused the
    # connection first); never applied: checked by the invariants.
}
# The region a write may have been applied in, when the caller is told
# AmbiguousWriteError: the first one whose fault may have applied it.
AMBIGUOUS_REGION = {"refuse/drop": REMOTE, "refuse/reset": REMOTE}
APPLIED = ("forwarded", "late", "dropped", "corrupted")
KINDS = ("read", "idempotent-write", "non-idempotent-write", "transaction", "partiql-write")
OPERATIONS = {
    "read": "GetItem",
    "idempotent-write": "PutItem",
    "non-idempotent-write": "UpdateItem",
    "transaction": "TransactWriteItems",
    "partiql-write": "ExecuteStatement",
}


def _send(session, table, kind):
    key = {"pk": {"S": "item"}, "sk": {"S": "s"}}
    client = session.client
    if kind == "read":
        return client.get_item(TableName=table, Key=key)
    if kind == "idempotent-write":
        return client.put_item(TableName=table, Item={**key, "v": {"S": "new"}})
    add = {"UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}
    if kind == "non-idempotent-write":
        return client.update_item(TableName=table, Key=key, **add)
    if kind == "transaction":
        return client.transact_write_items(TransactItems=[{"Update": {"TableName": table, "Key": key, **add}}])
    # moto's PartiQL has no arithmetic; any PartiQL write counts as not
    # idempotent, so what it sets does not change the routing under test.
    return client.execute_statement(Statement=f"UPDATE \"{table}\" SET v = 'new' WHERE pk = 'item' AND sk = 's'")


def _applied(lab, region, operation, since):
    return sum(1 for r in lab.requests(region)[since:] if r.operation == operation and r.action in APPLIED)


@pytest.fixture
def matrix_lab(request, fault):
    """The shared lab; for a TLS fault, a lab of its own with https
    endpoints (started while the shared one is idle, and stopped after)."""
    if fault not in TLS_FAULTS:
        yield request.getfixturevalue("local_regions")
        return
    with LocalRegions([LOCAL, REMOTE], tls=True) as tls_lab:
        yield tls_lab


@pytest.fixture
def matrix_table(matrix_lab):
    """A table of its own, seeded in both regions, replication paused."""
    lab = matrix_lab
    name = f"Matrix-{uuid.uuid4().hex[:8]}"
    lab.create_table(TableName=name, **KEY_SCHEMA)
    lab.replicator.pause()
    item = {"pk": {"S": "item"}, "sk": {"S": "s"}, "v": {"S": "old"}}
    for region in (LOCAL, REMOTE):
        lab.client(region, direct=True).put_item(TableName=name, Item=item)
    yield name
    lab.heal()
    lab.replicator.resume()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_matrix(matrix_lab, matrix_table, fault, kind):
    lab, table = matrix_lab, matrix_table
    if fault == "replica-missing":
        lab.client(REMOTE, direct=True).delete_table(TableName=table)
    finished, attempts = [], []
    session = lab.session(
        timeouts=TIMEOUTS,
        breaker=rp.BreakerPolicy(fail_max=50, reset_timeout=60),
        listeners=[
            lambda event: finished.append(event) if isinstance(event, OperationFinished) else None,
            lambda event: attempts.append(event) if isinstance(event, (CallFinished, FailedOver)) else None,
        ],
        **({"endpoints": lab.named_endpoints} if fault in NAMED_FAULTS else {}),
    )
    session.prepare()  # clients built before the fault: only the fault is timed
    for region, (mode, params) in FAULTS[fault].items():
        lab.fault(region, mode, **params)
    operation = OPERATIONS[kind]
    since = {region: len(lab.requests(region)) for region in (LOCAL, REMOTE)}

    try:
        _send(session, table, kind)
        seen = ("served", finished[-1].region)
    except (rp.RegionProxyError, ClientError) as error:
        seen = ("error", type(error).__name__)
        caught = error
    applied = (_applied(lab, LOCAL, operation, since[LOCAL]), _applied(lab, REMOTE, operation, since[REMOTE]))

    # Invariants, whatever the timing.
    if kind != "read" and kind != "idempotent-write":
        assert sum(applied) <= 1, f"a write that is not idempotent was applied {applied}"
        if seen[0] == "served":
            assert sum(applied) == 1
    if kind in ("read", "idempotent-write") and fault not in NO_HEALTHY_REGION:
        assert seen[0] == "served", f"{kind} under {fault} failed: {seen}"
    if fault in TLS_FAULTS:
        assert applied[0] == 0, "a request crossed a failed TLS handshake"
    if fault in NAMED_FAULTS:
        # one attempt in the region whose name does not resolve, judged so:
        # no retry there, straight to the next region
        local = [e.outcome for e in attempts if isinstance(e, CallFinished) and e.region == LOCAL]
        assert local == ["fault"], local
        assert [(e.from_region, e.reason) for e in attempts if isinstance(e, FailedOver)] == [(LOCAL, "dns")]
    moto_500 = (fault, kind) == ("replica-missing", "partiql-write")
    if seen == AMBIGUOUS and not moto_500:
        assert caught.region == AMBIGUOUS_REGION.get(fault, LOCAL)
    if fault == "refuse/reset":
        assert applied == (0, 0) and seen in (AMBIGUOUS, ALL_FAILED)
    if fault == "replica-missing" and not moto_500:
        assert isinstance(caught.errors[REMOTE], ReplicaMissingError)

    expected = EXPECTED.get((fault, kind))
    if expected is not None:
        assert (seen, applied) == expected


@pytest.mark.parametrize("fault", ["corrupt"])
def test_corrupt_answers_count_against_the_breaker_until_it_opens(matrix_lab, matrix_table, fault):
    # A corrupting middlebox in front of the local region: reads and
    # idempotent writes are served by the remote region, and the breaker
    # counts every corrupt answer, so it opens and stops paying for them.
    lab, table = matrix_lab, matrix_table
    served = []
    session = lab.session(
        timeouts=TIMEOUTS,
        breaker=rp.BreakerPolicy(fail_max=3, reset_timeout=60),
        listeners=[
            lambda event: served.append((event.operation, event.region)) if isinstance(event, OperationFinished) else None
        ],
    )
    session.prepare()
    lab.fault(LOCAL, "corrupt")
    served.clear()
    _send(session, table, "read")  # two corrupt answers (a retry in the region), then the remote one
    _send(session, table, "idempotent-write")  # the third: the breaker opens
    assert session.replicas[LOCAL].breaker.state == OPEN
    since = len(lab.requests(LOCAL))
    _send(session, table, "read")
    assert [(operation, region) for operation, region in served if operation in ("GetItem", "PutItem")] == [
        ("GetItem", REMOTE),
        ("PutItem", REMOTE),
        ("GetItem", REMOTE),
    ], served
    assert lab.requests(LOCAL)[since:] == []  # the open breaker keeps reads away from it


@pytest.mark.parametrize("fault", ["tls-blackhole"])
def test_handshake_that_never_finishes_fails_over_a_write_that_is_not_idempotent(matrix_lab, matrix_table, fault):
    # A blackholed https endpoint stalls the TLS handshake of a new
    # connection: botocore calls it a read timeout, but no byte of the
    # request was written, so even this write fails over. (The lab opens a
    # connection per request; a request sent on a kept-alive connection to
    # a blackholed region may have been applied: AmbiguousWriteError.)
    lab, table = matrix_lab, matrix_table
    session = lab.session(timeouts=TIMEOUTS)
    session.prepare()
    lab.fault(LOCAL, "blackhole")
    since = {region: len(lab.requests(region)) for region in (LOCAL, REMOTE)}
    _send(session, table, "non-idempotent-write")
    assert (_applied(lab, LOCAL, "UpdateItem", since[LOCAL]), _applied(lab, REMOTE, "UpdateItem", since[REMOTE])) == (0, 1)
    assert session.replicas[LOCAL].breaker.failures == 1


# -- Read semantics under faults: hedged and strongly consistent reads, read-your-writes --
#
# A second matrix on the same harness: each case is one read (two with the
# cache on: the second may be a hit) through a fresh session, with arrivals
# of that read counted per region as above. The table's item is "old" in
# both regions; before the fault, the session writes the item itself, so
# the value a read returns says which region answered and whether the
# session reads its own write:
#
# - ``slow/...``: the session writes "new" (it lands locally, replication
#   paused), then the local region is slow (SLOW seconds per request, not
#   down: no breaker opens). Reads are hedged after HEDGE_DELAY.
#   ``+demoted``: one read beforehand was hedged and won, so the local
#   region is demoted for a minute. ``remote-denies``: the remote region
#   answers reads with AccessDeniedException (an IAM policy scoped to the
#   local table), a caller error.
# - ``flapped/...``: the local region is refused (or evacuated) while the
#   session puts "first", which fails over to the remote region; then it is
#   healed (restored) and the session puts "second", which lands locally.

SLOW = 1.0  # the slow local region: twenty hedge delays, so the hedge wins on a loaded machine
HEDGE_DELAY = 0.05
# The local region is slow, not down: its answer must not time out.
READ_TIMEOUTS = rp.Timeouts(connect=1.0, read=5.0, attempts=2)

READ_FAULTS = (
    "slow/hedged",
    "slow/hedged+demoted",
    "slow/remote-denies",
    "flapped/refuse",
    "flapped/refuse+cache",
    "flapped/evacuate",
    "flapped/evacuate+cache",
)
READS = ("get", "query", "consistent-get", "consistent-query")
READ_OPERATIONS = {"get": "GetItem", "query": "Query", "consistent-get": "GetItem", "consistent-query": "Query"}

# (fault, read) -> (region that served the first read, the value it
# returned), arrivals of the read at (local, remote), and the outcomes of
# the Hedged events it made. With the cache on, the read is made twice.
LOCAL_NEW = (LOCAL, "new")
LOCAL_SECOND = (LOCAL, "second")
REMOTE_OLD = (REMOTE, "old")
READ_EXPECTED = {
    ("slow/hedged", "get"): (REMOTE_OLD, (1, 1), ["won"]),
    ("slow/hedged", "query"): (REMOTE_OLD, (1, 1), ["won"]),
    ("slow/hedged", "consistent-get"): (LOCAL_NEW, (1, 0), []),
    ("slow/hedged", "consistent-query"): (LOCAL_NEW, (1, 0), []),
    ("slow/hedged+demoted", "get"): (REMOTE_OLD, (0, 1), []),
    ("slow/hedged+demoted", "query"): (REMOTE_OLD, (0, 1), []),
    ("slow/hedged+demoted", "consistent-get"): (LOCAL_NEW, (1, 0), []),
    ("slow/hedged+demoted", "consistent-query"): (LOCAL_NEW, (1, 0), []),
    # The denial is not an application: arrivals count only forwarded requests.
    ("slow/remote-denies", "get"): (LOCAL_NEW, (1, 0), ["lost"]),
    ("slow/remote-denies", "query"): (LOCAL_NEW, (1, 0), ["lost"]),
    ("slow/remote-denies", "consistent-get"): (LOCAL_NEW, (1, 0), []),
    ("slow/remote-denies", "consistent-query"): (LOCAL_NEW, (1, 0), []),
}
for _fault in ("flapped/refuse", "flapped/evacuate"):
    for _read in READS:
        READ_EXPECTED[(_fault, _read)] = (LOCAL_SECOND, (1, 0), [])
        # With the cache on, the second GetItem is a hit. Strongly consistent
        # reads bypass the cache; a query's answer is kept only from the
        # region that took every write of its table within sticky_seconds,
        # and "first" (replaced, but within the window) is in the remote
        # region: both go to DynamoDB again.
        READ_EXPECTED[(f"{_fault}+cache", _read)] = (LOCAL_SECOND, (1, 0) if _read == "get" else (2, 0), [])


def _read(session, table, read):
    consistent = {"ConsistentRead": True} if read.startswith("consistent") else {}
    key = {"pk": {"S": "item"}, "sk": {"S": "s"}}
    if read.endswith("get"):
        item = session.client.get_item(TableName=table, Key=key, **consistent).get("Item")
        return None if item is None else item["v"]["S"]
    items = session.client.query(
        TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "item"}}, **consistent
    )["Items"]
    assert len(items) == 1, items
    return items[0]["v"]["S"]


def _put(session, table, v):
    session.client.put_item(TableName=table, Item={"pk": {"S": "item"}, "sk": {"S": "s"}, "v": {"S": v}})


def _stored(lab, table):
    key = {"pk": {"S": "item"}, "sk": {"S": "s"}}
    items = [lab.client(region, direct=True).get_item(TableName=table, Key=key)["Item"] for region in (LOCAL, REMOTE)]
    return tuple(item["v"]["S"] for item in items)


def _attempts_done(events, operation, since):
    """Wait (bounded) until each hedged read's two sides have finished: the
    loser is not awaited by the caller, but its arrival is counted."""
    later = events[since:]
    for hedge in [e for e in later if isinstance(e, Hedged) and e.operation == operation and e.outcome != "refused"]:
        for region in (hedge.from_region, hedge.to_region):
            assert wait_for(
                lambda region=region: any(
                    isinstance(e, CallFinished) and e.region == region and e.operation == operation for e in events[since:]
                ),
                timeout=30,
            ), f"the {operation} side in {region} never finished"


def _set_up_read_fault(lab, session, table, fault, events):
    if fault.startswith("slow/"):
        _put(session, table, "new")
        lab.fault(LOCAL, "latency", delay=SLOW)
        if fault == "slow/remote-denies":
            lab.fault(REMOTE, "error", status=400, code="AccessDeniedException", operations=("GetItem", "Query"))
        if fault == "slow/hedged+demoted":
            since = len(events)
            assert _read(session, table, "get") == "old"  # the hedge wins: the local region is demoted
            assert [e.region for e in events[since:] if isinstance(e, RegionDemoted)] == [LOCAL]
            _attempts_done(events, "GetItem", since)
        assert _stored(lab, table) == ("new", "old")
        return
    if fault.startswith("flapped/refuse"):
        lab.fault(LOCAL, "refuse")
        _put(session, table, "first")  # refused before it was sent: fails over
        lab.heal(LOCAL)
    else:
        session.evacuate(LOCAL)
        _put(session, table, "first")
        session.restore(LOCAL)
    _put(session, table, "second")  # lands locally
    assert _stored(lab, table) == ("second", "first")


@pytest.mark.parametrize("read", READS)
@pytest.mark.parametrize("fault", READ_FAULTS)
def test_read_semantics_matrix(matrix_lab, matrix_table, fault, read):
    lab, table = matrix_lab, matrix_table
    events = []
    hedge = None
    if fault.startswith("slow/"):
        demote_after = 1 if fault.endswith("+demoted") else 0
        hedge = rp.HedgePolicy(delay=HEDGE_DELAY, budget=1.0, demote_after=demote_after, demote_for=60)
    cached = fault.endswith("+cache")
    session = lab.session(
        timeouts=READ_TIMEOUTS,
        breaker=rp.BreakerPolicy(fail_max=50, reset_timeout=60),
        hedge=hedge,
        cache=rp.CachePolicy(ttl=60) if cached else None,
        listeners=[events.append],
    )
    session.prepare()
    _set_up_read_fault(lab, session, table, fault, events)
    operation = READ_OPERATIONS[read]
    since = {region: len(lab.requests(region)) for region in (LOCAL, REMOTE)}
    mark = len(events)

    values = [_read(session, table, read) for _ in range(2 if cached else 1)]
    _attempts_done(events, operation, mark)
    later = events[mark:]
    served = [e.region for e in later if isinstance(e, OperationFinished) and e.operation == operation]
    hedges = [e.outcome for e in later if isinstance(e, Hedged)]
    applied = (_applied(lab, LOCAL, operation, since[LOCAL]), _applied(lab, REMOTE, operation, since[REMOTE]))

    # Invariants, whatever the timing.
    if read.startswith("consistent"):
        # Never hedged, never reordered by a demotion: the local region
        # answers with the session's latest write.
        assert hedges == [] and applied[1] == 0, f"a strongly consistent read left the local region: {hedges} {applied}"
        assert set(values) == {"second" if fault.startswith("flapped/") else "new"}
    if fault.startswith("flapped/"):
        assert values == ["second"] * len(values), "read-your-writes followed a write that a later one replaced"

    seen = (served[0], values[0]) if served else (None, values[0])
    assert (seen, applied, hedges) == READ_EXPECTED[(fault, read)]


# -- issue 20: strongly consistent reads on both table kinds, and the write conflict
#
# The local region is refused; the table is MREC (moto's own description),
# MRSC as the lab describes it (learned once, through the breakers: the
# description comes from the remote region), or MRSC declared
# (``consistency=``: never described). A strongly consistent read of an
# MREC table that fails over is served and says so (ConsistencyDowngraded),
# or with ``consistent_read_failover="refuse"`` is not sent elsewhere; an
# MRSC table's fails over with its meaning intact, and says nothing.

TABLE_KINDS = ("mrec", "mrsc-learned", "mrsc-declared")
CONSISTENT_READS = ("consistent-get", "consistent-query")
# (kind, consistent_read_failover) -> (what the caller sees, arrivals of the read at (local, remote), downgrades)
CONSISTENT_EXPECTED = {
    ("mrec", "serve"): ((REMOTE, "old"), (0, 1), 1),
    ("mrec", "refuse"): ("AllRegionsFailed", (0, 0), 0),
    ("mrsc-learned", "serve"): ((REMOTE, "old"), (0, 1), 0),
    ("mrsc-learned", "refuse"): ((REMOTE, "old"), (0, 1), 0),
    ("mrsc-declared", "serve"): ((REMOTE, "old"), (0, 1), 0),
    ("mrsc-declared", "refuse"): ((REMOTE, "old"), (0, 1), 0),
}


@pytest.mark.parametrize("read", CONSISTENT_READS)
@pytest.mark.parametrize("failover", ["serve", "refuse"])
@pytest.mark.parametrize("table_kind", TABLE_KINDS)
@pytest.mark.parametrize("fault", ["refuse"])
def test_strongly_consistent_read_matrix(matrix_lab, matrix_table, fault, table_kind, failover, read):
    from regionproxy.events import ConsistencyDowngraded

    lab, table = matrix_lab, matrix_table
    if table_kind == "mrsc-learned":
        lab.strongly_consistent(table)
    events = []
    session = lab.session(
        timeouts=TIMEOUTS,
        consistency={table: "strong"} if table_kind == "mrsc-declared" else None,
        consistent_read_failover=failover,
        listeners=[events.append],
    )
    lab.fault(LOCAL, "refuse")
    operation = READ_OPERATIONS[read]
    since = {region: len(lab.requests(region)) for region in (LOCAL, REMOTE)}
    try:
        value = _read(session, table, read)
    except rp.RegionProxyError as error:
        seen = type(error).__name__
        assert set(error.errors) == {LOCAL}  # the region's error, no other region asked
    else:
        served = [e.region for e in events if isinstance(e, OperationFinished) and e.operation == operation]
        seen = (served[-1], value)
    applied = (_applied(lab, LOCAL, operation, since[LOCAL]), _applied(lab, REMOTE, operation, since[REMOTE]))
    downgraded = [e for e in events if isinstance(e, ConsistencyDowngraded)]
    assert (seen, applied, len(downgraded)) == CONSISTENT_EXPECTED[(table_kind, failover)]
    for event in downgraded:
        assert (event.operation, event.tables, event.from_region, event.to_region) == (operation, (table,), LOCAL, REMOTE)
    assert session.status()["consistency_downgraded"]["total"] == len(downgraded)
    described = [r for r in lab.requests(REMOTE)[since[REMOTE] :] if r.operation == "DescribeTable"]
    assert len(described) == (0 if table_kind == "mrsc-declared" else 1)  # learned once, or declared


# (write, what the caller sees, conflicts answered in the local region, remote arrivals)
CONFLICT_EXPECTED = {
    "idempotent-write": ("ReplicatedWriteConflictException", 2, 0),  # retried once in its region (attempts=2)
    "non-idempotent-write": ("ReplicatedWriteConflictException", 1, 0),
}


@pytest.mark.parametrize("kind", list(CONFLICT_EXPECTED))
@pytest.mark.parametrize("fault", ["write-conflict"])
def test_write_conflict_matrix(matrix_lab, matrix_table, fault, kind):
    lab, table = matrix_lab, matrix_table
    lab.strongly_consistent(table)
    events = []
    session = lab.session(timeouts=TIMEOUTS, breaker=rp.BreakerPolicy(fail_max=1), listeners=[events.append])
    lab.write_conflict(LOCAL)
    operation = OPERATIONS[kind]
    since = {region: len(lab.requests(region)) for region in (LOCAL, REMOTE)}
    with pytest.raises(ClientError) as caught:
        _send(session, table, kind)
    conflicts = sum(1 for r in lab.requests(LOCAL)[since[LOCAL] :] if r.operation == operation and r.action == "error")
    seen = (caught.value.response["Error"]["Code"], conflicts, _applied(lab, REMOTE, operation, since[REMOTE]))
    assert seen == CONFLICT_EXPECTED[kind]
    # A conflict, not a fault: even with fail_max=1 the breaker stays closed.
    assert session.breaker_state(LOCAL) == "closed"
    assert _stored(lab, table) == ("old", "old")  # applied nowhere
