"""A TCP proxy on loopback that forwards HTTP requests and injects faults.

One :class:`FaultProxy` stands in front of each region's DynamoDB endpoint in
the lab. Faults act on real sockets, so clients see what they would see in
an outage; each is a :class:`~regionproxy.testing.fault_modes.Fault` (the
modes and what they do are described there), and faults can change while
traffic flows.

With a server-side ``ssl.SSLContext`` (``tls=``), the proxy is a https
endpoint: it terminates TLS and forwards plain HTTP, so the faults that act
before a request is read (``refuse``, ``reset``, ``blackhole``, ``flap``,
``handshake``) meet the client during its TLS handshake, as they would in
front of a real https endpoint.

Latency is added per request, after the request is read and before it is
forwarded, not per packet: the proxy closes each client connection after
its answer (moto's server does too), so a per-packet delay would also
charge a connect round trip to every call, which a kept-alive connection
to DynamoDB does not pay.

Connections are numbered in the order the proxy accepts them
(:meth:`FaultProxy.connections`: when each was accepted, and when it was
ready for a request, its TLS handshake done), and each request says which
connection it came on (:attr:`ProxiedRequest.connection`): a test can tell
a call served on a connection opened before it (a warmed one) from one
that paid for a new connection.

A refused endpoint is a server that is gone: the connections it holds
open, waiting for a request (a client's idle pooled ones), are closed when
the refusal starts, as a dead server's are, so a client's next call meets
the refusal instead of a live connection into a "refusing" region.

A refusing proxy keeps its port: its socket stays bound and stops
listening, so connections are refused (the kernel answers RST) and healing
listens on the same port again, which no other socket of any process (a
server of another pytest-xdist worker, a client's ephemeral port) can have
taken meanwhile.
"""

from __future__ import annotations

import json
import random
import select
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from regionproxy.errors import ConfigError
from regionproxy.testing.fault_modes import OUTAGES, Fault, corrupt_checksum

__all__ = ["FaultProxy", "ProxiedConnection", "ProxiedRequest"]

_MAX_HEADER = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProxiedRequest:
    """What the proxy did with one request: ``forwarded``, ``late``
    (forwarded, answer held back), ``dropped`` (forwarded, connection reset
    instead of the answer), ``corrupted`` (forwarded, answered with a wrong
    checksum), ``error``, ``reset``, ``blackholed`` or ``handshake`` (the
    last three before any request was read); ``delayed``: the seconds of
    injected latency it waited first. Each of ``forwarded``, ``late``,
    ``dropped`` and ``corrupted`` is a request that reached DynamoDB;
    ``connection``: the number of the connection it came on (see
    :class:`ProxiedConnection`)."""

    at: float
    operation: str | None
    action: str
    delayed: float = 0.0
    connection: int = 0


@dataclass(frozen=True, slots=True)
class ProxiedConnection:
    """One client connection the proxy accepted: its ``number`` (1, 2, ...
    in the order accepted), when it was accepted, and when it was ready for
    a request (``ready_at``: its TLS handshake done; at once for plain
    HTTP; None while the handshake is under way or if it failed)."""

    number: int
    accepted_at: float
    ready_at: float | None = None


@dataclass
class _FaultState:
    outage: Fault | None = None
    outage_since: float = 0.0
    latency: Fault | None = None
    held: list[socket.socket] = field(default_factory=list)


