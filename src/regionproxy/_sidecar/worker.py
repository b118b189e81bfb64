"""The sidecar's HTTP front: a lean HTTP/1.1 keep-alive server for one
WSGI app, run as a gunicorn worker class (``regionproxy._sidecar.worker.SidecarWorker``).

gunicorn stays the process manager (the master, worker restarts,
``--timeout`` heartbeats, signals, graceful stop, ``max_requests``);
this module replaces its ``gthread`` worker, whose Python HTTP handling
(its parser, environ, futures handed between threads) cost about 300 us
of CPU per request, three times what the sidecar's app spends on a
cached GetItem. The app is called as any WSGI server calls it, so
``--dev`` (werkzeug) and any other WSGI server still serve the same app.

The rules, for every connection:

- **A thread is never held by a client, only by the app.** Parked
  connections wait in one ``epoll`` (one-shot: a connection is parked or
  in one thread, never both), which the threads wait on themselves (no
  hand-off between threads: the thread that is woken serves); a thread
  reads what has arrived without waiting (non-blocking sockets). A
  request is handed to the app only once its head and its whole body are
  in memory; a partial request is parked again with its bytes, so a
  client sending one byte at a time costs a thread a few microseconds per
  byte, never a wait. (Past ``park_budget`` bytes of partial requests
  parked, a thread waits for the rest itself, within the request's
  deadline: memory stays bounded.) Threads are ``--threads`` per worker;
  the worker's main thread accepts, enforces the deadlines below, and
  sends gunicorn's heartbeat.
- **Deadlines, not per-read timeouts:** a request's head must be complete
  ``header_timeout`` seconds after its first byte (or after the
  connection was accepted), its body ``body_timeout`` seconds after its
  head; a connection idle between requests is closed after gunicorn's
  ``--keep-alive`` seconds. A deadline measures the client: a
  connection with bytes waiting that no thread has read yet (every
  thread busy in the app) is not closed for it. Past a deadline the connection is closed
  (nothing half-read is ever handed to the app). An answer that cannot
  be written within ``send_timeout`` seconds (a client that does not
  read) closes the connection.
- **At most ``worker_connections`` open connections:** a new one makes
  room by closing one idle connection, in this order: first a connection
  that has never sent a byte (the shape of a flood of silent
  connections, slowloris-style, or a broken client), the oldest first;
  only when there is none, a kept-alive connection that has been
  answered, the longest idle first. So a flood of silent connections
  evicts itself and never the kept-alive connections of the clients
  being served. A connection mid-request (bytes of a request parked), or
  with bytes waiting that no thread has read yet (every thread busy), is
  never evicted: its deadline judges it. With no connection to close,
  the worker stops accepting until one closes or can be evicted (looked
  at every poll; the other workers accept meanwhile).
- **Strict parsing:** a request line ``METHOD /target HTTP/1.x``, header
  lines ``name: value`` within gunicorn's ``limit_request_line``,
  ``limit_request_fields`` and ``limit_request_field_size``; a header
  name with an underscore is dropped (it would read as a dash's in the
  environ); ``Content-Length`` digits only, stated once (or twice alike).
  Anything else is DynamoDB's 400 ``SerializationException`` and the
  connection closed, never a 500. A body over ``max_body`` (DynamoDB's
  16 MB) is not read: the app is called with ``CONTENT_LENGTH`` as stated
  and an empty body (the sidecar's app answers 413), and the connection
  is closed. ``Transfer-Encoding`` (chunked) is not read either: the app
  sees no ``CONTENT_LENGTH`` (the sidecar's app answers 400) and the
  connection is closed. ``Expect: 100-continue`` is answered ``100
  Continue`` before the body is read (the PHP SDK sends it for bodies
  over 1 MB). ``HEAD`` gets the headers only.
- **Keep-alive and pipelining:** HTTP/1.1 keeps the connection unless
  the client or the app says ``Connection: close``, or the worker is
  stopping; requests already sent behind the current one (pipelined) are
  answered in order. HTTP/1.0 closes after each answer.
- **Stopping** (gunicorn's SIGTERM, ``max_requests``, the master gone):
  no new connection is accepted; requests being served finish and are
  answered with ``Connection: close``; a kept-alive connection may still
  bring one request within ``STOP_LINGER`` seconds; the worker exits when
  no request is in flight, or after ``--graceful-timeout``.
- **The app's answer** is collected whole (the sidecar's answers are at
  most DynamoDB's 16 MB) and sent with its own ``Content-Length`` (the
  app's is replaced by the true length) and a ``Date``. An exception
  from the app is logged and answered 500 (the sidecar's own failure).

The poller is Linux's ``epoll``; elsewhere ``regionproxy serve`` runs
gunicorn's ``gthread`` worker (:func:`worker_class`).
"""

