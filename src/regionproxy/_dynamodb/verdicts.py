"""Which errors are region faults, which are the caller's, and whether a
failed request may have been applied anyway. One table, one place.

An error is first placed by where it was raised, read from its traceback:
a regional call runs ``replica.call`` -> the region's botocore client
(``_make_api_call``) -> its endpoint's attempt (``botocore.endpoint``
``_get_response``, ``_do_get_response``, ``_send``, ``_needs_retry``: send
the request, read and parse the answer, check its CRC32; and below them
the HTTP stack, botocore's parser and retry checks, recognised by module
too). Signing, and the credential fetch it may start, happens in the
client call before the attempt. An error whose traceback shows no client
call at all (the client could not be built; a test double) is judged by
its class alone. Then, in the order :func:`classify` applies them:

1. **Raised by another botocore client inside the region's call** (a second
   ``_make_api_call`` frame below the region's, or one below the building
   of the region's client): not sent, whatever it is.
   Credential providers refresh role, web-identity and SSO credentials
   while the request is signed, with an STS or SSO client of their own;
   that client's ``ClientError`` (``Throttling``, ``AccessDenied``) and
   transport errors (refused, timed out, ``SSLError``) say nothing about
   this region's DynamoDB, which saw no request.
2. **Raised in the region's client call but outside its endpoint's
   attempt**: before the request was sent (parameter validation,
   serialisation, endpoint resolution, credentials and signing, a
   ``before-call`` handler), or by a caller's ``after-call`` handler once
   the answer is in (the caller's error, as boto3 would raise it): not
   sent. Except a ``ClientError``, which the client raises for the answer
   it parsed: an answer from DynamoDB, classified by its error code and
   HTTP status (never by ``botocore.errorfactory`` classes: those are built
   per botocore session, so the same error from two sessions has two
   classes). Throttling and 5xx are the region's; every other code is the
   caller's, and reaches the caller unchanged. ``ReplicatedWriteConflictException``
   (an MRSC table's concurrent writes) is a conflict, whatever its status:
   the caller's, never the region's, and retried in the region only for a
   write that is safe to repeat (:data:`CONFLICT`).
3. **Raised in the endpoint's attempt, before the request's bytes were
   handed to the socket**: not sent. The error, or one it wraps, was
   raised in a step that prepares the request and talks to nobody:
   choosing the proxy and building the connection pool or proxy manager
   (a proxy URL urllib3 cannot parse, a missing proxy CA bundle), taking a
   connection from the pool, composing the request line and headers
   (``putrequest``, ``putheader``: a session token or user agent with a
   newline; http.client only buffers them), setting up the TLS context
   (``create_urllib3_context``, and ``ssl_wrap_socket`` itself, where the
   CA bundle and client certificate are loaded: ``AWS_CA_BUNDLE`` naming a
   missing file) before the handshake it then starts. botocore wraps these
   as ``HTTPClientError`` or ``SSLError``; the class does not decide, the
   step does (:data:`PREPARATION_STEPS`).
4. **Errors of known classes raised before sending** (:data:`NOT_SENT`):
   not sent, wherever they come from (parameter validation, credentials,
   building the client, a proxy setting the send cannot use); and, when
   the traceback shows no botocore client call at all (the client could
   not be built, a test double), a ``TypeError`` or ``ValueError``.
5. **A TLS handshake that failed** on a new connection (the handshake
   failed, timed out or was cut: a frame named ``do_handshake`` in the
   error's chain, or a refused certificate) happened before a byte of the
   request was written, as no TLS stack botocore uses sends early data: a
   fault of the region, not applied, failed over at once (another
   handshake would meet the same certificate or middlebox). Whatever
   botocore calls it: ``SSLError``, or ``ReadTimeoutError`` (a handshake
   that never finishes), or ``ConnectionClosedError`` (a reset during it).
6. **Known transport errors** (:data:`TRANSPORT`) are faults of the region;
   a refused connection, a connect timeout or a proxy that could not be
   reached were not applied, anything raised once a connection was open
   may have been (a read timeout, a dropped connection, a TLS error after
   the handshake, a response whose ``x-amz-crc32`` does not match: DynamoDB
   applied the write and its answer was corrupted on the way). Fast
   transient ones are retried in the region first, as plain boto3 retries
   them (its DynamoDB retry config retries a CRC32 mismatch and
   ``GENERAL_CONNECTION_ERROR``).
   A name that does not resolve (``EndpointConnectionError`` wrapping a
   ``socket.gaierror`` or urllib3's ``NameResolutionError``: an empty DNS record, a resolver that is down) is
   the region's fault with reason ``dns``, and not applied: no connection
   was opened, so no byte of the request left the process. It fails over
   at once, even a write that is not idempotent, and is not retried in the
   region (the resolver would answer the same). It is not "not sent" in the
   sense of rule 4: the region is unreachable from here, the next region
   may well not be, so it counts against the breaker.
7. **Anything else** is a fault too, and a write that met it may have been
   applied (a parser choking on a corrupted body, a socket error botocore
   never wraps, ...). It is judged like a 5xx (``poison_suspect``, see
   :mod:`regionproxy._routing.attempts`): so that an unknown error the
   request itself causes in every region (a bug, a handler of the
   caller's) never opens every breaker; it then reaches the caller as it
   was.

"Not sent" means: the region said nothing, so no breaker counts it and a
half-open trial is released without a verdict; no other region is tried
(the same process would fail the same way there); the caller gets the
error unchanged, never ``AmbiguousWriteError``; and a health probe that
meets it fails readiness, since a process that cannot send requests is not
ready.

The safety of writes never rests on rules 1 to 5 guessing right: an error
wrongly taken as not sent is raised to the caller at once, never retried
nor failed over. The frame names are botocore's, urllib3's and
http.client's. The attempt is recognised by method and by module, so a
method a later release renames does not move a transport error out of the
send; a renamed preparation step or handshake makes its errors fall to
the rules after it (a configuration error then counts as a fault, a
handshake failure as maybe applied). The tests raise each case through a
real client, and fail when a name moves.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType, TracebackType

import botocore.exceptions
from botocore.exceptions import (
    BaseEndpointResolverError,
    ChecksumError,
    ClientError,
    ConfigNotFound,
    ConfigParseError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    DataNotFoundError,
    EndpointConnectionError,
    EndpointProviderError,
    HTTPClientError,
    InvalidConfigError,
    InvalidDefaultsMode,
    InvalidEndpointConfigurationError,
    InvalidProxiesConfigError,
    InvalidRetryConfigurationError,
    MetadataRetrievalError,
    MissingParametersError,
    NoAuthTokenError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ProxyConnectionError,
    ReadTimeoutError,
    RefreshWithMFAUnsupportedError,
    SSLError,
    SSOError,
    TokenRetrievalError,
    UnknownCredentialError,
    UnknownSignatureVersionError,
    UnknownTokenProviderError,
    UnsupportedSignatureVersionError,
    ValidationError,
)

from regionproxy.errors import RegionUnavailable


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an error means for routing.

    :param fault: the region failed (counts against its breaker, may fail
        over); False: the caller's error, which reaches the caller unchanged.
    :param maybe_applied: the request may have reached DynamoDB, so a write
        that is not idempotent must not be sent again, here or elsewhere.
    :param reason: a short label for events and metrics.
    :param sent: False when the error is known to be raised before any
        request left the process (parameter validation, no credentials):
        the region said nothing, so its breaker gets no verdict either way.
    :param poison_suspect: the request itself may be the cause (DynamoDB
        answered with a 5xx, or an error this module does not know). Judged
        at the end of the call (:mod:`regionproxy._routing.attempts`):
        charged to the region if another region answered the same request,
        or once the region has failed different requests so in a row; a
        request that fails so everywhere is a poison request, not the
        regions'.
    :param retry_here: worth one more attempt in the same region before
        failing over (a fast, transient failure); timeouts and refused
        connections fail over at once, since another attempt would cost as
        much again against a region that is probably down.
    """

    fault: bool
    maybe_applied: bool
    reason: str
    sent: bool = True
    poison_suspect: bool = False
    retry_here: bool = False


