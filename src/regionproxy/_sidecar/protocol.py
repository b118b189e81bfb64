"""DynamoDB's JSON protocol as a WSGI app, served through a RegionSession.

``POST /`` with ``X-Amz-Target: DynamoDB_20120810.<Operation>`` and a JSON
body (``application/x-amz-json-1.0``), as every AWS SDK sends it. In order:

1. The body is read, no further than DynamoDB's 16 MB request limit and
   within ``body_timeout`` seconds (a slow client is cut off: 400 and the
   connection closed); no ``Content-Length`` is a 400 too.
2. The signature is checked (:mod:`regionproxy._sidecar.signatures`):
   a request refused there is answered DynamoDB's way and goes nowhere.
3. The target and the JSON are read: a missing or malformed target is
   ``UnknownOperationException``, a body that is not a JSON object
   ``SerializationException``; both 400, nothing forwarded. So is a JSON
   object that names a member twice, at any depth: the session reads
   Python's choice of the two (the last), and DynamoDB's parser may read
   the other, so that the cache would file one table's or key's answer
   under another's. Then the rule
   for what the session may read: a request of an operation in DynamoDB's
   model (botocore's) must pass botocore's own ``ParamValidator`` against
   that model, as every request of the boto3 surfaces does before it is
   sent; one that does not is ``ValidationException`` (400), unforwarded.
   The session's readers (routing, the cache, idempotency) assume the
   types the model names (a ``TableName`` that is a string, a ``Key``
   that is a map): nothing else reaches them. (DynamoDB's JSON is the
   model's wire form: binary values are base64 text, which the validator
   takes, and timestamps epoch numbers, which it takes too.)
4. The call runs through the session (routing, breakers, failover,
   hedging, cache, ambiguous-write protection, events) as
   :class:`~regionproxy._regions.wire.JsonRequest`: the parsed JSON is what
   the session reads, the body as it came is what a region gets (signed
   anew for it). Any operation name passes; one the session does not know
   is a control-plane call (the local region, no failover).
5. The answer: a region's own bytes when the session returns the very
   answer a region gave (status, body and ``x-amz-crc32`` as they came);
   otherwise (a cache hit, a BatchGetItem merged with cached items) the
   JSON the session built, with ``x-amz-crc32`` computed for it. A
   region's error answer reaches the client as it came, so every SDK's
   retries, paginators, waiters and error classes work as against
   DynamoDB.

The session's own errors, as DynamoDB-shaped answers an SDK handles
rightly: :class:`~regionproxy.errors.AllRegionsFailed` is 503
``ServiceUnavailable`` (retried by SDKs: nothing was applied, or the write
is safe to repeat); :class:`~regionproxy.errors.AmbiguousWriteError` is 400
``AmbiguousWriteException`` (SDKs do not retry a 400: the write may have
been applied, and repeating it is the client's decision). Bad input is
never a 500; a 500 (``InternalServerError``) is the sidecar's own failure
(no credentials, a bug), logged.

The app is mounted under :class:`~regionproxy._web.middleware.RegionProxyMiddleware`
(:func:`sidecar_app`): ``/livez``, ``/readyz``, ``/healthz``, the status
page and ``/metrics`` are the middleware's own, from the same code; the
sidecar adds one metric, requests per operation, table and status
(:class:`~regionproxy.events.SidecarRequest`), as Envoy's DynamoDB filter
counts them.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import re
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.validate import ParamValidator

from regionproxy._dynamodb.tables import table_name
from regionproxy._regions.wire import JSON_CONTENT_TYPE, TARGET_PREFIX, JsonRequest, RawAnswer, raw_error
from regionproxy._sidecar.signatures import ClientKeys, SignatureRefused, verify
from regionproxy._web.admin import StartResponse
from regionproxy.errors import AllRegionsFailed, AmbiguousWriteError
from regionproxy.events import Hooks, Listener, SidecarRequest

if TYPE_CHECKING:
    from regionproxy._session.session import RegionSession
    from regionproxy._web.middleware import RegionProxyMiddleware

log = logging.getLogger("regionproxy.sidecar")

MAX_BODY = 16 * 1024 * 1024  # DynamoDB's request size limit
BODY_TIMEOUT = 10.0  # seconds to read a whole body
_CHUNK = 64 * 1024
_OPERATION = re.compile(r"[A-Z][A-Za-z0-9]{0,63}")
# Reads whose answers the session's cache may keep: their answers are parsed.
_PARSED = frozenset({"GetItem", "Query", "BatchGetItem"})
_COAL = "com.amazon.coral.service#"
_DYNAMODB = "com.amazonaws.dynamodb.v20120810#"
# Not passed on from a region's answer: hop-by-hop, or the server's own.
_DROPPED = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server", "proxy-connection", "te", "trailer", "upgrade"})


class _Refused(Exception):
    """A request answered with a DynamoDB-shaped error before it reached the session."""

    def __init__(self, status: int, error_type: str, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.close = close


class DynamoDBProtocol:
    """WSGI app: DynamoDB JSON-protocol requests, routed through ``session``.

    :param session: the :class:`~regionproxy.RegionSession` that runs each call.
    :param keys: the client keys; empty: signatures are not checked (loopback only,
        :func:`~regionproxy._sidecar.serve.check_listen`).
    :param max_body: bytes; a larger request is refused unread.
    :param body_timeout: seconds to read a body.
    :param listeners: receive a :class:`~regionproxy.events.SidecarRequest` per request.
    :param clock: wall-clock seconds (signature dates).
    """

    def __init__(
        self,
        session: RegionSession,
        keys: ClientKeys,
        *,
        max_body: int = MAX_BODY,
        body_timeout: float = BODY_TIMEOUT,
        listeners: Iterable[Listener] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        for replica in getattr(session, "replicas", {}).values():  # (a stand-in session has none)
            replica.sends_raw = True  # every call goes out raw: warming warms the raw senders (regionproxy._regions.replica)
        self.keys = keys
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.hooks = Hooks(listeners)
        self._clock = clock

    def __repr__(self) -> str:
        return f"DynamoDBProtocol({self.session!r}, keys={self.keys!r})"

    def add_listener(self, listener: Listener) -> None:
        self.hooks.add(listener)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        operation, table = "", ""
        try:
            if environ.get("REQUEST_METHOD") != "POST":
                raise _Refused(400, _COAL + "UnknownOperationException", "DynamoDB takes POST requests.")
            body = self._read_body(environ)
            if self.keys:
                try:
                    verify(environ, body, self.keys, self._clock)
                except SignatureRefused as refused:
                    raise _Refused(400, _COAL + refused.code, refused.message) from None
            operation = _operation(environ)
            params = _params(body)
            table = _table(params)
            _validate(operation, params)
            status, headers, payload = self._run(operation, params, body)
        except _Refused as refused:
            status, headers, payload = _error(refused.status, refused.error_type, refused.message)
            if refused.close:
                headers.append(("Connection", "close"))
        self.hooks.emit(SidecarRequest(operation or "unknown", table, status, time.perf_counter() - started))
        start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
        return [payload]

    def _read_body(self, environ: Mapping[str, Any]) -> bytes:
        length_text = environ.get("CONTENT_LENGTH") or ""
        if not length_text.isdigit():
            raise _Refused(400, _COAL + "SerializationException", "A Content-Length is required.", close=True)
        length = int(length_text)
        if length > self.max_body:
            raise _Refused(413, _COAL + "RequestEntityTooLarge", f"Request size exceeds {self.max_body} bytes", close=True)
        stream = environ["wsgi.input"]
        deadline = time.monotonic() + self.body_timeout
        chunks, left = [], length
        try:
            while left > 0:
                if time.monotonic() > deadline:
                    raise _Refused(400, _COAL + "RequestTimeoutException", "The body did not arrive in time.", close=True)
                chunk = stream.read(min(left, _CHUNK))
                if not chunk:
                    raise _Refused(400, _COAL + "SerializationException", "The body is shorter than its Content-Length.", close=True)
                chunks.append(chunk)
                left -= len(chunk)
        except OSError:  # the socket timed out or broke while reading
            raise _Refused(400, _COAL + "RequestTimeoutException", "The body did not arrive in time.", close=True) from None
        return b"".join(chunks)

    def _run(self, operation: str, params: dict[str, Any], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        request = JsonRequest(params, body, parse=operation in _PARSED)
        try:
            result = self.session.execute(operation, request)
        except AmbiguousWriteError as error:
            return _error(400, _DYNAMODB + "AmbiguousWriteException", str(error))
        except AllRegionsFailed as error:
            return _error(503, _COAL + "ServiceUnavailable", str(error))
        except Exception as error:  # noqa: BLE001 - every other error becomes an answer
            raw = raw_error(error)
            if raw is not None:
                return _passed_on(raw)
            response = getattr(error, "response", None)
            if isinstance(response, dict) and isinstance(response.get("Error"), dict):
                # A ClientError botocore parsed (not a region's bytes): DynamoDB's shape again.
                status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400
                code = str(response["Error"].get("Code") or "ValidationException")
                return _error(status, _DYNAMODB + code, str(response["Error"].get("Message") or ""))
            log.exception("regionproxy sidecar: %s failed in the sidecar itself", operation)
            return _error(500, _COAL + "InternalServerError", "The sidecar could not serve the request.")
        raw = request.raw(result)
        if raw is not None:
            return _passed_on(raw)
        return _built(result)


def _operation(environ: Mapping[str, Any]) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET") or ""
    operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
    if not _OPERATION.fullmatch(operation):
        raise _Refused(400, _COAL + "UnknownOperationException", "")
    return operation


_MODEL: list[Any] = []  # DynamoDB's service model, loaded once (about 0.2 s)


def _model() -> Any:
    if not _MODEL:  # two threads may both load it: the same model, harmless
        import botocore.session

        _MODEL.append(botocore.session.get_session().get_service_model("dynamodb"))
    return _MODEL[0]


class _ShapeValidator(ParamValidator):
    """botocore's validator, except inside items: a map of attribute values
    (an ``Item``, a ``Key``, ``ExpressionAttributeValues``) must be a map,
    and an attribute value outside one a map with one member; what is
    inside is DynamoDB's to judge (the session's key reader takes any
    value: :func:`~regionproxy._dynamodb.keys.key_fingerprint`). The full
    walk costs about 4 us per attribute (0.2 ms for a 50-attribute PutItem)."""

    def _validate_map(self, param: Any, shape: Any, errors: Any, name: str) -> None:
        if shape.value.name != "AttributeValue":
            super()._validate_map(param, shape, errors, name)
        elif not isinstance(param, dict):
            errors.report(name, "invalid type", param=param, valid_types=[str(dict)])

    def _validate_structure(self, params: Any, shape: Any, errors: Any, name: str) -> None:
        if shape.name != "AttributeValue":
            super()._validate_structure(params, shape, errors, name)
        elif len(params) != 1:
            errors.report(name, "invalid type", param=params, valid_types=["an AttributeValue map with one member"])


_VALIDATOR = _ShapeValidator()


def _validate(operation: str, params: dict[str, Any]) -> None:
    """botocore's parameter validation against DynamoDB's model, for the
    operations the model has (see the module docstring)."""
    model = _model()
    if operation not in model.operation_names:
        return  # unknown to botocore: the local region's to judge
    report = _VALIDATOR.validate(params, model.operation_model(operation).input_shape)
    if report.has_errors():
        raise _Refused(400, _DYNAMODB + "ValidationException", report.generate_report())


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused if it names a member twice (see the module docstring)."""
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("a JSON object names a member twice")
    return members