from __future__ import annotations

import errno
import heapq
import io
import logging
import os
import re
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_to_bytes

log = logging.getLogger("regionproxy.sidecar")

HEADER_TIMEOUT = 10.0  # seconds from a request's first byte to the end of its head
BODY_TIMEOUT = 10.0  # seconds from the end of the head to the last body byte
SEND_TIMEOUT = 10.0  # seconds to write an answer
STOP_LINGER = 1.0  # seconds a kept-alive connection may still bring a request while stopping
MAX_BODY = 16 * 1024 * 1024  # DynamoDB's request size limit
PARK_BUDGET = 64 * 1024 * 1024  # bytes of partial requests kept in the poller, per worker
_EVICT_LOOKS = 16  # idle connections an eviction looks at, oldest first (bounded system calls per accept)
_THREAD_WAIT = 0.5  # seconds a thread waits for events before it looks whether the front is closing

_READ = 256 * 1024
_EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT if hasattr(select, "epoll") else 0
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TARGET = re.compile(rb"/[\x21-\x7e]*|\*")
_VERSIONS = {b"HTTP/1.1": "HTTP/1.1", b"HTTP/1.0": "HTTP/1.0"}
_COAL = "com.amazon.coral.service#"


class _Close(Exception):
    """The connection is to be closed (after ``answer``, if one is given)."""

    def __init__(self, answer: bytes = b"") -> None:
        super().__init__()
        self.answer = answer


def _refusal(status: int, error_type: str, message: str) -> bytes:
    """A DynamoDB-shaped error answer of the front itself, closing the connection."""
    from regionproxy._sidecar.protocol import error_answer

    status_line, headers, body = error_answer(status, _COAL + error_type, message)
    lines = [f"HTTP/1.1 {status_line}\r\n", *(f"{name}: {value}\r\n" for name, value in headers), "Connection: close\r\n\r\n"]
    return "".join(lines).encode("latin-1") + body


