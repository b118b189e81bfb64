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
        that is not idempotent must not be repeated elsewhere.
    :param reason: a short label for events and metrics.
    """

    fault: bool
    maybe_applied: bool
    reason: str


CALLER = Verdict(fault=False, maybe_applied=True, reason="caller_error")

# Transport errors, most specific first (ConnectTimeoutError is an
# EndpointConnectionError, ReadTimeoutError and ConnectionClosedError are
# HTTPClientErrors): the first match wins.
TRANSPORT: tuple[tuple[type[BaseException], Verdict], ...] = (
    (ConnectTimeoutError, Verdict(True, False, "connect_timeout")),
    (EndpointConnectionError, Verdict(True, False, "connection_refused")),
    (ReadTimeoutError, Verdict(True, True, "read_timeout")),
    (ConnectionClosedError, Verdict(True, True, "connection_closed")),
    (HTTPClientError, Verdict(True, True, "http_client_error")),
    (RegionUnavailable, Verdict(True, False, "breaker_open")),
)

# DynamoDB error codes that are the region's fault. Throttling is refused
# before anything is applied; an InternalServerError may have been applied.
THROTTLING = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded", "Throttling"}
)
UNAPPLIED_CODES = frozenset({"ServiceUnavailable"})


def classify(error: BaseException, *, throttling_is_fault: bool = True) -> Verdict:
    """The :class:`Verdict` for an error raised by a regional client call."""
    if isinstance(error, ClientError):
        return _classify_response(error, throttling_is_fault)
    for kind, verdict in TRANSPORT:
        if isinstance(error, kind):
            return verdict
    # Anything else (parameter validation, a bad argument) was raised before
    # a request was sent, and is the caller's to see.
    return CALLER


def _classify_response(error: ClientError, throttling_is_fault: bool) -> Verdict:
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if code in THROTTLING:
        return Verdict(True, False, "throttled") if throttling_is_fault else CALLER
    if status >= 500 or (not status and code.isdigit() and int(code) >= 500):
        return Verdict(True, code not in UNAPPLIED_CODES, f"http_{status or code}")
    return CALLER