CALLER = Verdict(fault=False, maybe_applied=True, reason="caller_error")
# A write to a multi-region strongly consistent (MRSC) table that met a
# concurrent write of the same item from another region: DynamoDB refused
# it (not applied). A conflict between writers, not a fault of the region:
# never charged to a breaker, never failed over (every replica would say the
# same); worth another attempt in the same region, after a backoff, only
# for a write that is safe to repeat (see regionproxy._routing.attempts),
# else the caller's, unchanged.
WRITE_CONFLICT = "ReplicatedWriteConflictException"
CONFLICT = Verdict(fault=False, maybe_applied=False, reason="write_conflict", retry_here=True)

# Raised while the call is built, signed or its client made: before any
# request leaves the process.
NOT_SENT: tuple[type[BaseException], ...] = (
    # the call's parameters
    ParamValidationError,
    ValidationError,
    MissingParametersError,
    # credentials and signing (credential providers may make calls of their
    # own, to STS or instance metadata: not to this region's DynamoDB)
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    UnknownCredentialError,
    MetadataRetrievalError,
    RefreshWithMFAUnsupportedError,
    NoAuthTokenError,
    TokenRetrievalError,
    UnknownTokenProviderError,
    SSOError,
    UnknownSignatureVersionError,
    UnsupportedSignatureVersionError,
    # the client, its configuration and its endpoint
    BaseEndpointResolverError,  # NoRegionError among them
    EndpointProviderError,
    DataNotFoundError,  # UnknownServiceError among them
    ProfileNotFound,
    ConfigParseError,
    ConfigNotFound,
    InvalidConfigError,
    InvalidRetryConfigurationError,
    InvalidDefaultsMode,
    InvalidEndpointConfigurationError,
    InvalidProxiesConfigError,  # raised in the send, before connecting: botocore wraps it in HTTPClientError
    # newer botocore only
    *(kind for name in ("LoginError",) if isinstance(kind := getattr(botocore.exceptions, name, None), type)),
)

