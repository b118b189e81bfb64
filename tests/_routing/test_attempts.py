"""The attempt loop's decisions, against scripted regions: no sockets, no sleeps.

Each region answers from a script (a result, or an error to raise), so a
test states exactly what every attempt met and asserts what the loop did:
how often each region was called, what the caller got, which breakers
counted, which events went out.
"""

from __future__ import annotations

import ssl

import pytest
import urllib3.exceptions
from botocore.exceptions import (
    ChecksumError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
    SSLError,
)

from regionproxy._config.policies import BreakerPolicy
from regionproxy._dynamodb.calls import Call
from regionproxy._regions.breaker import CLOSED, HALF_OPEN, OPEN, RegionBreaker
from regionproxy._routing.attempts import AttemptLoop
from regionproxy.errors import AllRegionsFailed, AmbiguousWriteError, ReplicaMissingError
from regionproxy.events import CallFinished, FailedOver, Hooks, OperationFinished, PoisonRequest, ReplicaMissing
from tests.support import LOCAL, REMOTE, FakeClock

PLAN = (LOCAL, REMOTE)
URL = "http://127.0.0.1:1"
OK = {"Item": {"pk": {"S": "a"}}}


def client_error(code, status):
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


class ScriptedRegion:
    """A replica whose calls answer from ``script`` in order (the last repeats)."""

    def __init__(self, region, hooks, clock, script):
        self.region = region
        self.breaker = RegionBreaker(region, BreakerPolicy(fail_max=3, reset_timeout=10), hooks, clock=clock)
        self.script = list(script)
        self.calls = 0

    def call(self, operation, params):
        self.calls += 1
        step = self.script[min(self.calls, len(self.script)) - 1]
        if isinstance(step, BaseException):
            raise step
        return step


class Harness:
    def __init__(self, local, remote, attempts=2):
        self.events = []
        self.clock = FakeClock(now=1000.0)
        self.sleeps = []
        hooks = Hooks([self.events.append])
        self.regions = {
            LOCAL: ScriptedRegion(LOCAL, hooks, self.clock, local),
            REMOTE: ScriptedRegion(REMOTE, hooks, self.clock, remote),
        }
        self.loop = AttemptLoop(
            self.regions, hooks, attempts=attempts, clock=self.clock, sleep=self.sleeps.append, rng=lambda: 0.5
        )

    def run(self, call):
        return self.loop.run(call, PLAN)

    def calls(self):
        return self.regions[LOCAL].calls, self.regions[REMOTE].calls

    def of(self, kind):
        return [event for event in self.events if isinstance(event, kind)]


GET = Call("GetItem", {"TableName": "t", "Key": {"pk": {"S": "a"}}})
ADD = Call(
    "UpdateItem",
    {"TableName": "t", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {}},
)
PUT = Call("PutItem", {"TableName": "t", "Item": {"pk": {"S": "a"}}})


# -- defect 1: the session sees every attempt; a maybe-applied write is never resent


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ReadTimeoutError(endpoint_url=URL), id="late-answer"),
        pytest.param(ConnectionClosedError(endpoint_url=URL), id="dropped-after-send"),
        pytest.param(client_error("InternalServerError", 500), id="500"),
    ],
)
def test_maybe_applied_non_idempotent_write_is_sent_once_in_all(error):
    harness = Harness([error, OK], [OK])
    with pytest.raises(AmbiguousWriteError):
        harness.run(ADD)
    assert harness.calls() == (1, 0)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(EndpointConnectionError(endpoint_url=URL), id="refused"),
        pytest.param(client_error("ThrottlingException", 400), id="throttled"),
        pytest.param(client_error("ServiceUnavailable", 503), id="503-not-applied"),
    ],
)
def test_write_refused_before_it_was_applied_fails_over(error):
    harness = Harness([error], [OK])
    assert harness.run(ADD) == (OK, REMOTE)
    assert harness.calls()[1] == 1


def test_transient_failure_is_retried_in_region_before_failing_over():
    harness = Harness([ConnectionClosedError(endpoint_url=URL), OK], [OK])
    assert harness.run(GET) == (OK, LOCAL)
    assert harness.calls() == (2, 0)
    assert harness.sleeps == [0.5 * 0.025]


