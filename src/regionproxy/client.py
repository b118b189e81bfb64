"""The session's DynamoDB clients: wire format and Python values.

- ``session.client`` (:class:`RegionClient`) is a drop-in for
  ``boto3.client("dynamodb")``: wire-format parameters and responses
  (``{"S": "x"}``).
- ``session.resource.meta.client`` (:class:`ResourceClient`), which is
  also every session Table's ``meta.client``, is a drop-in for
  ``boto3.resource("dynamodb").meta.client``: Python values (``"x"``,
  ``Decimal``, sets, ``Binary``) and ``boto3.dynamodb.conditions``, for
  every operation. It is the one place where the session turns Python
  values into the wire format and back; the Table and the resource call it.

Every operation of the DynamoDB service model is a method with boto3's
name, arguments, return shape and errors; calls go through the session's
routing. Paginators and waiters are botocore's own over these methods, so
they are routed too (waiters call ``DescribeTable``, a control-plane call:
the local region). ``exceptions`` and ``meta`` are the local region's
client's; since every region's client comes from one boto3 session,
``except client.exceptions.X`` catches that error from any region.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import ConditionBase
from boto3.dynamodb.transform import TransformationInjector
from botocore import xform_name
from botocore.exceptions import OperationNotPageableError
from botocore.paginate import Paginator
from botocore.waiter import WaiterModel, create_waiter_with_client

if TYPE_CHECKING:
    from botocore.model import OperationModel, Shape

    from regionproxy.session import RegionSession


class RegionClient:
    """The session's DynamoDB client, in wire format.

    :param session: the :class:`~regionproxy.RegionSession` that routes calls.
    """

    def __init__(self, session: RegionSession) -> None:
        self._session = session
        model = self._local.meta.service_model
        self._operations = {xform_name(name): name for name in model.operation_names}
        self._models: dict[str, Any] = {}  # "paginators-1", "waiters-2", loaded when first asked

    def __repr__(self) -> str:
        return f"{type(self).__name__}(regions={list(self._session.regions)!r})"

    def __getattr__(self, name: str) -> Any:
        operation = self.__dict__.get("_operations", {}).get(name)
        if operation is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        method = self._method(name, operation)
        method.__name__ = name
        method.__qualname__ = f"{type(self).__name__}.{name}"
        method.__doc__ = f"DynamoDB {operation}, routed across regions."
        setattr(self, name, method)  # found directly next time
        return method

    def _method(self, name: str, operation: str) -> Callable[..., dict[str, Any]]:
        execute = self._session.execute

        def call(*args: Any, **params: Any) -> dict[str, Any]:
            if args:
                raise TypeError(f"{name}() only accepts keyword arguments.")  # as botocore's methods
            return execute(operation, params)

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
        """botocore's paginator for ``operation_name``, over this client's routed calls."""
        if not self.can_paginate(operation_name):
            raise OperationNotPageableError(operation_name=operation_name)
        operation = self._operations[operation_name]
        config = self._model("paginators-1")["pagination"][operation]
        return Paginator(getattr(self, operation_name), config, self.meta.service_model.operation_model(operation))

    def get_waiter(self, waiter_name: str) -> Any:
        """botocore's waiter ``waiter_name``, over this client's routed calls
        (``DescribeTable``: control plane, the local region)."""
        model = WaiterModel(self._model("waiters-2"))
        names = {xform_name(name): name for name in model.waiter_names}
        if waiter_name not in names:
            raise ValueError(f"Waiter does not exist: {waiter_name}")  # botocore's words
        return create_waiter_with_client(names[waiter_name], model, self)

    @property
    def waiter_names(self) -> list[str]:
        return self._local.waiter_names

    def close(self) -> None:
        """Closing is the session's job (:meth:`RegionSession.close`)."""

    def _model(self, kind: str) -> Any:
        if kind not in self._models:  # a race loads the same file twice: harmless
            import botocore.session

            loader = botocore.session.get_session().get_component("data_loader")
            service = self.meta.service_model
            self._models[kind] = loader.load_service_model(service.service_name, kind, service.api_version)
        return self._models[kind]


# The condition builder numbers its placeholders as it goes, and the
# injector holds one builder: one injector per thread.
_injectors = threading.local()


def _injector() -> TransformationInjector:
    injector = getattr(_injectors, "value", None)
    if injector is None:
        injector = _injectors.value = TransformationInjector()
    return injector


