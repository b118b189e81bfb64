"""``session.resource.Table(name)``: a drop-in for ``boto3.resource("dynamodb").Table(name)``.

The same methods, attributes, arguments and return shapes, as thin calls
to the methods of ``table.meta.client``, the resource's Python-value client
(:class:`~regionproxy._boto3.client.ResourceClient`), which does every
transformation (boto3's handlers on its ``meta.events``) and routes every
call. Nothing here is a boto3 resource: those must not be shared between
threads, and this Table may be, for its calls (its client's ``meta.events``
is shared with it: see :mod:`regionproxy._boto3.resource`). Unlike boto3's
Table, making one registers nothing on ``meta.events``: a Table another
thread makes never undoes a swap of the emitter.

Item calls (``get_item``, ``put_item``, ``query``, ..., ``batch_writer()``)
are routed like the client's. Table calls (``load()``, the description
attributes, ``update()``, ``delete()``, the waiters) are control-plane:
the local region, as for the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boto3.dynamodb.table import BatchWriter

if TYPE_CHECKING:
    from regionproxy._boto3.client import ResourceClient


class TableMeta:
    """``table.meta``, as boto3 resources have it: ``client`` and ``data``
    (the ``DescribeTable`` description, or None until loaded)."""

    service_name = "dynamodb"
    identifiers = ("name",)

    def __init__(self, client: ResourceClient, data: dict[str, Any] | None = None) -> None:
        self.client = client
        self.data = data

    def __repr__(self) -> str:
        return "TableMeta('dynamodb', identifiers=['name'])"


class RegionTable:
    """A DynamoDB table over the session's regions.

    Its calls may come from any number of threads: item calls keep no
    state, and the description attributes are a snapshot taken on first
    access (or by :meth:`load`), as boto3's are. Its ``meta.client`` (and
    so ``meta.client.meta.events``) is its resource's, shared with every
    thread that uses a Table of that resource.

    :param name: the table name.
    :param client: the session's :class:`~regionproxy._boto3.client.ResourceClient`.
    :param attributes: description attribute names (``item_count``) to
        ``DescribeTable`` member names (``ItemCount``).

    Made by ``session.table(name)`` (or ``session.resource.Table(name)``),
    never directly. Its methods are boto3's Table's (``get_item``,
    ``put_item``, ``update_item``, ``delete_item``, ``query``, ``scan``,
    ``batch_writer``, ...), with its arguments, answers and exceptions;
    each call is routed over the session's regions (breakers, failover,
    hedging, the cache).

    Example::

        table = session.table("Blog")
        table.put_item(Item={"PK": "POST#1", "SK": "METADATA", "title": "Hello"})
        table.get_item(Key={"PK": "POST#1", "SK": "METADATA"})["Item"]
        with table.batch_writer() as batch:
            batch.put_item(Item={"PK": "POST#2", "SK": "METADATA"})
    """

    def __init__(self, name: str, client: ResourceClient, attributes: dict[str, str]) -> None:
        if name is None:
            raise ValueError("Required parameter name not set")  # boto3's words
        self.name = name
        self.meta = TableMeta(client)
        self._attributes = attributes

    def __repr__(self) -> str:
        return f"RegionTable(name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RegionTable) and (other.name, other.meta.client) == (self.name, self.meta.client)

    def __hash__(self) -> int:
        return hash((self.name, id(self.meta.client)))

    @property
    def table_name(self) -> str:
        """The identifier, as boto3's alias of it: no ``DescribeTable``."""
        return self.name

    # -- items: routed across regions ---------------------------------------------
    # boto3's actions: the table's name first, the caller's keywords over it;
    # and after each one that succeeds, the loaded description is dropped
    # (boto3 reloads it on the next attribute read).

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        response = self.meta.client.get_item(**{"TableName": self.name, **kwargs})
        self.meta.data = None
        return response

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        response = self.meta.client.put_item(**{"TableName": self.name, **kwargs})
        self.meta.data = None
        return response

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        response = self.meta.client.update_item(**{"TableName": self.name, **kwargs})
        self.meta.data = None
        return response

    def delete_item(self, **kwargs: Any) -> dict[str, Any]:
        response = self.meta.client.delete_item(**{"TableName": self.name, **kwargs})
        self.meta.data = None
        return response

    def query(self, **kwargs: Any) -> dict[str, Any]:
        response = self.meta.client.query(**{"TableName": self.name, **kwargs})
        self.meta.data = None
        return response

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        response = self.meta.client.scan(**{"TableName": self.name, **kwargs})
        self.meta.data = None
        return response

    def batch_writer(self, overwrite_by_pkeys: list[str] | None = None) -> BatchWriter:
        """boto3's own ``BatchWriter`` over ``meta.client``: buffers puts and
        deletes, sends them 25 at a time, resends unprocessed items."""
        return BatchWriter(self.name, self.meta.client, overwrite_by_pkeys=overwrite_by_pkeys)

    # -- the table itself: control plane, the local region ------------------------

    def load(self) -> None:
        """Describe the table; the description attributes read from it."""
        self._load()

    reload = load

    def delete(self, **kwargs: Any) -> dict[str, Any]:
        response = self.meta.client.delete_table(**{"TableName": self.name, **kwargs})
        self.meta.data = None
        return response

    def update(self, **kwargs: Any) -> RegionTable:
        """``UpdateTable``; a new Table loaded with the updated description."""
        response = self.meta.client.update_table(**{"TableName": self.name, **kwargs})
        self.meta.data = None
        table = RegionTable(self.name, self.meta.client, self._attributes)
        table.meta.data = response.get("TableDescription")
        return table

    def wait_until_exists(self, **kwargs: Any) -> None:
        self.meta.client.get_waiter("table_exists").wait(**{"TableName": self.name, **kwargs})

    def wait_until_not_exists(self, **kwargs: Any) -> None:
        self.meta.client.get_waiter("table_not_exists").wait(**{"TableName": self.name, **kwargs})

    def get_available_subresources(self) -> list[str]:
        return []

    def __getattr__(self, name: str) -> Any:
        # The description attributes (key_schema, item_count, table_status,
        # ...: every DescribeTable member of this botocore): loaded on first use.
        member = self.__dict__.get("_attributes", {}).get(name)
        if member is None:
            raise AttributeError(f"'RegionTable' object has no attribute {name!r}")
        data = self.meta.data  # once: another thread's action may drop it meanwhile
        if data is None:
            data = self._load()
        return data.get(member)

    def _load(self) -> dict[str, Any]:
        data = self.meta.data = self.meta.client.describe_table(TableName=self.name)["Table"]
        return data

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._attributes})