# Transport errors: the first match wins, so each class comes before its
# bases (botocore's ConnectionError, HTTPClientError).
TRANSPORT: tuple[tuple[type[BaseException], Verdict], ...] = (
    (ConnectTimeoutError, Verdict(True, False, "connect_timeout")),
    (EndpointConnectionError, Verdict(True, False, "connection_refused")),
    # urllib3 raises ProxyError only while it is not yet connected to the proxy.
    (ProxyConnectionError, Verdict(True, False, "proxy_unreachable")),
    (SSLError, Verdict(True, True, "tls_error", retry_here=True)),
    (ReadTimeoutError, Verdict(True, True, "read_timeout")),
    (ConnectionClosedError, Verdict(True, True, "connection_closed", retry_here=True)),
    (HTTPClientError, Verdict(True, True, "http_client_error", retry_here=True)),
    (ChecksumError, Verdict(True, True, "checksum", retry_here=True)),
    (botocore.exceptions.ConnectionError, Verdict(True, True, "connection_error", retry_here=True)),
    (RegionUnavailable, Verdict(True, False, "breaker_open")),
)
TLS_HANDSHAKE = Verdict(True, False, "tls_handshake")
# A name that did not resolve: no connection, nothing sent (rule 6).
DNS = Verdict(True, False, "dns")
_RESOLUTION_ERRORS = frozenset({("socket", "gaierror"), ("urllib3.exceptions", "NameResolutionError")})

# DynamoDB error codes that are the region's fault. Throttling is refused
# before anything is applied; an InternalServerError may have been applied.
THROTTLING = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded", "Throttling"}
)
UNAPPLIED_CODES = frozenset({"ServiceUnavailable"})
# Answers that say this process cannot sign requests DynamoDB accepts: the
# region is up, the process is not ready. (AccessDeniedException is not
# here: least-privilege policies deny some calls and allow others.)
CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "ExpiredToken",
        "MissingAuthenticationToken",
        "IncompleteSignature",
        "InvalidClientTokenId",
    }
)
_THROTTLED = Verdict(True, False, "throttled", retry_here=True)

