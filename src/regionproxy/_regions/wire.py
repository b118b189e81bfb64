"""One region's raw JSON-protocol send: a client's DynamoDB request body
passed through as it came, signed anew for the region, verified (TLS) as the region's own client verifies.

The sidecar (:mod:`regionproxy._sidecar`) receives DynamoDB requests as
JSON bodies. It routes them through the session like any call, with the
parsed JSON as the call's parameters (DynamoDB's JSON is the wire format
``boto3.client`` takes, but for binary values, which stay base64 text),
so routing, the cache and idempotency read what they need. The request
sent to a region is the client's body itself, not botocore's
serialisation of the parsed parameters: a :class:`JsonRequest` (the
parameters, a ``dict``) carries the body, and :meth:`Replica.call
<regionproxy._regions.replica.Replica.call>` hands any ``JsonRequest`` to
the region's :class:`WireSender` instead of its botocore client.

The rule: a ``JsonRequest`` is sent as its ``body`` when it has one, and
as ``json.dumps`` of itself when it has none (a request the session
derived from a client's, e.g. the keys of a BatchGetItem the cache could
not answer: built with ``type(params)(...)``, it stays JSON-protocol, so
binary values are never base64-encoded twice). Answers are DynamoDB's
JSON parsed (``json.loads``), with botocore's ``ResponseMetadata`` added;
each is recorded on the request with its raw bytes (:meth:`JsonRequest.raw`),
so a sidecar that gets back the very answer a region gave returns the
region's bytes unchanged, and re-serialises only what the session built
itself (a cache hit, a merged BatchGetItem). Error answers are raised as
botocore's ``ClientError`` (parsed by botocore's own JSON parser, so the
verdicts judge them as they judge any), with the raw answer kept on the
error (:func:`raw_error`). Transport errors are botocore's own classes,
judged by class (:mod:`regionproxy._dynamodb.verdicts`): the send is
:class:`~regionproxy._regions.transport.Transport` (a lean keep-alive
client that raises what botocore's ``URLLib3Session`` raises for the same
failure) for ``http(s)`` endpoints without a proxy or client certificate,
and ``URLLib3Session`` itself otherwise; a body that is not JSON, or whose
``x-amz-crc32`` does not match, is a fault that may have been applied
(``ResponseParserError``, ``ChecksumError``), never a ``ValueError``,
which the verdicts read as "not sent" (an ``x-amz-crc32`` that is not
ASCII digits is not checked: ``"\xb2"`` passes ``str.isdigit()``, not ``int()``).

Signing: SigV4 for ``dynamodb`` in the region, with the credentials of
the boto3 session the region's client came from (refreshed as botocore
refreshes them), so a client's own signature never leaves the sidecar.
The signature is botocore's (:class:`SigV4`: ``botocore.auth.SigV4Auth``'s
canonical request, string to sign and signature) over a
:class:`LightRequest`, whose headers are a plain dict: botocore's
``AWSRequest`` keeps them in an ``email.message.Message``, whose lookups
cost about 150 us per signature, half of what the sidecar spends on a
cached GetItem. The sidecar checks its clients' signatures with the same
class.

For the one request shape every DynamoDB SDK sends (``POST /``, no query
string), :func:`root_signature` computes the same SigV4 signature in a
dozen steps instead of botocore's hundred (about 25 us less per
signature, on each side of the sidecar): the canonical request and the
string to sign exactly as ``SigV4Auth`` builds them (header values
trimmed as its ``_header_value`` trims them, names sorted and lower-case,
the hex SHA-256 of the body). Any other path or a query string goes to
botocore's signer. Tests compare the two over many header sets
(``tests/_regions/test_wire.py``).
"""

from __future__ import annotations

import datetime
import functools
import hmac
import json
import threading
import zlib
from dataclasses import dataclass
from hashlib import sha256
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SIGNED_HEADERS_BLACKLIST, SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ChecksumError, ClientError, NoCredentialsError
from botocore.httpsession import URLLib3Session
from botocore.parsers import JSONParser, ResponseParserError

