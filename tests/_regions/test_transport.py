"""The sidecar's lean transport (:mod:`regionproxy._regions.transport`)
against regions that misbehave on loopback: each failure is raised as the
botocore class ``URLLib3Session`` raises for it (the verdicts judge by
class), checked side by side with ``URLLib3Session`` itself; kept-alive
connections are reused, and one the region closed is never written to.
Warming (:meth:`Transport.warm`) keeps one connection open, TLS
handshake done, that the next post is served on. A hostile region: late
answers after a timeout, ambiguous framing, malformed chunks and status
lines, interim answers, an answer before the body was written, resets,
many threads on one transport, a fork, a close with posts in flight."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator

import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError, SSLError
from botocore.httpsession import URLLib3Session
from urllib3.util.wait import wait_for_read

from regionproxy._dynamodb.verdicts import classify
from regionproxy._regions.transport import Transport
from regionproxy._regions.warming import BUSY, FAILED, KEPT, OPENED, SKIPPED
from regionproxy.testing import resolver, wait_for
from tests.support import closed_port_url

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{}"


class Stub:
    """A region on loopback that reads each request and answers with ``behaviour(connection, number)``
    (the request's number on its connection, from 0; None: echoes the request's body); it counts connections
    (and keeps them, TLS handshake done: ``accepted``). With ``tls`` (a server context), https."""

    def __init__(self, behaviour: Callable[[socket.socket, int], bool] | None, tls: ssl.SSLContext | None = None) -> None:
        self.behaviour = behaviour
        self.tls = tls
        self.connections = 0
        self.accepted: list[socket.socket] = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.done = threading.Event()
        self.closed = threading.Semaphore(0)  # released once per connection the stub has closed
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            if self.tls is not None:
                connection.settimeout(10)
                connection = self.tls.wrap_socket(connection, server_side=True)
            self.accepted.append(connection)
            self._exchange(connection)
        finally:
            connection.close()
            self.closed.release()

    def _exchange(self, connection: socket.socket) -> None:
        buffer = b""
        number = 0
        connection.settimeout(10)
        while True:
            try:
                while b"\r\n\r\n" not in buffer:
                    data = connection.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:]).get(b"Content-Length", b"0"))
                while len(buffer) < length:
                    buffer += connection.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                if self.behaviour is None:  # an echo: the request's body back
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                elif not self.behaviour(connection, number):
                    return
                number += 1
            except OSError:
                return

    def close(self) -> None:
        self.done.set()
        self.listener.close()


@pytest.fixture
def stubs() -> Iterator[list[Stub]]:
    made: list[Stub] = []
    yield made
    for stub in made:
        stub.close()


def _stub(stubs: list[Stub], behaviour: Callable[[socket.socket, int], bool] | None, tls: ssl.SSLContext | None = None) -> Stub:
    stub = Stub(behaviour, tls)
    stubs.append(stub)
    return stub


HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"


def _lean(url: str) -> Transport:
    return Transport(url, 1.0, 0.5)


def _urllib3(url: str) -> BaseException | None:
    """What botocore's own session raises for the same exchange."""
    session = URLLib3Session(timeout=(1.0, 0.5))
    try:
        session.send(AWSPreparedRequest("POST", url, {"Content-Length": "2"}, b"{}", stream_output=False))
    except Exception as error:  # noqa: BLE001 - the error is the result
        return error
    finally:
        session.close()
    return None


def test_kept_alive_connections_are_reused(stubs):
    stub = _stub(stubs, lambda connection, _: connection.sendall(OK) or True)
    transport = _lean(stub.url)
    for _ in range(5):
        answer = transport.post(HEAD, b"{}")
        assert (answer.status_code, answer.content) == (200, b"{}")
        assert answer.headers["content-type"] == "application/x-amz-json-1.0"
    assert stub.connections == 1


def test_a_connection_the_region_closed_is_never_written_to(stubs):
    def answer_then_close(connection: socket.socket, _: int) -> bool:
        connection.sendall(OK.replace(b"Content-Length: 2", b"Content-Length: 2\r\nConnection: keep-alive"))
        return False  # closes without saying so

    stub = _stub(stubs, answer_then_close)
    transport = _lean(stub.url)
    for _ in range(3):
        assert transport.post(HEAD, b"{}").status_code == 200
        assert stub.closed.acquire(timeout=10)  # closed by the region before the next request
    assert stub.connections == 3


