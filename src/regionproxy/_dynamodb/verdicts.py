"""Which errors are region faults, which are the caller's, and whether a
failed request may have been applied anyway. One table, one place.

The rule, in the order :func:`classify` applies it:

1. A ``ClientError`` is an answer from DynamoDB, classified by its error
   code and HTTP status (never by ``botocore.errorfactory`` classes: those
   are built per botocore session, so the same error from two sessions has
   two classes). Throttling and 5xx are the region's; every other code is
   the caller's, and reaches the caller unchanged.
2. Only errors *known* to be raised before a request leaves the process are
   "not sent" (:data:`NOT_SENT`): parameter validation, credentials and
   signing, building the client and resolving its endpoint, a proxy
   setting the send cannot use (wrapped in ``HTTPClientError``); and a
   ``TypeError`` or ``ValueError`` that was not raised inside botocore's
   attempt (``Endpoint._get_response`` / ``_do_get_response``, which send
   the request and parse its answer, and ``_needs_retry``, which checks the
   answer's CRC32): those come from the arguments or their serialisation.
   The region said nothing: no breaker counts them, no other region is
   tried, and the caller gets them unchanged.
3. A transport error raised by the TLS handshake of a new connection (the
   handshake failed, timed out or was cut: a frame named ``do_handshake``
   in the error's chain, or a refused certificate) happened before a byte
   of the request was written, as no TLS stack botocore uses sends early
   data: a fault of the region, not applied, failed over at once (another
   handshake would meet the same certificate or middlebox). Whatever
   botocore calls it: ``SSLError``, or ``ReadTimeoutError`` (a handshake
   that never finishes), or ``ConnectionClosedError`` (a reset during it).
4. Known transport errors (:data:`TRANSPORT`) are faults of the region; a
   refused connection, a connect timeout or a proxy that could not be
   reached were not applied, anything raised once a connection was open
   may have been (a read timeout, a dropped connection, a TLS error after
   the handshake, a response whose ``x-amz-crc32`` does not match: DynamoDB
   applied the write and its answer was corrupted on the way). Fast
   transient ones are retried in the region first, as plain boto3 retries
   them (its DynamoDB retry config retries a CRC32 mismatch and
   ``GENERAL_CONNECTION_ERROR``).
5. Anything else is a fault too, and a write that met it may have been
   applied (a parser choking on a corrupted body, a socket error botocore
   never wraps, ...). It is judged like a 5xx (``poison_suspect``): charged
   to its region only if another region answers the same request, so that
   an unknown error the request itself causes in every region (a bug, a
   handler of the caller's) never opens every breaker; it then reaches the
   caller as it was.

The safety of writes never rests on rule 2 or 3 guessing right: an error
wrongly taken as not sent is raised to the caller at once, never retried
nor failed over; a frame name a later botocore renames only makes a
handshake failure count as maybe applied.
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
        at the end of the call: charged to the region only if another
        region answered the same request; if none could, the request is
        the likely cause (a poison request), not the regions.
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

# botocore's attempt: sending the request, reading and parsing the answer
# (``_get_response``, ``_do_get_response``), checking its CRC32 (``_needs_retry``).
_ATTEMPT_MODULE = "botocore.endpoint"
_ATTEMPT_FRAMES = frozenset({"_get_response", "_do_get_response", "_needs_retry"})
# ssl.SSLSocket.do_handshake, and pyOpenSSL's Connection.do_handshake.
_HANDSHAKE_FRAME = "do_handshake"
_CHAIN_LIMIT = 8
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def classify(error: BaseException, *, throttling_is_fault: bool = True) -> Verdict:
    """The :class:`Verdict` for an error raised by a regional client call."""
    if isinstance(error, ClientError):
        return _classify_response(error, throttling_is_fault)
    cause = _not_sent(error)
    if cause is not None:
        return Verdict(False, False, _snake_name(cause), sent=False)
    for kind, verdict in TRANSPORT:
        if isinstance(error, kind):
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
    if status >= 500 or (not status and code.isdigit() and int(code) >= 500):
        return Verdict(True, code not in UNAPPLIED_CODES, f"http_{status or code}", poison_suspect=True, retry_here=True)
    return CALLER


def _not_sent(error: BaseException) -> BaseException | None:
    """The error known to be raised before sending, if ``error`` is one or
    wraps one."""
    if isinstance(error, HTTPClientError):
        # botocore's catch-all around the send wraps what the send raised
        # before connecting (a proxy setting it cannot use).
        wrapped = error.kwargs.get("error")
        return wrapped if isinstance(wrapped, NOT_SENT) else None
    if isinstance(error, NOT_SENT):
        return error
    if isinstance(error, TypeError | ValueError) and not _raised_in_attempt(error):
        return error
    return None


def _raised_in_attempt(error: BaseException) -> bool:
    """Whether ``error`` was raised while botocore sent the request or read
    its answer (a parser or the CRC32 check meeting a corrupted answer)."""
    return any(
        frame.f_globals.get("__name__") == _ATTEMPT_MODULE and frame.f_code.co_name in _ATTEMPT_FRAMES
        for frame in _frames(error.__traceback__)
    )


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
