"""``session.table(name)``: a drop-in for ``boto3.resource("dynamodb").Table(name)``.

The same methods, arguments and return shapes, built on the session's
thread-safe clients rather than on a boto3 resource (resources must not be
shared between threads). Python values and ``boto3.dynamodb.conditions``
are turned into the wire format by boto3's own ``TransformationInjector``
(``TypeSerializer``, ``TypeDeserializer``, ``ConditionExpressionBuilder``),
called directly instead of registered as event handlers on the clients.
"""

from __future__ import annotations

import copy
import threading
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.table import BatchWriter
from boto3.dynamodb.transform import TransformationInjector

if TYPE_CHECKING:
    from regionproxy.session import RegionSession

# The condition builder numbers its placeholders as it goes: one per thread.
_injectors = threading.local()


def _injector() -> TransformationInjector:
    injector = getattr(_injectors, "value", None)
    if injector is None:
        injector = _injectors.value = TransformationInjector()
    return injector


class RegionTable:
    """A DynamoDB table over the session's regions.

    :param name: the table name.
    :param session: the :class:`~regionproxy.RegionSession` that routes calls.
    """

    def __init__(self, name: str, session: RegionSession) -> None:
        self.name = self.table_name = name
        self._session = session
        self.meta = _TableMeta(session)

    def __repr__(self) -> str:
        return f"RegionTable(name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RegionTable) and (other.name, other._session) == (self.name, self._session)

    def __hash__(self) -> int:
        return hash((self.name, id(self._session)))

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("GetItem", kwargs)

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("PutItem", kwargs)

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("UpdateItem", kwargs)

    def delete_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("DeleteItem", kwargs)

    def query(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("Query", kwargs)

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("Scan", kwargs)

    def batch_writer(self, overwrite_by_pkeys: list[str] | None = None) -> BatchWriter:
        """boto3's own ``BatchWriter``: buffers puts and deletes, sends them
        25 at a time, resends unprocessed items."""
        return BatchWriter(self.name, _BatchClient(self), overwrite_by_pkeys=overwrite_by_pkeys)

    @property
    def key_schema(self) -> list[dict[str, str]]:
        return self._describe()["KeySchema"]

    @property
    def attribute_definitions(self) -> list[dict[str, str]]:
        return self._describe()["AttributeDefinitions"]

    @property
    def global_secondary_indexes(self) -> list[dict[str, Any]] | None:
        return self._describe().get("GlobalSecondaryIndexes")

    @property
    def item_count(self) -> int:
        return self._describe().get("ItemCount", 0)

    def _describe(self) -> dict[str, Any]:
        return self._session.execute("DescribeTable", {"TableName": self.name})["Table"]

    def _call(self, operation: str, params: dict[str, Any], *, with_table: bool = True) -> dict[str, Any]:
        # The transformer rewrites nested values in place; boto3's resource
        # deep-copies the parameters first (copy_dynamodb_params), and so do we.
        params = copy.deepcopy(params)
        if with_table:
            params["TableName"] = self.name
        model = self._session.client.meta.service_model.operation_model(operation)
        injector = _injector()
        injector.inject_condition_expressions(params, model)
        injector.inject_attribute_value_input(params, model)
        response = self._session.execute(operation, params)
        injector.inject_attribute_value_output(response, model)
        return response


class _BatchClient:
    """What boto3's BatchWriter needs of a client: ``batch_write_item`` on
    Python values, answering unprocessed items as Python values."""

    def __init__(self, table: RegionTable) -> None:
        self._table = table

    def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._table._call("BatchWriteItem", kwargs, with_table=False)


class _TableMeta:
    """``table.meta.client``, as boto3 resources have it."""

    def __init__(self, session: RegionSession) -> None:
        self._session = session

    @property
    def client(self) -> Any:
        return self._session.client