def _params(body: bytes) -> dict[str, Any]:
    try:
        params = json.loads(body, object_pairs_hook=_unique) if body else {}
    except (ValueError, RecursionError):
        raise _Refused(400, _COAL + "SerializationException", "The body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise _Refused(400, _COAL + "SerializationException", "Start of structure or map found where not expected.")
    return params


def _table(params: Mapping[str, Any]) -> str:
    """The table a request names, for metrics: ``TableName``, or the one
    table of a batch; "" for none or several."""
    name = params.get("TableName")
    if isinstance(name, str):
        return table_name(name)  # a table ARN: its name (regionproxy._dynamodb.tables)
    items = params.get("RequestItems")
    if isinstance(items, dict) and len(items) == 1:
        only = next(iter(items))
        return table_name(only) if isinstance(only, str) else ""
    return ""


def _passed_on(raw: RawAnswer) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(name, value) for name, value in raw.headers if name.lower() not in _DROPPED]
    return raw.status, headers, raw.body


def _built(result: Mapping[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """The JSON of an answer the session built (a cache hit, a merge), with
    its own ``x-amz-crc32``."""
    metadata = result.get("ResponseMetadata")
    body = json.dumps({k: v for k, v in result.items() if k != "ResponseMetadata"}, separators=(",", ":"), default=_jsonable).encode()
    request_id = (metadata or {}).get("RequestId") if isinstance(metadata, dict) else None
    return 200, _headers(body, request_id), body


def error_answer(status: int, error_type: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """A DynamoDB-shaped error answer: the status line (``"400 Bad Request"``), headers and body."""
    code, headers, body = _error(status, error_type, message)
    return f"{code} {_REASONS.get(code, 'Error')}", headers, body


def _error(status: int, error_type: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({"__type": error_type, "message": message}).encode()
    headers = _headers(body, None)
    headers.append(("x-amzn-ErrorType", error_type.rpartition("#")[2]))
    return status, headers, body


def _headers(body: bytes, request_id: str | None) -> list[tuple[str, str]]:
    return [
        ("Content-Type", JSON_CONTENT_TYPE),
        ("x-amzn-RequestId", request_id or uuid.uuid4().hex.upper()),
        ("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF)),
        ("Content-Length", str(len(body))),
    ]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


_REASONS = {200: "OK", 400: "Bad Request", 413: "Request Entity Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}


def sidecar_app(
    session: RegionSession,
    keys: ClientKeys,
    *,
    max_body: int = MAX_BODY,
    body_timeout: float = BODY_TIMEOUT,
    clock: Callable[[], float] = time.time,
    **middleware_options: Any,
) -> RegionProxyMiddleware:
    """The sidecar's WSGI app: :class:`DynamoDBProtocol` under the
    middleware, whose health, status and metrics paths answer as they do
    for any app (``middleware_options`` are the middleware's). The
    middleware's metrics listener also counts the sidecar's requests."""
    from regionproxy._web.middleware import RegionProxyMiddleware

    protocol = DynamoDBProtocol(session, keys, max_body=max_body, body_timeout=body_timeout, clock=clock)
    app = RegionProxyMiddleware(protocol, session, **middleware_options)
    if app.metrics is not None:
        protocol.add_listener(app.metrics)
    return app
