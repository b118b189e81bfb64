"""The session's DynamoDB clients: wire format and Python values.

- ``session.client`` (:class:`RegionClient`) is a drop-in for
  ``boto3.client("dynamodb")``: wire-format parameters and responses
  (``{"S": "x"}``).
- ``session.resource.meta.client`` (:class:`ResourceClient`), which is
  also every Table's ``meta.client`` of that resource, is a drop-in for
  ``boto3.resource("dynamodb").meta.client``: Python values (``"x"``,
  ``Decimal``, sets, ``Binary``) and ``boto3.dynamodb.conditions``, for
  every operation. It is the one place where Python values become the
  wire format and back; the Table and the resource call its methods.

Both run over a :class:`CallRouter`, the narrow protocol they need of
whatever routes their calls (the session satisfies it): the regions, the
local region's botocore client (its model, config, endpoint, exceptions,
and how it builds a request), the caller's handlers (see
:mod:`regionproxy._boto3.emitters`), and ``execute``. One call of a
surface is one ``execute``: on the resource client, with the call's
:class:`PythonValues` (``to_wire``, ``to_python``), so the session can
answer from its Python-value cache without serialising anything, and
otherwise describes and routes the call once.

Every operation of the DynamoDB service model is a method with boto3's
name, arguments, return shape and errors; calls go through the session's
routing. Paginators and waiters are botocore's own over these methods, so
they are routed too (waiters call ``DescribeTable``, a control-plane call:
the local region). ``exceptions`` are the local region's client's; since
every region's client comes from one boto3 session,
``except client.exceptions.X`` catches that error from any region.

Events. Each client has a ``meta`` of its own (botocore's ``ClientMeta``:
the local region's client's model, config and endpoint) with an event
emitter of its own, ``meta.events``, on which it emits botocore's per-call
events around the routed call, with botocore's arguments, where
``BaseClient._make_api_call`` emits them: ``provide-client-params`` (a
handler may return new parameters), ``before-parameter-build``,
``before-call`` (``params`` is the request as the local region's client
would serialise it, by that client's own ``_convert_to_request_dict``;
a handler that returns ``(http_response, parsed)`` answers the call
instead of the session, as botocore's ``Stubber`` does), ``after-call``
(``http_response`` carries the answer's status and headers, not its body;
error answers too, before the error is raised) and ``after-call-error``
(any other error of the routed call). The emitter starts with the
handlers the caller registered on its boto3 session for those events, as
boto3's clients do. The per-attempt events (``request-created``,
``before-sign``, ``before-send``, ``needs-retry``, ...) are emitted by
each region's own client: handlers registered for them on ``meta.events``
are not called (those on the boto3 session are, per attempt).

The rule (issue 15): the Python-value client turns Python values into the
wire format and back only through handlers registered on its own
``meta.events``, as boto3's resource client does: boto3's four handlers
under boto3's unique ids (``dynamodb-create-params-copy``,
``dynamodb-condition-expression``, ``dynamodb-attr-value-input``,
``dynamodb-attr-value-output``), registered when the client is built.
Replace the emitter (``client.meta.events = HierarchicalEmitter()``, the
wire-format idiom of DynamoDB test suites) or unregister them, and
parameters go out as given and answers come back in wire format, exactly
as through boto3's resource client; register more and they run where
botocore runs them. Unlike boto3's, a Table made afterwards does not
register them again on the emitter the caller put there: with one
resource shared by every thread, that would undo the idiom of the thread
that swapped it (put the client's own emitter back, or register them).
Calling boto3's transformations directly, and answering from the
Python-value cache, is a shortcut taken only while ``meta.events`` is the
client's own emitter, built with no handler of the caller's and unchanged
since (:class:`~regionproxy._boto3.emitters.ClientEvents` notes any
change): then emitting would call exactly those handlers, to the same
effect. The handlers are thread-safe (boto3's copy, and an injector per
thread); the regional clients carry no handler of ours.

Threads: calls on one client, resource or Table may come from any number
of threads. ``meta.events`` is the client's, so a change to it (a swap, a
registration, a ``Stubber``) is seen by every thread that uses the client,
as with any boto3 client: a thread that changes it takes a client or
resource of its own (``session.new_client()``, ``session.new_resource()``).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from boto3.dynamodb.conditions import ConditionBase
from boto3.dynamodb.transform import TransformationInjector, copy_dynamodb_params
from botocore import xform_name
from botocore.awsrequest import AWSResponse
from botocore.client import ClientMeta
from botocore.exceptions import ClientError, OperationNotPageableError
from botocore.hooks import first_non_none_response
from botocore.paginate import Paginator
from botocore.waiter import WaiterModel, create_waiter_with_client

from regionproxy._boto3.emitters import ClientEvents, Registration

if TYPE_CHECKING:
    from botocore.model import OperationModel, Shape


class ValueForm(Protocol):
    """How one operation's Python values become its wire format and back."""

    def to_wire(self, params: dict[str, Any]) -> dict[str, Any]:
        """The wire-format request for Python-value ``params`` (a new dict)."""
        ...

    def to_python(self, answer: dict[str, Any]) -> dict[str, Any]:
        """``answer`` (wire format, the caller's to keep) in Python values."""
        ...