def test_idempotent_write_keeps_its_in_region_retry():
    harness = Harness([ConnectionClosedError(endpoint_url=URL), OK], [OK])
    assert harness.run(PUT) == (OK, LOCAL)
    assert harness.calls() == (2, 0)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ReadTimeoutError(endpoint_url=URL), id="read-timeout"),
        pytest.param(EndpointConnectionError(endpoint_url=URL), id="refused"),
    ],
)
def test_timeouts_and_refusals_fail_over_without_a_second_local_attempt(error):
    harness = Harness([error, OK], [OK])
    assert harness.run(GET) == (OK, REMOTE)
    assert harness.calls() == (1, 1)


def test_marked_idempotent_write_fails_over_after_a_late_answer():
    harness = Harness([ReadTimeoutError(endpoint_url=URL)], [OK])
    call = Call(ADD.operation, ADD.params, marked_idempotent=True)
    assert harness.run(call) == (OK, REMOTE)


# -- issue 15: a maybe-applied write in the failover region is not sent again there


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ConnectionClosedError(endpoint_url=URL), id="dropped-after-send"),
        pytest.param(ChecksumError(checksum_type="crc32", expected_checksum=1, actual_checksum=2), id="corrupt-answer"),
        pytest.param(client_error("InternalServerError", 500), id="500"),
        pytest.param(ReadTimeoutError(endpoint_url=URL), id="late-answer"),
    ],
)
def test_write_that_failed_over_and_may_be_applied_in_the_failover_region_is_not_sent_again(error):
    # Local refused (not applied: fails over), then the remote region may
    # have applied it: no second attempt there (the first three are
    # retried in-region for a read), and the caller hears where.
    harness = Harness([EndpointConnectionError(endpoint_url=URL)], [error, OK])
    with pytest.raises(AmbiguousWriteError) as caught:
        harness.run(ADD)
    assert harness.calls() == (1, 1)
    assert caught.value.region == REMOTE
    assert [(e.to_region, e.outcome) for e in harness.of(FailedOver)] == [(REMOTE, "fault")]


def test_read_that_failed_over_is_retried_in_the_failover_region_after_a_dropped_connection():
    harness = Harness([EndpointConnectionError(endpoint_url=URL)], [ConnectionClosedError(endpoint_url=URL), OK])
    assert harness.run(GET) == (OK, REMOTE)
    assert harness.calls() == (1, 2)


# -- issue 15: errors the classifier does not know are faults, maybe applied


def _checksum_error():
    return ChecksumError(checksum_type="crc32", expected_checksum=1, actual_checksum=2)


@pytest.mark.parametrize("call", [pytest.param(GET, id="read"), pytest.param(PUT, id="idempotent-write")])
def test_corrupt_answers_are_retried_in_region_then_fail_over_and_count_against_the_breaker(call):
    harness = Harness([_checksum_error()], [OK])
    assert harness.run(call) == (OK, REMOTE)
    assert harness.calls() == (2, 1)
    assert harness.regions[LOCAL].breaker.failures == 2


def test_one_corrupt_answer_is_retried_in_region():
    harness = Harness([_checksum_error(), OK], [OK])
    assert harness.run(GET) == (OK, LOCAL)
    assert harness.calls() == (2, 0)


def test_non_idempotent_write_with_a_corrupt_answer_is_ambiguous():
    harness = Harness([_checksum_error()], [OK])
    with pytest.raises(AmbiguousWriteError) as caught:
        harness.run(ADD)
    assert isinstance(caught.value.__cause__, ChecksumError)
    assert harness.calls() == (1, 0)


def _handshake_failure():
    """An SSLError raised the way urllib3 raises it from a handshake."""

    def do_handshake():
        raise ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")

    try:
        try:
            do_handshake()
        except ssl.SSLError as cause:
            raise urllib3.exceptions.SSLError(cause)  # noqa: B904 - urllib3 raises it so
    except urllib3.exceptions.SSLError as wrapped:
        return SSLError(endpoint_url=URL, error=wrapped)


