"""What is shared between threads, and what a thread can have of its own.

Calls on one client, resource or Table may come from any number of threads;
``meta.events`` belongs to the client, so a thread that changes it (the
wire-format idiom: ``client.meta.events = HierarchicalEmitter()``) takes a
resource of its own, ``session.new_resource()``, as boto3 advises a
resource per thread. Making a Table registers nothing on the emitter, so a
Table made meanwhile (by any thread) never undoes a swap.

In-process DynamoDB (moto's ``mock_aws``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from botocore.hooks import HierarchicalEmitter

import regionproxy as rp
from tests.support import LOCAL, REMOTE, moto_table

TABLE = "T"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
ITEM = {"p": "a", "name": "x"}


@pytest.fixture
def session() -> Iterator[rp.RegionSession]:
    """A session over an in-process DynamoDB (moto) with table ``T`` holding ``ITEM``."""
    with moto_table(TABLE, CREDENTIALS) as boto:
        session = rp.RegionSession([LOCAL, REMOTE], boto3_session=boto)
        session.table(TABLE).put_item(Item=ITEM)
        yield session
        session.close()


def _stored(session: rp.RegionSession) -> list[dict]:
    return session.client.scan(TableName=TABLE)["Items"]


def test_a_resource_of_its_own_has_a_client_and_emitter_of_its_own(session):
    mine, other = session.new_resource(), session.new_resource()
    assert mine is not session.resource and mine.meta.client is not session.resource.meta.client
    assert mine.meta.client.meta.events is not other.meta.client.meta.events
    assert mine.Table(TABLE).meta.client is mine.meta.client, "its Tables share its client, as boto3's do"
    assert session.new_client().meta.events is not session.client.meta.events
    assert session.resource is session.resource and session.client is session.client


def test_swapping_the_emitter_of_a_resource_of_its_own_leaves_the_shared_tables_in_python_values(session):
    mine = session.new_resource().Table(TABLE)
    mine.meta.client.meta.events = HierarchicalEmitter()  # the wire-format idiom
    shared = session.table(TABLE)
    assert mine.get_item(Key={"p": {"S": "a"}})["Item"] == {"p": {"S": "a"}, "name": {"S": "x"}}
    assert shared.get_item(Key={"p": "a"})["Item"] == ITEM
    assert shared.scan()["Items"] == [ITEM]
    mine.put_item(Item={"p": {"S": "b"}, "name": {"S": "y"}})
    assert shared.get_item(Key={"p": "b"})["Item"] == {"p": "b", "name": "y"}


def test_making_a_table_registers_nothing_on_an_emitter_the_caller_put_there(session):
    client = session.table(TABLE).meta.client
    client.meta.events = HierarchicalEmitter()
    session.table(TABLE)  # a request handler's Table, made meanwhile (boto3's would re-register)
    session.resource.Table(TABLE)
    client.put_item(TableName=TABLE, Item={"p": {"S": "w"}, "name": {"S": "x"}})  # sent as given: wire format
    assert {"p": {"S": "w"}, "name": {"S": "x"}} in _stored(session)


def test_a_thread_using_the_idiom_on_its_own_resource_changes_nothing_for_other_threads(session):
    # Another thread makes Tables of the shared resource and reads with them
    # the whole time; every answer it gets is in Python values.
    stop = threading.Event()
    anomalies: list[object] = []

    def requests() -> None:
        for _ in range(100_000):  # bounded
            if stop.is_set():
                return
            try:
                table = session.table(TABLE)
                if table.get_item(Key={"p": "a"})["Item"] != ITEM:
                    anomalies.append("wire-format item")
            except Exception as error:  # noqa: BLE001 - recorded, asserted below
                anomalies.append(error)

    worker = threading.Thread(target=requests, daemon=True)
    worker.start()
    mine = session.new_resource().Table(TABLE)
    client = mine.meta.client
    try:
        for n in range(50):  # bounded
            before = client.meta.events
            client.meta.events = HierarchicalEmitter()
            try:
                mine.put_item(Item={"p": {"S": f"k{n}"}, "name": {"S": "x"}})
                assert mine.get_item(Key={"p": {"S": "a"}})["Item"] == {"p": {"S": "a"}, "name": {"S": "x"}}
            finally:
                client.meta.events = before
    finally:
        stop.set()
        worker.join(timeout=30)
    assert anomalies == []
    assert all(item["name"] == {"S": "x"} for item in _stored(session)), "no wire item was serialised again"