class CallRouter(Protocol):
    """What the boto3-shaped surfaces need of whatever routes their calls
    (:class:`~regionproxy.RegionSession`); they touch nothing else of it."""

    @property
    def regions(self) -> tuple[str, ...]:
        """Every region, most preferred first."""
        ...

    def local_client(self) -> Any:
        """This process's botocore client of the local region: the model,
        config, endpoint, exceptions and request building of the surfaces."""
        ...

    def caller_handlers(self) -> tuple[Registration, ...]:
        """The handlers of the caller's boto3 session for the per-call
        events, which each surface's emitter starts with."""
        ...

    def execute(self, operation: str, params: dict[str, Any], values: ValueForm | None = None) -> dict[str, Any]:
        """Run one call of ``operation``, routed: ``params`` and the answer
        in wire format; or with ``values``, both in Python values."""
        ...


class _NoBody:
    """The raw body of an answer the session already parsed: empty."""

    def stream(self, **kwargs: Any) -> Any:
        return iter(())


def _http_response(parsed: dict[str, Any], url: str | None) -> AWSResponse:
    """The ``http_response`` of after-call for a routed answer: its status
    and headers (``ResponseMetadata``), no body (the session parsed it)."""
    metadata = parsed.get("ResponseMetadata", {})
    return AWSResponse(url, metadata.get("HTTPStatusCode", 200), metadata.get("HTTPHeaders", {}), _NoBody())


class RegionClient:
    """The session's DynamoDB client, in wire format.

    :param router: what routes its calls (the :class:`~regionproxy.RegionSession`).
    """

    _OWN: tuple[Registration, ...] = ()  # its own handlers, registered on meta.events when built

    def __init__(self, router: CallRouter) -> None:
        self._router = router
        local = router.local_client().meta
        self._events = ClientEvents(own=self._OWN, callers=router.caller_handlers())
        self.meta = ClientMeta(
            self._events, local.config, local.endpoint_url, local.service_model, local.method_to_api_mapping, local.partition
        )
        self._operations = {xform_name(name): name for name in local.service_model.operation_names}
        self._models: dict[str, Any] = {}  # "paginators-1", "waiters-2", loaded when first asked

    def __repr__(self) -> str:
        return f"{type(self).__name__}(regions={list(self._router.regions)!r})"

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
        execute = self._router.execute
        events = self._events

        def call(*args: Any, **params: Any) -> dict[str, Any]:
            if args:
                raise TypeError(f"{name}() only accepts keyword arguments.")  # as botocore's methods
            if self.meta.events is events and not events.custom:
                return execute(operation, params)  # no handlers: emitting would do nothing
            return self._call_with_events(operation, params)

        return call

    def _call_with_events(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """botocore's ``BaseClient._make_api_call`` on this client's
        ``meta.events``, with the session's routed call where botocore sends
        the request (see the module docstring)."""
        meta = self.meta
        events = meta.events
        service = meta.service_model
        model = service.operation_model(operation)
        service_id = service.service_id.hyphenize()
        local = self._router.local_client()
        context: dict[str, Any] = {
            "client_region": meta.region_name,
            "client_config": meta.config,
            "has_streaming_input": model.has_streaming_input,
            "auth_type": model.resolved_auth_type,
            "unsigned_payload": model.unsigned_payload,
            "auth_options": service.metadata.get("auth"),
        }
        responses = events.emit(f"provide-client-params.{service_id}.{operation}", params=params, model=model, context=context)
        params = first_non_none_response(responses, default=params)
        events.emit(f"before-parameter-build.{service_id}.{operation}", params=params, model=model, context=context)
        # The request as the local region's client would build it, by that
        # client's own step (botocore validates the parameters here, before
        # before-call, and so do we). Each region's client builds its own
        # again to send: changes a handler makes to this one are not sent.
        request = local._convert_to_request_dict(params, model, meta.endpoint_url, context=context)
        _, answer = events.emit_until_response(
            f"before-call.{service_id}.{operation}",
            model=model,
            params=request,
            request_signer=local._request_signer,
            context=context,
        )
        if answer is not None:
            http, parsed = answer
        else:
            try:
                parsed = self._router.execute(operation, params)
            except ClientError as error:
                # An error answer: after-call sees it, then it is raised as it was.
                events.emit(
                    f"after-call.{service_id}.{operation}",
                    http_response=_http_response(error.response, meta.endpoint_url),
                    parsed=error.response,
                    model=model,
                    context=context,
                )
                raise
            except Exception as error:
                events.emit(f"after-call-error.{service_id}.{operation}", exception=error, context=context)
                raise
            http = _http_response(parsed, meta.endpoint_url)
        events.emit(f"after-call.{service_id}.{operation}", http_response=http, parsed=parsed, model=model, context=context)
        if http.status_code >= 300:  # a handler's answer was an error
            code = context.get("error_code_override") or parsed.get("Error", {}).get("Code")
            raise self.exceptions.from_code(code)(parsed, operation)
        return parsed

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._operations})

    @property
    def exceptions(self) -> Any:
        return self._router.local_client().exceptions

    def can_paginate(self, operation_name: str) -> bool:
        return self._router.local_client().can_paginate(operation_name)

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
        return self._router.local_client().waiter_names

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


