"""The fault matrix: every local-region fault x every kind of operation.

Each case sends one call through a fresh session over the lab (replication
paused, so each region's effects are its own), then asserts which region
served, what the caller saw, and how many times the request was applied in
each region: the number of times it reached that region's server (the lab
proxy forwards a request, or with ``late`` forwards it and answers after
the client gave up). A write that may have been applied is never applied
twice, and a caller told "ok" has its write applied exactly once.

The README's table of outcomes is this module's EXPECTED table.
"""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

import regionproxy as rp
from regionproxy.errors import ReplicaMissingError
from regionproxy.events import OperationFinished
from tests.conftest import KEY_SCHEMA

LOCAL, REMOTE = "eu-west-3", "us-east-1"
# The healthy region's timeout is generous (in-process moto on a loaded
# machine); blackhole and late hold their answers far longer than it.
TIMEOUTS = rp.Timeouts(connect=1.0, read=1.0, attempts=2)
LATE_HOLD = 3.0

FAULTS = {
    "refuse": ("refuse", {}),
    "reset": ("reset", {}),
    "blackhole": ("blackhole", {}),
    "late": ("late", {"delay": LATE_HOLD}),
    "error-500-all": ("error", {"status": 500}),
    "error-500-30pct": ("error", {"status": 500, "rate": 0.3}),
    "throttling": ("error", {"status": 400}),
    "replica-missing": ("refuse", {}),  # and the remote region has no replica of the table
    "flapping": ("flap", {"delay": 0.5}),
}

# (fault, kind) -> what the caller sees: the region that served, or the
# error class; and how often the request reached each server (local,
# remote): applied, except under replica-missing, where the remote server
# rejects it (no such table) and the local one was never reached.
# None: depends on timing (reset races the send, 30% errors, flapping);
# those cases are checked by the invariants alone.
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
}
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
    return sum(1 for r in lab.requests(region)[since:] if r.operation == operation and r.action in ("forwarded", "late"))


@pytest.fixture
def matrix_table(lab):
    """A table of its own, seeded in both regions, replication paused."""
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
def test_fault_matrix(lab, matrix_table, fault, kind):
    table = matrix_table
    if fault == "replica-missing":
        lab.client(REMOTE, direct=True).delete_table(TableName=table)
    finished = []
    session = lab.session(
        timeouts=TIMEOUTS,
        breaker=rp.BreakerPolicy(fail_max=50, reset_timeout=60),
        listeners=[lambda event: finished.append(event) if isinstance(event, OperationFinished) else None],
    )
    session.prepare()  # clients built before the fault: only the fault is timed
    mode, params = FAULTS[fault]
    lab.fault(LOCAL, mode, **params)
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
    if kind in ("read", "idempotent-write") and fault != "replica-missing":
        assert seen[0] == "served", f"{kind} under {fault} failed: {seen}"
    moto_500 = (fault, kind) == ("replica-missing", "partiql-write")
    if seen == AMBIGUOUS and not moto_500:
        assert caught.region == LOCAL
    if fault == "replica-missing" and not moto_500:
        assert isinstance(caught.errors[REMOTE], ReplicaMissingError)

    expected = EXPECTED.get((fault, kind))
    if expected is not None:
        assert (seen, applied) == expected