class _Connection:
    __slots__ = ("sock", "fd", "address", "buffer", "deadline", "idle", "parked_bytes", "body_started", "closed", "answered")

    def __init__(self, sock: socket.socket, address: Any, deadline: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.buffer = bytearray()
        self.deadline = deadline  # close when parked past this (monotonic)
        self.idle = True  # no request begun: may be evicted (:meth:`HttpFront._evict`)
        self.parked_bytes = 0  # of this connection's buffer, counted in the front's budget
        self.body_started = False  # the head of the request in the buffer is complete (its body deadline set)
        self.closed = False
        self.answered = False  # at least one request answered


class _Head:
    __slots__ = ("environ", "length", "end", "keep", "expect", "method")

    def __init__(self, environ: dict[str, Any], length: int | None, end: int, keep: bool, expect: bool, method: str) -> None:
        self.environ = environ
        self.length = length  # body bytes to read; None: the body is not read (too large, chunked)
        self.end = end  # the head's length in the buffer
        self.keep = keep
        self.expect = expect
        self.method = method


class HttpFront:
    """Serves ``app`` on ``listeners`` (bound, listening sockets) until :meth:`stop`.

    :param app: a WSGI app.
    :param listeners: listening sockets.
    :param threads: threads that run the app.
    :param keepalive: seconds an idle kept-alive connection stays open.
    :param max_connections: open connections at most.
    :param limit_request_line: bytes of the request line at most (0: 65536).
    :param limit_request_fields: header lines at most.
    :param limit_request_field_size: bytes of a header line at most (0: 65536).
    :param multiprocess: ``wsgi.multiprocess``.
    :param on_request: called after each request (counts for ``max_requests``).
    """

    header_timeout = HEADER_TIMEOUT
    body_timeout = BODY_TIMEOUT
    send_timeout = SEND_TIMEOUT
    max_body = MAX_BODY
    park_budget = PARK_BUDGET

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        listeners: list[socket.socket],
        *,
        threads: int = 8,
        keepalive: float = 75.0,
        max_connections: int = 1000,
        limit_request_line: int = 8190,
        limit_request_fields: int = 100,
        limit_request_field_size: int = 8190,
        multiprocess: bool = False,
        on_request: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.listeners = {sock.fileno(): sock for sock in listeners}
        self.threads = max(1, threads)
        self.keepalive = keepalive
        self.max_connections = max(1, max_connections)
        self.limit_line = limit_request_line or 65536
        self.limit_fields = limit_request_fields or 32768
        self.limit_field = limit_request_field_size or 65536
        self.on_request = on_request
        self.alive = True
        self._epoll = select.epoll()  # the connections: waited on by the threads
        self._listening = select.epoll()  # the listeners and the wake-up pipe: the poller's
        self._closing = False
        self._parked: dict[int, _Connection] = {}
        self._open = 0
        self._lock = threading.Lock()  # _open, _parked_bytes
        self._parked_bytes = 0
        self._accepting = False
        self._stopping_since: float | None = None
        self._wake_r, self._wake_w = os.pipe()  # wakes the poller
        self._stop_r, self._stop_w = os.pipe()  # wakes every thread, for good (level-triggered)
        for fd in (self._wake_r, self._wake_w, self._stop_r, self._stop_w):
            os.set_blocking(fd, False)
        self._workers: list[threading.Thread] = []
        self._date = (0, "")
        self._base = {
            "SCRIPT_NAME": "",
            "SERVER_SOFTWARE": "regionproxy",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }
        self._probe = select.poll()  # listeners with a connection waiting (:meth:`_evict`)
        for sock in listeners:
            self._probe.register(sock.fileno(), select.POLLIN)
            sock.setblocking(False)
            name = sock.getsockname()
            if isinstance(name, tuple):
                self._base["SERVER_NAME"], self._base["SERVER_PORT"] = str(name[0]), str(name[1])
        self._base.setdefault("SERVER_NAME", "localhost")
        self._base.setdefault("SERVER_PORT", "")

    # -- the poller (one thread) ---------------------------------------------------

    def start(self) -> None:
        """Start the threads and accepting (call :meth:`poll` in a loop after)."""
        self._listening.register(self._wake_r, select.EPOLLIN)
        self._epoll.register(self._stop_r, select.EPOLLIN)
        self._set_accepting(True)
        for number in range(self.threads):
            thread = threading.Thread(target=self._work, name=f"regionproxy-serve-{number}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def wake(self) -> None:
        """Make :meth:`poll` return now (from a signal handler or another thread)."""
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass  # the pipe is full: poll wakes anyway

    @property
    def in_flight(self) -> int:
        """Connections in a thread (a request being read or served)."""
        return self._open - len(self._parked)

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for new connections and accept
        them; close what is past its deadline. (The threads wait for
        the connections' bytes themselves.)"""
        try:
            events = self._listening.poll(timeout)
        except InterruptedError:
            events = []
        for fd, _ in events:
            if fd in self.listeners:
                self._accept(self.listeners[fd])
            elif fd == self._wake_r:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except OSError:
                    pass
        self._sweep()
        # Stopped accepting with nothing to evict: again once one closed, or
        # one became evictable since (an answered connection now idle).
        # Nobody waiting: listen again, and evict when one comes (_accept).
        if not self._accepting and self.alive and (self._open < self.max_connections or not self._pending() or self._evict()):
            self._set_accepting(True)

    def stop(self) -> None:
        """Stop accepting; kept-alive connections get :data:`STOP_LINGER` seconds more."""
        if self._stopping_since is None:
            self.alive = False
            self._stopping_since = time.monotonic()
            self._set_accepting(False)
            linger = self._stopping_since + STOP_LINGER
            for connection in _snapshot(self._parked):
                connection.deadline = min(connection.deadline, linger)
            self.wake()

    def close(self) -> None:
        """Close every connection and stop the threads (after :meth:`stop`)."""
        self.stop()
        for connection in _snapshot(self._parked):
            if self._parked.pop(connection.fd, None) is not None:
                self._close(connection)
        self._closing = True
        os.write(self._stop_w, b"!")
        for thread in self._workers:
            thread.join(timeout=2 * _THREAD_WAIT)
        self._epoll.close()
        self._listening.close()
        for fd in (self._wake_r, self._wake_w, self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def serve_until_stopped(self, graceful_timeout: float = 10.0, tick: Callable[[], None] | None = None) -> None:
        """:meth:`start`, then :meth:`poll` until :meth:`stop`, then until no
        request is in flight (at most ``graceful_timeout`` s more), then :meth:`close`."""
        self.start()
        try:
            while self.alive:
                if tick is not None:
                    tick()
                self.poll(1.0)
            self.stop()
            ends = time.monotonic() + graceful_timeout
            while (self.in_flight > 0 or self._parked) and time.monotonic() < ends:
                if tick is not None:
                    tick()
                self.poll(0.1)
        finally:
            self.close()

    def _set_accepting(self, accepting: bool) -> None:
        if accepting == self._accepting:
            return
        for fd in self.listeners:
            try:
                if accepting:
                    self._listening.register(fd, select.EPOLLIN)
                else:
                    self._listening.unregister(fd)
            except (OSError, ValueError):
                pass
        self._accepting = accepting

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(64):  # bounded: the rest at the next poll
            if self._open >= self.max_connections and not self._evict():
                self._set_accepting(False)  # until a connection closes
                return
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # EMFILE and the like: wait for the next poll
                if error.errno not in (errno.ECONNABORTED,):
                    log.warning("regionproxy serve: accept failed: %s", error)
                    return
                continue
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open += 1
            connection = _Connection(sock, address, time.monotonic() + self.header_timeout)
            self._parked[connection.fd] = connection
            self._epoll.register(connection.fd, _EVENTS)

    def _evict(self) -> bool:
        """Make room for a connection waiting to be accepted: close the
        oldest connection that has never sent, else the longest-idle
        kept-alive one (the module's rules). True only if one was closed:
        with nobody waiting, nothing is closed and no room is made, so
        ``_accept`` does not accept past the limit a connection that
        arrives just after this looked."""
        if not self._pending():
            return False  # nobody waits: nothing to close
        idle = [connection for connection in _snapshot(self._parked) if connection.idle]
        # Never answered before answered; within each, the earliest deadline
        # (accepted first, or answered longest ago: the deadlines are set
        # from those moments, each group with its one timeout).
        for connection in heapq.nsmallest(_EVICT_LOOKS, idle, key=lambda connection: (connection.answered, connection.deadline)):
            if _readable(connection.sock):
                continue  # bytes waiting for a busy thread: a request, not idleness
            # Closed only if popped here: a thread that popped it first is serving it.
            if self._parked.pop(connection.fd, None) is not None:
                self._close(connection)
                return True
        return False

    def _pending(self) -> bool:
        """True if a listener has a connection waiting."""
        return bool(self._probe.poll(0))

    def _sweep(self) -> None:
        now = time.monotonic()
        expired = [connection for connection in _snapshot(self._parked) if connection.deadline <= now]
        for connection in expired:
            if _readable(connection.sock):
                continue  # the client has sent; no thread has read it yet (all busy): not the client's delay
            if self._parked.pop(connection.fd, None) is not None:
                self._close(connection)

    # -- the threads -------------------------------------------------------------

    def _work(self) -> None:
        """Wait for a parked connection's bytes (one event at a time: one
        thread per connection, epoll's one-shot), then serve it."""
        while not self._closing:
            try:
                events = self._epoll.poll(_THREAD_WAIT, 1)
            except InterruptedError:
                continue
            except (OSError, ValueError):  # closed under us: the front is closing
                return
            for fd, _ in events:
                if fd == self._stop_r:
                    return
                # Popped by one side only: this thread, or the poller's sweep
                # that closes it (an event for a closed fd finds nothing).
                connection = self._parked.pop(fd, None)
                if connection is None:
                    continue
                try:
                    self._visit(connection)
                except Exception:  # noqa: BLE001 - a bug here must not end the thread
                    log.exception("regionproxy serve: a connection failed")
                    self._close(connection)

    def _park(self, connection: _Connection) -> None:
        """Back to the poller (one-shot re-armed), or closed past its deadline."""
        if connection.deadline <= time.monotonic():
            self._close(connection)
            return
        self._parked[connection.fd] = connection
        try:
            self._epoll.modify(connection.fd, _EVENTS)
        except OSError:  # closed meanwhile by the poller's sweep
            self._parked.pop(connection.fd, None)

    def _release_parked_bytes(self, connection: _Connection) -> None:
        if connection.parked_bytes:
            with self._lock:
                self._parked_bytes -= connection.parked_bytes
            connection.parked_bytes = 0

    def _visit(self, connection: _Connection) -> None:
        """Read what has arrived; answer every complete request; hand the
        connection back (or, past the budget, wait for the rest here)."""
        while not self._serve(connection):
            self._wait_readable(connection)  # within the request's deadline

    def _serve(self, connection: _Connection) -> bool:
        """One visit; False if the partial request left does not fit the budget."""
        try:
            closed = self._receive(connection)
            if connection.idle and connection.buffer:  # a new request begins: its head's deadline
                connection.idle = False
                connection.deadline = min(connection.deadline, time.monotonic() + self.header_timeout)
            while True:  # every complete request read (pipelined ones): bounded by the bytes received
                head = self._head(connection, closed)
                if head is None:
                    break
                if not self._body_ready(connection, head, closed):
                    break
                keep = self._respond(connection, head)
                if not keep:
                    raise _Close()
                connection.answered = True
                if not connection.buffer:
                    connection.idle = True
                    connection.deadline = time.monotonic() + (self.keepalive if self.alive else STOP_LINGER)
                    break
                connection.deadline = time.monotonic() + self.header_timeout  # a pipelined request begins
            if closed:
                raise _Close()
        except _Close as close:
            if close.answer:
                self._send(connection, close.answer, quiet=True)
            self._close(connection)
            return True
        except OSError:
            self._close(connection)
            return True
        if not self._budget(connection):
            if connection.deadline <= time.monotonic():
                self._close(connection)
                return True
            return False
        self._park(connection)
        return True

    def _budget(self, connection: _Connection) -> bool:
        """Count a partial request's bytes against the budget; False if past it."""
        self._release_parked_bytes(connection)
        size = len(connection.buffer)
        if not size:
            return True
        with self._lock:
            if self._parked_bytes + size > self.park_budget:
                return False
            self._parked_bytes += size
        connection.parked_bytes = size
        return True

    def _wait_readable(self, connection: _Connection) -> None:
        left = connection.deadline - time.monotonic()
        if left <= 0:
            return
        poller = select.poll()
        poller.register(connection.fd, select.POLLIN)
        poller.poll(left * 1000)

    def _receive(self, connection: _Connection) -> bool:
        """Append what the socket holds; True if the client has closed its side."""
        for _ in range(4096):  # bounded; a full buffer is read at the next visit
            try:
                data = connection.sock.recv(_READ)
            except (BlockingIOError, InterruptedError):
                return False
            if not data:
                return True
            connection.buffer += data
            if len(data) < _READ or len(connection.buffer) > self.max_body + 65536:
                return False
        return False

    def _head(self, connection: _Connection, closed: bool) -> _Head | None:
        buffer = connection.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            # Bare empty lines between requests are allowed (RFC 9112 2.2).
            while buffer[:2] == b"\r\n":
                del buffer[:2]
            limit = self.limit_line + 2 + self.limit_fields * (self.limit_field + 2) + 2
            if len(buffer) > limit:
                raise _Close(_refusal(400, "SerializationException", "The request head is too large."))
            if closed and buffer:
                raise _Close()
            return None
        while buffer.startswith(b"\r\n"):
            del buffer[:2]
            end -= 2
        return self._parse(buffer, end)

    def _parse(self, buffer: bytearray, end: int) -> _Head:
        lines = bytes(buffer[:end]).split(b"\r\n")
        request_line = lines[0]
        if len(request_line) > self.limit_line:
            raise _Close(_refusal(400, "SerializationException", "The request line is too long."))
        parts = request_line.split(b" ")
        if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _TARGET.fullmatch(parts[1]) or parts[2] not in _VERSIONS:
            raise _Close(_refusal(400, "SerializationException", "The request line is not HTTP/1.1."))
        if len(lines) - 1 > self.limit_fields:
            raise _Close(_refusal(400, "SerializationException", "Too many header lines."))
        method = parts[0].decode("ascii")
        version = _VERSIONS[parts[2]]
        path, _, query = parts[1].partition(b"?")
        environ = self._base.copy()
        environ["REQUEST_METHOD"] = method
        environ["PATH_INFO"] = (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["SERVER_PROTOCOL"] = version
        lengths: set[bytes] = set()
        connection_tokens = b""
        expect = b""
        chunked = False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or len(line) > self.limit_field or not _TOKEN.fullmatch(name):
                raise _Close(_refusal(400, "SerializationException", "A header line is malformed."))
            value = value.strip(b" \t")
            if _BAD_VALUE.search(value):
                raise _Close(_refusal(400, "SerializationException", "A header value is malformed."))
            lowered = name.lower()
            if lowered == b"content-length":
                lengths.add(value)
                continue
            if lowered == b"transfer-encoding":
                chunked = True
                continue
            if lowered == b"connection":
                connection_tokens += b"," + value.lower()
            elif lowered == b"expect":
                expect = value.lower()
            if b"_" in name:
                continue  # would read as a dash's (HTTP_X_AMZ_TARGET): dropped
            text = value.decode("latin-1")
            if lowered == b"content-type":
                environ["CONTENT_TYPE"] = text
                continue
            key = "HTTP_" + name.decode("ascii").upper().replace("-", "_")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
        keep = version == "HTTP/1.1" and b"close" not in connection_tokens.split(b",")
        length: int | None = 0
        if len(lengths) > 1 or (lengths and not next(iter(lengths)).isdigit()):
            raise _Close(_refusal(400, "SerializationException", "The Content-Length is malformed."))
        if chunked:
            length, keep = None, False  # not read: the app sees no CONTENT_LENGTH
        elif lengths:
            stated = next(iter(lengths)).decode("ascii")
            environ["CONTENT_LENGTH"] = stated
            length = int(stated)
            if length > self.max_body:
                length, keep = None, False  # not read: the app refuses it
        return _Head(environ, length, end + 4, keep, expect == b"100-continue", method)

    def _body_ready(self, connection: _Connection, head: _Head, closed: bool) -> bool:
        """True when the whole body is in the buffer (or is not to be read)."""
        if not head.length:
            return True
        if len(connection.buffer) >= head.end + head.length:
            return True
        if closed:
            raise _Close()
        if not connection.body_started:  # once a request: the body's deadline, from the end of the head
            connection.body_started = True
            connection.deadline = time.monotonic() + self.body_timeout
            if head.expect and len(connection.buffer) == head.end:
                self._send(connection, b"HTTP/1.1 100 Continue\r\n\r\n")
        return False

    def _respond(self, connection: _Connection, head: _Head) -> bool:
        """Run the app on the request at the front of the buffer; send its answer; True to keep the connection."""
        buffer = connection.buffer
        environ = head.environ
        if head.length:
            body = bytes(buffer[head.end : head.end + head.length])
            del buffer[: head.end + head.length]
        else:
            body = b""
            del buffer[: head.end]
        connection.body_started = False
        self._release_parked_bytes(connection)
        environ["wsgi.input"] = io.BytesIO(body)
        address = connection.address
        if isinstance(address, tuple):
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(address[0]), str(address[1])
        else:
            environ["REMOTE_ADDR"] = ""
        keep = head.keep and self.alive
        answer, app_keep = self._call(environ, head.method == "HEAD", keep)
        if self.on_request is not None:
            self.on_request()
        self._send(connection, answer)
        if head.length is None:
            return False  # a body not read: the rest of the stream is not a request
        return keep and app_keep and self.alive

    def _call(self, environ: dict[str, Any], head_only: bool, keep: bool) -> tuple[bytes, bool]:
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            if started and exc_info is None:
                raise AssertionError("start_response called twice without exc_info")
            started[:] = [status, headers]
            return written.append

        try:
            result = self.app(environ, start_response)
            try:
                for chunk in result:
                    if chunk:
                        written.append(chunk)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if not started:
                raise RuntimeError("the app returned without calling start_response")
            status, headers = started
            if "\r" in status or "\n" in status:
                raise ValueError("the app's status has a line break")
            lines = [f"HTTP/1.1 {status}\r\n"]
            app_keep = True
            for name, value in headers:
                lowered = name.lower()
                if lowered in ("content-length", "date", "transfer-encoding", "keep-alive"):
                    continue
                if lowered == "connection":
                    app_keep = app_keep and "close" not in value.lower()
                    continue
                if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                    raise ValueError(f"the app's header {name!r} has a line break")
                lines.append(f"{name}: {value}\r\n")
            body = b"".join(written)
            keep = keep and app_keep and self.alive  # stopping meanwhile: this answer closes
            lines.append(f"Content-Length: {len(body)}\r\nDate: {self._http_date()}\r\n")
            lines.append("\r\n" if keep else "Connection: close\r\n\r\n")
            head = "".join(lines).encode("latin-1")
        except Exception:  # noqa: BLE001 - the app's own failure (or a header that is not latin-1): a 500, logged
            log.exception("regionproxy serve: the app failed on %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            return _refusal(500, "InternalServerError", "The sidecar could not serve the request."), False
        return (head if head_only else head + body), keep

    def _http_date(self) -> str:
        now = int(time.time())
        stamp, text = self._date
        if stamp != now:
            text = formatdate(now, usegmt=True)
            self._date = (now, text)
        return text

    def _send(self, connection: _Connection, data: bytes, *, quiet: bool = False) -> None:
        """All of ``data`` within :attr:`send_timeout`, or OSError (``quiet``: no error)."""
        view = memoryview(data)
        deadline = 0.0
        try:
            while view:
                try:
                    sent = connection.sock.send(view)
                except (BlockingIOError, InterruptedError):
                    now = time.monotonic()
                    deadline = deadline or now + self.send_timeout
                    if now >= deadline:
                        raise TimeoutError("the client does not read its answer") from None
                    poller = select.poll()
                    poller.register(connection.fd, select.POLLOUT)
                    poller.poll((deadline - now) * 1000)
                    continue
                view = view[sent:]
        except OSError:
            if not quiet:
                raise

    def _close(self, connection: _Connection) -> None:
        if connection.closed:
            return
        connection.closed = True
        self._release_parked_bytes(connection)
        try:
            self._epoll.unregister(connection.fd)
        except (OSError, ValueError):
            pass
        try:
            connection.sock.close()
        except OSError:
            pass
        with self._lock:
            self._open -= 1


def _snapshot(parked: dict[int, _Connection]) -> list[_Connection]:
    """The parked connections now: ``list()`` copies the dict in one C call,
    which no other thread interrupts (iterating it in Python, a thread
    parking a connection meanwhile would change its size under the loop)."""
    return list(parked.values())


def _readable(sock: socket.socket) -> bool:
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return False


def worker_class() -> str:
    """The gunicorn worker class ``regionproxy serve`` runs: this module's where ``epoll`` is, else ``gthread``."""
    return "regionproxy._sidecar.worker.SidecarWorker" if hasattr(select, "epoll") else "gthread"


try:
    from gunicorn.workers.base import Worker as _GunicornWorker
except ImportError:  # gunicorn is an extra; --dev runs without it
    _GunicornWorker = object  # type: ignore[assignment,misc]


class SidecarWorker(_GunicornWorker):  # type: ignore[misc,valid-type]
    """gunicorn's worker with :class:`HttpFront` as its HTTP server.

    Honours what gunicorn's master expects of a worker: the heartbeat
    (``notify``) at least once a second, so ``--timeout`` applies;
    ``self.alive`` (cleared by SIGTERM, by ``max_requests``) stops
    accepting and ends the loop once no request is in flight, within
    ``--graceful-timeout``; SIGQUIT/SIGINT exit at once (gunicorn's
    handlers); a master that is gone (parent changed) stops the worker."""

    _front: HttpFront | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        front = getattr(self, "_front", None)
        if front is not None:
            front.alive = False
            front.wake()

    def _counted(self) -> None:
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False

    def _tick(self) -> None:
        self.notify()
        front = self._front
        if front is None:
            return
        if self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            self.alive = False
        if not self.alive:
            front.stop()

    def run(self) -> None:
        cfg = self.cfg
        front = HttpFront(
            self.wsgi,
            list(self.sockets),
            threads=cfg.threads,
            keepalive=cfg.keepalive,
            max_connections=cfg.worker_connections,
            limit_request_line=cfg.limit_request_line,
            limit_request_fields=cfg.limit_request_fields,
            limit_request_field_size=cfg.limit_request_field_size,
            multiprocess=cfg.workers > 1,
            on_request=self._counted,
        )
        self._front = front
        front.serve_until_stopped(cfg.graceful_timeout, tick=self._tick)