def test_tls_handshake_failure_fails_over_even_a_non_idempotent_write():
    harness = Harness([_handshake_failure()], [OK])
    assert harness.run(ADD) == (OK, REMOTE)
    assert harness.calls() == (1, 1)
    assert harness.regions[LOCAL].breaker.failures == 1


def test_unknown_error_fails_over_and_is_charged_when_another_region_answers():
    harness = Harness([RuntimeError("a corrupted body the parser choked on")], [OK])
    assert harness.run(GET) == (OK, REMOTE)
    assert harness.calls() == (1, 1)  # boto3 does not retry what it does not know
    assert harness.regions[LOCAL].breaker.failures == 1


def test_unknown_error_everywhere_is_raised_as_it_was_and_charges_no_breaker():
    first = RuntimeError("raised by the request in every region")
    harness = Harness([first], [RuntimeError("again")])
    for _ in range(5):
        with pytest.raises(RuntimeError) as caught:
            harness.run(GET)
        assert caught.value is first
    assert [region.breaker.state for region in harness.regions.values()] == [CLOSED, CLOSED]
    assert harness.of(PoisonRequest)[0].error == "RuntimeError"


def test_unknown_error_on_a_non_idempotent_write_is_ambiguous():
    harness = Harness([RuntimeError("?")], [OK])
    with pytest.raises(AmbiguousWriteError):
        harness.run(ADD)
    assert harness.calls() == (1, 0)


def test_type_error_of_the_arguments_reaches_the_caller_unchanged_without_failover():
    error = TypeError("keywords must be strings")
    harness = Harness([error], [OK])
    with pytest.raises(TypeError) as caught:
        harness.run(PUT)
    assert caught.value is error
    assert harness.calls() == (1, 0)
    assert harness.regions[LOCAL].breaker.failures == 0


# -- defect 4: poison requests


def test_request_failing_with_5xx_everywhere_is_raised_as_it_was_and_charges_no_breaker():
    first = client_error("InternalServerError", 500)
    harness = Harness([first], [client_error("InternalServerError", 500)])
    for _ in range(5):
        with pytest.raises(ClientError) as caught:
            harness.run(GET)
        assert caught.value is first
    assert [region.breaker.failures for region in harness.regions.values()] == [0, 0]
    assert [region.breaker.state for region in harness.regions.values()] == [CLOSED, CLOSED]
    assert harness.of(PoisonRequest)[0].regions == PLAN


def test_5xx_is_charged_to_the_region_when_another_region_answered_the_same_request():
    harness = Harness([client_error("InternalServerError", 500)], [OK])
    for _ in range(2):
        assert harness.run(GET) == (OK, REMOTE)
    assert harness.regions[LOCAL].breaker.failures == 4  # two attempts per call
    assert harness.of(PoisonRequest) == []


def test_5xx_with_another_region_unreachable_is_all_regions_failed_and_charges_only_the_transport_fault():
    harness = Harness([EndpointConnectionError(endpoint_url=URL)], [client_error("InternalServerError", 500)])
    with pytest.raises(AllRegionsFailed) as caught:
        harness.run(GET)
    assert set(caught.value.errors) == set(PLAN)
    assert (harness.regions[LOCAL].breaker.failures, harness.regions[REMOTE].breaker.failures) == (1, 0)


# -- defect 5: a replica missing in a failover region


def test_missing_replica_in_the_failover_region_is_reported_not_raised():
    harness = Harness([EndpointConnectionError(endpoint_url=URL)], [client_error("ResourceNotFoundException", 400)])
    with pytest.raises(AllRegionsFailed) as caught:
        harness.run(GET)
    missing = caught.value.errors[REMOTE]
    assert isinstance(missing, ReplicaMissingError)
    assert "no replica of t in us-east-1" in str(caught.value)
    assert harness.of(ReplicaMissing) == [ReplicaMissing(REMOTE, "t", harness.clock.now)]


def test_missing_table_in_the_preferred_region_is_the_callers_error():
    error = client_error("ResourceNotFoundException", 400)
    harness = Harness([error], [OK])
    with pytest.raises(ClientError) as caught:
        harness.run(GET)
    assert caught.value is error
    assert harness.calls() == (1, 0)


