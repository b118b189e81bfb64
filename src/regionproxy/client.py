"""``session.client``: a drop-in for ``boto3.client("dynamodb")``.

Every operation of the DynamoDB service model is a method with boto3's
name, arguments, return shape and errors; calls go through the session's
routing. Paginators are botocore's own over these methods. ``exceptions``
and ``meta`` are the local region's client's, and since every region's
client comes from one boto3 session, ``except client.exceptions.X`` catches
that error from any region. Waiters are control-plane: the local region.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore import xform_name
from botocore.exceptions import OperationNotPageableError
from botocore.paginate import Paginator

if TYPE_CHECKING:
    from regionproxy.session import RegionSession


class RegionClient:
    """The session's DynamoDB client surface.

    :param session: the :class:`~regionproxy.RegionSession` that routes calls.
    """

    def __init__(self, session: RegionSession) -> None:
        self._session = session
        local = session.replicas[session.local_region]
        model = local.client.meta.service_model
        self._operations = {xform_name(name): name for name in model.operation_names}
        self._paginators: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"RegionClient(regions={list(self._session.regions)!r})"

    def __getattr__(self, name: str) -> Any:
        operation = self.__dict__.get("_operations", {}).get(name)
        if operation is None:
            raise AttributeError(f"'RegionClient' object has no attribute {name!r}")
        execute = self._session.execute

        def call(**params: Any) -> dict[str, Any]:
            return execute(operation, params)

        call.__name__ = name
        call.__qualname__ = f"RegionClient.{name}"
        call.__doc__ = f"DynamoDB {operation}, routed across regions."
        setattr(self, name, call)  # found directly next time
        return call

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._operations})

    @property
    def meta(self) -> Any:
        return self._local.meta

    @property
    def exceptions(self) -> Any:
        return self._local.exceptions

    @property
    def _local(self) -> Any:
        return self._session.replicas[self._session.local_region].client

    def can_paginate(self, operation_name: str) -> bool:
        return self._local.can_paginate(operation_name)

    def get_paginator(self, operation_name: str) -> Paginator:
        """botocore's paginator for ``operation_name``, over routed calls."""
        if not self.can_paginate(operation_name):
            raise OperationNotPageableError(operation_name=operation_name)
        operation = self._operations[operation_name]
        config = self._pagination_config()[operation]
        return Paginator(getattr(self, operation_name), config, self.meta.service_model.operation_model(operation))

    def get_waiter(self, waiter_name: str) -> Any:
        return self._local.get_waiter(waiter_name)

    @property
    def waiter_names(self) -> list[str]:
        return self._local.waiter_names

    def close(self) -> None:
        """Closing is the session's job (:meth:`RegionSession.close`)."""

    def _pagination_config(self) -> dict[str, Any]:
        if self._paginators is None:
            import botocore.session

            loader = botocore.session.get_session().get_component("data_loader")
            model = self.meta.service_model
            self._paginators = loader.load_service_model(model.service_name, "paginators-1", model.api_version)[
                "pagination"
            ]
        return self._paginators