def test_a_chunked_answer_is_read_whole(stubs):
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\": 1\r\n1\r\n}\r\n0\r\n\r\n"
    stub = _stub(stubs, lambda connection, _: connection.sendall(chunked) or True)
    transport = _lean(stub.url)
    assert transport.post(HEAD, b"{}").content == b'{"a": 1}'
    assert transport.post(HEAD, b"{}").content == b'{"a": 1}'  # the connection is still in step
    assert stub.connections == 1


def _reset(connection: socket.socket) -> bool:
    """Read the request, then reset the connection (RST, not FIN)."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False


def _silent(connection: socket.socket, _: int) -> bool:
    threading.Event().wait(3)  # never answers within the read timeout
    return False


@pytest.mark.parametrize(
    ("behaviour", "kind", "reason"),
    [
        pytest.param(lambda connection, _: False, ConnectionClosedError, "connection_closed", id="closed-without-answer"),
        pytest.param(lambda connection, _: connection.sendall(b"HELLO THERE\r\n\r\n") and False, ConnectionClosedError, "connection_closed", id="not-http"),
        pytest.param(_silent, ReadTimeoutError, "read_timeout", id="no-answer"),
        pytest.param(lambda connection, _: _reset(connection), ConnectionClosedError, "connection_closed", id="reset-after-request"),
        pytest.param(
            lambda connection, _: connection.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 20000) and False,
            ConnectionClosedError,
            "connection_closed",
            id="too-many-headers",
        ),
        pytest.param(
            lambda connection, _: connection.sendall(b"HTTP/1.1 200 OK\r\nX-A: " + b"b" * 200000) and False,
            ConnectionClosedError,
            "connection_closed",
            id="header-line-too-long",
        ),
    ],
)
def test_a_failure_after_connecting_is_botocores_class_and_may_have_been_applied(stubs, behaviour, kind, reason):
    stub = _stub(stubs, behaviour)
    with pytest.raises(kind) as raised:
        _lean(stub.url).post(HEAD, b"{}")
    verdict = classify(raised.value)
    assert verdict.fault and verdict.maybe_applied and verdict.reason == reason
    theirs = _urllib3(stub.url)
    assert type(theirs) is type(raised.value) and classify(theirs) == verdict  # botocore's session: the same


@pytest.mark.parametrize("cut", [60, len(OK) - 1], ids=["head-cut", "body-cut"])
def test_an_answer_cut_by_the_close_is_a_closed_connection_never_a_success(stubs, cut):
    # Stricter than botocore's session, which returns these as a 200 with
    # what came (an empty body for a cut head: a GetItem would read as "no item").
    stub = _stub(stubs, lambda connection, _: connection.sendall(OK[:cut]) and False)
    with pytest.raises(ConnectionClosedError) as raised:
        _lean(stub.url).post(HEAD, b"{}")
    verdict = classify(raised.value)
    assert verdict.fault and verdict.maybe_applied
    assert _urllib3(stub.url) is None  # botocore's session took it as an answer


def test_a_refused_connection_is_botocores_class_and_was_not_applied():
    url = closed_port_url()
    with pytest.raises(EndpointConnectionError) as raised:
        _lean(url).post(HEAD, b"{}")
    verdict = classify(raised.value)
    assert verdict.fault and not verdict.maybe_applied
    theirs = _urllib3(url)
    assert type(theirs) is type(raised.value) and classify(theirs) == verdict


def test_a_name_that_does_not_resolve_is_the_dns_fault_as_botocore_reports_it():
    name = "gone.transport.lab.regionproxy.test"
    resolver.register(name, "127.0.0.1", lambda: True)  # the lab's hook: EAI_NONAME for it
    try:
        url = f"http://{name}:4567/"
        with pytest.raises(EndpointConnectionError) as raised:
            _lean(url).post(HEAD, b"{}")
        verdict = classify(raised.value)
        assert verdict.reason == "dns" and not verdict.maybe_applied
        assert classify(_urllib3(url)) == verdict
    finally:
        resolver.unregister(name)


def test_an_answer_past_the_size_limit_is_not_read(stubs, monkeypatch):
    from regionproxy._regions import transport

    monkeypatch.setattr(transport, "MAX_ANSWER", 1000)
    huge = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
    stub = _stub(stubs, lambda connection, _: connection.sendall(huge) or True)
    with pytest.raises(ConnectionClosedError):
        _lean(stub.url).post(HEAD, b"{}")
    unbounded = b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 5000
    stub = _stub(stubs, lambda connection, _: connection.sendall(unbounded) and False)
    with pytest.raises(ConnectionClosedError):
        _lean(stub.url).post(HEAD, b"{}")


@pytest.mark.parametrize(
    "line",
    [b"X-Injected: a\nSet-Cookie: b", b"Bad Name: x", b"X-Nul: a\x00b", b"no colon"],
    ids=["bare-line-feed", "space-in-name", "nul", "no-colon"],
)
def test_a_malformed_header_from_the_region_is_a_closed_connection_never_passed_on(stubs, line):
    answer = b"HTTP/1.1 200 OK\r\n" + line + b"\r\nContent-Length: 2\r\n\r\n{}"
    stub = _stub(stubs, lambda connection, _: connection.sendall(answer) or True)
    with pytest.raises(ConnectionClosedError) as raised:
        _lean(stub.url).post(HEAD, b"{}")
    assert classify(raised.value).maybe_applied


def test_a_certificate_the_client_does_not_trust_is_a_handshake_fault_as_botocore_reports_it():
    """An https region whose CA is not in the bundle: ``SSLError`` from the
    handshake (not applied, failed over at once), as ``URLLib3Session`` reports
    it; with the lab's CA bundle (what ``AWS_CA_BUNDLE`` names) the same region answers."""
    from regionproxy.testing import LocalRegions

    with LocalRegions(["eu-west-3"], tls=True, replicate=False) as lab:
        url = lab.endpoints["eu-west-3"] + "/"
        with pytest.raises(SSLError) as raised:
            Transport(url, 1.0, 2.0).post(HEAD, b"{}")
        verdict = classify(raised.value)
        assert (verdict.fault, verdict.maybe_applied, verdict.reason) == (True, False, "tls_handshake")
        theirs = _urllib3(url)
        assert type(theirs) is SSLError and classify(theirs) == verdict
        answer = Transport(url, 1.0, 2.0, verify=lab.ca_bundle).post(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Type: application/x-amz-json-1.0\r\n"
            b"Authorization: AWS4-HMAC-SHA256 Credential=testing/20261206/eu-west-3/dynamodb/aws4_request, SignedHeaders=host, Signature=0\r\n"
            b"Content-Length: 2\r\n\r\n",
            b"{}",
        )
        assert answer.status_code == 200 and b"TableNames" in answer.content  # moto, through TLS verified by the lab's CA


