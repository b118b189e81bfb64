"""Which errors are region faults, which are the caller's, and whether a
failed request may have been applied anyway. One table, one place.

``ClientError`` is classified by its error code and HTTP status, never by
``botocore.errorfactory`` classes: those are built per botocore session, so
the same error from two sessions has two classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
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
    :param sent: False when the error was raised before any request left
        the process (parameter validation, no credentials): the region said
        nothing, so its breaker gets no verdict either way.
    :param server_error: DynamoDB answered with a 5xx. Judged at the end of
        the call: if no region could answer the same request, the request
        itself is the likely cause (a poison request), not the regions.
    :param retry_here: worth one more attempt in the same region before
        failing over (a fast, transient failure); timeouts and refused
        connections fail over at once, since another attempt would cost as
        much again against a region that is probably down.
    """

    fault: bool
    maybe_applied: bool
    reason: str
    sent: bool = True
    server_error: bool = False
    retry_here: bool = False


CALLER = Verdict(fault=False, maybe_applied=True, reason="caller_error")

# Transport errors, most specific first (ConnectTimeoutError is an
# EndpointConnectionError, ReadTimeoutError and ConnectionClosedError are
# HTTPClientErrors): the first match wins.
TRANSPORT: tuple[tuple[type[BaseException], Verdict], ...] = (
    (ConnectTimeoutError, Verdict(True, False, "connect_timeout")),
    (EndpointConnectionError, Verdict(True, False, "connection_refused")),
    (ReadTimeoutError, Verdict(True, True, "read_timeout")),
    (ConnectionClosedError, Verdict(True, True, "connection_closed", retry_here=True)),
    (HTTPClientError, Verdict(True, True, "http_client_error", retry_here=True)),
    (RegionUnavailable, Verdict(True, False, "breaker_open")),
)

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


def classify(error: BaseException, *, throttling_is_fault: bool = True) -> Verdict:
    """The :class:`Verdict` for an error raised by a regional client call."""
    if isinstance(error, ClientError):
        return _classify_response(error, throttling_is_fault)
    for kind, verdict in TRANSPORT:
        if isinstance(error, kind):
            return verdict
    # Anything else (parameter validation, no credentials, a bad argument)
    # was raised before a request was sent, and is the caller's to see.
    return Verdict(False, False, _not_sent_reason(error), sent=False)


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
        return Verdict(True, code not in UNAPPLIED_CODES, f"http_{status or code}", server_error=True, retry_here=True)
    return CALLER


def _not_sent_reason(error: BaseException) -> str:
    # snake_case of the class name: NoCredentialsError -> no_credentials
    name = type(error).__name__.removesuffix("Error") or "error"
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
