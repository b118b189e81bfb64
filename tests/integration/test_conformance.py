"""The session's surfaces behave as boto3's, against the same server.

Each scenario runs through plain boto3 (client, resource, ``Table``,
``Table.meta.client``) and through the session's (``session.client``,
``session.resource``, ``session.table(name)`` and its ``meta.client``),
each time on a fresh table in the lab's local region. ``session.table(name)``
is ``session.resource.Table(name)``, and every Table's ``meta.client`` is
``session.resource.meta.client`` (one object, checked below), so one run
covers both ways of reaching them. Results must be identical (``ResponseMetadata`` aside;
``Decimal`` by its digits, sets, ``Binary`` and types exactly), and so must
exceptions: class name, message, and the error response (``Item`` of a
failed condition, a transaction's cancellation reasons).

moto is the server (see /work/shared/MOTO.md): the scenarios are ones it
answers as DynamoDB does, and the point is that both paths see the same.
Several of them come from boto3's own tests (``tests/integration/test_dynamodb.py``:
every condition operator, sets, binary, ``Decimal``; ``tests/functional/dynamodb``:
the batch writer, placeholders next to the caller's own names).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.types import Binary
from botocore.hooks import HierarchicalEmitter

import regionproxy as rp
from regionproxy.events import CacheLookup, OperationFinished
from regionproxy.testing.examples import load_blog_model
from regionproxy.testing.lab import CREDENTIALS
from tests import support
from tests.support import LOCAL

NAME = "Conformance"
PATIENT = rp.Timeouts(connect=1, read=5)
SPEC: dict[str, Any] = {
    "TableName": NAME,
    "BillingMode": "PAY_PER_REQUEST",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
        {"AttributeName": "kind", "AttributeType": "S"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "ByKind",
            "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
}
# What differs between two creations of the same table, whatever the path.
VOLATILE = frozenset({"ResponseMetadata", "TableId", "CreationDateTime", "LatestStreamArn", "LatestStreamLabel"})
PI = Decimal("3.1415926535897932384626433832795028842")  # 38 significant digits: DynamoDB's most
ITEM = {
    "pk": "a",
    "sk": "1",
    "kind": "post",
    "title": "Hello",
    "n": Decimal("1.50"),
    "pi": PI,
    "big": Decimal("-1E+125"),
    "flag": True,
    "nothing": None,
    "blob": Binary(b"\x00\xff"),
    "raw": b"bytes",
    "tags": {"x", "y"},
    "scores": {Decimal(1), Decimal("2.5")},
    "blobs": {Binary(b"\x01"), Binary(b"\x02")},
    "list": [1, "two", [Decimal("3.0")], {"four": b"4"}],
    "map": {"nested": {"deep": [True, None]}, "empty": {}},
}


@dataclass
class Api:
    """The surfaces one scenario run uses: the wire-format client, the
    resource, the table and the Python-value client under test."""

    client: Any
    resource: Any
    table: Any
    values: Any


def boto3_api(lab) -> Api:
    boto = boto3.session.Session(**CREDENTIALS)
    resource = boto.resource("dynamodb", region_name=LOCAL, endpoint_url=lab.endpoints[LOCAL])
    client = boto.client("dynamodb", region_name=LOCAL, endpoint_url=lab.endpoints[LOCAL])
    table = resource.Table(NAME)
    return Api(client, resource, table, table.meta.client)


def session_api(session: rp.RegionSession) -> Api:
    table = session.table(NAME)
    assert table == session.resource.Table(NAME)
    assert table.meta.client is session.resource.meta.client
    return Api(session.client, session.resource, table, table.meta.client)


def canonical(value: Any) -> Any:
    """``value`` where equal means identical (:func:`tests.support.canonical`),
    with what differs between two tables of the same items left out."""
    return support.canonical(value, VOLATILE)


def outcome(scenario: Callable[[Api], Any], api: Api) -> tuple[Any, ...]:
    return support.outcome(scenario, api, VOLATILE)


def fresh_table(lab) -> None:
    """The local region with one empty table, ``NAME``, and no other."""
    client = lab.client(LOCAL)
    for name in client.list_tables()["TableNames"]:
        client.delete_table(TableName=name)
    client.create_table(**SPEC)


def seed(api: Api, count: int = 5) -> None:
    for n in range(count):
        api.table.put_item(Item={**ITEM, "sk": str(n), "n": Decimal(n), "kind": "post" if n % 2 else "page"})


def describe(table: Any) -> dict[str, Any]:
    """The description attributes a caller reads, loaded the resource's way."""
    return {
        "name": table.name,
        "table_name": table.table_name,
        "key_schema": table.key_schema,
        "attribute_definitions": table.attribute_definitions,
        "table_status": table.table_status,
        "item_count": table.item_count,
        "global_secondary_indexes": table.global_secondary_indexes,
        "local_secondary_indexes": table.local_secondary_indexes,
        "billing_mode_summary": table.billing_mode_summary,
    }


