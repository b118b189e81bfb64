"""The sidecar's HTTP front (:mod:`regionproxy._sidecar.worker`) against
hostile and careless clients, through real sockets on loopback: pipelined
requests, requests in tiny writes, heads and bodies never finished,
lying ``Content-Length``, bodies over 16 MB, idle connections, clients
that close mid-answer, a stop with requests in flight, ``HEAD``,
``Expect: 100-continue`` and garbage. Every refusal is DynamoDB-shaped,
never a 500, and nothing half-read reaches the app."""

from __future__ import annotations

import contextlib
import json
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from regionproxy._sidecar.protocol import DynamoDBProtocol
from regionproxy._sidecar.signatures import ClientKeys
from regionproxy._sidecar.worker import HttpFront

WAIT = 10.0  # seconds any one socket read may wait before the test fails (never reached when the front is right)


class Recorder:
    """A WSGI app that echoes the body, records each request, and on
    ``/slow`` waits until released; ``/big`` answers 32 MB, ``/boom`` raises."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        self.seen.append({**environ, "body": body})
        path = environ["PATH_INFO"]
        if path == "/boom":
            raise RuntimeError("the app's own bug")
        if path == "/slow":
            self.entered.set()
            self.release.wait(WAIT)
        answer = b"x" * (32 * 1024 * 1024) if path == "/big" else b"echo:" + body
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "999")])  # a wrong length: replaced
        return [answer]


@contextlib.contextmanager
def running(app: Any, **options: Any) -> Iterator[tuple[HttpFront, int]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    timeouts = {name: options.pop(name) for name in ("header_timeout", "body_timeout", "send_timeout") if name in options}
    front = HttpFront(app, [listener], **options)
    for name, value in timeouts.items():
        setattr(front, name, value)
    thread = threading.Thread(target=front.serve_until_stopped, kwargs={"graceful_timeout": 5.0}, daemon=True)
    thread.start()
    try:
        yield front, listener.getsockname()[1]
    finally:
        front.alive = False
        front.wake()
        thread.join(timeout=10)
        listener.close()
    assert not thread.is_alive()


@pytest.fixture
def app() -> Recorder:
    return Recorder()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    return sock


def request(method: str = "POST", path: str = "/", body: bytes = b"", headers: str = "", length: int | None = None) -> bytes:
    length = len(body) if length is None else length
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n{headers}\r\n".encode() + body


class Reader:
    """HTTP/1.1 answers from a socket, one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 20)
        self.buffer += data
        return bool(data)

    def answer(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"closed before an answer: {self.buffer!r}")
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        length = 0 if head_only or status == 100 else int(headers["content-length"])
        while len(self.buffer) < length:
            if not self._fill():
                raise ConnectionError("closed mid-body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed(self) -> bool:
        """True once the front closes the connection (with nothing more sent)."""
        try:
            return not self._fill() and not self.buffer
        except ConnectionResetError:
            return not self.buffer


def test_requests_on_one_kept_alive_connection_are_answered_in_order(app):
    with running(app) as (_, port), connect(port) as sock:
        reader = Reader(sock)
        for number in range(5):
            sock.sendall(request(body=b"n%d" % number))
            status, headers, body = reader.answer()
            assert (status, body) == (200, b"echo:n%d" % number)
            assert headers["content-length"] == str(len(body))  # the true length, not the app's
            assert "connection" not in headers and "date" in headers


def test_pipelined_requests_in_one_write_are_answered_in_order(app):
    with running(app) as (_, port), connect(port) as sock:
        sock.sendall(b"".join(request(body=b"p%d" % number) for number in range(10)))
        reader = Reader(sock)
        assert [reader.answer()[2] for _ in range(10)] == [b"echo:p%d" % number for number in range(10)]


def test_a_request_sent_a_byte_at_a_time_holds_no_thread(app):
    with running(app, threads=1) as (_, port), connect(port) as slow, connect(port) as other:
        data = request(body=b'{"TableName": "t"}')
        for byte in data[:40]:
            slow.send(bytes([byte]))
        # The only thread is free: another client is served meanwhile.
        other.sendall(request(body=b"other"))
        assert Reader(other).answer()[2] == b"echo:other"
        for byte in data[40:]:
            slow.send(bytes([byte]))
        assert Reader(slow).answer()[2] == b'echo:{"TableName": "t"}'
    assert [seen["body"] for seen in app.seen] == [b"other", b'{"TableName": "t"}']


def test_a_head_never_finished_is_cut_off_and_never_reaches_the_app(app):
    with running(app, header_timeout=0.3) as (_, port), connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Ta")
        assert Reader(sock).closed()
    assert app.seen == []


def test_a_connection_that_never_sends_is_cut_off(app):
    with running(app, header_timeout=0.3) as (_, port), connect(port) as sock:
        assert Reader(sock).closed()


def test_a_body_shorter_than_its_content_length_is_cut_off_and_never_reaches_the_app(app):
    with running(app, body_timeout=0.3) as (_, port), connect(port) as sock:
        sock.sendall(request(body=b"short", length=50))
        assert Reader(sock).closed()
    assert app.seen == []


def test_bytes_beyond_the_content_length_are_read_as_the_next_request(app):
    with running(app) as (_, port), connect(port) as sock:
        sock.sendall(request(body=b"ab", length=2) + b"GARBAGE\r\n\r\n")
        reader = Reader(sock)
        assert reader.answer()[2] == b"echo:ab"
        status, headers, body = reader.answer()
        assert status == 400 and headers["connection"] == "close"
        assert json.loads(body)["__type"].endswith("#SerializationException")
        assert reader.closed()
    assert len(app.seen) == 1


def _protocol() -> DynamoDBProtocol:
    """The sidecar's own app; its refusals come before any session is used."""
    return DynamoDBProtocol(None, ClientKeys({}))  # type: ignore[arg-type]


def test_a_body_over_16_mb_is_refused_before_it_is_sent():
    target = "X-Amz-Target: DynamoDB_20120810.PutItem\r\n"
    with running(_protocol()) as (_, port), connect(port) as sock:
        sock.sendall(request(headers=target, length=16 * 1024 * 1024 + 1))  # the head alone
        reader = Reader(sock)
        status, headers, body = reader.answer()
        assert status == 413 and headers["connection"] == "close"
        assert json.loads(body)["__type"].endswith("#RequestEntityTooLarge")
        assert reader.closed()


def test_a_chunked_body_is_refused_dynamodb_s_way_and_the_connection_closed():
    chunked = b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    with running(_protocol()) as (_, port), connect(port) as sock:
        sock.sendall(chunked)
        reader = Reader(sock)
        status, headers, body = reader.answer()
        assert status == 400 and headers["connection"] == "close"
        assert json.loads(body)["__type"].endswith("#SerializationException")
        assert reader.closed()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GARBAGE\r\n\r\n", id="not-a-request-line"),
        pytest.param(b"POST / HTTP/2.0\r\nHost: x\r\n\r\n", id="another-version"),
        pytest.param(b"POST http://elsewhere/ HTTP/1.1\r\nHost: x\r\n\r\n", id="absolute-target"),
        pytest.param(b"POST  / HTTP/1.1\r\nHost: x\r\n\r\n", id="two-spaces"),
        pytest.param(b"POST / HTTP/1.1\r\nNo colon here\r\n\r\n", id="header-without-colon"),
        pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", id="obsolete-folding"),
        pytest.param(b"POST / HTTP/1.1\r\nBad Name: x\r\n\r\n", id="space-in-a-name"),
        pytest.param(b"POST / HTTP/1.1\r\nHost: x\x00y\r\n\r\n", id="nul-in-a-value"),
        pytest.param(b"POST / HTTP/1.1\r\nHost: x\nX-Amz-Target: y\r\n\r\n", id="bare-line-feed"),
        pytest.param(b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", id="two-content-lengths"),
        pytest.param(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", id="negative-content-length"),
        pytest.param(b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", id="hex-content-length"),
        pytest.param(b"POST /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", id="request-line-too-long"),
        pytest.param(b"POST / HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", id="too-many-headers"),
        pytest.param(b"POST / HTTP/1.1\r\nX-A: " + b"b" * 9000 + b"\r\n\r\n", id="header-too-long"),
        pytest.param(b"POST / HTTP/1.1\r\n" + b"X-A: " + b"b" * 900_000, id="head-without-end-too-large"),
    ],
)
def test_a_malformed_request_is_a_dynamodb_shaped_400_and_the_connection_closed(app, data):
    with running(app) as (_, port), connect(port) as sock:
        sock.sendall(data)
        reader = Reader(sock)
        status, headers, body = reader.answer()
        assert status == 400 and headers["connection"] == "close"
        assert headers["content-type"] == "application/x-amz-json-1.0"
        assert json.loads(body)["__type"] == "com.amazon.coral.service#SerializationException"
        assert reader.closed()
    assert app.seen == []


def test_a_header_name_with_an_underscore_is_dropped(app):
    with running(app) as (_, port), connect(port) as sock:
        sock.sendall(request(headers="X_Amz_Target: DynamoDB_20120810.DeleteTable\r\nX-Amz-Date: 1\r\n"))
        assert Reader(sock).answer()[0] == 200
    assert "HTTP_X_AMZ_TARGET" not in app.seen[0] and app.seen[0]["HTTP_X_AMZ_DATE"] == "1"


def test_head_gets_the_headers_only(app):
    with running(app) as (_, port), connect(port) as sock:
        sock.sendall(request("HEAD", body=b"") + request(body=b"after"))
        reader = Reader(sock)
        status, headers, _ = reader.answer(head_only=True)
        assert status == 200 and headers["content-length"] == str(len(b"echo:"))
        assert reader.answer()[2] == b"echo:after"  # no body was sent for HEAD: the next answer parses


def test_expect_100_continue_is_answered_before_the_body_is_sent(app):
    with running(app) as (_, port), connect(port) as sock:
        sock.sendall(request(headers="Expect: 100-continue\r\n", length=4))
        reader = Reader(sock)
        assert reader.answer()[0] == 100
        sock.sendall(b"body")
        assert reader.answer()[2] == b"echo:body"


def test_expect_100_continue_over_16_mb_is_refused_without_continue():
    target = "X-Amz-Target: DynamoDB_20120810.BatchWriteItem\r\nExpect: 100-continue\r\n"
    with running(_protocol()) as (_, port), connect(port) as sock:
        sock.sendall(request(headers=target, length=17 * 1024 * 1024))
        status, _, _ = Reader(sock).answer()
        assert status == 413


def test_idle_kept_alive_connections_are_cut_off(app):
    with running(app, keepalive=0.3) as (_, port), connect(port) as sock:
        sock.sendall(request(body=b"once"))
        reader = Reader(sock)
        assert reader.answer()[2] == b"echo:once"
        assert reader.closed()


def test_past_its_connections_the_front_closes_the_longest_idle_one(app):
    with running(app, threads=1, max_connections=3) as (front, port):
        idle = [connect(port) for _ in range(3)]
        try:
            for sock in idle:
                sock.sendall(request(body=b"idle"))
                Reader(sock).answer()
            with connect(port) as newcomer:
                newcomer.sendall(request(body=b"new"))
                assert Reader(newcomer).answer()[2] == b"echo:new"
            assert Reader(idle[0]).closed()  # the longest idle made room
            idle[2].sendall(request(body=b"still"))
            assert Reader(idle[2]).answer()[2] == b"echo:still"
        finally:
            for sock in idle:
                sock.close()


def _wait_for(condition: Any) -> None:
    for _ in range(200):  # bounded: 10 s
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("the condition never held")


def test_a_client_that_closes_mid_answer_leaves_the_front_serving(app):
    with running(app, threads=1) as (front, port):
        with connect(port) as sock:
            sock.sendall(request(path="/big"))
            assert sock.recv(1000)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset, not a close
        with connect(port) as sock:
            sock.sendall(request(body=b"next"))
            assert Reader(sock).answer()[2] == b"echo:next"
        _wait_for(lambda: front._open == 0)  # both connections let go


def test_the_app_failing_is_a_500_and_the_front_keeps_serving(app):
    with running(app) as (_, port):
        with connect(port) as sock:
            sock.sendall(request(path="/boom"))
            reader = Reader(sock)
            status, headers, body = reader.answer()
            assert status == 500 and headers["connection"] == "close"
            assert json.loads(body)["__type"].endswith("#InternalServerError")
        with connect(port) as sock:
            sock.sendall(request(body=b"fine"))
            assert Reader(sock).answer()[2] == b"echo:fine"


def test_stopping_finishes_the_requests_in_flight_and_closes_their_connections(app):
    with running(app) as (front, port), connect(port) as busy, connect(port) as idle:
        idle.sendall(request(body=b"before"))
        Reader(idle).answer()
        busy.sendall(request(path="/slow", body=b"in flight"))
        assert app.entered.wait(WAIT)
        front.alive = False  # as gunicorn's SIGTERM handler does
        front.wake()
        _wait_for(lambda: not front._accepting)
        app.release.set()
        reader = Reader(busy)
        status, headers, body = reader.answer()
        assert (status, body, headers["connection"]) == (200, b"echo:in flight", "close")
        assert reader.closed()
        assert Reader(idle).closed()  # an idle connection is let go too
        with pytest.raises(OSError), connect(port) as late:  # refused, or accepted by the backlog and never answered
            late.settimeout(3)
            late.sendall(request(body=b"late"))
            Reader(late).answer()
    assert [seen["body"] for seen in app.seen] == [b"before", b"in flight"]


def test_bytes_of_any_kind_never_get_a_500_and_the_front_keeps_serving():
    rng = random.Random(18)
    pieces = [b"POST", b" ", b"/", b"HTTP/1.1", b"\r\n", b":", b"Content-Length", b"Transfer-Encoding: chunked", b"Expect: 100-continue",
              b"X-Amz-Target: DynamoDB_20120810.GetItem", b"\x00", b"\xff", b"{", b"12", b"-", b"\r\n\r\n"]
    with running(_protocol(), header_timeout=0.2, body_timeout=0.2) as (_, port):
        for _ in range(150):
            data = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
            with connect(port) as sock:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                received = b""
                while chunk := sock.recv(65536):  # ends when the front closes: bounded by its deadlines
                    received += chunk
            for line in received.split(b"\r\n"):
                assert not line.startswith(b"HTTP/1.1 5"), (data, received)
        with connect(port) as sock:
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            assert Reader(sock).answer()[0] == 400  # the protocol's answer to a GET: served


def test_a_request_waiting_for_a_busy_thread_is_served_not_cut_off(app):
    with running(app, threads=1, header_timeout=0.3) as (_, port), connect(port) as busy, connect(port) as waiting:
        busy.sendall(request(path="/slow", body=b"first"))
        assert app.entered.wait(WAIT)
        waiting.sendall(request(body=b"second"))  # complete, but the only thread is in the app
        time.sleep(2.2)  # the fault under test: the app holds the thread past the deadline and two sweeps (one a second)
        app.release.set()
        assert Reader(busy).answer()[2] == b"echo:first"
        assert Reader(waiting).answer()[2] == b"echo:second"


def test_many_idle_connections_hold_no_thread(app):
    with running(app, threads=2) as (_, port):
        idle = [connect(port) for _ in range(50)]
        try:
            for sock in idle[:25]:
                sock.sendall(request(body=b"once"))  # answered, then kept alive and idle
                Reader(sock).answer()
            with connect(port) as newcomer:  # 25 idle after a request, 25 that never sent: both threads free
                newcomer.sendall(request(body=b"served"))
                assert Reader(newcomer).answer()[2] == b"echo:served"
        finally:
            for sock in idle:
                sock.close()


def test_http_1_0_is_answered_and_the_connection_closed(app):
    with running(app) as (_, port), connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nold")
        reader = Reader(sock)
        status, headers, body = reader.answer()
        assert (status, body, headers["connection"]) == (200, b"echo:old", "close")
        assert reader.closed()


def test_concurrent_clients_with_connections_cut_while_idle_get_every_answer_right(app, caplog):
    """Eight clients, their kept-alive connections closed after 20 ms idle
    (the poller's sweep racing the threads that park them): every request
    is answered with its own body, and the front logs no failure of its own."""
    failures: list[str] = []

    def client(number: int, port: int) -> None:
        sock = connect(port)
        try:
            for count in range(150):
                body = b"%d-%d" % (number, count)
                for _ in range(5):  # a connection cut while idle: a new one, the request again
                    try:
                        sock.sendall(request(body=body))
                        answer = Reader(sock).answer()[2]
                        break
                    except OSError:
                        sock.close()
                        sock = connect(port)
                else:
                    failures.append(f"{body!r}: no answer in five connections")
                    return
                if answer != b"echo:" + body:
                    failures.append(f"{body!r} answered {answer!r}")
                if count % 7 == 0:
                    time.sleep(0.03)  # idle past the keep-alive now and then
        finally:
            sock.close()

    with running(app, threads=3, keepalive=0.02) as (_, port):
        threads = [threading.Thread(target=client, args=(number, port)) for number in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert "a connection failed" not in caplog.text


def test_connections_that_never_send_past_the_limit_evict_each_other_not_the_clients_being_served(app):
    """A flood of connections that never send a byte, many more than
    ``worker_connections``: each one accepted past the limit closes the
    longest-idle (the flood's oldest), and a client that connects and
    sends meanwhile is served every time."""
    with running(app, threads=1, max_connections=4) as (front, port):
        flood: list[socket.socket] = []
        try:
            for round_ in range(5):
                flood.extend(connect(port) for _ in range(4))  # the limit's worth, silent
                with connect(port) as client:
                    client.sendall(request(body=f"round {round_}".encode()))
                    assert Reader(client).answer()[2] == f"echo:round {round_}".encode()
                assert front._open <= 4
            assert Reader(flood[0]).closed()  # the oldest of the flood made room
        finally:
            for sock in flood:
                sock.close()
    assert [seen["body"] for seen in app.seen] == [f"round {n}".encode() for n in range(5)]


def test_a_flood_of_silent_connections_past_the_limit_evicts_itself_not_the_clients_kept_alive_connections(app):
    """Three clients with answered kept-alive connections, then a flood of
    connections that never send, well past ``worker_connections``: the
    flood evicts its own oldest, and every client's next request on its
    same connection is served (no reconnect)."""
    limit, flood_size = 5, 12
    with running(app, threads=1, max_connections=limit, header_timeout=60.0) as (front, port):
        clients = [connect(port) for _ in range(3)]
        flood: list[socket.socket] = []
        try:
            readers = [Reader(sock) for sock in clients]
            for number, (sock, reader) in enumerate(zip(clients, readers, strict=True)):
                sock.sendall(request(body=b"first %d" % number))
                assert reader.answer()[2] == b"echo:first %d" % number
            _wait_for(lambda: len(front._parked) == 3)  # all three answered and parked (evictable)
            flood.extend(connect(port) for _ in range(flood_size))
            (listener,) = front.listeners.values()
            # Every one accepted (each past the limit after an eviction):
            _wait_for(lambda: not select.select([listener], [], [], 0)[0])
            _wait_for(lambda: front._open == limit)
            for number, (sock, reader) in enumerate(zip(clients, readers, strict=True)):
                sock.sendall(request(body=b"again %d" % number))  # the same connection
                assert reader.answer()[2] == b"echo:again %d" % number
            kept = limit - len(clients)
            for sock in flood[: flood_size - kept]:  # the flood's oldest were cut, its newest fill the room left
                assert Reader(sock).closed()
        finally:
            for sock in clients + flood:
                sock.close()
    assert [seen["body"] for seen in app.seen] == [b"first 0", b"first 1", b"first 2", b"again 0", b"again 1", b"again 2"]


def test_past_the_limit_a_request_waiting_for_a_busy_thread_is_not_evicted(app):
    """The one thread busy in the app, a connection whose request no thread
    has read yet is not idle: a newcomer past ``worker_connections`` does
    not evict it; the newcomer is accepted once a connection can make room."""
    with running(app, threads=1, max_connections=2) as (front, port):
        with connect(port) as busy, connect(port) as waiting:
            busy.sendall(request(path="/slow", body=b"slow"))
            assert app.entered.wait(WAIT)
            _wait_for(lambda: front._open == 2)
            waiting.sendall(request(body=b"waiting"))  # no thread to read it
            with connect(port) as newcomer:
                newcomer.sendall(request(body=b"new"))
                app.release.set()
                assert Reader(busy).answer()[2] == b"echo:slow"
                assert Reader(waiting).answer()[2] == b"echo:waiting"  # not evicted for the newcomer
                assert Reader(newcomer).answer()[2] == b"echo:new"  # accepted once one was idle


def test_a_head_sent_a_byte_at_a_time_forever_is_cut_off_a_header_timeout_after_its_first_byte(app):
    """Slowloris: one byte of the head at a time, every few tenths of a
    second, for far longer than the header timeout. Each byte arrives well
    within any per-read timeout; the head's deadline, from its first byte,
    closes the connection all the same, and the app sees nothing. Another
    client is served meanwhile."""
    head = b"POST / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (n, b"y" * 20) for n in range(3))
    with running(app, threads=1, header_timeout=1.0) as (_, port), connect(port) as slow:
        sent = 0
        cut = False
        for byte in head:  # bounded: the whole head would take 0.2 s x ~120 bytes
            try:
                slow.send(bytes([byte]))
            except OSError:  # reset: closed by the front
                cut = True
                break
            sent += 1
            if select.select([slow], [], [], 0.2)[0]:  # the front closed it (nothing is ever answered)
                cut = Reader(slow).closed()
                break
            if sent == 3:
                with connect(port) as other:
                    other.sendall(request(body=b"meanwhile"))
                    assert Reader(other).answer()[2] == b"echo:meanwhile"
        assert cut and sent < len(head), (sent, len(head))
    assert [seen["body"] for seen in app.seen] == [b"meanwhile"]


def test_a_connection_that_arrives_just_after_the_eviction_check_is_not_accepted_past_the_limit(app):
    """At the limit, ``_accept`` asks for room; if nobody was waiting when
    the eviction looked, nothing was closed, and a connection that arrives
    in that instant must wait for the next round, not be accepted as a
    ``max_connections + 1``-th (a flood hit this window under load)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    front = HttpFront(app, [listener], threads=1, max_connections=2)
    held = [connect(port) for _ in range(2)]
    try:
        assert _wait_until_pending(front)
        front._accept(listener)
        assert front._open == 2
        looked = front._pending
        calls = []

        def nobody_then_the_truth() -> bool:
            calls.append(1)
            return False if len(calls) == 1 else looked()

        front._pending = nobody_then_the_truth  # the eviction looks before the connection lands
        held.append(connect(port))
        front._accept(listener)
        assert front._open == 2, "accepted past worker_connections"
    finally:
        for sock in held:
            sock.close()
        front.alive = False
        front.close()
        listener.close()


def _wait_until_pending(front: HttpFront) -> bool:
    for _ in range(200):  # bounded: 10 s
        if front._pending():
            return True
        time.sleep(0.05)
    return False
