"""A lean HTTP/1.1 client for the sidecar's pass-through sends
(:class:`~regionproxy._regions.wire.WireSender`): keep-alive connections to
one region's endpoint, a request written in one piece, an answer read by
``Content-Length`` (or chunks, or to the close).

Why: botocore's ``URLLib3Session`` (urllib3, ``http.client``, the email
package's header parser) runs about 1,500 Python calls per request, some
400 us of CPU, more than the sidecar spends on everything else of an
uncached call. This client does what that one does for a JSON POST in a
few dozen.

The rule: **a transport error is raised as the botocore exception that
``URLLib3Session`` raises for the same failure**, because
:mod:`regionproxy._dynamodb.verdicts` judges failover by class (and, for
TLS, by the ``do_handshake`` frame, which ``ssl`` puts in the traceback
here too):

- the name does not resolve: ``EndpointConnectionError`` wrapping the
  ``socket.gaierror`` (reason ``dns``, not applied);
- refused, unreachable, any other error while connecting:
  ``EndpointConnectionError`` (not applied);
- no connection within the connect timeout: ``ConnectTimeoutError``;
- the TLS handshake failed: ``SSLError`` (timed out in it:
  ``ReadTimeoutError``; cut during it: ``ConnectionClosedError``);
- no answer byte within the read timeout (per read, as urllib3 applies
  it): ``ReadTimeoutError``; but a request that could not be written
  within it (the region stopped reading): ``ConnectionClosedError``, as
  urllib3 turns a timeout while sending into ``ProtocolError`` (it waits
  the connect timeout there, this client the read timeout);
- the connection closed or reset while sending (and no answer came: one
  the region sent before it closed, a ``413`` say, is read and returned,
  as urllib3 reads it, the connection then dropped) or before the whole
  answer was read (its head, or the ``Content-Length`` it states), or an
  answer that is not HTTP (or a header line that is not ``name: value``
  with a token name and no control character: the sidecar passes the
  region's headers on to its client): ``ConnectionClosedError`` (may
  have been applied). Here this client is stricter than ``URLLib3Session``, which
  returns an answer cut by the close as a success (a head cut short
  reads as complete with an empty body, a body shorter than its
  ``Content-Length`` as the bytes that came: a GetItem cut after its head
  would read as "no such item");
- TLS failing after the handshake: ``SSLError``.

What is "not HTTP" (``ConnectionClosedError``, never a success, and the
connection dropped): a status line other than ``HTTP/1.0`` or ``HTTP/1.1``,
a three-digit code and a reason; a ``101`` nobody asked for, or more than
a few other ``1xx`` before the answer (those are skipped); a
``Content-Length`` or chunk size that is not plain ASCII digits (hex for
chunks: no ``0x``, sign or ``_``); a chunk longer than its size; a
``Transfer-Encoding`` other than ``chunked``, or one together with a
``Content-Length`` (framing a smuggler could split differently, RFC 9112
6.3); a head, a chunk line or the trailers past 64 KiB, a body past
``MAX_ANSWER``, more than a few interim answers: every read loop is
bounded by size, not only by the read timeout a dribbling region resets
with each byte. Nothing from parsing the answer escapes as another class (a
``ValueError`` would reach the caller as if it were DynamoDB's).

A connection is used by one post at a time and goes back to the idle list
only if its answer ended exactly where the bytes did, in step: never after
any error or timeout (a late answer would be read as the next request's),
never after ``Connection: close``, an HTTP/1.0 answer, an answer read to
the close, or bytes past the answer; never once the transport is closed
(a post in flight then closes its connection when it ends). A forked
child never uses the parent's connections: its copy of the idle list is
closed and emptied after the fork (:mod:`regionproxy._forks`).

Nothing is retried here (``URLLib3Session`` is called without retries
too; the session decides). A kept-alive connection is checked before it
is used again, as urllib3 checks it: one that the region closed (or sent
anything unasked on) is dropped, never written to. A readable TLS
connection is read first, without blocking: what a TLS 1.3 server sends
after the handshake (session tickets, records without data) leaves it
open; an end of stream or any data drops it. This is what keeps a warmed
connection (opened before any request, :meth:`Transport.warm`) usable
when its tickets arrive after warming has stopped waiting for them: the
same check as :func:`regionproxy._regions.warming.still_open`.

Warming (:meth:`Transport.warm`, the rule of
:mod:`regionproxy._regions.warming`): the probe thread keeps one
connection open in the idle list the posts take from, TLS handshake done
and TLS 1.3 tickets read, without a request; the most recent idle
connection is checked as a post checks it and re-opened if the region
closed it; nothing when every connection is out on a post (``busy``).
A post pays nothing for it: warming holds the transport's lock only to
take a connection from, or put one on, the idle list.

Used where it is equivalent: ``http`` and ``https`` endpoints with no
proxy and no client certificate configured; TLS verifies as the region's
botocore client does (its ``verify``: botocore's CA bundle, the one
``AWS_CA_BUNDLE`` names, or none), the host name checked.
Otherwise :class:`~regionproxy._regions.wire.WireSender` keeps ``URLLib3Session``.
"""

