"""The session's clients honour their own ``meta.events`` as boto3's do.

Side by side, in-process (moto's ``mock_aws``, a fresh backend for each
run): the same caller code through boto3's resource (or client) and
through the session's must leave the same items in the table and get the
same answers. The code is what callers really write against boto3's
emitter: swapping ``table.meta.client.meta.events`` for an empty
``HierarchicalEmitter`` to send wire format (ScyllaDB Alternator's test
suite does it), unregistering boto3's transformation handlers by their
unique ids, registering handlers of their own, botocore's ``Stubber``.
tests/integration/test_conformance.py runs the wire-format idiom against
the lab.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.hooks import HierarchicalEmitter
from botocore.stub import Stubber
from moto import mock_aws

import regionproxy as rp
from regionproxy.events import CacheLookup
from tests.support import LOCAL, REMOTE, canonical, closed_port_url, outcome

TABLE = "T"
REFUSED = closed_port_url()  # nothing listens there
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass
class Api:
    """What a scenario uses: the resource, its Table, and a way to see
    every item stored, in wire format (not through the surface under test)."""

    resource: Any
    table: Any
    client: Any  # the wire-format client (boto3.client / session.client)
    stored: Callable[[], Any]


@pytest.fixture
def backend() -> Iterator[boto3.session.Session]:
    """A fresh in-process DynamoDB (moto) with table ``T`` in both regions."""
    with mock_aws():
        boto = boto3.session.Session(**CREDENTIALS)
        for region in (LOCAL, REMOTE):
            boto.client("dynamodb", region_name=region).create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "p", "KeyType": "HASH"}, {"AttributeName": "s", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "p", "AttributeType": "S"}, {"AttributeName": "s", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        yield boto


def _stored(boto: boto3.session.Session) -> Callable[[], Any]:
    def stored() -> Any:
        return {
            region: sorted(
                boto.client("dynamodb", region_name=region).scan(TableName=TABLE)["Items"],
                key=lambda item: json.dumps(item, sort_keys=True, default=str),
            )
            for region in (LOCAL, REMOTE)
        }

    return stored


def boto3_api(boto: boto3.session.Session, endpoint: str | None = None) -> Api:
    resource = boto.resource("dynamodb", region_name=LOCAL, endpoint_url=endpoint)
    client = boto.client("dynamodb", region_name=LOCAL, endpoint_url=endpoint)
    return Api(resource, resource.Table(TABLE), client, _stored(boto))


def session_api(session: rp.RegionSession, boto: boto3.session.Session) -> Api:
    return Api(session.resource, session.table(TABLE), session.client, _stored(boto))




def side_by_side(backend: boto3.session.Session, scenario: Callable[[Api], Any], **session_args: Any) -> tuple[Any, Any]:
    """``scenario``'s outcome through boto3 and through a session, each on
    a fresh backend (moto's state reset in between)."""
    expected = outcome(scenario, boto3_api(backend))
    _reset(backend)
    session = rp.RegionSession([LOCAL, REMOTE], boto3_session=backend, **session_args)
    try:
        got = outcome(scenario, session_api(session, backend))
    finally:
        session.close()
    return expected, got


def _reset(boto: boto3.session.Session) -> None:
    for region in (LOCAL, REMOTE):
        client = boto.client("dynamodb", region_name=region)
        for item in client.scan(TableName=TABLE)["Items"]:
            client.delete_item(TableName=TABLE, Key={"p": item["p"], "s": item["s"]})


# -- swapping or thinning the emitter: wire format, as in boto3 ------------------


def swapped_emitter_sends_wire_format(api: Api) -> Any:
    client = api.table.meta.client
    before = client.meta.events
    client.meta.events = HierarchicalEmitter()  # ScyllaDB Alternator's client_no_transform()
    try:
        api.table.put_item(Item={"p": {"S": "x"}, "s": {"S": "1"}, "n": {"N": "3"}, "m": {"M": {"S": {"S": "y"}}}})
        client.put_item(TableName=TABLE, Item={"p": {"S": "x"}, "s": {"S": "2"}, "l": {"L": [{"N": "1.50"}]}})
        got = api.table.get_item(Key={"p": {"S": "x"}, "s": {"S": "1"}})
        queried = client.query(
            TableName=TABLE, KeyConditionExpression="p = :p", ExpressionAttributeValues={":p": {"S": "x"}}
        )
    finally:
        client.meta.events = before
    restored = api.table.get_item(Key={"p": "x", "s": "1"})  # Python values again
    return got, queried, restored, api.stored()


def unregistered_value_handlers_send_wire_format(api: Api) -> Any:
    events = api.table.meta.client.meta.events
    events.unregister("before-parameter-build.dynamodb", unique_id="dynamodb-attr-value-input")
    events.unregister("after-call.dynamodb", unique_id="dynamodb-attr-value-output")
    api.table.put_item(Item={"p": {"S": "x"}, "s": {"S": "1"}, "n": {"N": "3"}})
    return api.table.get_item(Key={"p": {"S": "x"}, "s": {"S": "1"}}), api.stored()


def without_the_copy_handler_the_callers_item_is_transformed(api: Api) -> Any:
    # boto3 transforms the caller's own dict in place once the copy is gone.
    api.table.meta.client.meta.events.unregister("provide-client-params.dynamodb", unique_id="dynamodb-create-params-copy")
    item = {"p": "x", "s": "1", "n": Decimal(3), "tags": {"a"}}
    api.table.put_item(Item=item)
    return item, api.stored()


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(swapped_emitter_sends_wire_format, id="swapped-emitter"),
        pytest.param(unregistered_value_handlers_send_wire_format, id="unregistered-value-handlers"),
        pytest.param(without_the_copy_handler_the_callers_item_is_transformed, id="no-copy-handler"),
    ],
)
def test_the_transformation_is_the_handlers_on_meta_events(backend, scenario):
    expected, got = side_by_side(backend, scenario)
    assert expected[0] == "returned", expected
    assert got == expected