# -- scenarios: each takes an Api and returns what the caller would look at ------


def put_then_get_every_type(api: Api) -> Any:
    api.table.put_item(Item=ITEM)
    return api.table.get_item(Key={"pk": "a", "sk": "1"}, ConsistentRead=True)


def update_with_return_values(api: Api) -> Any:
    api.table.put_item(Item=ITEM)
    first = api.table.update_item(
        Key={"pk": "a", "sk": "1"},
        UpdateExpression="SET n = n + :inc, title = :t ADD tags :more REMOVE nothing",
        ExpressionAttributeValues={":inc": Decimal("0.25"), ":t": "Updated", ":more": {"z"}},
        ReturnValues="ALL_NEW",
    )
    second = api.table.update_item(
        Key={"pk": "a", "sk": "1"},
        UpdateExpression="SET #m.nested.deep = :v",
        ConditionExpression=Attr("flag").eq(True) & Attr("n").gt(Decimal(1)),
        ExpressionAttributeNames={"#m": "map"},  # the caller's names next to generated ones
        ExpressionAttributeValues={":v": [Decimal("9.99")]},
        ReturnValues="UPDATED_OLD",
    )
    return first, second


def delete_with_return_values(api: Api) -> Any:
    api.table.put_item(Item=ITEM)
    return api.table.delete_item(Key={"pk": "a", "sk": "1"}, ReturnValues="ALL_OLD")


def failed_condition_returns_the_item(api: Api) -> Any:
    api.table.put_item(Item=ITEM)
    return api.table.put_item(
        Item={"pk": "a", "sk": "1"},
        ConditionExpression=Attr("pk").not_exists(),
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )


def failed_update_condition(api: Api) -> Any:
    api.table.put_item(Item=ITEM)
    return api.table.update_item(
        Key={"pk": "a", "sk": "1"},
        UpdateExpression="SET title = :t",
        ConditionExpression=Attr("title").eq("Other"),
        ExpressionAttributeValues={":t": "x"},
    )


def every_condition_operator(api: Api) -> Any:
    seed(api)
    conditions = [
        Attr("n").eq(Decimal(1)),
        Attr("n").ne(Decimal(1)),
        Attr("n").lt(Decimal(2)),
        Attr("n").lte(Decimal(2)),
        Attr("n").gt(Decimal(2)),
        Attr("n").gte(Decimal(2)),
        Attr("n").between(Decimal(1), Decimal(3)),
        Attr("n").is_in([Decimal(0), Decimal(4)]),
        Attr("title").begins_with("He"),
        Attr("tags").contains("x"),
        Attr("list").size().eq(4),
        Attr("blob").attribute_type("B"),
        Attr("nothing").exists(),
        Attr("missing").not_exists(),
        (Attr("n").lt(Decimal(2)) | Attr("n").gt(Decimal(3))) & ~Attr("kind").eq("page"),
    ]
    return [
        sorted(item["sk"] for item in api.table.scan(FilterExpression=condition, ConsistentRead=True)["Items"])
        for condition in conditions
    ]