# -- defect 6: only an answer closes a breaker


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ParamValidationError(report="bad"), id="param-validation"),
        pytest.param(NoCredentialsError(), id="no-credentials"),
    ],
)
def test_error_before_sending_releases_a_half_open_trial_without_closing(error):
    harness = Harness([error], [OK])
    breaker = harness.regions[LOCAL].breaker
    for _ in range(3):
        breaker.failed(breaker.admit())
    assert breaker.state == OPEN
    harness.clock.now += 11  # past reset_timeout: the next call is the trial
    with pytest.raises(type(error)):
        harness.run(GET)
    assert breaker.state == HALF_OPEN
    assert breaker.admit() is not None  # the trial was released, not kept out forever


def test_caller_error_reaches_the_caller_unchanged_and_never_fails_over():
    error = client_error("ConditionalCheckFailedException", 400)
    harness = Harness([error], [OK])
    with pytest.raises(ClientError) as caught:
        harness.run(PUT)
    assert caught.value is error
    assert harness.calls() == (1, 0)


# -- defect 15: every failover attempt is counted with its outcome


def test_failover_that_ends_in_an_error_is_counted_with_its_outcome():
    harness = Harness([EndpointConnectionError(endpoint_url=URL)], [ReadTimeoutError(endpoint_url=URL)])
    with pytest.raises(AllRegionsFailed):
        harness.run(GET)
    assert [(e.from_region, e.to_region, e.reason, e.outcome) for e in harness.of(FailedOver)] == [
        (LOCAL, REMOTE, "connection_refused", "fault")
    ]
    finished = harness.of(OperationFinished)
    assert [(f.outcome, f.attempts) for f in finished] == [("failed", 2)]


def test_failover_that_succeeds_is_counted_once():
    harness = Harness([EndpointConnectionError(endpoint_url=URL)], [OK])
    harness.run(GET)
    assert [(e.to_region, e.outcome) for e in harness.of(FailedOver)] == [(REMOTE, "ok")]


def test_open_breaker_sends_reads_to_remote_with_reason_breaker_open():
    harness = Harness([OK], [OK])
    harness.regions[LOCAL].breaker.evacuate()
    assert harness.run(GET) == (OK, REMOTE)
    assert harness.calls() == (0, 1)
    assert harness.of(FailedOver)[0].reason == "breaker_open"


# -- a region failing every write that is not idempotent is charged for it
#    (review 1, defect 3): failures no other region judged form a streak


def _add(n):
    """A counter bump (not idempotent) of item ``n``: a request of its own."""
    return Call(
        "UpdateItem",
        {
            "TableName": "t",
            "Key": {"pk": {"S": f"counter-{n}"}},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        },
    )


def _get(n):
    return Call("GetItem", {"TableName": "t", "Key": {"pk": {"S": f"item-{n}"}}})


SERVER_ERRORS = [
    pytest.param(lambda: client_error("InternalServerError", 500), id="500"),
    pytest.param(lambda: RuntimeError("an error nobody knows"), id="unknown-error"),
]


@pytest.mark.parametrize("server_error", SERVER_ERRORS)
def test_different_writes_failing_in_one_region_open_its_breaker_and_later_writes_fail_over(server_error):
    harness = Harness([server_error()], [OK])
    local = harness.regions[LOCAL].breaker
    with pytest.raises(AmbiguousWriteError):
        harness.run(_add(0))
    assert local.failures == 0  # one request: it may be the request's fault
    with pytest.raises(AmbiguousWriteError):
        harness.run(_add(1))
    assert local.failures == 2  # a second, different one: both were the region's
    with pytest.raises(AmbiguousWriteError):
        harness.run(_add(2))
    assert local.state == OPEN  # fail_max=3
    assert harness.calls() == (3, 0)  # each write sent once, never to a second region
    assert harness.run(_add(3)) == (OK, REMOTE)  # refused before it was sent: fails over
    assert harness.calls() == (3, 1)