from __future__ import annotations

import os
import re
import select
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError, SSLError

from regionproxy._forks import reset_after_fork
from regionproxy._regions.warming import BUSY, FAILED, KEPT, OPENED, SKIPPED, TICKETS_QUIET, still_open

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_STATUS = re.compile(r"HTTP/1\.([01]) ([0-9]{3})(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() takes "\xb2" (superscript two), which int() refuses
_HEX = re.compile(rb"[0-9A-Fa-f]+")  # not "0x2", "+2", "1_0", which int(_, 16) takes
_MAX_INTERIM = 8  # 1xx answers before the real one: past it, not read
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MAX_HEAD = 64 * 1024  # bytes of an answer's status line and headers
MAX_ANSWER = 64 * 1024 * 1024  # bytes of an answer's body (DynamoDB's are at most 16 MB): past it, not read
_READ = 64 * 1024


class Answer:
    """An HTTP answer: ``status_code``, ``items`` (the headers as they came),
    ``headers`` (lower-case names to values, repeated ones joined with ``, ``), ``content``."""

    __slots__ = ("status_code", "items", "headers", "content")

    def __init__(self, status_code: int, items: tuple[tuple[str, str], ...], headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.items = items
        self.headers = headers
        self.content = content


class _Unreadable(Exception):
    """The answer is not HTTP/1.x (raised as ``ConnectionClosedError``, as ``http.client``'s ``BadStatusLine`` is)."""


class Transport:
    """Keep-alive connections to the endpoint of ``url``.

    :param url: ``http://`` or ``https://`` endpoint.
    :param connect_timeout: seconds to connect (and for the TLS handshake).
    :param read_timeout: seconds any one read of the answer may wait.
    :param max_connections: idle connections kept at most.
    :param verify: botocore's ``verify``: True (botocore's CA bundle), a CA
        bundle's path (a file, or a directory of certificates), or False (no verification).
    """

    def __init__(
        self, url: str, connect_timeout: float | None, read_timeout: float | None, max_connections: int = 10, *, verify: Any = True
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max(1, max_connections)
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._tls = _tls_context(verify)
        self._idle: list[socket.socket] = []
        self._out = 0  # connections out on a post
        self._closed = False  # closed: warming puts nothing back
        self._lock = threading.Lock()
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: none of the parent's connections (the module docstring)."""
        self._lock = threading.Lock()
        idle, self._idle, self._out = self._idle, [], 0
        for sock in idle:
            try:
                sock.close()  # the child's copy of the descriptor only: the parent's connection stays open
            except OSError:
                pass

    def __repr__(self) -> str:
        return f"Transport({self.url!r})"

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self._closed = True
        for sock in idle:
            sock.close()

    def warm(self) -> str:
        """Keep one connection open in the idle list, ready for a post (the
        module docstring): ``kept``, ``opened``, ``failed``, ``busy`` or
        ``skipped`` (closed). Blocks up to the connect timeout (and the TLS
        handshake, and for TLS 1.3 its tickets); raises nothing."""
        with self._lock:
            if self._closed:
                return SKIPPED
            if self._idle:
                sock: socket.socket | None = self._idle.pop()  # the most recent: the next post's
            elif self._out:
                return BUSY  # traffic keeps the region warm
            else:
                sock = None
        result = KEPT
        if sock is not None and _dropped(sock):
            sock.close()
            sock = None
        if sock is None:
            result = OPENED
            try:
                sock = self._connect()
            except Exception:  # noqa: BLE001 - refused, timed out, a bad certificate: the probe judges the region
                return FAILED
            if isinstance(sock, ssl.SSLSocket) and sock.version() == "TLSv1.3":
                if not still_open(sock, wait=self.connect_timeout, quiet=TICKETS_QUIET):  # its tickets, read
                    sock.close()
                    return FAILED
        with self._lock:
            if not self._closed and len(self._idle) < self.max_connections:
                self._idle.append(sock)  # on top: the next post takes it
                return result
        sock.close()  # closed meanwhile, or posts filled the idle list: warm either way
        return SKIPPED if self._closed else result

    def post(self, head: bytes, body: bytes) -> Answer:
        """Write ``head`` (request line and headers, ending in an empty line)
        and ``body``; the answer, or a botocore transport error (module docstring)."""
        sock = self._take()
        keep = False
        try:
            try:
                written = True
                try:
                    sock.sendall(head + body if len(body) < 65536 else head)
                    if len(body) >= 65536:
                        sock.sendall(body)
                except TimeoutError as error:  # the region stopped reading: urllib3 calls it "Connection aborted"
                    raise ConnectionClosedError(endpoint_url=self.url, error=error) from error
                except (BrokenPipeError, ConnectionResetError):
                    written = False  # closed while writing: the answer it sent first (a 413) is read, as urllib3 reads it
                answer, keep = self._read(sock)
                keep = keep and written
            except TimeoutError as error:
                raise ReadTimeoutError(endpoint_url=self.url, error=error) from error
            except ssl.SSLError as error:
                raise SSLError(endpoint_url=self.url, error=error) from error
            except (OSError, _Unreadable, ValueError) as error:  # ValueError: a parse this module missed, still not an answer
                raise ConnectionClosedError(endpoint_url=self.url, error=error) from error
        finally:
            self._give(sock, keep)
        return answer

    def _take(self) -> socket.socket:
        with self._lock:
            self._out += 1
            sock = self._idle.pop() if self._idle else None
        while sock is not None and _dropped(sock):
            sock.close()
            with self._lock:
                sock = self._idle.pop() if self._idle else None
        if sock is None:
            try:
                return self._connect()
            except BaseException:
                with self._lock:
                    self._out -= 1
                raise
        return sock

    def _give(self, sock: socket.socket, keep: bool) -> None:
        with self._lock:
            self._out -= 1
            if keep and not self._closed and len(self._idle) < self.max_connections:
                self._idle.append(sock)
                return
        sock.close()

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except socket.gaierror as error:
            raise EndpointConnectionError(endpoint_url=self.url, error=error) from error
        except TimeoutError as error:
            raise ConnectTimeoutError(endpoint_url=self.url, error=error) from error
        except OSError as error:
            raise EndpointConnectionError(endpoint_url=self.url, error=error) from error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            except TimeoutError as error:
                sock.close()
                raise ReadTimeoutError(endpoint_url=self.url, error=error) from error
            except ssl.SSLError as error:
                sock.close()
                raise SSLError(endpoint_url=self.url, error=error) from error
            except OSError as error:
                sock.close()
                raise ConnectionClosedError(endpoint_url=self.url, error=error) from error
        sock.settimeout(self.read_timeout)
        return sock

    def _read(self, sock: socket.socket) -> tuple[Answer, bool]:
        """The answer; and whether the connection may be used again."""
        buffer = bytearray()
        interim = 0
        while True:
            end = buffer.find(b"\r\n\r\n")
            while end < 0:
                if len(buffer) > _MAX_HEAD:
                    raise _Unreadable("the answer's head is too large")
                data = sock.recv(_READ)
                if not data:
                    raise ConnectionResetError("the region closed the connection before answering")
                start = max(0, len(buffer) - 3)  # only the new bytes searched: a head dribbled a byte at a time stays linear
                buffer += data
                end = buffer.find(b"\r\n\r\n", start)
            lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            del buffer[: end + 4]
            status_line = _STATUS.fullmatch(lines[0])
            if status_line is None:
                raise _Unreadable(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
            version, status = status_line.group(1), int(status_line.group(2))
            if status < 100:
                raise _Unreadable(f"not an HTTP status: {status}")
            if 100 <= status < 200:
                interim += 1
                if status == 101 or interim > _MAX_INTERIM:
                    raise _Unreadable(f"a protocol switch nobody asked for, or too many interim answers: {status}")
                continue  # an interim answer (never asked for): the real one follows
            break
        items = []
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            value = value.strip(" \t")
            if not colon or not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
                # Never passed on: the sidecar hands the region's headers to its client.
                raise _Unreadable("a malformed header line")
            items.append((name, value))
            lowered = name.lower()
            headers[lowered] = f"{headers[lowered]}, {value}" if lowered in headers else value
        answer = Answer(status, tuple(items), headers, b"")
        keep = version == "1" and "close" not in headers.get("connection", "").lower()
        coding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if coding is not None:
            if coding.strip(" \t").lower() != "chunked" or length is not None:
                # Both, or a coding this client does not read: framing a smuggler could split differently.
                raise _Unreadable(f"an answer framed ambiguously: Transfer-Encoding {coding!r}, Content-Length {length!r}")
            answer.content = _chunked(sock, buffer)
            return answer, keep and not buffer  # bytes past the answer: out of step, dropped
        if length is not None:
            if not _DIGITS.fullmatch(length):
                raise _Unreadable("a Content-Length that is not a number")
            wanted = int(length)
            if wanted > MAX_ANSWER:
                raise _Unreadable(f"an answer of {wanted} bytes")
            while len(buffer) < wanted:
                data = sock.recv(min(1 << 20, max(_READ, wanted - len(buffer))))
                if not data:
                    raise ConnectionResetError("the region closed the connection mid-answer")
                buffer += data
            answer.content = bytes(buffer[:wanted])
            return answer, keep and len(buffer) == wanted
        if status in (204, 304):
            return answer, keep
        while len(buffer) <= MAX_ANSWER and (data := sock.recv(_READ)):  # to the close (the read timeout per read)
            buffer += data
        if len(buffer) > MAX_ANSWER:
            raise _Unreadable("an answer past the size limit")
        answer.content = bytes(buffer)
        return answer, False


def _chunked(sock: socket.socket, buffer: bytearray) -> bytes:
    body = bytearray()

    def line() -> bytes:
        start = 0
        while (end := buffer.find(b"\r\n", start)) < 0:
            if len(buffer) > _MAX_HEAD:
                raise _Unreadable("a chunk line is too long")
            data = sock.recv(_READ)
            if not data:
                raise ConnectionResetError("the region closed the connection mid-answer")
            start = max(0, len(buffer) - 1)
            buffer.extend(data)
        text = bytes(buffer[:end])
        del buffer[: end + 2]
        return text

    while True:
        size_text = line().split(b";")[0].rstrip(b" \t")
        if not _HEX.fullmatch(size_text):
            raise _Unreadable("a chunk size that is not a hex number")
        size = int(size_text, 16)
        if len(body) + size > MAX_ANSWER:
            raise _Unreadable("an answer past the size limit")
        if size == 0:
            trailers = 0
            while trailer := line():  # trailers (never passed on), up to the empty line; as much as a head at most
                trailers += len(trailer) + 2
                if trailers > _MAX_HEAD:
                    raise _Unreadable("the answer's trailers are too large")
            return bytes(body)
        while len(buffer) < size + 2:
            data = sock.recv(_READ)
            if not data:
                raise ConnectionResetError("the region closed the connection mid-answer")
            buffer.extend(data)
        if buffer[size : size + 2] != b"\r\n":
            raise _Unreadable("a chunk longer than its size")
        body += buffer[:size]
        del buffer[: size + 2]


def _tls_context(verify: Any) -> ssl.SSLContext:
    """The TLS context for botocore's ``verify`` (as ``URLLib3Session`` reads it)."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    from botocore.httpsession import get_cert_path

    path = get_cert_path(verify)
    return ssl.create_default_context(capath=path) if os.path.isdir(path) else ssl.create_default_context(cafile=path)


def _dropped(sock: socket.socket) -> bool:
    """True if a kept-alive connection has been closed by the region (or
    has bytes nobody asked for): not to be written to. A readable TLS one
    is read without blocking first: records without data (TLS 1.3 session
    tickets, which a connection never used yet has not read) leave it open."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        if not poller.poll(0):
            return False
    except (OSError, ValueError):
        return True
    return not isinstance(sock, ssl.SSLSocket) or not still_open(sock)


def usable(url: str, config: Any) -> bool:
    """True where :class:`Transport` is equivalent to ``URLLib3Session`` for
    this endpoint and config: ``http(s)``, no proxy, no client certificate."""
    return urlsplit(url).scheme in ("http", "https") and not config.proxies and not config.client_cert and not (config.proxies_config or {})