def query_with_key_conditions(api: Api) -> Any:
    seed(api)
    return [
        api.table.query(KeyConditionExpression=Key("pk").eq("a") & Key("sk").between("1", "3"), ScanIndexForward=False),
        api.table.query(KeyConditionExpression=Key("pk").eq("a") & Key("sk").begins_with("2"), ConsistentRead=True),
        api.table.query(
            IndexName="ByKind",
            KeyConditionExpression=Key("kind").eq("post"),
            FilterExpression=Attr("n").gte(Decimal(2)),
            ProjectionExpression="sk, #n",
            ExpressionAttributeNames={"#n": "n"},
        ),
        api.table.scan(Select="COUNT"),
    ]


def query_pages_through_meta_client(api: Api) -> Any:
    seed(api)
    paginator = api.values.get_paginator("query")
    pages = list(paginator.paginate(TableName=NAME, KeyConditionExpression=Key("pk").eq("a"), PaginationConfig={"PageSize": 2}))
    assert len(pages) == 3  # the scenario must really page
    partial = paginator.paginate(
        TableName=NAME, KeyConditionExpression=Key("pk").eq("a"), PaginationConfig={"MaxItems": 3, "PageSize": 2}
    ).build_full_result()
    return pages, partial


def scan_pages_through_wire_client(api: Api) -> Any:
    seed(api)
    pages = api.client.get_paginator("scan").paginate(TableName=NAME, PaginationConfig={"PageSize": 2})
    return list(pages)


def transaction_through_meta_client(api: Api) -> Any:
    api.table.put_item(Item=ITEM)
    api.table.put_item(Item={"pk": "c", "sk": "1", "flag": True})
    written = api.values.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": NAME, "Item": {"pk": "t", "sk": "1", "n": 1, "tags": {"a"}}}},
            {
                "Update": {
                    "TableName": NAME,
                    "Key": {"pk": "a", "sk": "1"},
                    "UpdateExpression": "SET n = n + :one",
                    "ExpressionAttributeValues": {":one": Decimal(1)},
                }
            },
            {
                "ConditionCheck": {
                    "TableName": NAME,
                    "Key": {"pk": "c", "sk": "1"},
                    "ConditionExpression": "flag = :yes",
                    "ExpressionAttributeValues": {":yes": True},
                }
            },
        ]
    )
    read = api.values.transact_get_items(
        TransactItems=[
            {"Get": {"TableName": NAME, "Key": {"pk": "t", "sk": "1"}}},
            {"Get": {"TableName": NAME, "Key": {"pk": "a", "sk": "1"}}},
        ]
    )
    return written, read


def canceled_transaction_gives_reasons(api: Api) -> Any:
    api.table.put_item(Item=ITEM)
    return api.values.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": NAME, "Item": {"pk": "t", "sk": "1"}}},
            {
                "ConditionCheck": {
                    "TableName": NAME,
                    "Key": {"pk": "a", "sk": "1"},
                    "ConditionExpression": "title = :other",
                    "ExpressionAttributeValues": {":other": "Other"},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        ]
    )


def condition_objects_inside_a_transaction(api: Api) -> Any:
    # boto3 puts the placeholders a condition object generates at the top of
    # the request, where TransactWriteItems has no place for them: refused
    # before sending, by boto3 and the session alike.
    return api.values.transact_write_items(
        TransactItems=[
            {"ConditionCheck": {"TableName": NAME, "Key": {"pk": "a", "sk": "1"}, "ConditionExpression": Attr("flag").eq(True)}}
        ]
    )