@pytest.mark.parametrize("server_error", SERVER_ERRORS)
def test_the_same_write_failing_again_and_again_opens_no_breaker(server_error):
    harness = Harness([server_error()], [OK])
    for _ in range(10):
        with pytest.raises(AmbiguousWriteError):
            harness.run(_add(0))
    assert harness.regions[LOCAL].breaker.failures == 0
    assert harness.regions[LOCAL].breaker.state == CLOSED


def test_an_answer_from_the_region_ends_the_streak():
    error = client_error("InternalServerError", 500)
    harness = Harness([error, OK, error], [OK])
    local = harness.regions[LOCAL].breaker
    with pytest.raises(AmbiguousWriteError):
        harness.run(_add(0))
    assert harness.run(_get(0)) == (OK, LOCAL)  # the region answers: its streak ends
    with pytest.raises(AmbiguousWriteError):
        harness.run(_add(1))
    assert local.failures == 0  # a new streak of one request
    with pytest.raises(AmbiguousWriteError):
        harness.run(_add(2))
    assert local.failures == 2


def test_once_proven_every_withheld_failure_is_charged_even_of_a_repeated_request():
    harness = Harness([client_error("InternalServerError", 500)], [OK])
    for call in (_add(0), _add(1), _add(1)):
        with pytest.raises(AmbiguousWriteError):
            harness.run(call)
    assert harness.regions[LOCAL].breaker.state == OPEN  # 0, then 2, then 3 failures


def test_different_requests_failing_in_every_region_are_poison_requests_and_open_no_breaker():
    harness = Harness([client_error("InternalServerError", 500)], [client_error("InternalServerError", 500)])
    for n in range(10):
        with pytest.raises(ClientError):
            harness.run(_get(n))
    assert [region.breaker.failures for region in harness.regions.values()] == [0, 0]
    assert len(harness.of(PoisonRequest)) == 10


def test_different_reads_failing_in_the_only_region_left_open_nothing():
    # Reads are tried in every admitted region; health probes, which read,
    # charge a read path that fails. Here nowhere else was admitted.
    harness = Harness([client_error("InternalServerError", 500)], [OK])
    harness.regions[REMOTE].breaker.evacuate()
    for n in range(5):
        with pytest.raises(AllRegionsFailed):
            harness.run(_get(n))
    assert harness.regions[LOCAL].breaker.failures == 0


def _stamped_add(n):
    """The same counter bump, sent again with a fresh timestamp each time."""
    call = _add(0)
    params = dict(call.params, UpdateExpression="ADD n :one SET updated_at = :now")
    params["ExpressionAttributeValues"] = {":one": {"N": "1"}, ":now": {"N": str(n)}}
    return Call("UpdateItem", params)


def test_a_bad_write_sent_again_with_new_values_never_opens_the_region_it_fails_over_to():
    error = client_error("InternalServerError", 500)
    harness = Harness([error], [error])
    for n in range(3):  # the local region fails them: different requests, a streak
        with pytest.raises(AmbiguousWriteError):
            harness.run(_stamped_add(n))
    assert harness.regions[LOCAL].breaker.state == OPEN
    with pytest.raises(AmbiguousWriteError) as caught:  # fails over; us-east-1 fails it too
        harness.run(_stamped_add(3))
    assert caught.value.region == REMOTE
    for n in range(4, 10):
        with pytest.raises(AmbiguousWriteError):
            harness.run(_stamped_add(n))
    assert (harness.regions[REMOTE].breaker.state, harness.regions[REMOTE].breaker.failures) == (CLOSED, 0)


# -- review 2: a write that failed may have landed: the loop names where


def _run_noting_maybe_applied(harness, call):
    """What the call raised, and the regions the loop named as ones where
    it may have been applied."""
    maybe_applied = []
    with pytest.raises(Exception) as caught:  # noqa: PT011 - each test asserts which
        harness.loop.run(call, PLAN, maybe_applied=maybe_applied)
    return caught.value, maybe_applied