class _PerThreadInjector:
    """boto3's ``TransformationInjector`` handlers, each call made on the
    calling thread's own injector: the handlers boto3's resource registers
    hold one shared injector, whose condition builder two threads would
    number over each other's placeholders."""

    def inject_condition_expressions(self, params: dict[str, Any], model: OperationModel, **kwargs: Any) -> None:
        _injector().inject_condition_expressions(params, model, **kwargs)

    def inject_attribute_value_input(self, params: dict[str, Any], model: OperationModel, **kwargs: Any) -> None:
        _injector().inject_attribute_value_input(params, model, **kwargs)

    def inject_attribute_value_output(self, parsed: dict[str, Any], model: OperationModel, **kwargs: Any) -> None:
        _injector().inject_attribute_value_output(parsed, model, **kwargs)


_per_thread = _PerThreadInjector()

# What boto3's DynamoDB resource registers on its client's meta.events
# (boto3.dynamodb.transform.DynamoDBHighLevelResource), with its unique ids;
# the documentation handlers aside.
TRANSFORMATIONS: tuple[Registration, ...] = (
    Registration("provide-client-params.dynamodb", copy_dynamodb_params, unique_id="dynamodb-create-params-copy"),
    Registration("before-parameter-build.dynamodb", _per_thread.inject_condition_expressions, unique_id="dynamodb-condition-expression"),
    Registration("before-parameter-build.dynamodb", _per_thread.inject_attribute_value_input, unique_id="dynamodb-attr-value-input"),
    Registration("after-call.dynamodb", _per_thread.inject_attribute_value_output, unique_id="dynamodb-attr-value-output"),
)


class PythonValues:
    """One operation's Python values to wire format and back: boto3's
    transformations (``TransformationInjector``), as its resource client's
    handlers apply them, less the walks that could not change anything.

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

    def __repr__(self) -> str:
        return f"PythonValues({self.model.name!r})"

    def to_wire(self, params: dict[str, Any]) -> dict[str, Any]:
        """The wire-format request: a copy of ``params`` (boto3's, but for
        condition objects), conditions built, then values serialised."""
        if not (self.conditions or self.values_in):
            return params
        # The transformer rewrites nested values in place: work on a copy.
        params = _copy_params(params)
        injector = _injector()
        if self.conditions:
            injector.inject_condition_expressions(params, self.model)
        if self.values_in:
            injector.inject_attribute_value_input(params, self.model)
        return params

    def to_python(self, answer: dict[str, Any]) -> dict[str, Any]:
        """``answer``'s values deserialised, in place."""
        if self.values_out:
            _injector().inject_attribute_value_output(answer, self.model)
        return answer


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
    registered on its ``meta.events`` as boto3's resource registers them
    (:data:`TRANSFORMATIONS`). While that emitter is its own and unchanged,
    a call hands its router the operation's :class:`PythonValues`, which
    apply them where the handlers would (a deep copy of the parameters,
    conditions, then values; values of the answer); otherwise the call goes
    through the emitter (see the module docstring). The regional clients
    stay free of handlers and safe to share between threads.

    :param router: what routes its calls (the :class:`~regionproxy.RegionSession`).
    """

    _OWN = TRANSFORMATIONS

    def __init__(self, router: CallRouter) -> None:
        super().__init__(router)
        self._values: dict[str, PythonValues] = {}

    def _method(self, name: str, operation: str) -> Callable[..., dict[str, Any]]:
        execute = self._router.execute
        events = self._events
        values = self._values_of(operation)

        def call(*args: Any, **params: Any) -> dict[str, Any]:
            if args:
                raise TypeError(f"{name}() only accepts keyword arguments.")
            if self.meta.events is events and not events.custom:
                # The handlers are boto3's four and nothing else: the
                # router applies them (and may answer from the cache in
                # Python values, serialising nothing).
                return execute(operation, params, values)
            return self._call_with_events(operation, params)  # boto3's way, whatever the handlers do

        return call

    def _values_of(self, operation: str) -> PythonValues:
        """The :class:`PythonValues` of ``operation`` (``"GetItem"``)."""
        values = self._values.get(operation)
        if values is None:  # two threads may both build it: the same value, harmless
            values = self._values[operation] = PythonValues(self.meta.service_model.operation_model(operation))
        return values