@pytest.fixture
def certificates():
    from regionproxy.testing.tls import LabCertificates

    made = LabCertificates()
    yield made
    made.remove()


def _answering(connection: socket.socket, _: int) -> bool:
    connection.sendall(OK)
    return True


@pytest.fixture(params=["http", "https"])
def answering(request, stubs, certificates):
    """A region that answers every request and keeps the connection, and a transport to it (trusting it)."""
    stub = _stub(stubs, _answering, certificates.server_context() if request.param == "https" else None)
    return stub, Transport(stub.url, 1.0, 2.0, verify=certificates.ca_bundle)


def test_warming_opens_the_connection_the_next_post_is_served_on(answering):
    stub, transport = answering
    assert transport.warm() == OPENED
    assert transport.warm() == KEPT  # open: left alone
    assert transport.post(HEAD, b"{}").status_code == 200
    assert transport.post(HEAD, b"{}").status_code == 200
    assert stub.connections == 1, "the posts went out on the warmed connection"
    assert transport.warm() == KEPT


def test_warming_reopens_a_connection_the_region_closed(answering):
    stub, transport = answering
    assert transport.warm() == OPENED
    assert wait_for(lambda: len(stub.accepted) == 1)
    stub.accepted[0].shutdown(socket.SHUT_RDWR)  # the region closes it (an idle timeout)
    assert wait_for(lambda: wait_for_read(transport._idle[-1], timeout=0))
    assert transport.warm() == OPENED
    assert transport.post(HEAD, b"{}").status_code == 200
    assert stub.connections == 2, "the post went out on the reopened connection, the closed one never written to"


def test_warming_leaves_a_transport_whose_connections_are_all_out_on_posts(stubs):
    release = threading.Event()
    stub = _stub(stubs, lambda connection, _: release.wait(10) and connection.sendall(OK) is None)
    transport = _lean(stub.url)
    posting = threading.Thread(target=transport.post, args=(HEAD, b"{}"))
    posting.start()
    try:
        assert wait_for(lambda: stub.connections == 1)
        assert transport.warm() == BUSY  # traffic keeps the region warm
    finally:
        release.set()
        posting.join(10)
    assert stub.connections == 1
    assert transport.warm() == KEPT  # the post's connection, back in the idle list