def batches_through_meta_client(api: Api) -> Any:
    written = api.values.batch_write_item(
        RequestItems={NAME: [{"PutRequest": {"Item": {**ITEM, "sk": str(n)}}} for n in range(3)]}
    )
    read = api.values.batch_get_item(
        RequestItems={NAME: {"Keys": [{"pk": "a", "sk": str(n)} for n in range(4)], "ConsistentRead": True}}
    )
    read["Responses"][NAME].sort(key=lambda item: item["sk"])
    return written, read


def batches_through_resource(api: Api) -> Any:
    written = api.resource.batch_write_item(
        RequestItems={
            NAME: [
                {"PutRequest": {"Item": {"pk": "b", "sk": "1", "pi": PI}}},
                {"DeleteRequest": {"Key": {"pk": "missing", "sk": "1"}}},
            ]
        }
    )
    read = api.resource.batch_get_item(RequestItems={NAME: {"Keys": [{"pk": "b", "sk": "1"}]}})
    return written, read


def batch_writer_with_overwrite(api: Api) -> Any:
    with api.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
        for n in range(30):
            batch.put_item(Item={"pk": "w", "sk": str(n % 27), "n": Decimal(n)})
        batch.delete_item(Key={"pk": "w", "sk": "0"})
    items = api.table.scan(ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: item["sk"])


def partiql_with_python_values(api: Api) -> Any:
    # moto cannot bind parameters of an INSERT (HTTP 500): that one is literal.
    api.table.put_item(Item=ITEM)
    inserted = api.values.execute_statement(Statement=f"INSERT INTO \"{NAME}\" VALUE {{'pk': 'p', 'sk': '1', 'n': 5}}")
    updated = api.values.execute_statement(
        Statement=f'UPDATE "{NAME}" SET pi = ? WHERE pk = ? AND sk = ?', Parameters=[PI, "p", "1"]
    )
    selected = api.values.execute_statement(Statement=f'SELECT * FROM "{NAME}" WHERE pk = ?', Parameters=["a"])
    batch = api.values.batch_execute_statement(
        Statements=[{"Statement": f'SELECT * FROM "{NAME}" WHERE pk = ? AND sk = ?', "Parameters": ["p", "1"]}]
    )
    return inserted, updated, selected, batch


def missing_table(api: Api) -> Any:
    return api.resource.Table("NoSuchTable").get_item(Key={"pk": "a", "sk": "1"})


def float_is_refused(api: Api) -> Any:
    return api.table.put_item(Item={"pk": "a", "sk": "1", "f": 1.5})


def too_many_digits_are_refused(api: Api) -> Any:
    return api.table.put_item(Item={"pk": "a", "sk": "1", "n": Decimal("1.23456789012345678901234567890123456789")})


def missing_parameter_is_refused(api: Api) -> Any:
    return api.values.get_item(TableName=NAME)


def positional_arguments_are_refused(api: Api) -> Any:
    return api.values.get_item({"TableName": NAME})


def table_description_loads_on_first_use(api: Api) -> Any:
    before = describe(api.table)
    seed(api, 2)
    stale = api.table.item_count  # a snapshot until reloaded
    api.table.reload()
    return before, stale, describe(api.table), api.table.meta.data


def table_update_and_waiters(api: Api) -> Any:
    api.table.wait_until_exists()
    updated = api.table.update(
        AttributeDefinitions=[{"AttributeName": "sk", "AttributeType": "S"}],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": "BySk",
                    "KeySchema": [{"AttributeName": "sk", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            }
        ],
    )
    deleted = api.table.delete()
    api.table.wait_until_not_exists()
    return updated.name, updated.meta.data, deleted


def resource_creates_and_lists_tables(api: Api) -> Any:
    spec = {key: value for key, value in SPEC.items() if key != "GlobalSecondaryIndexes"}
    created = api.resource.create_table(
        **{**spec, "TableName": "Another", "AttributeDefinitions": SPEC["AttributeDefinitions"][:2]}
    )
    names = [table.name for table in api.resource.tables.all()]
    limited = [table.name for table in api.resource.tables.limit(1)]
    pages = [[table.name for table in page] for page in api.resource.tables.page_size(1).pages()]
    filtered = [table.name for table in api.resource.tables.filter(ExclusiveStartTableName="Another")]
    return describe(created), created.meta.data, names, limited, pages, filtered