from regionproxy._regions import transport, warming

TARGET_PREFIX = "DynamoDB_20120810."
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
_RAW_ATTRIBUTE = "regionproxy_raw_answer"


_UNSIGNED = frozenset(SIGNED_HEADERS_BLACKLIST)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class HeaderMap(dict):  # type: ignore[type-arg]
    """Lower-case header names to values, with the one method of botocore's
    ``HTTPHeaders`` its signer calls (``get_all``)."""

    def get_all(self, name: str) -> list[str]:
        value = self.get(name)
        return [] if value is None else [value]


class LightRequest:
    """What botocore's SigV4 reads of a request, with plain-dict headers."""

    __slots__ = ("method", "url", "headers", "body", "params", "context")

    def __init__(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.params: dict[str, str] = {}
        self.context: dict[str, Any] = {}


def host_of(url: str) -> str:
    """The ``host`` header a client sends for ``url`` (no default port), as botocore signs it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


@functools.lru_cache(maxsize=256)
def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """SigV4's signing key, botocore's derivation (``SigV4Auth.signature``),
    kept: it changes once a day per key and region, and is four of the five
    HMACs of a signature."""
    key = hmac.new(f"AWS4{secret}".encode(), day.encode(), sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), sha256).digest()
    return key


def root_signature(secret: str, region: str, service: str, amz_date: str, method: str, headers: dict[str, str], body_hash: str) -> str:
    """SigV4's signature of a request to ``/`` with no query string, as
    botocore's ``SigV4Auth`` computes it: ``headers`` are the signed ones,
    lower-case names; ``amz_date`` the ``X-Amz-Date`` (``20261206T120000Z``)."""
    names = sorted(headers)
    canonical = "\n".join(
        (
            method.upper(),
            "/",
            "",
            "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names),
            ";".join(sorted(name.lower().strip() for name in names)),  # as botocore's signed_headers
            body_hash,
        )
    )
    string_to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{amz_date[:8]}/{region}/{service}/aws4_request\n{sha256(canonical.encode()).hexdigest()}"
    return hmac.new(_signing_key(secret, amz_date[:8], region, service), string_to_sign.encode(), sha256).hexdigest()


def sign_root(credentials: Any, region: str, service: str, headers: dict[str, str], body: bytes, amz_date: str) -> None:
    """botocore's ``SigV4Auth.add_auth`` for a ``POST /`` with ``headers``
    (no ``Authorization`` yet): adds ``X-Amz-Date``, the session token if
    any, and ``Authorization``, signing every header botocore signs."""
    headers["X-Amz-Date"] = amz_date
    if credentials.token:
        headers["X-Amz-Security-Token"] = credentials.token
    signed = {name.lower(): value for name, value in headers.items() if name.lower() not in _UNSIGNED}
    signature = root_signature(credentials.secret_key, region, service, amz_date, "POST", signed, sha256(body).hexdigest())
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{amz_date[:8]}/{region}/{service}/aws4_request, "
        f"SignedHeaders={';'.join(sorted(signed))}, Signature={signature}"
    )


class SigV4(SigV4Auth):
    """botocore's SigV4 signer over a :class:`LightRequest`: it signs every
    header of the request but those botocore never signs; the signing key
    is derived as botocore derives it, once a day per key and region."""

    def signature(self, string_to_sign: str, request: Any) -> str:
        key = _signing_key(self.credentials.secret_key, request.context["timestamp"][0:8], self._region_name, self._service_name)
        return hmac.new(key, string_to_sign.encode(), sha256).hexdigest()

    def headers_to_sign(self, request: Any) -> HeaderMap:
        headers = HeaderMap()
        for name, value in request.headers.items():
            lowered = name.lower()
            if lowered not in _UNSIGNED:
                headers[lowered] = value
        if "host" not in headers:
            headers["host"] = host_of(request.url)
        return headers


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """A region's answer as it came: status, headers, body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class JsonRequest(dict):  # type: ignore[type-arg]
    """A DynamoDB request in JSON-protocol form: the parsed JSON (the call's
    parameters) and, when it came from a client, its ``body`` as it came.

    :param params: the parsed JSON object.
    :param body: the bytes to send; None: ``json.dumps`` of the parameters.
    :param parse: parse a successful answer (a read the cache may keep);
        False: the session gets ``{"ResponseMetadata": ...}`` only, and the
        caller the raw answer (:meth:`raw`).
    """

    __slots__ = ("body", "parse", "_answers", "_lock")

    def __init__(self, params: Any = (), body: bytes | None = None, *, parse: bool = True) -> None:
        super().__init__(params)
        self.body = body
        self.parse = parse
        self._answers: list[tuple[dict[str, Any], RawAnswer]] = []
        self._lock = threading.Lock()  # both sides of a hedged read may record

    def __repr__(self) -> str:
        return f"JsonRequest({dict.__repr__(self)}, body={'given' if self.body is not None else None})"

    def wire_body(self) -> bytes:
        """The bytes to send for this request."""
        if self.body is not None:
            return self.body
        return json.dumps(self, separators=(",", ":")).encode()

    def record(self, parsed: dict[str, Any], raw: RawAnswer) -> None:
        with self._lock:
            self._answers.append((parsed, raw))

    def raw(self, answer: Any) -> RawAnswer | None:
        """The raw answer a region gave when ``answer`` is that very parsed
        object (identity, not equality: anything the session built or
        copied is not the region's bytes)."""
        with self._lock:
            for parsed, raw in self._answers:
                if parsed is answer:
                    return raw
        return None


def raw_error(error: BaseException) -> RawAnswer | None:
    """The raw error answer a region gave, if ``error`` is one."""
    return getattr(error, _RAW_ATTRIBUTE, None)


def region_error(parsed: dict[str, Any], operation: str, raw: RawAnswer) -> ClientError:
    """botocore's ``ClientError`` for a region's error answer, which keeps
    the answer as it came (:func:`raw_error`)."""
    error = ClientError(parsed, operation)  # type: ignore[arg-type]
    setattr(error, _RAW_ATTRIBUTE, raw)
    return error


class WireSender:
    """Sends :class:`JsonRequest` bodies to one region, signed for it.

    :param region: the region name (the SigV4 scope).
    :param endpoint_url: the region's endpoint (the client's ``meta.endpoint_url``).
    :param config: the region's botocore ``Config`` (timeouts, pool, proxies).
    :param credentials: botocore credentials (refreshable or not).
    :param user_agent: sent as ``User-Agent``.
    :param verify: TLS verification as the region's botocore client has it
        (its endpoint's ``verify``: True for botocore's CA bundle, a bundle's
        path from ``AWS_CA_BUNDLE`` or ``verify=``, or False).
    :param proxies: the proxies the region's client uses (``config.proxies``,
        or the ``HTTPS_PROXY``/``NO_PROXY`` environment botocore reads); None: ``config.proxies``.
    """

    def __init__(
        self, region: str, endpoint_url: str, config: Any, credentials: Any, user_agent: str = "", verify: Any = True, proxies: Any = None
    ) -> None:
        self.region = region
        self.url = endpoint_url.rstrip("/") + "/"
        self.host = host_of(self.url)
        self._credentials = credentials
        self._user_agent = user_agent
        self._path = urlsplit(self.url).path or "/"
        self._http: URLLib3Session | None = None
        self._lean: transport.Transport | None = None
        proxies = config.proxies if proxies is None else proxies
        if transport.usable(self.url, config) and not proxies:
            self._lean = transport.Transport(
                self.url, config.connect_timeout, config.read_timeout, config.max_pool_connections, verify=verify
            )
        else:
            self._http = URLLib3Session(
                verify=verify,
                timeout=(config.connect_timeout, config.read_timeout),
                proxies=proxies,
                max_pool_connections=config.max_pool_connections,
                client_cert=config.client_cert,
                proxies_config=config.proxies_config,
            )
        self._parser = JSONParser()

    def __repr__(self) -> str:
        return f"WireSender({self.region!r}, {self.url!r})"

    def close(self) -> None:
        if self._lean is not None:
            self._lean.close()
        if self._http is not None:
            self._http.close()

    def warm(self) -> str:
        """Keep one connection open in the pool this sender's requests go
        through (:mod:`regionproxy._regions.warming`): the lean transport's
        (:meth:`~regionproxy._regions.transport.Transport.warm`), or
        ``URLLib3Session``'s (:func:`~regionproxy._regions.warming.warm_session`,
        which skips a proxied endpoint). What it did, as they say it."""
        if self._lean is not None:
            return self._lean.warm()
        return warming.warm_session(self._http, self.url)

    def send(self, operation: str, request: JsonRequest) -> dict[str, Any]:
        """DynamoDB ``operation`` with ``request``'s body; the parsed answer
        (recorded on ``request`` with its bytes), or the error botocore
        would raise."""
        if self._credentials is None:
            raise NoCredentialsError()
        body = request.wire_body()
        headers = {
            "Host": self.host,
            "X-Amz-Target": TARGET_PREFIX + operation,
            "Content-Type": JSON_CONTENT_TYPE,
            "Content-Length": str(len(body)),
        }
        if self._user_agent:
            headers["User-Agent"] = self._user_agent
        credentials = self._credentials.get_frozen_credentials()
        if self._path == "/":
            sign_root(credentials, self.region, "dynamodb", headers, body, datetime.datetime.now(datetime.UTC).strftime(SIGV4_TIMESTAMP))
        else:
            SigV4(credentials, "dynamodb", self.region).add_auth(LightRequest("POST", self.url, headers, body))
        if self._lean is not None:
            lines = [f"POST {self._path} HTTP/1.1\r\n"]
            for name, value in headers.items():
                if "\r" in value or "\n" in value:  # as http.client refuses it, before sending: not sent
                    raise ValueError(f"Invalid header value {value!r} for {name}")
                lines.append(f"{name}: {value}\r\n")
            lines.append("\r\n")
            answer = self._lean.post("".join(lines).encode("latin-1"), body)
            status, items, lowered, body = answer.status_code, answer.items, answer.headers, answer.content
        else:
            assert self._http is not None
            response = self._http.send(AWSPreparedRequest("POST", self.url, headers, body, stream_output=False))
            status, items, body = response.status_code, tuple(response.headers.items()), response.content
            lowered = {name.lower(): value for name, value in items}
        raw = RawAnswer(status, items, body)
        expected = lowered.get("x-amz-crc32")
        if expected is not None and expected.isascii() and expected.isdigit() and int(expected) != zlib.crc32(body) & 0xFFFFFFFF:
            raise ChecksumError(checksum_type="crc32", expected_checksum=int(expected), actual_checksum=zlib.crc32(body))
        metadata = {
            "RequestId": lowered.get("x-amzn-requestid", ""),
            "HTTPStatusCode": status,
            "HTTPHeaders": lowered,
            "RetryAttempts": 0,
        }
        if status >= 300:
            try:
                parsed = self._parser.parse({"status_code": status, "headers": lowered, "body": body}, None)
            except Exception as parse_error:  # noqa: BLE001 - a corrupt answer: the region's fault, never "not sent"
                raise ResponseParserError(f"unreadable error answer ({status})") from parse_error
            parsed["ResponseMetadata"] = metadata
            raise region_error(parsed, operation, raw)
        if request.parse or not body:
            try:
                parsed = json.loads(body) if body else {}
            except ValueError as parse_error:  # a ValueError would read as "not sent"
                raise ResponseParserError(f"unreadable answer to {operation}") from parse_error
            if not isinstance(parsed, dict):
                raise ResponseParserError(f"unreadable answer to {operation}: not a JSON object")
        else:
            parsed = {}
        parsed["ResponseMetadata"] = metadata
        request.record(parsed, raw)
        return parsed