@pytest.mark.parametrize(
    ("local", "remote", "call", "raised", "regions"),
    [
        pytest.param(
            [ReadTimeoutError(endpoint_url=URL)], [OK], ADD, AmbiguousWriteError, [LOCAL], id="ambiguous-at-home"
        ),
        pytest.param(
            [EndpointConnectionError(endpoint_url=URL)],
            [ConnectionClosedError(endpoint_url=URL)],
            ADD,
            AmbiguousWriteError,
            [REMOTE],
            id="ambiguous-after-failing-over",
        ),
        pytest.param(
            [ReadTimeoutError(endpoint_url=URL)],
            [ConnectionClosedError(endpoint_url=URL)],
            PUT,
            AllRegionsFailed,
            [LOCAL, REMOTE],
            id="idempotent-maybe-applied-everywhere",
        ),
        pytest.param(
            # The retry in the region ends with a refusal: its last error
            # says "not applied", the first attempt may have been.
            [ConnectionClosedError(endpoint_url=URL), EndpointConnectionError(endpoint_url=URL)],
            [EndpointConnectionError(endpoint_url=URL)],
            PUT,
            AllRegionsFailed,
            [LOCAL],
            id="maybe-applied-then-refused-on-the-retry",
        ),
        pytest.param(
            [ReadTimeoutError(endpoint_url=URL)],
            [client_error("AccessDeniedException", 400)],
            PUT,
            ClientError,
            [LOCAL],
            id="maybe-applied-then-a-caller-error-elsewhere",
        ),
        pytest.param(
            [client_error("InternalServerError", 500)],
            [client_error("InternalServerError", 500)],
            PUT,
            ClientError,
            [LOCAL, REMOTE],
            id="poison-request",
        ),
        pytest.param(
            [EndpointConnectionError(endpoint_url=URL)],
            [EndpointConnectionError(endpoint_url=URL)],
            PUT,
            AllRegionsFailed,
            [],
            id="refused-everywhere",
        ),
        pytest.param(
            [ReadTimeoutError(endpoint_url=URL)],
            [ReadTimeoutError(endpoint_url=URL)],
            GET,
            AllRegionsFailed,
            [],
            id="a-read-applies-nothing",
        ),
    ],
)
def test_a_failed_write_names_every_region_where_an_attempt_may_have_applied_it(local, remote, call, raised, regions):
    harness = Harness(local, remote)
    error, maybe_applied = _run_noting_maybe_applied(harness, call)
    assert isinstance(error, raised)
    assert maybe_applied == regions


# -- issue 20: ReplicatedWriteConflictException (an MRSC table's concurrent writes)

CONFLICT = "ReplicatedWriteConflictException"
PUT = Call("PutItem", {"TableName": "t", "Item": {"pk": {"S": "a"}}})
ADD = Call(
    "UpdateItem",
    {"TableName": "t", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}},
)


@pytest.mark.parametrize("status", [pytest.param(400, id="400"), pytest.param(500, id="500")])
def test_a_write_conflict_of_an_idempotent_write_is_retried_in_its_region_after_a_backoff(status):
    harness = Harness([client_error(CONFLICT, status), OK], [OK])
    assert harness.run(PUT) == (OK, LOCAL)
    assert harness.calls() == (2, 0)  # never failed over: every replica would say the same
    assert len(harness.sleeps) == 1  # a backoff before the second attempt
    assert harness.regions[LOCAL].breaker.failures == 0  # a conflict, not a fault


def test_a_write_conflict_of_a_write_that_is_not_idempotent_reaches_the_caller_unchanged():
    conflict = client_error(CONFLICT, 400)
    harness = Harness([conflict, OK], [OK])
    with pytest.raises(ClientError) as caught:
        harness.run(ADD)
    assert caught.value is conflict
    assert harness.calls() == (1, 0)
    assert harness.sleeps == []
    assert harness.regions[LOCAL].breaker.failures == 0


def test_a_write_conflict_that_lasts_reaches_the_caller_after_the_regions_attempts_and_opens_nothing():
    harness = Harness([client_error(CONFLICT, 400)], [OK], attempts=3)
    for _ in range(4):  # more than fail_max (3)
        with pytest.raises(ClientError) as caught:
            harness.run(PUT)
        assert caught.value.response["Error"]["Code"] == CONFLICT
    assert harness.calls() == (12, 0)
    assert harness.regions[LOCAL].breaker.state == CLOSED
# -- one pass per call: the common path (first region, first attempt) is made
# inline, and anything else is handed to the general path; the events are
# those of every attempt, in order, whichever way the call went


