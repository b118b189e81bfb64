"""Handlers registered on the caller's boto3 session run where boto3 runs
them: the per-call ones on the surfaces, once per call, on what the caller
passed; the per-attempt ones on each region's client, once per attempt.

In-process DynamoDB (moto's ``mock_aws``); the local region refuses
connections where a test needs a second attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.handlers import BUILTIN_HANDLERS

import regionproxy as rp
from regionproxy._boto3.emitters import PER_CALL_EVENTS, Registration, caller_registrations
from tests.support import LOCAL, REMOTE, closed_port_url, moto_table

TABLE = "T"
REFUSED = closed_port_url()
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture
def backend() -> Iterator[None]:
    """A fresh in-process DynamoDB (moto) with table ``T`` in both regions."""
    with moto_table(TABLE, CREDENTIALS):
        yield


def _stamp(params: dict[str, Any], **kwargs: Any) -> None:
    params["Item"]["stamp"] = Decimal(7)  # a Python value: serialised after this handler, as boto3 orders them


def test_a_handler_on_the_boto3_session_sees_the_tables_python_values_as_in_boto3(backend):
    plain = boto3.session.Session(**CREDENTIALS)
    plain.events.register("before-parameter-build.dynamodb.PutItem", _stamp)
    plain.resource("dynamodb", region_name=LOCAL).Table(TABLE).put_item(Item={"p": "boto3"})

    theirs = boto3.session.Session(**CREDENTIALS)
    theirs.events.register("before-parameter-build.dynamodb.PutItem", _stamp)
    session = rp.RegionSession([LOCAL, REMOTE], boto3_session=theirs)
    try:
        session.table(TABLE).put_item(Item={"p": "session"})
        direct = boto3.session.Session(**CREDENTIALS).resource("dynamodb", region_name=LOCAL).Table(TABLE)
        assert direct.get_item(Key={"p": "boto3"})["Item"] == {"p": "boto3", "stamp": 7}
        assert direct.get_item(Key={"p": "session"})["Item"] == {"p": "session", "stamp": 7}
    finally:
        session.close()


@pytest.mark.parametrize("surface", ["table", "client"])
def test_a_per_call_handler_runs_once_per_call_whatever_the_attempts(backend, surface):
    seen: list[str] = []
    theirs = boto3.session.Session(**CREDENTIALS)
    for event in PER_CALL_EVENTS[:4]:
        theirs.events.register(f"{event}.dynamodb.PutItem", lambda event_name, **kwargs: seen.append(event_name))
    # The local region refuses: each call is two attempts, the second in the remote region.
    session = rp.RegionSession([LOCAL, REMOTE], endpoints={LOCAL: REFUSED}, boto3_session=theirs)
    try:
        if surface == "table":
            session.table(TABLE).put_item(Item={"p": "x"})
        else:
            session.client.put_item(TableName=TABLE, Item={"p": {"S": "x"}})
        assert session.status()["operations"]["write"]["served_remote"] == 1, "failed over: two attempts"
    finally:
        session.close()
    assert seen == [f"{event}.dynamodb.PutItem" for event in PER_CALL_EVENTS[:4]]


def test_a_per_attempt_handler_on_the_boto3_session_still_runs_per_attempt(backend):
    # boto3's clients emit before-send once per attempt (botocore's retries
    # included); the session's attempts are its regional clients' calls.
    sent: list[str] = []
    theirs = boto3.session.Session(**CREDENTIALS)
    theirs.events.register("before-send.dynamodb.PutItem", lambda request, **kwargs: sent.append(request.url))
    session = rp.RegionSession([LOCAL, REMOTE], boto3_session=theirs)
    try:
        session.table(TABLE).put_item(Item={"p": "x"})
    finally:
        session.close()
    assert len(sent) == 1


def test_the_regional_clients_carry_none_of_the_callers_per_call_handlers(backend):
    theirs = boto3.session.Session(**CREDENTIALS)
    theirs.events.register("before-call.dynamodb", _stamp, unique_id="callers-stamp")
    session = rp.RegionSession([LOCAL, REMOTE], boto3_session=theirs)
    try:
        regional = caller_registrations(session.local_client().meta.events)  # botocore's per-client ones only
        assert regional is not None and not [r for r in regional if r.handler is _stamp]
        assert [r.unique_id for r in caller_registrations(session.client.meta.events)] == ["callers-stamp"]
        assert [r.unique_id for r in caller_registrations(theirs.events)] == ["callers-stamp"], "the caller's session keeps it"
    finally:
        session.close()


def test_handlers_are_copied_in_their_place_and_with_their_unique_ids():
    # boto3 registers its transformations on the resource client after the
    # session's handlers were copied there: a caller's handler of the same
    # event runs first, and a caller's unique id is honoured.
    theirs = boto3.session.Session(**CREDENTIALS)
    order: list[str] = []
    theirs.events.register("before-parameter-build.dynamodb", lambda **kwargs: order.append("middle"), unique_id="mine")
    theirs.events.register_first("before-parameter-build.dynamodb", lambda **kwargs: order.append("first"))
    theirs.events.register_last("before-parameter-build", lambda **kwargs: order.append("last"))
    session = rp.RegionSession([LOCAL, REMOTE], endpoints={LOCAL: REFUSED, REMOTE: REFUSED}, boto3_session=theirs)
    try:
        events = session.client.meta.events
        events.emit("before-parameter-build.dynamodb.DescribeTable", params={}, model=None)
        assert order == ["first", "middle", "last"]
        events.register("before-parameter-build.dynamodb", lambda **kwargs: order.append("again"), unique_id="mine")
        events.emit("before-parameter-build.dynamodb.DescribeTable", params={}, model=None)
        assert order[3:] == ["first", "middle", "last"], "the unique id kept a second registration out"
    finally:
        session.close()


def test_caller_registrations_lists_the_per_call_handlers_of_dynamodb_only():
    # Pins botocore's emitter internals that caller_registrations reads.
    def handler(**kwargs: Any) -> None:
        pass

    boto = boto3.session.Session(**CREDENTIALS)
    kept = [
        ("provide-client-params.dynamodb.GetItem", "first"),
        ("before-parameter-build", "middle"),
        ("before-call.*.PutItem", "middle"),
        ("after-call.dynamodb", "last"),
        ("after-call-error", "middle"),
    ]
    for event, section in kept:
        {"first": boto.events.register_first, "middle": boto.events.register, "last": boto.events.register_last}[section](
            event, handler
        )
    for event in ("before-call.s3", "before-send.dynamodb", "needs-retry", "after-call.s3.GetObject"):
        boto.events.register(event, handler)
    def counted(**kwargs: Any) -> None:
        pass

    boto.events.register("before-call.dynamodb.Query", counted, unique_id="counted", unique_id_uses_count=True)
    boto.events.register("before-call.dynamodb.Query", counted, unique_id="counted", unique_id_uses_count=True)
    found = caller_registrations(boto.events)
    assert sorted((r.event, r.section) for r in found if r.unique_id is None) == sorted(kept)
    assert [r for r in found if r.unique_id] == [Registration("before-call.dynamodb.Query", counted, "middle", "counted", 2)]
    assert not {(r.event, r.handler) for r in found} & {(spec[0], spec[1]) for spec in BUILTIN_HANDLERS}


def test_an_emitter_of_unknown_shape_is_left_alone_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="regionproxy"):
        assert caller_registrations(object()) is None
    assert "cannot list the handlers" in caplog.text


def test_a_fresh_boto3_session_has_no_handler_of_the_callers():
    # Pins boto3's and botocore's own registrations: none of them is taken
    # for the caller's (each would cost every call of the surfaces its shortcut).
    assert caller_registrations(boto3.session.Session(**CREDENTIALS).events) == ()
