"""The faults the lab injects: which modes there are and what each one does.

A :class:`Fault` is a value, checked when it is made: ``refuse`` closes the
listener (connection refused), ``reset`` accepts and resets, ``blackhole``
accepts and never answers, ``late`` forwards the request (so DynamoDB applies
it) and holds the answer back for ``delay`` seconds (past the client's read
timeout), ``drop`` forwards the request (applied) and resets the connection
instead of answering (the client sees a dropped connection), ``corrupt``
forwards the request (applied) and answers with a wrong ``x-amz-crc32``
header (a corrupting middlebox: botocore raises ``ChecksumError``), for a
``rate`` fraction of requests, ``handshake`` answers the TLS ClientHello
with plain HTTP and closes (a https endpoint whose TLS is broken: botocore
raises ``SSLError``; a lab started with ``tls=True`` only), ``flap`` resets
every connection during alternate ``delay``-second periods, ``latency``
delays each request (or a ``rate`` fraction of them, and adds ``spike``
seconds to a ``spike_rate`` fraction: tail spikes), ``error`` answers a
fraction of requests with a DynamoDB-format JSON error without forwarding
them. Latency combines with the other modes. ``unresolvable`` is not the
proxy's: the lab's resolver (:mod:`regionproxy.testing.resolver`) stops
answering the region's host name, and the proxy stays as it was.

Hand one to :meth:`regionproxy.testing.fault_proxy.FaultProxy.set_fault`, which
applies it to real sockets.
"""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass

from regionproxy.errors import ConfigError

OUTAGES = frozenset({"refuse", "reset", "blackhole", "error", "late", "flap", "drop", "corrupt", "handshake"})
MODES = OUTAGES | {"latency"}
# Faults of the lab's resolver, not of the proxy's sockets.
RESOLVER_MODES = frozenset({"unresolvable"})
MODES = MODES | RESOLVER_MODES

# The error code DynamoDB sends with each status, when the caller names none.
_DEFAULT_CODES = {
    400: "ThrottlingException",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}
_CODE_NAMESPACES = {
    "ThrottlingException": "com.amazon.coral.availability",
    "ServiceUnavailable": "com.amazon.coral.availability",
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault to inject.

    :param mode: ``refuse``, ``reset``, ``blackhole``, ``error``, ``late``,
        ``drop``, ``corrupt``, ``handshake``, ``flap``, ``latency`` or
        ``unresolvable``.
    :param delay: seconds added to each request (``latency``); seconds an
        applied request's answer is held back (``late``); the length of each
        up and down period (``flap``).
    :param jitter: uniform spread around ``delay``, in seconds.
    :param status: HTTP status of injected errors (``error``).
    :param code: DynamoDB error code; by default the one DynamoDB sends with
        ``status`` (400 is ``ThrottlingException``).
    :param rate: fraction of requests answered with the error (``error``),
        answered with a wrong checksum (``corrupt``), or delayed by
        ``delay`` (``latency``), 0 to 1.
    :param spike: ``latency`` only: seconds added on top of ``delay`` to a
        ``spike_rate`` fraction of requests (tail spikes: ``delay=0.005,
        spike=0.2, spike_rate=0.05`` is 5 ms always, 205 ms for 5%).
    :param spike_rate: fraction of requests that get ``spike``, 0 to 1.
    :param operations: ``error`` only: answer only these operations (e.g.
        ``("DescribeTable",)`` for a least-privilege IAM policy that denies
        it); every other request is forwarded. Empty: every operation.
    """

    mode: str
    delay: float = 0.0
    jitter: float = 0.0
    status: int = 500
    code: str | None = None
    rate: float = 1.0
    operations: tuple[str, ...] = ()
    spike: float = 0.0
    spike_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown fault mode {self.mode!r}; use one of {sorted(MODES)}", setting="mode")
        if self.delay < 0 or self.jitter < 0 or (self.mode == "latency" and self.jitter > self.delay):
            raise ConfigError("latency needs delay >= jitter >= 0", setting="delay")
        if not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"rate must be between 0 and 1, got {self.rate}", setting="rate")
        if self.spike < 0 or not 0.0 <= self.spike_rate <= 1.0:
            raise ConfigError("spike needs spike >= 0 and spike_rate between 0 and 1", setting="spike")
        if (self.spike or self.spike_rate) and self.mode != "latency":
            raise ConfigError("spike and spike_rate are for latency faults", setting="spike")
        if self.operations and (self.mode != "error" or isinstance(self.operations, str)):
            raise ConfigError("operations is a tuple of operation names, for error faults", setting="operations")
        if self.mode in ("late", "flap") and not self.delay > 0:
            raise ConfigError(f"{self.mode} needs delay > 0 seconds", setting="delay")
        if not 400 <= self.status <= 599:
            raise ConfigError(f"status must be an HTTP error status, got {self.status}", setting="status")

    def pause(self, rng: random.Random) -> float:
        """Seconds one request waits under this ``latency`` fault."""
        pause = 0.0
        if self.rate >= 1.0 or rng.random() < self.rate:
            pause = self.delay + rng.uniform(-self.jitter, self.jitter)
        if self.spike and rng.random() < self.spike_rate:
            pause += self.spike
        return max(pause, 0.0)

    def error_body(self) -> bytes:
        code = self.code or _DEFAULT_CODES.get(self.status, "InternalServerError")
        namespace = _CODE_NAMESPACES.get(code, "com.amazonaws.dynamodb.v20120810")
        return json.dumps({"__type": f"{namespace}#{code}", "message": f"injected {code}"}).encode()


def corrupt_checksum(answer: bytes) -> bytes:
    """An HTTP answer (head and body) with its ``x-amz-crc32`` header made
    wrong: the body's CRC32 plus one, still a number, so botocore's check
    fails with ``ChecksumError`` (as with a real corruption) rather than
    failing to parse the header."""
    head, separator, body = answer.partition(b"\r\n\r\n")
    if not separator:
        return answer  # not an HTTP answer: nothing to corrupt
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"x-amz-crc32:")]
    wrong = (zlib.crc32(body) + 1) & 0xFFFFFFFF
    lines.insert(1, b"x-amz-crc32: %d" % wrong)
    return b"\r\n".join(lines) + separator + body