def _announced(events):
    """The events as (kind, what they say), times and durations left out."""
    said = []
    for event in events:
        if isinstance(event, CallFinished):
            said.append(("attempt", event.region, event.operation, event.outcome, event.error))
        elif isinstance(event, FailedOver):
            said.append(("failed over", event.from_region, event.to_region, event.reason, event.outcome))
        elif isinstance(event, OperationFinished):
            said.append(("call", event.operation, event.outcome, event.region, event.attempts))
        else:
            said.append((type(event).__name__,))
    return said


@pytest.mark.parametrize(
    ("local", "remote", "evacuated", "raised", "announced"),
    [
        pytest.param(
            [OK], [OK], False, None,
            [("attempt", LOCAL, "GetItem", "ok", None), ("call", "GetItem", "ok", LOCAL, 1)],
            id="served-at-once",
        ),
        pytest.param(
            [client_error("InternalServerError", 500), OK], [OK], False, None,
            [
                ("attempt", LOCAL, "GetItem", "fault", "http_500"),
                ("attempt", LOCAL, "GetItem", "ok", None),
                ("call", "GetItem", "ok", LOCAL, 2),
            ],
            id="first-attempt-failed-then-served-in-region",
        ),
        pytest.param(
            [EndpointConnectionError(endpoint_url=URL)], [OK], False, None,
            [
                ("attempt", LOCAL, "GetItem", "fault", "connection_refused"),
                ("attempt", REMOTE, "GetItem", "ok", None),
                ("failed over", LOCAL, REMOTE, "connection_refused", "ok"),
                ("call", "GetItem", "ok", REMOTE, 2),
            ],
            id="first-attempt-refused-then-failed-over",
        ),
        pytest.param(
            [OK], [OK], True, None,
            [
                ("attempt", REMOTE, "GetItem", "ok", None),
                ("failed over", LOCAL, REMOTE, "breaker_open", "ok"),
                ("call", "GetItem", "ok", REMOTE, 1),
            ],
            id="first-region-kept-out-by-its-breaker",
        ),
        pytest.param(
            [client_error("ConditionalCheckFailedException", 400)], [OK], False, ClientError,
            [
                ("attempt", LOCAL, "GetItem", "caller_error", "ConditionalCheckFailedException"),
                ("call", "GetItem", "caller_error", LOCAL, 1),
            ],
            id="caller-error-at-the-first-attempt",
        ),
        pytest.param(
            [ParamValidationError(report="bad")], [OK], False, ParamValidationError,
            [("call", "GetItem", "caller_error", LOCAL, 1)],
            id="not-sent",
        ),
        pytest.param(
            [KeyboardInterrupt()], [OK], False, KeyboardInterrupt,
            [("call", "GetItem", "caller_error", LOCAL, 1)],
            id="interrupted",
        ),
    ],
)
def test_every_attempt_and_the_call_are_announced_once_in_order(local, remote, evacuated, raised, announced):
    harness = Harness(local, remote)
    if evacuated:
        harness.regions[LOCAL].breaker.evacuate()
        harness.events.clear()
    if raised is None:
        harness.run(GET)
    else:
        with pytest.raises(raised):
            harness.run(GET)
    assert _announced(harness.events) == announced


def test_a_first_attempt_that_failed_is_judged_once_and_released_when_interrupted():
    # The common path hands a failed first attempt to the general path: a
    # half-open trial interrupted mid-call is released (the next call may
    # be the trial), and a fault is counted once, not twice.
    harness = Harness([KeyboardInterrupt()], [OK])
    breaker = harness.regions[LOCAL].breaker
    for _ in range(3):
        breaker.failed(breaker.admit())
    harness.clock.now += 11  # past reset_timeout: the next call is the trial
    with pytest.raises(KeyboardInterrupt):
        harness.run(GET)
    assert breaker.state == HALF_OPEN
    assert breaker.admit() is not None, "the interrupted trial was released"
    faulty = Harness([EndpointConnectionError(endpoint_url=URL)], [OK])
    faulty.run(GET)
    assert faulty.regions[LOCAL].breaker.failures == 1