class FaultProxy:
    """Forward HTTP requests from a loopback port to ``upstream``, with faults.

    :param upstream: ``(host, port)`` of the real server.
    :param host: address to listen on (loopback).
    :param rng: source of randomness for jitter and error rates.
    :param timeout: seconds to wait on a silent peer before giving up.
    :param tls: a server-side context: serve https with its certificate.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        host: str = "127.0.0.1",
        rng: random.Random | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.upstream = upstream
        self._tls = tls
        self._host = host
        self._rng = rng or random.Random()
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._state = _FaultState()
        self._log: list[ProxiedRequest] = []
        self._connections: list[ProxiedConnection] = []
        self._waiting: set[socket.socket] = set()  # connections waiting for a request
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._held: socket.socket | None = None  # the port, bound, while refusing
        self._port = 0
        self._acceptor: threading.Thread | None = None
        self._workers: set[threading.Thread] = set()
        self._described: dict[str, dict[str, object]] = {}  # table -> fields DescribeTable answers with

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FaultProxy:
        self._listen()
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"faultproxy:{self._port}", daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        with self._lock:
            self._close_listener()
            if self._held is not None:
                _close_quietly(self._held)
                self._held = None
            self._release_held()
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout=5)

    @property
    def address(self) -> tuple[str, int]:
        return (self._host, self._port)

    @property
    def endpoint(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self._host}:{self._port}"

    # -- faults ------------------------------------------------------------

    def set_fault(self, fault: Fault) -> None:
        """Inject ``fault``; latency adds to an outage, an outage replaces one."""
        if fault.mode == "handshake" and self._tls is None:
            raise ConfigError("a handshake fault needs a https endpoint (a lab started with tls=True)", setting="mode")
        with self._lock:
            if fault.mode == "latency":
                self._state.latency = fault
                return
            self._state.outage = fault
            self._state.outage_since = self._clock()
            if fault.mode == "refuse":
                self._refuse()
            elif self._listener is None and not self._stopping.is_set():
                self._listen()

    def heal(self, mode: str | None = None) -> None:
        """Remove every fault, or only ``latency`` / the outage."""
        with self._lock:
            if mode in (None, "latency"):
                self._state.latency = None
            if mode is None or mode in OUTAGES:
                self._state.outage = None
                self._release_held()
                if self._listener is None and not self._stopping.is_set():
                    self._listen()

    def describe_as(self, table: str, fields: dict[str, object] | None) -> None:
        """Answer ``DescribeTable`` of ``table`` with ``fields`` set in its
        ``Table`` (what moto knows nothing of: ``MultiRegionConsistency``,
        ``GlobalTableWitnesses``, ...); None: as moto answers."""
        with self._lock:
            if fields is None:
                self._described.pop(table, None)
            else:
                self._described[table] = dict(fields)

    @property
    def outage(self) -> str | None:
        """The outage mode in force, if any (``latency`` is not an outage)."""
        outage = self._state.outage
        return outage.mode if outage else None

    def requests(self) -> list[ProxiedRequest]:
        with self._lock:
            return list(self._log)

    def connections(self) -> list[ProxiedConnection]:
        """Every connection accepted so far, in the order accepted."""
        with self._lock:
            return list(self._connections)

    # -- sockets -----------------------------------------------------------

    def _bound(self) -> socket.socket:
        bound = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET, socket.SOCK_STREAM)
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bound.bind((self._host, self._port))
        return bound

    def _listen(self) -> None:
        # Healing a refused region listens on the same port, held bound
        # meanwhile, so clients that hold the endpoint keep working.
        listener, self._held = self._held, None
        if listener is None:
            listener = self._bound()
        listener.listen(128)
        self._port = listener.getsockname()[1]
        self._listener = listener

    def _refuse(self) -> None:
        self._close_listener()
        # A gone server's connections are gone too: close the idle ones
        # (shutdown wakes the worker blocked reading them; close alone would not).
        for waiting in self._waiting:
            try:
                waiting.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._held is None and not self._stopping.is_set():
            # Bound and not listening: a connection is refused, and the port
            # stays this proxy's (both sockets reuse the address; the old
            # one no longer listens).
            self._held = self._bound()

    def _close_listener(self) -> None:
        if self._listener is not None:
            # close() alone leaves the socket listening while the acceptor's
            # select() still holds it, and queued clients then see a reset
            # instead of a refusal; shutdown() stops listening at once.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None

    def _release_held(self) -> None:
        for held in self._state.held:
            _close_quietly(held)
        self._state.held.clear()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:  # refusing: nothing to accept until healed
                self._stopping.wait(0.02)
                continue
            try:
                ready, _, _ = select.select([listener], [], [], 0.05)
                if not ready:
                    continue
                conn, _ = listener.accept()
            except (OSError, ValueError):  # closed under us by refuse or stop
                continue
            with self._lock:
                number = len(self._connections) + 1
                self._connections.append(ProxiedConnection(number, self._clock()))
                worker = threading.Thread(target=self._serve, args=(conn, number), daemon=True)
                self._workers.add(worker)
            worker.start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        try:
            self._serve_one(conn, number)
        except OSError:
            _close_quietly(conn)
        finally:
            with self._lock:
                self._workers.discard(threading.current_thread())

    def _ready(self, number: int) -> None:
        with self._lock:
            accepted = self._connections[number - 1]
            self._connections[number - 1] = ProxiedConnection(number, accepted.accepted_at, self._clock())

    def _wait_on(self, conn: socket.socket, waiting: bool) -> None:
        with self._lock:
            if waiting:
                self._waiting.add(conn)
            else:
                self._waiting.discard(conn)

    def _flapping_down(self, outage: Fault) -> bool:
        return int((self._clock() - self._state.outage_since) / outage.delay) % 2 == 1

    def _serve_one(self, conn: socket.socket, number: int) -> None:
        outage = self._state.outage
        if outage is not None and outage.mode == "flap" and self._flapping_down(outage):
            self._refuse_connection(conn, "reset", operation=None, number=number)
            return
        if outage is not None and outage.mode == "reset":
            self._refuse_connection(conn, outage.mode, operation=None, number=number)
            return
        if outage is not None and outage.mode == "blackhole":
            self._blackhole(conn, number)
            return
        conn.settimeout(self._timeout)
        if outage is not None and outage.mode == "handshake":
            self._break_handshake(conn, number)
            return
        if self._tls is None:
            self._ready(number)
            self._serve_request(conn, number)
            return
        # wrap_socket takes over conn's descriptor, and closes the TLS
        # socket itself if the handshake fails (the OSError reaches _serve).
        self._wait_on(conn, True)
        try:
            secure = self._tls.wrap_socket(conn, server_side=True)
        finally:
            self._wait_on(conn, False)
        self._ready(number)
        try:
            self._serve_request(secure, number)
        except OSError:
            _close_quietly(secure)

    def _serve_request(self, conn: socket.socket, number: int) -> None:
        self._wait_on(conn, True)
        try:
            if self._state.outage is not None and self._state.outage.mode == "refuse":
                head, body = None, b""  # refused while the handshake went on
            else:
                head, body = _read_request(conn)
        finally:
            self._wait_on(conn, False)
        if head is None:
            conn.close()
            return
        operation = _operation(head)
        latency = self._state.latency
        pause = 0.0
        if latency is not None:
            pause = latency.pause(self._rng)
            if pause and self._stopping.wait(pause):
                conn.close()
                return
        # Read the outage again: it may have changed while we waited.
        outage = self._state.outage
        if outage is not None and outage.mode in ("reset", "blackhole"):
            self._refuse_connection(conn, outage.mode, operation, pause, number)
        elif outage is not None and outage.mode == "refuse":
            # The server went away while this request came in: a dead
            # server answers nothing (the client sees the connection close).
            self._record(operation, "reset", pause, number)
            conn.close()
        elif (
            outage is not None
            and outage.mode == "error"
            and (not outage.operations or operation in outage.operations)
            and self._rng.random() < outage.rate
        ):
            self._record(operation, "error", pause, number)
            _send_error(conn, outage)
            conn.close()
        elif outage is not None and outage.mode == "late":
            self._record(operation, "late", pause, number)
            self._forward(conn, head, body, hold=outage.delay)
        elif outage is not None and outage.mode == "drop":
            self._record(operation, "dropped", pause, number)
            self._forward(conn, head, body, drop=True)
        elif outage is not None and outage.mode == "corrupt" and self._rng.random() < outage.rate:
            self._record(operation, "corrupted", pause, number)
            self._forward(conn, head, body, corrupt=True)
        else:
            self._record(operation, "forwarded", pause, number)
            described = self._described.get(_described_table(body)) if operation == "DescribeTable" and self._described else None
            self._forward(conn, head, body, describe=described)

    def _refuse_connection(
        self, conn: socket.socket, mode: str, operation: str | None, delayed: float = 0.0, number: int = 0
    ) -> None:
        self._record(operation, "reset" if mode == "reset" else "blackholed", delayed, number)
        if mode == "reset":
            _reset(conn)
            return
        with self._lock:
            if self._stopping.is_set() or self._state.outage is None:
                conn.close()
            else:
                self._state.held.append(conn)

    def _blackhole(self, conn: socket.socket, number: int) -> None:
        # Held, never answered. Recorded when the client sends its request
        # (or, over TLS, its handshake), not when the connection is accepted:
        # a client may open a connection and send nothing yet (a warmed one),
        # and that is no request. Heal or stop closes it (held), which ends
        # the wait; so does the client closing it.
        with self._lock:
            if self._stopping.is_set() or self._state.outage is None:
                conn.close()
                return
            self._state.held.append(conn)
        while not self._stopping.is_set():
            try:
                ready, _, _ = select.select([conn], [], [], 0.05)
                if not ready:
                    continue
                sent = conn.recv(_MAX_HEADER, socket.MSG_PEEK)
            except (OSError, ValueError):  # closed by heal or stop
                return
            if sent:
                self._record(None if self._tls else _operation(sent), "blackholed", number=number)
            return

    def _forward(
        self,
        conn: socket.socket,
        head: bytes,
        body: bytes,
        *,
        hold: float = 0.0,
        drop: bool = False,
        corrupt: bool = False,
        describe: dict[str, object] | None = None,
    ) -> None:
        with socket.create_connection(self.upstream, timeout=self._timeout) as upstream:
            upstream.sendall(_close_after(head) + body)
            if describe is not None:
                answer = b"".join(iter(lambda: upstream.recv(65536), b""))
                conn.sendall(described_as(answer, describe))
                conn.close()
                return
            if not (hold or drop or corrupt):
                while chunk := upstream.recv(65536):
                    conn.sendall(chunk)
                conn.close()
                return
            # The whole answer first: the request is applied upstream.
            answer = b"".join(iter(lambda: upstream.recv(65536), b""))
        if drop:
            _reset(conn)  # applied, and the client never hears of it
            return
        if corrupt:
            answer = corrupt_checksum(answer)
        if not hold or not self._stopping.wait(hold):
            conn.sendall(answer)  # after a hold the client gave up: usually a broken pipe
        conn.close()

    def _break_handshake(self, conn: socket.socket, number: int) -> None:
        # A https endpoint whose TLS is broken: the ClientHello is answered
        # in plain HTTP (a server or middlebox that does not speak TLS there).
        self._record(None, "handshake", number=number)
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.close()

    def _record(self, operation: str | None, action: str, delayed: float = 0.0, number: int = 0) -> None:
        with self._lock:
            self._log.append(ProxiedRequest(self._clock(), operation, action, delayed, number))


def _read_request(conn: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
        if len(data) > _MAX_HEADER:
            return None, b""
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        body += chunk
    return head + b"\r\n\r\n", body


def _described_table(body: bytes) -> str | None:
    try:
        name = json.loads(body).get("TableName")
    except (ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def described_as(answer: bytes, fields: dict[str, object]) -> bytes:
    """A ``DescribeTable`` HTTP answer with ``fields`` set in its ``Table``,
    its length and ``x-amz-crc32`` made right again; any other answer (an
    error, a body that is not one JSON object) as it was."""
    head, separator, body = answer.partition(b"\r\n\r\n")
    try:
        document = json.loads(body)
        table = document["Table"]
    except (ValueError, KeyError, TypeError):
        return answer
    if not separator or not isinstance(table, dict):
        return answer
    table.update(fields)
    body = json.dumps(document).encode()
    lines = [
        line
        for line in head.split(b"\r\n")
        if not line.lower().startswith((b"content-length:", b"x-amz-crc32:", b"transfer-encoding:"))
    ]
    lines[1:1] = [b"Content-Length: %d" % len(body), b"x-amz-crc32: %d" % (zlib.crc32(body) & 0xFFFFFFFF)]
    return b"\r\n".join(lines) + separator + body


def _operation(head: bytes) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"x-amz-target":
            return value.strip().decode("latin-1").rpartition(".")[2]
    return None


def _close_after(head: bytes) -> bytes:
    """Ask the upstream to close after answering, so EOF ends the response."""
    lines = [
        line for line in head.rstrip(b"\r\n").split(b"\r\n") if not line.lower().startswith((b"connection:", b"keep-alive:"))
    ]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _send_error(conn: socket.socket, fault: Fault) -> None:
    body = fault.error_body()
    head = (
        f"HTTP/1.1 {fault.status} Injected\r\n"
        "Content-Type: application/x-amz-json-1.0\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    conn.sendall(head + body)


def _reset(conn: socket.socket) -> None:
    # SO_LINGER with a zero timeout makes close() send RST, not FIN.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
