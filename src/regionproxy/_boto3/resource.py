"""``session.resource``: a drop-in for ``boto3.resource("dynamodb")``.

``Table(name)``, ``batch_get_item``, ``batch_write_item``, ``create_table``,
``tables`` and ``meta.client``, with boto3's arguments and return shapes,
all over the session's Python-value client
(:class:`~regionproxy._boto3.client.ResourceClient`). Batches are routed like
the client's; ``create_table`` and ``tables`` (``ListTables``) are
control-plane: the local region.

Unlike boto3's, this resource may be shared between threads for its calls:
it holds no state but its client. Its client's ``meta.events`` is one for
every thread that uses the resource or a Table made from it, as with any
boto3 client: a thread that changes it (swaps it for the wire-format
idiom, registers a handler, attaches a ``Stubber``) takes a resource of
its own (``session.new_resource()``), as boto3 advises a resource per thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore import xform_name

from regionproxy._boto3.client import ResourceClient
from regionproxy._boto3.table import RegionTable

if TYPE_CHECKING:
    from regionproxy._boto3.client import CallRouter


class ResourceMeta:
    """``resource.meta``: ``client`` and ``service_name``."""

    service_name = "dynamodb"

    def __init__(self, client: ResourceClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return "ResourceMeta('dynamodb', identifiers=[])"


class RegionResource:
    """The session's DynamoDB service resource.

    :param router: what routes its calls (the :class:`~regionproxy.RegionSession`).
    """

    def __init__(self, router: CallRouter) -> None:
        client = ResourceClient(router)
        self._regions = router.regions
        self.meta = ResourceMeta(client)
        self.tables = TableCollection(self)
        # boto3 names a Table's attributes after the members of the table
        # description in this botocore's model; its identifier is ``name``.
        description = client.meta.service_model.shape_for("TableDescription")
        self._attributes = {xform_name(member): member for member in description.members if member != "TableName"}

    def __repr__(self) -> str:
        return f"RegionResource(regions={list(self._regions)!r})"

    def Table(self, name: str) -> RegionTable:  # noqa: N802 - boto3's name
        """The table ``name``: no call until one is made."""
        return RegionTable(name, self.meta.client, self._attributes)

    def batch_get_item(self, **kwargs: Any) -> dict[str, Any]:
        return self.meta.client.batch_get_item(**kwargs)

    def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        return self.meta.client.batch_write_item(**kwargs)

    def create_table(self, **kwargs: Any) -> RegionTable:
        """``CreateTable`` in the local region; the Table, loaded with its description."""
        description = self.meta.client.create_table(**kwargs)["TableDescription"]
        table = self.Table(description["TableName"])
        table.meta.data = description
        return table

    def get_available_subresources(self) -> list[str]:
        return ["Table"]


class TableCollection:
    """``resource.tables``: the tables of the local region (``ListTables``,
    paginated), as boto3's collection: ``all()``, ``filter(**params)``,
    ``limit(n)``, ``page_size(n)``, ``pages()``, iteration. Immutable: each
    of those returns a new collection.
    """

    def __init__(self, resource: RegionResource, params: dict[str, Any] | None = None) -> None:
        self._resource = resource
        self._params = params or {}

    def __repr__(self) -> str:
        return f"dynamodb.tablesCollection({self._resource!r}, dynamodb.Table)"

    def all(self) -> TableCollection:
        return TableCollection(self._resource, self._params)

    def filter(self, **params: Any) -> TableCollection:  # noqa: A003 - boto3's name
        return TableCollection(self._resource, {**self._params, **params})

    def iterator(self, **params: Any) -> TableCollection:
        return self.filter(**params)

    def limit(self, count: int) -> TableCollection:
        return self.filter(limit=count)

    def page_size(self, count: int) -> TableCollection:
        return self.filter(page_size=count)

    def pages(self) -> Iterator[list[RegionTable]]:
        params = dict(self._params)
        limit = params.pop("limit", None)
        page_size = params.pop("page_size", None)
        paginator = self._resource.meta.client.get_paginator("list_tables")
        count = 0
        for page in paginator.paginate(PaginationConfig={"MaxItems": limit, "PageSize": page_size}, **params):
            tables = []
            for name in page.get("TableNames", ()):
                tables.append(self._resource.Table(name))
                count += 1
                if limit is not None and count >= limit:
                    break
            yield tables
            if limit is not None and count >= limit:
                return

    def __iter__(self) -> Iterator[RegionTable]:
        for page in self.pages():
            yield from page