# Where a regional call's error was raised, from its traceback (rules 1-3).
_CLIENT_CALL = ("botocore.client", "_make_api_call")
# Creating a client resolves its credentials (a provider might call STS).
_BUILDING_MODULES = frozenset({"botocore.session", "boto3.session"})
# The endpoint's attempt: sending the request, reading and parsing the
# answer (``_get_response``, ``_do_get_response``, ``_send``), checking its
# CRC32 (``_needs_retry``). The HTTP stack below it and the parser and
# retry checks it calls mark the attempt too, by module, so a method
# botocore renames does not move a transport error out of the send.
_ATTEMPT_MODULE = "botocore.endpoint"
_ATTEMPT_FRAMES = frozenset({"_get_response", "_do_get_response", "_send", "_needs_retry"})
_SEND_MODULES = ("botocore.httpsession", "botocore.parsers", "botocore.retryhandler", "botocore.retries", "urllib3", "http.client")
# Signing and the credentials it needs: reached before the send; a
# provider that fetches credentials over HTTP (instance metadata, a
# container endpoint) does it below these frames.
_SIGNING_MODULES = ("botocore.signers", "botocore.auth", "botocore.credentials", "botocore.tokens")
_NESTED, _BEFORE_SEND, _SIGNING, _IN_SEND, _NO_CALL = "nested", "before_send", "signing", "in_send", "no_call"

# Steps of the send that prepare the connection or the request and talk to
# nobody (rule 3): an error raised in one of them, or below it, left
# nothing on the wire.
PREPARATION_STEPS = frozenset(
    {
        # botocore's URLLib3Session.send, before it hands the request to urllib3
        ("botocore.httpsession", "proxy_url_for"),
        ("botocore.httpsession", "_get_connection_manager"),  # pool or proxy manager, proxy TLS context
        ("botocore.httpsession", "_setup_ssl_cert"),
        ("urllib3.poolmanager", "connection_from_url"),
        ("urllib3.connectionpool", "_get_conn"),
        # the request line and headers, validated and buffered, not written
        ("http.client", "putrequest"),
        ("http.client", "putheader"),
        ("urllib3.connection", "putrequest"),
        ("urllib3.connection", "putheader"),
        ("urllib3.util.ssl_", "create_urllib3_context"),
    }
)
# urllib3 loads the CA bundle and client certificate in ssl_wrap_socket
# itself, then starts the handshake in what it calls: only an error raised
# in that very frame is the setup's.
_TLS_SETUP = ("urllib3.util.ssl_", "ssl_wrap_socket")
# ssl.SSLSocket.do_handshake, and pyOpenSSL's Connection.do_handshake.
_HANDSHAKE_FRAME = "do_handshake"
_CHAIN_LIMIT = 8
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def classify(error: BaseException, *, throttling_is_fault: bool = True) -> Verdict:
    """The :class:`Verdict` for an error raised by a regional client call."""
    stage = _stage(error)
    if stage == _NESTED:
        return Verdict(False, False, "credential_refresh", sent=False)
    if isinstance(error, ClientError):
        return _classify_response(error, throttling_is_fault)
    if stage == _BEFORE_SEND:
        return Verdict(False, False, _snake_name(error), sent=False)
    if _prepared_only(error):
        return Verdict(False, False, "configuration", sent=False)
    cause = _not_sent(error, stage)
    if cause is not None:
        return Verdict(False, False, _snake_name(cause), sent=False)
    for kind, verdict in TRANSPORT:
        if isinstance(error, kind):
            if kind is EndpointConnectionError and _unresolved(error):
                return DNS
            if verdict.maybe_applied and _raised_in_handshake(error):
                return TLS_HANDSHAKE
            return verdict
    # Unknown: the region's fault, maybe applied, unless every region the
    # request reaches fails it the same way.
    return Verdict(True, True, _snake_name(error), poison_suspect=True)