def client_waiter_and_describe(api: Api) -> Any:
    api.values.get_waiter("table_exists").wait(TableName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    return api.values.describe_table(TableName=NAME), api.client.describe_table(TableName=NAME)


def wire_format_through_a_swapped_emitter(api: Api) -> Any:
    # The idiom of DynamoDB test suites (ScyllaDB Alternator's
    # client_no_transform): an empty emitter on the resource's client, to
    # send and read wire format through it; then the old one back.
    client = api.table.meta.client
    before = client.meta.events
    client.meta.events = HierarchicalEmitter()
    try:
        put = api.table.put_item(
            Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "1.50"}, "m": {"M": {"S": {"S": "x"}}}, "ns": {"NS": ["1", "2"]}},
            ReturnValues="ALL_OLD",
        )
        client.batch_write_item(RequestItems={NAME: [{"PutRequest": {"Item": {"pk": {"S": "a"}, "sk": {"S": "2"}}}}]})
        got = api.table.get_item(Key={"pk": {"S": "a"}, "sk": {"S": "1"}})
        queried = api.table.query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "a"}})
        updated = client.update_item(
            TableName=NAME,
            Key={"pk": {"S": "a"}, "sk": {"S": "1"}},
            UpdateExpression="SET n = n + :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
    finally:
        client.meta.events = before
    restored = api.table.get_item(Key={"pk": "a", "sk": "1"})
    stored = api.client.scan(TableName=NAME, ConsistentRead=True)["Items"]
    return put, got, queried, updated, restored, sorted(stored, key=lambda item: item["sk"]["S"])


def wire_format_with_the_value_handlers_unregistered(api: Api) -> Any:
    events = api.values.meta.events
    events.unregister("before-parameter-build.dynamodb", unique_id="dynamodb-attr-value-input")
    events.unregister("after-call.dynamodb", unique_id="dynamodb-attr-value-output")
    api.table.put_item(Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "7"}})
    # Condition objects still become placeholders (that handler stayed);
    # their values are sent as built, in Python values: refused by botocore.
    try:
        api.table.query(KeyConditionExpression=Key("pk").eq("a"))
    except Exception as error:  # noqa: BLE001 - the same refusal on both paths
        refused = (type(error).__name__, str(error))
    # (A Table made now registers them again in boto3, not in the session:
    # see tests/_boto3/test_threads.py.)
    return api.table.get_item(Key={"pk": {"S": "a"}, "sk": {"S": "1"}}), refused


def a_handler_of_the_callers_adds_a_field(api: Api) -> Any:
    def stamp(params: dict[str, Any], **kwargs: Any) -> None:
        params["Item"]["stamp"] = Decimal(7)  # before boto3's serialiser, as boto3 orders them

    api.values.meta.events.register("before-parameter-build.dynamodb.PutItem", stamp)
    api.table.put_item(Item={"pk": "a", "sk": "1"})
    return api.table.get_item(Key={"pk": "a", "sk": "1"}), api.client.scan(TableName=NAME)["Items"]