def test_a_wire_format_get_is_never_answered_from_the_python_value_cache(backend):
    def scenario(api: Api) -> Any:
        api.table.put_item(Item={"p": "x", "s": "1", "n": Decimal(3)})
        python = api.table.get_item(Key={"p": "x", "s": "1"})  # cached (session): Python values
        client = api.table.meta.client
        before = client.meta.events
        client.meta.events = HierarchicalEmitter()
        try:
            wire = api.table.get_item(Key={"p": {"S": "x"}, "s": {"S": "1"}})
        finally:
            client.meta.events = before
        return python, wire, api.table.get_item(Key={"p": "x", "s": "1"})

    lookups: list[CacheLookup] = []
    expected, got = side_by_side(
        backend,
        scenario,
        cache=rp.CachePolicy(maxsize=100, ttl=60),
        listeners=[lambda event: lookups.append(event) if isinstance(event, CacheLookup) else None],
    )
    assert got == expected
    assert lookups[-1].hit, "the restored emitter answers from the cache again"


def test_replacing_the_resource_clients_emitter_leaves_the_regional_clients_alone(backend):
    session = rp.RegionSession([LOCAL, REMOTE], boto3_session=backend)
    regional = session.replicas[LOCAL].client.meta.events
    wire = session.client.meta.events
    session.table(TABLE).meta.client.meta.events = HierarchicalEmitter()
    assert session.replicas[LOCAL].client.meta.events is regional
    assert session.client.meta.events is wire
    session.client.put_item(TableName=TABLE, Item={"p": {"S": "x"}, "s": {"S": "1"}})  # the regional client still works
    session.close()


# -- handlers of the caller's: they run where boto3 runs them --------------------


def a_parameter_build_handler_adds_a_field(api: Api) -> Any:
    def stamp(params: dict[str, Any], **kwargs: Any) -> None:
        params["Item"]["stamp"] = Decimal(7)  # a Python value: boto3 serialises it after this handler

    api.table.meta.client.meta.events.register("before-parameter-build.dynamodb.PutItem", stamp)
    api.table.put_item(Item={"p": "x", "s": "1"})
    return api.table.get_item(Key={"p": "x", "s": "1"}), api.stored()


def handlers_see_each_event_as_boto3s_do(api: Api) -> Any:
    seen: list[Any] = []

    def record(event_name: str, **kwargs: Any) -> None:
        if event_name.startswith("before-call"):
            request = kwargs["params"]
            seen.append((event_name, request["method"], request["headers"]["X-Amz-Target"], json.loads(request["body"])))
        elif event_name.startswith("after-call"):
            seen.append((event_name, kwargs["http_response"].status_code, copy.deepcopy(kwargs["parsed"])))
        else:
            seen.append((event_name, copy.deepcopy(kwargs["params"])))

    events = api.table.meta.client.meta.events
    for event in ("provide-client-params", "before-parameter-build", "before-call", "after-call"):
        events.register(f"{event}.dynamodb", record)  # after boto3's own handlers for the event
    api.table.put_item(Item={"p": "x", "s": "1", "n": Decimal("1.50"), "tags": {"a"}})
    api.table.get_item(Key={"p": "x", "s": "1"})
    with pytest.raises(ClientError):
        api.table.put_item(Item={"p": "x", "s": "1"}, ConditionExpression="attribute_not_exists(p)")
    return seen


def a_stubber_answers_instead_of_the_table(api: Api) -> Any:
    with Stubber(api.table.meta.client) as stubber:
        stubber.add_response(
            "get_item", {"Item": {"p": {"S": "x"}, "n": {"N": "5"}}}, expected_params={"TableName": TABLE, "Key": {"p": "x", "s": "1"}}
        )
        stubber.add_client_error("put_item", "ConditionalCheckFailedException", "stubbed", 400)
        got = api.table.get_item(Key={"p": "x", "s": "1"})
        try:
            api.table.put_item(Item={"p": "x", "s": "1"})
        except ClientError as error:
            failed = (type(error).__name__, error.response["Error"])
        stubber.assert_no_pending_responses()
    return got, failed, api.stored()


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(a_parameter_build_handler_adds_a_field, id="parameter-build-handler"),
        pytest.param(handlers_see_each_event_as_boto3s_do, id="every-per-call-event"),
        pytest.param(a_stubber_answers_instead_of_the_table, id="stubber"),
    ],
)
def test_the_callers_handlers_run_as_in_boto3(backend, scenario):
    expected, got = side_by_side(backend, scenario)
    assert expected[0] == "returned", expected
    assert got == expected