class _Transforms:
    """Which of boto3's DynamoDB transformations one operation needs.

    boto3's ``ParameterTransformer`` walks the whole input and output shape
    of every call looking for ``AttributeValue``, ``ConditionExpression``
    and ``KeyExpression`` shapes. Which of them an operation's shapes can
    reach never changes, so it is found once, and a call skips the walks
    that could not change anything (``DescribeTable`` has no values at all).
    """

    __slots__ = ("conditions", "model", "values_in", "values_out")

    def __init__(self, model: OperationModel) -> None:
        self.model = model
        reachable_in = _shape_names(model.input_shape)
        self.conditions = bool(reachable_in & {"ConditionExpression", "KeyExpression"})
        self.values_in = "AttributeValue" in reachable_in
        self.values_out = "AttributeValue" in _shape_names(model.output_shape)


def _shape_names(shape: Shape | None) -> set[str]:
    """Names of every shape reachable from ``shape`` (AttributeValue is recursive)."""
    names: set[str] = set()
    pending = [shape] if shape is not None else []
    while pending:
        shape = pending.pop()
        if shape.name in names:
            continue
        names.add(shape.name)
        if shape.type_name == "structure":
            pending.extend(shape.members.values())
        elif shape.type_name == "list":
            pending.append(shape.member)
        elif shape.type_name == "map":
            pending.append(shape.value)
    return names


class _CopyMemo(dict):  # type: ignore[type-arg]
    """boto3's deep-copy memo for DynamoDB parameters (``copy_dynamodb_params``):
    it forgets, so an object repeated in the parameters becomes separate
    copies, each transformed once."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def _copy_params(params: dict[str, Any]) -> dict[str, Any]:
    """boto3's copy of the parameters, except that condition objects at the
    top (``KeyConditionExpression=Key(...)``, ...) are kept, not copied: the
    transformation replaces them with strings and never changes them, and
    copying one costs more than the rest of a query's client-side work."""
    memo = _CopyMemo()
    for value in params.values():
        if isinstance(value, ConditionBase):
            dict.__setitem__(memo, id(value), value)
    return copy.deepcopy(params, memo)


class ResourceClient(RegionClient):
    """The session's DynamoDB client in Python values: what
    ``boto3.resource("dynamodb").meta.client`` is.

    The transformations are boto3's own (``TransformationInjector``:
    ``TypeSerializer``, ``TypeDeserializer``, ``ConditionExpressionBuilder``),
    applied where boto3's resource client applies them (a deep copy of the
    parameters, conditions, then values; values of the response), but
    called directly instead of registered as event handlers: the regional
    clients stay free of handlers and safe to share between threads.

    :param session: the :class:`~regionproxy.RegionSession` that routes calls.
    """

    def __init__(self, session: RegionSession) -> None:
        super().__init__(session)
        self._transforms: dict[str, _Transforms] = {}

    def _method(self, name: str, operation: str) -> Callable[..., dict[str, Any]]:
        make_api_call = self._make_api_call

        def call(*args: Any, **params: Any) -> dict[str, Any]:
            if args:
                raise TypeError(f"{name}() only accepts keyword arguments.")
            return make_api_call(operation, params)

        return call

    def _make_api_call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run ``operation`` (``"GetItem"``) with Python-value ``params``
        through the session; the response in Python values. botocore's
        name: the Table calls it directly, one frame less per call."""
        if operation == "GetItem":
            # The session's cache may answer in Python values: a hit
            # serialises and deserialises nothing (RegionSession.read_values).
            return self._session.read_values(operation, params, lambda: self._transform_call(operation, params))
        return self._transform_call(operation, params)

    def _transform_call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        transforms = self._transforms.get(operation)
        if transforms is None:  # two threads may both build it: the same value, harmless
            model = self.meta.service_model.operation_model(operation)
            transforms = self._transforms[operation] = _Transforms(model)
        model = transforms.model
        injector = _injector()
        if transforms.conditions or transforms.values_in:
            # The transformer rewrites nested values in place: work on a copy.
            params = _copy_params(params)
            if transforms.conditions:
                injector.inject_condition_expressions(params, model)
            if transforms.values_in:
                injector.inject_attribute_value_input(params, model)
        if operation == "Query":
            # The session's cache may answer in Python values: a hit
            # deserialises nothing (RegionSession.read_values).
            return self._session.read_values(operation, params, lambda: self._execute(operation, params, transforms))
        return self._execute(operation, params, transforms)

    def _execute(self, operation: str, params: dict[str, Any], transforms: _Transforms) -> dict[str, Any]:
        """Run wire-format ``params`` through the session; the response in Python values."""
        response = self._session.execute(operation, params)
        if transforms.values_out:
            _injector().inject_attribute_value_output(response, transforms.model)
        return response