SCENARIOS = [
    pytest.param(put_then_get_every_type, None, id="put-get-every-type"),
    pytest.param(update_with_return_values, None, id="update-return-values"),
    pytest.param(delete_with_return_values, None, id="delete-return-values"),
    pytest.param(failed_condition_returns_the_item, "ConditionalCheckFailedException", id="condition-failed-item"),
    pytest.param(failed_update_condition, "ConditionalCheckFailedException", id="update-condition-failed"),
    pytest.param(every_condition_operator, None, id="condition-operators"),
    pytest.param(query_with_key_conditions, None, id="query-key-conditions"),
    pytest.param(query_pages_through_meta_client, None, id="query-paginator"),
    pytest.param(scan_pages_through_wire_client, None, id="scan-paginator-wire"),
    pytest.param(transaction_through_meta_client, None, id="transaction"),
    pytest.param(canceled_transaction_gives_reasons, "TransactionCanceledException", id="transaction-canceled"),
    pytest.param(condition_objects_inside_a_transaction, "ParamValidationError", id="transaction-condition-object"),
    pytest.param(batches_through_meta_client, None, id="batches-meta-client"),
    pytest.param(batches_through_resource, None, id="batches-resource"),
    pytest.param(batch_writer_with_overwrite, None, id="batch-writer"),
    pytest.param(partiql_with_python_values, None, id="partiql"),
    pytest.param(missing_table, "ResourceNotFoundException", id="missing-table"),
    pytest.param(float_is_refused, "TypeError", id="float-refused"),
    pytest.param(too_many_digits_are_refused, "Inexact", id="decimal-precision"),
    pytest.param(missing_parameter_is_refused, "ParamValidationError", id="missing-parameter"),
    pytest.param(positional_arguments_are_refused, "TypeError", id="positional-arguments"),
    pytest.param(table_description_loads_on_first_use, None, id="table-load"),
    pytest.param(table_update_and_waiters, None, id="table-update-delete-waiters"),
    pytest.param(resource_creates_and_lists_tables, None, id="resource-create-list"),
    pytest.param(client_waiter_and_describe, None, id="client-waiter-describe"),
    pytest.param(wire_format_through_a_swapped_emitter, None, id="swapped-emitter-wire-format"),
    pytest.param(wire_format_with_the_value_handlers_unregistered, None, id="unregistered-value-handlers"),
    pytest.param(a_handler_of_the_callers_adds_a_field, None, id="parameter-build-handler"),
]


@pytest.mark.parametrize(("scenario", "raises"), SCENARIOS)
def test_session_surfaces_behave_as_boto3(lab, scenario, raises):
    session = lab.session(timeouts=PATIENT)
    runs = {
        "boto3": boto3_api(lab),
        "session": session_api(session),
    }
    outcomes = {}
    for name, api in runs.items():
        fresh_table(lab)
        outcomes[name] = outcome(scenario, api)
    expected = outcomes.pop("boto3")
    # The scenario tests what it says: it raised what it names, or returned.
    assert expected[0] == ("raised" if raises else "returned"), expected
    if raises:
        assert expected[1] == raises, expected
    for name, got in outcomes.items():
        assert got == expected, name


def test_unprocessed_keys_come_back_in_python_values(lab):
    # moto answers a BatchGetItem past 16 MB as DynamoDB does: the rest of
    # the keys in UnprocessedKeys, in wire format, which the resource client
    # turns into Python values. (moto never leaves items unprocessed in a
    # BatchWriteItem: tests/_boto3/test_table.py covers the batch writer's resend.)
    fresh_table(lab)
    session = lab.session(timeouts=PATIENT)
    boto = boto3_api(lab)
    filler = "x" * 380_000
    with boto.table.batch_writer() as batch:
        for n in range(45):  # 45 x 380 kB > 16 MB
            batch.put_item(Item={"pk": "big", "sk": f"{n:02}", "filler": filler})
    request = {NAME: {"Keys": [{"pk": "big", "sk": f"{n:02}"} for n in range(45)]}}

    def keys_only(response: dict[str, Any]) -> Any:
        return (
            sorted(item["sk"] for item in response["Responses"][NAME]),
            canonical(response["UnprocessedKeys"]),
        )

    expected = keys_only(boto.values.batch_get_item(RequestItems=request))
    assert expected[1], "the scenario must leave keys unprocessed"
    assert expected[1][NAME]["Keys"][0]["pk"] == ("str", "big")  # Python values, not {"S": ...}
    ours = session_api(session)
    assert keys_only(ours.values.batch_get_item(RequestItems=request)) == expected
    assert keys_only(ours.resource.batch_get_item(RequestItems=request)) == expected