def test_warming_a_closed_transport_or_a_refusing_region_keeps_nothing(stubs):
    assert _lean(closed_port_url()).warm() == FAILED
    stub = _stub(stubs, _answering)
    transport = _lean(stub.url)
    transport.close()
    assert transport.warm() == SKIPPED
    assert transport._idle == []


def test_a_warmed_tls13_connection_whose_tickets_came_late_is_used_not_dropped(stubs, certificates):
    """A TLS 1.3 server's session tickets arrive after the handshake and
    leave a never-used connection readable: the reuse check reads them
    (records without data) and keeps the connection, rather than taking it
    for one the region closed."""
    stub = _stub(stubs, _answering, certificates.server_context())
    transport = Transport(stub.url, 1.0, 2.0, verify=certificates.ca_bundle)
    sock = transport._connect()  # opened as warming opens it, its tickets not read (they came after warming stopped waiting)
    assert sock.version() == "TLSv1.3"
    assert wait_for_read(sock, timeout=10), "the server sent its session tickets"
    transport._idle.append(sock)
    assert transport.post(HEAD, b"{}").status_code == 200
    assert transport.post(HEAD, b"{}").status_code == 200
    assert stub.connections == 1, "served on the warmed connection"


# ---- a hostile region: framing, status lines, interim answers, reuse, threads, forks, close


def _answers(*answers: bytes, close: bool = False) -> Callable[[socket.socket, int], bool]:
    """Answer each request with ``answers`` (in turn, the last one for the rest); close after each with ``close``."""

    def behaviour(connection: socket.socket, number: int) -> bool:
        connection.sendall(answers[min(number, len(answers) - 1)])
        return not close

    return behaviour


def test_an_answer_after_the_read_timeout_is_never_read_as_the_next_requests(stubs):
    late = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n\"late\""
    served = iter(range(1000))

    def behaviour(connection: socket.socket, _: int) -> bool:
        if next(served) == 0:
            threading.Event().wait(1.5)  # past the read timeout: the client has given up
            connection.sendall(late)
        else:
            connection.sendall(OK)
        return True

    stub = _stub(stubs, behaviour)
    transport = _lean(stub.url)
    with pytest.raises(ReadTimeoutError):
        transport.post(HEAD, b"{}")
    for _ in range(3):
        assert transport.post(HEAD, b"{}").content == b"{}"
    assert stub.connections == 2, "the timed-out connection was dropped, never used again"


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    ],
    ids=["length-and-chunked", "chunked-and-length", "unknown-coding", "not-quite-chunked"],
)
def test_an_answer_framed_ambiguously_is_a_closed_connection_never_a_success(stubs, answer):
    stub = _stub(stubs, _answers(answer))
    with pytest.raises(ConnectionClosedError) as raised:
        _lean(stub.url).post(HEAD, b"{}")
    assert classify(raised.value).maybe_applied


@pytest.mark.parametrize(
    "chunks",
    [b"0x2\r\n{}\r\n0\r\n\r\n", b"+2\r\n{}\r\n0\r\n\r\n", b" 2\r\n{}\r\n0\r\n\r\n", b"1\r\n{}\r\n0\r\n\r\n", b"zz\r\n{}\r\n0\r\n\r\n"],
    ids=["hex-prefix", "sign", "leading-space", "chunk-longer-than-its-size", "not-hex"],
)
def test_a_malformed_chunk_is_a_closed_connection_never_a_success(stubs, chunks):
    stub = _stub(stubs, _answers(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks))
    with pytest.raises(ConnectionClosedError):
        _lean(stub.url).post(HEAD, b"{}")


def test_chunk_extensions_and_trailers_are_read_past_and_the_connection_stays_in_step(stubs):
    answer = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2;name="v;x"\r\n{}\r\n0;end\r\nX-Trailer: t\r\n\r\n'
    stub = _stub(stubs, _answers(answer))
    transport = _lean(stub.url)
    for _ in range(3):
        answer_read = transport.post(HEAD, b"{}")
        assert answer_read.content == b"{}" and "x-trailer" not in answer_read.headers
    assert stub.connections == 1


