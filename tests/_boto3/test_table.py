"""The Python-value client, Table and resource over a recorded ``execute``:
what goes to the session (wire format), what comes back (Python values).

No servers: the session is a stand-in that records each ``execute`` and
answers from a script. tests/integration/test_conformance.py compares the
same surfaces with boto3's against the lab.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.types import Binary

from regionproxy._boto3.client import RegionClient, ResourceClient
from regionproxy._boto3.resource import RegionResource
from tests.support import LOCAL, REGIONS, REMOTE, closed_port_url


class RecordingSession:
    """A stand-in for the session, as the surfaces see it (the
    ``CallRouter`` protocol): the regions, the local region's client (for
    the service model only), the caller's handlers (none), and ``execute``,
    which records each call in wire format and answers from a script."""

    def __init__(self, answer: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self._client = boto3.session.Session(aws_access_key_id="t", aws_secret_access_key="t").client(
            "dynamodb",
            region_name=LOCAL,
            endpoint_url=closed_port_url(),  # never called
        )
        self.regions = (LOCAL, REMOTE)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._answer = answer or (lambda operation, params: {})
        self._lock = threading.Lock()

    def local_client(self) -> Any:
        return self._client

    def caller_handlers(self) -> tuple[Any, ...]:
        return ()

    def execute(self, operation: str, params: dict[str, Any], values: Any = None) -> dict[str, Any]:
        wire = values.to_wire(params) if values is not None else params
        with self._lock:
            self.calls.append((operation, wire))
        answer = self._answer(operation, wire)
        return values.to_python(answer) if values is not None else answer


@pytest.fixture
def session() -> RecordingSession:
    return RecordingSession()


def test_every_operation_of_the_model_is_a_method(session):
    client = ResourceClient(session)
    model = client.meta.service_model
    assert {name for name in dir(client) if not name.startswith("_")} >= {
        "batch_get_item",
        "transact_write_items",
        "execute_statement",
        "describe_table",
        "list_tables",
    }
    assert len(client._operations) == len(model.operation_names)


def test_transaction_items_are_sent_in_wire_format(session):
    ResourceClient(session).transact_write_items(
        TransactItems=[{"Put": {"TableName": "T", "Item": {"p": "x", "n": 1, "s": {"a"}, "b": b"\x01"}}}]
    )
    assert session.calls == [
        (
            "TransactWriteItems",
            {
                "TransactItems": [
                    {
                        "Put": {
                            "TableName": "T",
                            "Item": {"p": {"S": "x"}, "n": {"N": "1"}, "s": {"SS": ["a"]}, "b": {"B": b"\x01"}},
                        }
                    }
                ]
            },
        )
    ]


def test_responses_come_back_in_python_values():
    session = RecordingSession(
        lambda operation, params: {
            "Responses": {"T": [{"p": {"S": "x"}, "n": {"N": "1.50"}, "ns": {"NS": ["1", "2"]}, "b": {"B": b"\x00"}}]},
            "UnprocessedKeys": {"T": {"Keys": [{"p": {"S": "y"}}]}},
        }
    )
    response = ResourceClient(session).batch_get_item(RequestItems={"T": {"Keys": [{"p": "x"}, {"p": "y"}]}})
    item = response["Responses"]["T"][0]
    assert item == {"p": "x", "n": Decimal("1.50"), "ns": {Decimal(1), Decimal(2)}, "b": Binary(b"\x00")}
    assert str(item["n"]) == "1.50"
    assert response["UnprocessedKeys"] == {"T": {"Keys": [{"p": "y"}]}}


def test_conditions_become_placeholders_next_to_the_callers_own(session):
    RegionResource(session).Table("T").query(
        KeyConditionExpression=Key("p").eq("x"),
        FilterExpression=Attr("n").gt(1),
        ProjectionExpression="#own",
        ExpressionAttributeNames={"#own": "own"},
    )
    [(operation, params)] = session.calls
    assert operation == "Query"
    assert params == {
        "TableName": "T",
        "KeyConditionExpression": "#n1 = :v1",
        "FilterExpression": "#n0 > :v0",
        "ProjectionExpression": "#own",
        "ExpressionAttributeNames": {"#own": "own", "#n0": "n", "#n1": "p"},
        "ExpressionAttributeValues": {":v0": {"N": "1"}, ":v1": {"S": "x"}},
    }


def test_the_callers_parameters_are_left_as_they_were(session):
    item = {"p": "x", "tags": {"a"}, "map": {"n": 1}}
    keys = [{"p": "x"}]
    RegionResource(session).Table("T").put_item(Item=item, ConditionExpression=Attr("p").not_exists())
    ResourceClient(session).batch_get_item(RequestItems={"T": {"Keys": keys}})
    assert item == {"p": "x", "tags": {"a"}, "map": {"n": 1}}
    assert keys == [{"p": "x"}]


def test_an_object_repeated_in_the_parameters_is_serialised_each_time(session):
    # boto3 copies with a memo that forgets: a shared dict becomes two copies,
    # each serialised once (a plain deepcopy would serialise one copy twice).
    shared = {"p": "x"}
    ResourceClient(session).batch_get_item(RequestItems={"T": {"Keys": [shared, shared]}})
    assert session.calls[0][1]["RequestItems"]["T"]["Keys"] == [{"p": {"S": "x"}}, {"p": {"S": "x"}}]


@pytest.mark.parametrize(
    ("method", "params", "operation"),
    [
        pytest.param("describe_table", {"TableName": "T"}, "DescribeTable", id="describe_table"),
        pytest.param("list_tables", {"Limit": 5}, "ListTables", id="list_tables"),
    ],
)
def test_operations_without_values_pass_through_unchanged(session, method, params, operation):
    getattr(ResourceClient(session), method)(**params)
    assert session.calls == [(operation, params)]


def test_positional_arguments_are_refused_as_by_botocore(session):
    for client in (ResourceClient(session), RegionClient(session)):
        with pytest.raises(TypeError, match=r"get_item\(\) only accepts keyword arguments"):
            client.get_item({"TableName": "T"})
    assert session.calls == []


def test_wire_client_sends_parameters_as_given(session):
    RegionClient(session).get_item(TableName="T", Key={"p": {"S": "x"}})
    assert session.calls == [("GetItem", {"TableName": "T", "Key": {"p": {"S": "x"}}})]


def test_table_name_comes_first_and_the_callers_keywords_win(session):
    table = RegionResource(session).Table("T")
    table.get_item(Key={"p": "x"})
    table.get_item(TableName="Other", Key={"p": "x"})
    assert [params["TableName"] for _, params in session.calls] == ["T", "Other"]


def _describing(count: list[int]) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    def answer(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "DescribeTable":
            count[0] += 1
            return {
                "Table": {
                    "TableName": params["TableName"],
                    "TableStatus": "ACTIVE",
                    "ItemCount": count[0],
                    "KeySchema": [{"AttributeName": "p", "KeyType": "HASH"}],
                }
            }
        return {}

    return answer


def test_description_attributes_load_once_until_an_action_drops_them():
    describes = [0]
    session = RecordingSession(_describing(describes))
    table = RegionResource(session).Table("T")
    assert table.table_name == "T" and describes == [0]  # the identifier: no call
    assert (table.item_count, table.table_status, table.key_schema) == (1, "ACTIVE", [{"AttributeName": "p", "KeyType": "HASH"}])
    assert table.global_secondary_indexes is None  # not in the description
    assert describes == [1]
    table.put_item(Item={"p": "x"})
    assert table.meta.data is None
    assert table.item_count == 2
    table.reload()
    assert table.item_count == 3


def test_unknown_attributes_are_attribute_errors(session):
    table = RegionResource(session).Table("T")
    with pytest.raises(AttributeError, match="no_such_thing"):
        table.no_such_thing  # noqa: B018
    assert session.calls == []


def test_waiters_call_describe_table_through_the_session():
    describes = [0]
    session = RecordingSession(_describing(describes))
    RegionResource(session).Table("T").wait_until_exists()
    RegionClient(session).get_waiter("table_exists").wait(TableName="T")
    assert [operation for operation, _ in session.calls] == ["DescribeTable", "DescribeTable"]


def test_batch_writer_resends_unprocessed_items_through_the_session():
    def answer(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "BatchWriteItem" and len(session.calls) == 1:
            return {"UnprocessedItems": {"T": copy.deepcopy(params["RequestItems"]["T"][:2])}}  # as parsed: new objects
        return {"UnprocessedItems": {}}

    session = RecordingSession(answer)
    with RegionResource(session).Table("T").batch_writer() as batch:
        for n in range(3):
            batch.put_item(Item={"p": f"k{n}", "n": n})
    sent = [[request["PutRequest"]["Item"]["p"]["S"] for request in params["RequestItems"]["T"]] for _, params in session.calls]
    assert sent == [["k0", "k1", "k2"], ["k0", "k1"]]


def test_tables_collection_pages_and_limits():
    pages = {None: {"TableNames": ["A", "B"], "LastEvaluatedTableName": "B"}, "B": {"TableNames": ["C"]}}
    session = RecordingSession(lambda operation, params: dict(pages[params.get("ExclusiveStartTableName")]))
    resource = RegionResource(session)
    assert [table.name for table in resource.tables.all()] == ["A", "B", "C"]
    assert [table.name for table in resource.tables.limit(2)] == ["A", "B"]
    assert [[t.name for t in page] for page in resource.tables.pages()] == [["A", "B"], ["C"]]
    assert all(operation == "ListTables" for operation, _ in session.calls)


def test_create_table_returns_the_table_loaded(session):
    session._answer = lambda operation, params: {"TableDescription": {"TableName": "N", "TableStatus": "CREATING"}}
    table = RegionResource(session).create_table(TableName="N")
    assert (table.name, table.table_status) == ("N", "CREATING")
    assert [operation for operation, _ in session.calls] == ["CreateTable"]


@pytest.mark.parametrize("through_the_emitter", [False, True], ids=["shortcut", "emitter"])
def test_threads_sharing_a_table_get_their_own_placeholders(session, through_the_emitter):
    # The condition builder numbers placeholders as it goes: one per thread,
    # also when the call goes through meta.events (a handler of the caller's
    # is registered), where one condition handler serves every thread.
    table = RegionResource(session).Table("T")
    if through_the_emitter:
        table.meta.client.meta.events.register("before-call.dynamodb", lambda **kwargs: None)
    errors: list[BaseException] = []

    def scan(n: int) -> None:
        try:
            for _ in range(50):
                table.scan(FilterExpression=Attr("a").eq(n) & Attr("b").eq(n))
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=scan, args=(n,)) for n in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads interleave inside the builder, as under load
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    for _, params in session.calls:
        assert params["FilterExpression"] == "(#n0 = :v0 AND #n1 = :v1)"
        assert params["ExpressionAttributeValues"][":v0"] == params["ExpressionAttributeValues"][":v1"]


def test_no_handler_is_registered_on_the_regional_client(session):
    client = session.local_client()
    table = RegionResource(session).Table("T")
    table.put_item(Item={"p": "x"}, ConditionExpression=Attr("p").not_exists())
    assert not [unique_id for unique_id in client.meta.events._emitter._unique_id_handlers if unique_id.startswith("dynamodb-")]


def test_session_table_and_resource_share_one_client(lab_free_session):
    session = lab_free_session
    assert session.table("T").meta.client is session.resource.meta.client
    assert session.resource is session.resource
    assert session.table("T") == session.resource.Table("T")


@pytest.fixture
def lab_free_session():
    import regionproxy as rp

    session = rp.RegionSession(
        list(REGIONS),
        endpoints=dict.fromkeys(REGIONS, closed_port_url()),
        boto3_session=boto3.session.Session(aws_access_key_id="t", aws_secret_access_key="t"),
    )
    yield session
    session.close()


def test_a_condition_object_can_be_used_again(session):
    # Conditions are not copied (nothing changes them): the same object
    # serves any number of calls.
    table = RegionResource(session).Table("T")
    condition = Key("p").eq("x") & Key("s").begins_with("a")
    table.query(KeyConditionExpression=condition)
    table.query(KeyConditionExpression=condition)
    first, second = (params for _, params in session.calls)
    assert first == second
    assert first["KeyConditionExpression"] == "(#n0 = :v0 AND begins_with(#n1, :v1))"
    assert condition.get_expression()["values"][0].get_expression()["values"][1] == "x"