def _after_calls(client: Any) -> list[Any]:
    seen: list[Any] = []
    client.meta.events.register("after-call.dynamodb", lambda parsed, **kwargs: seen.append(copy.deepcopy(parsed)))
    return seen


@pytest.mark.parametrize("surface", ["values", "client"])
def test_handlers_run_whichever_region_answers(backend, surface):
    # The local region refuses connections; the remote one answers. boto3,
    # pointed at a healthy region, is the reference.
    session = rp.RegionSession([LOCAL, REMOTE], endpoints={LOCAL: REFUSED}, boto3_session=backend)
    runs = {"boto3": boto3_api(backend), "session": session_api(session, backend)}
    seen = {}
    for name, api in runs.items():
        _reset(backend)
        if surface == "values":
            after_calls = _after_calls(api.table.meta.client)
            api.table.put_item(Item={"p": "x", "s": "1", "n": Decimal(2)})
            api.table.get_item(Key={"p": "x", "s": "1"})
        else:
            after_calls = _after_calls(api.client)
            api.client.put_item(TableName=TABLE, Item={"p": {"S": "x"}, "s": {"S": "1"}})
            api.client.get_item(TableName=TABLE, Key={"p": {"S": "x"}, "s": {"S": "1"}})
        seen[name] = canonical(after_calls)
    session.close()
    assert len(seen["boto3"]) == 2
    assert seen["session"] == seen["boto3"]


@pytest.mark.parametrize("surface", ["values", "client"])
def test_after_call_error_handlers_get_the_error_the_caller_gets(backend, surface):
    # Every region refuses: boto3 raises botocore's connection error, the
    # session AllRegionsFailed; each one's handler gets what its caller gets.
    session = rp.RegionSession([LOCAL, REMOTE], endpoints={LOCAL: REFUSED, REMOTE: REFUSED}, boto3_session=backend)
    boto = backend.resource("dynamodb", region_name=LOCAL, endpoint_url=REFUSED, config=Config(retries={"max_attempts": 1}))
    plain = backend.client("dynamodb", region_name=LOCAL, endpoint_url=REFUSED, config=Config(retries={"max_attempts": 1}))
    clients = {
        "boto3": boto.Table(TABLE).meta.client if surface == "values" else plain,
        "session": session.table(TABLE).meta.client if surface == "values" else session.client,
    }
    key = {"p": "x", "s": "1"} if surface == "values" else {"p": {"S": "x"}, "s": {"S": "1"}}
    for client in clients.values():
        errors: list[BaseException] = []
        client.meta.events.register("after-call-error.dynamodb", lambda exception, errors=errors, **kwargs: errors.append(exception))
        with pytest.raises(Exception) as raised:  # noqa: PT011 - which one is the point
            client.get_item(TableName=TABLE, Key=key)
        assert errors == [raised.value]
    session.close()


def test_answers_deserialised_in_place_by_handlers_leave_the_wire_format_cache_alone(backend):
    # Through the emitter, boto3's after-call handler turns the routed
    # answer into Python values in place; the session's wire-format cache
    # keeps answers of its own, so the wire client still reads wire format.
    session = rp.RegionSession([LOCAL, REMOTE], boto3_session=backend, cache=rp.CachePolicy(maxsize=100, ttl=60))
    table = session.table(TABLE)
    table.put_item(Item={"p": "x", "s": "1", "m": {"a": Decimal(1)}, "l": [Decimal(1), "b"]})
    table.meta.client.meta.events.register("after-call.dynamodb.PutItem", lambda **kwargs: None)  # through the emitter
    wire = {"p": {"S": "x"}, "s": {"S": "1"}, "m": {"M": {"a": {"N": "1"}}}, "l": {"L": [{"N": "1"}, {"S": "b"}]}}
    for _ in range(2):  # a miss, then a hit
        assert table.get_item(Key={"p": "x", "s": "1"})["Item"] == {"p": "x", "s": "1", "m": {"a": 1}, "l": [1, "b"]}
        assert session.client.get_item(TableName=TABLE, Key={"p": {"S": "x"}, "s": {"S": "1"}})["Item"] == wire
        query = {"KeyConditionExpression": "p = :p", "ExpressionAttributeValues": {":p": "x"}}
        assert table.query(**query)["Items"] == [{"p": "x", "s": "1", "m": {"a": 1}, "l": [1, "b"]}]
        assert session.client.query(TableName=TABLE, **{**query, "ExpressionAttributeValues": {":p": {"S": "x"}}})["Items"] == [wire]
    session.close()