def error_code(error: BaseException) -> str:
    """DynamoDB's error code of a ``ClientError``, else the class name."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code") or type(error).__name__
    return type(error).__name__


def _classify_response(error: ClientError, throttling_is_fault: bool) -> Verdict:
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if code in THROTTLING:
        return _THROTTLED if throttling_is_fault else CALLER
    if code == WRITE_CONFLICT:
        return CONFLICT  # whatever its status: a conflict, never the region's fault
    if status >= 500 or (not status and code.isdigit() and int(code) >= 500):
        return Verdict(True, code not in UNAPPLIED_CODES, f"http_{status or code}", poison_suspect=True, retry_here=True)
    return CALLER


def _stage(error: BaseException) -> str:
    """Where in the region's client call ``error`` was raised (rules 1 and
    2): in another client's call nested in it, before (or around) its
    endpoint's attempt, in the attempt; or no client call shows in its
    traceback at all."""
    stage = _NO_CALL
    building = False  # in botocore's or boto3's Session: building the region's client
    for frame in _frames(error.__traceback__):
        module, name = frame.f_globals.get("__name__") or "", frame.f_code.co_name
        if (module, name) == _CLIENT_CALL:
            if stage != _NO_CALL or building:
                return _NESTED  # a credential provider's STS or SSO client, or a handler's
            stage = _BEFORE_SEND
        elif stage == _NO_CALL:
            building = building or module in _BUILDING_MODULES
        elif stage != _BEFORE_SEND:
            continue  # outside the client, or already placed (a nested call may still show)
        elif module.startswith(_SIGNING_MODULES):
            stage = _SIGNING
        elif (module == _ATTEMPT_MODULE and name in _ATTEMPT_FRAMES) or module.startswith(_SEND_MODULES):
            stage = _IN_SEND
    return _BEFORE_SEND if stage == _SIGNING else stage


def _not_sent(error: BaseException, stage: str) -> BaseException | None:
    """The error of a class known to be raised before sending (rule 4), if
    ``error`` is one or wraps one."""
    if isinstance(error, HTTPClientError):
        # botocore's catch-all around the send wraps what the send raised
        # before connecting (a proxy setting it cannot use).
        wrapped = error.kwargs.get("error")
        return wrapped if isinstance(wrapped, NOT_SENT) else None
    if isinstance(error, NOT_SENT):
        return error
    if stage == _NO_CALL and isinstance(error, TypeError | ValueError):
        return error  # raised outside any client call: the arguments, building the client
    return None


def _prepared_only(error: BaseException) -> bool:
    """Whether ``error``, or an error it wraps, was raised in a step of the
    send that talks to nobody (rule 3)."""
    for cause in _causes(error):
        innermost = None
        for frame in _frames(cause.__traceback__):
            innermost = (frame.f_globals.get("__name__"), frame.f_code.co_name)
            if innermost in PREPARATION_STEPS:
                return True
        if innermost == _TLS_SETUP:
            return True
    return False


def _raised_in_handshake(error: BaseException) -> bool:
    """Whether a transport error comes from the TLS handshake of a new
    connection: its cause (botocore keeps it as ``error``, urllib3 wraps it
    in its own exceptions) was raised in ``do_handshake``, or is a refused
    certificate (checked during the handshake, or just after it, before
    the request is written)."""
    for cause in _causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        if any(frame.f_code.co_name == _HANDSHAKE_FRAME for frame in _frames(cause.__traceback__)):
            return True
    return False


def _unresolved(error: BaseException) -> bool:
    """``error`` wraps a failed name resolution: urllib3's
    ``NameResolutionError``, or the resolver's ``socket.gaierror`` it is
    caused by (known by module and name: this package imports no socket)."""
    return any((type(cause).__module__, type(cause).__name__) in _RESOLUTION_ERRORS for cause in _causes(error))


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps: botocore's ``error`` keyword, exception
    arguments (urllib3's ``SSLError(e)``, ``ProtocolError(msg, e)``), the
    ``__cause__`` and ``__context__`` chains; a bounded walk."""
    seen: set[int] = set()
    pending = [error]
    while pending and len(seen) < _CHAIN_LIMIT:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        kwargs = getattr(current, "kwargs", None)
        wrapped = [kwargs.get("error")] if isinstance(kwargs, dict) else []
        wrapped += [*current.args, current.__cause__, current.__context__]
        pending += [item for item in wrapped if isinstance(item, BaseException)]


def _frames(traceback: TracebackType | None) -> Iterator[FrameType]:
    while traceback is not None:
        yield traceback.tb_frame
        traceback = traceback.tb_next


def _snake_name(error: BaseException) -> str:
    # snake_case of the class name: NoCredentialsError -> no_credentials,
    # HTTPClientError -> http_client
    name = type(error).__name__.removesuffix("Error") or "error"
    return _WORD_START.sub("_", name).lower()