def test_trailers_past_the_head_limit_are_a_closed_connection_not_read_on(stubs):
    def trailers(connection: socket.socket, _: int) -> bool:
        connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n")
        try:
            for _ in range(1000):  # a megabyte of trailers, bounded here; the client gives up first
                connection.sendall(b"X-Trailer: " + b"t" * 1000 + b"\r\n")
            connection.sendall(b"\r\n")
        except OSError:
            pass
        return False

    stub = _stub(stubs, trailers)
    with pytest.raises(ConnectionClosedError):
        _lean(stub.url).post(HEAD, b"{}")


def test_bytes_past_a_chunked_answer_drop_the_connection(stubs):
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n\"smuggle\""
    stub = _stub(stubs, _answers(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" + smuggled, OK))
    transport = _lean(stub.url)
    assert transport.post(HEAD, b"{}").content == b"{}"
    assert transport.post(HEAD, b"{}").content == b"{}"
    assert stub.connections == 2, "the connection out of step was dropped"


@pytest.mark.parametrize(
    "status",
    [b"HTTP/2 200 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 \xb200 OK", b"HTTP/1.1 20 OK", b"ICY 200 OK", b"HTTP/1.1 099 Odd", b"HTTP/1.1 200OK"],
    ids=["http2", "four-digits", "superscript-digit", "two-digits", "icy", "below-100", "no-space"],
)
def test_a_status_line_that_is_not_http1_is_a_closed_connection_never_a_success(stubs, status):
    stub = _stub(stubs, _answers(status + b"\r\nContent-Length: 2\r\n\r\n{}"))
    with pytest.raises(ConnectionClosedError) as raised:
        _lean(stub.url).post(HEAD, b"{}")
    assert classify(raised.value).maybe_applied
    assert type(_urllib3(stub.url)) is ConnectionClosedError  # botocore's session: the same


def test_a_content_length_of_non_ascii_digits_is_a_closed_connection_not_a_value_error(stubs):
    stub = _stub(stubs, _answers(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n{}"))
    with pytest.raises(ConnectionClosedError):
        _lean(stub.url).post(HEAD, b"{}")


def test_interim_answers_are_skipped_but_a_switch_or_a_flood_of_them_is_not_an_answer(stubs):
    stub = _stub(stubs, _answers(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n" + OK))
    transport = _lean(stub.url)
    assert [transport.post(HEAD, b"{}").content for _ in range(2)] == [b"{}", b"{}"]
    assert stub.connections == 1
    for interim in (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\n" * 50):
        stub = _stub(stubs, _answers(interim + OK))
        with pytest.raises(ConnectionClosedError):
            _lean(stub.url).post(HEAD, b"{}")


@pytest.mark.parametrize(
    "answer",
    [
        OK.replace(b"Content-Length: 2", b"Connection: close\r\nContent-Length: 2"),
        OK.replace(b"Content-Length: 2", b"connection: Keep-Alive, Close\r\nContent-Length: 2"),
        OK.replace(b"HTTP/1.1", b"HTTP/1.0"),
        b"HTTP/1.1 200 OK\r\n\r\n{}",
    ],
    ids=["connection-close", "connection-close-listed", "http-1.0", "read-to-close"],
)
def test_an_answer_that_ends_the_connection_is_read_and_the_connection_not_reused(stubs, answer):
    stub = _stub(stubs, _answers(answer, close=True))
    transport = _lean(stub.url)
    for _ in range(2):
        assert transport.post(HEAD, b"{}").content == b"{}"
    assert stub.connections == 2


def test_an_answer_sent_before_the_body_was_written_is_the_answer_as_botocore_reads_it():
    """A 413 (and a close, a reset since the body is unread) while the body
    is still being written: that answer, as ``URLLib3Session`` returns it, never
    a fault of the region (a caller's oversized request must not trip healthy regions)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2)

    def refuse() -> None:
        for _ in range(2):
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(10)
                buffer = b""
                while b"\r\n\r\n" not in buffer and (data := connection.recv(65536)):
                    buffer += data
                connection.sendall(b"HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")

    server = threading.Thread(target=refuse, daemon=True)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    body = b"x" * (16 << 20)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    try:
        answer = Transport(url, 1.0, 5.0).post(head, body)
        assert (answer.status_code, answer.content) == (413, b"{}")
        session = URLLib3Session(timeout=(1.0, 5.0))
        theirs = session.send(AWSPreparedRequest("POST", url, {"Content-Length": str(len(body))}, body, stream_output=False))
        session.close()
        assert (theirs.status_code, theirs.content) == (413, b"{}")
    finally:
        listener.close()
        server.join(10)


def test_a_reset_while_writing_without_an_answer_may_have_been_applied(stubs):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def reset() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        _reset(connection)
        connection.close()

    server = threading.Thread(target=reset, daemon=True)
    server.start()
    body = b"x" * (16 << 20)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    try:
        with pytest.raises(ConnectionClosedError) as raised:
            Transport(f"http://127.0.0.1:{listener.getsockname()[1]}/", 1.0, 5.0).post(head, body)
        assert classify(raised.value).maybe_applied
    finally:
        listener.close()
        server.join(10)


def test_many_threads_posting_through_one_transport_each_get_their_own_answer(stubs):
    stub = _stub(stubs, None)  # echoes each request's body
    transport = Transport(stub.url, 1.0, 5.0, max_connections=3)
    wrong: list[tuple[bytes, bytes]] = []

    def post(thread: int) -> None:
        for number in range(25):
            body = b"%d-%d-" % (thread, number) + b"x" * (number * 997 % 5000)
            head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
            content = transport.post(head, body).content
            if content != body:
                wrong.append((body[:20], content[:20]))

    threads = [threading.Thread(target=post, args=(thread,)) for thread in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert wrong == []
    assert transport._out == 0 and len(transport._idle) <= 3


def test_a_forked_child_never_uses_the_parents_connections(stubs):
    from tests.support import in_child

    stub = _stub(stubs, _answering)
    transport = _lean(stub.url)
    assert transport.post(HEAD, b"{}").status_code == 200  # one kept-alive connection, the parent's

    def child() -> None:
        assert transport.post(HEAD, b"{}").content == b"{}"

    in_child(child)
    assert wait_for(lambda: stub.connections == 2), "the child opened its own connection"
    assert transport.post(HEAD, b"{}").content == b"{}"  # the parent's, still in step
    assert stub.connections == 2


def test_closing_the_transport_closes_the_connections_of_posts_in_flight(stubs):
    received, release = threading.Event(), threading.Event()

    def behaviour(connection: socket.socket, _: int) -> bool:
        received.set()
        release.wait(10)
        connection.sendall(OK)
        return True

    stub = _stub(stubs, behaviour)
    transport = Transport(stub.url, 1.0, 10.0)
    posting = threading.Thread(target=transport.post, args=(HEAD, b"{}"))
    posting.start()
    try:
        assert received.wait(10)
        transport.close()
    finally:
        release.set()
        posting.join(10)
    assert stub.closed.acquire(timeout=10), "the post's connection was closed when it ended, not kept"
    assert transport._idle == []


def test_a_region_that_stops_reading_the_body_is_a_closed_connection_as_botocore_reports_it():
    """The head read, the body never: the write times out. ``URLLib3Session``
    raises ``ConnectionClosedError`` (urllib3's "Connection aborted"), not a read timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2)
    kept: list[socket.socket] = []

    def stall() -> None:
        for _ in range(2):
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.recv(1024)  # a little of the head, then nothing more
            kept.append(connection)

    threading.Thread(target=stall, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    body = b"x" * (64 << 20)  # past any socket buffer: the write blocks
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    try:
        with pytest.raises(ConnectionClosedError) as raised:
            Transport(url, 0.5, 0.5).post(head, body)
        verdict = classify(raised.value)
        assert verdict.maybe_applied and verdict.reason == "connection_closed"
        session = URLLib3Session(timeout=(0.5, 0.5))
        with pytest.raises(ConnectionClosedError):
            session.send(AWSPreparedRequest("POST", url, {"Content-Length": str(len(body))}, body, stream_output=False))
        session.close()
    finally:
        listener.close()
        for connection in kept:
            connection.close()


def test_an_answer_dribbled_a_byte_at_a_time_is_read_whole_and_in_step(stubs):
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\n{}\r\n0\r\nX-T: 1\r\n\r\n"

    def dribble(connection: socket.socket, _: int) -> bool:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a segment per byte
        for byte in answer:
            connection.sendall(bytes([byte]))
        return True

    stub = _stub(stubs, dribble)
    transport = _lean(stub.url)
    assert [transport.post(HEAD, b"{}").content for _ in range(2)] == [b"{}", b"{}"]
    assert stub.connections == 1