def test_blog_edit_is_one_transaction_through_table_meta_client(lab):
    # The example blog's edit (examples/blog/model.py): the post and its
    # history entry in one TransactWriteItems through Table.meta.client,
    # the same over boto3's Table and the session's.
    model = load_blog_model()
    lab.create_table(**model.TABLE_SPEC)
    events: list[Any] = []
    session = lab.session(timeouts=PATIENT, listeners=[events.append])
    boto = boto3.session.Session(**CREDENTIALS).resource("dynamodb", region_name=LOCAL, endpoint_url=lab.endpoints[LOCAL])
    seen = {}
    for name, table in {"boto3": boto.Table(model.TABLE), "session": session.table(model.TABLE)}.items():
        store = model.BlogStore(table)
        store.create_post("Draft", "b", "ada", post_id=name)
        store.update_post(name, title="First")
        edited = store.update_post(name, title="Second", body="c")
        history = [(entry["title"], entry.get("body")) for entry in store.post_history(name)]
        store.delete_post(name)
        with pytest.raises(model.NotFound):
            store.get_post(name)
        seen[name] = (edited["title"], edited["body"], history, store.post_history(name))
    assert seen["boto3"] == ("Second", "c", [("First", None), ("Second", "c")], [])
    assert seen["session"] == seen["boto3"]
    routed = [event.operation for event in events if isinstance(event, OperationFinished) and event.outcome == "ok"]
    assert routed.count("TransactWriteItems") == 2, "the session routed both edits"


def test_cached_get_item_answers_as_boto3(lab):
    # With the session's read cache, a Table's GetItem may be answered from
    # Python values kept by the cache (RegionSession.execute with PythonValues): a hit
    # must be what boto3 returns, and changing it must not change the next.
    fresh_table(lab)
    events: list[Any] = []
    session = lab.session(timeouts=PATIENT, cache=rp.CachePolicy(maxsize=100, ttl=60), listeners=[events.append])
    boto = boto3_api(lab)
    boto.table.put_item(Item=ITEM)
    expected = canonical(boto.table.get_item(Key={"pk": "a", "sk": "1"}))
    table = session_api(session).table
    first = table.get_item(Key={"pk": "a", "sk": "1"})
    first["Item"]["tags"].add("changed")
    second = table.get_item(Key={"pk": "a", "sk": "1"})
    assert [event.hit for event in events if isinstance(event, CacheLookup)] == [False, True]
    assert canonical(second) == expected


def test_swapped_emitter_is_not_answered_from_the_python_value_cache(lab):
    # With the cache on, a Table's GetItem in Python values is cached in
    # Python values; the same key asked in wire format through a swapped
    # emitter must get boto3's wire-format answer, not that entry.
    fresh_table(lab)
    events: list[Any] = []
    session = lab.session(timeouts=PATIENT, cache=rp.CachePolicy(maxsize=100, ttl=60), listeners=[events.append])
    answers = {}
    for name, api in {"boto3": boto3_api(lab), "session": session_api(session)}.items():
        api.table.put_item(Item=ITEM)
        python = api.table.get_item(Key={"pk": "a", "sk": "1"})
        client = api.table.meta.client
        before = client.meta.events
        client.meta.events = HierarchicalEmitter()
        try:
            wire = api.table.get_item(Key={"pk": {"S": "a"}, "sk": {"S": "1"}})
        finally:
            client.meta.events = before
        answers[name] = canonical((python, wire, api.table.get_item(Key={"pk": "a", "sk": "1"})))
    assert answers["session"] == answers["boto3"]
    assert [event.hit for event in events if isinstance(event, CacheLookup)][-1], "the restored emitter: a hit again"
