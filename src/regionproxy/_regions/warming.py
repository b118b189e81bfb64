"""Connection warming: a connection kept open to a region, ready for the
first call that fails over to it.

A call that fails over to a remote region should not also pay for opening
a connection there: a TCP round trip across an ocean, and for https a TLS
handshake (one or two more). :func:`warm` opens one connection in the very
pool the region's botocore client sends through, without sending a request.

The rule: every process keeps, for every region, one connection open in
the urllib3 pool the region's client sends through (botocore's
``URLLib3Session``: its ``PoolManager``'s pool for the endpoint), and
where the process sends raw (the sidecar), in the pool of the region's raw
sender too (:meth:`~regionproxy._regions.wire.WireSender.warm`: the lean
transport's, :meth:`~regionproxy._regions.transport.Transport.warm`, by
this same rule; or its ``URLLib3Session``'s, :func:`warm_session`). The
region's probe thread (:class:`~regionproxy._regions.health.HealthMonitor`)
warms it once per probe interval, in every process: a worker that does not
hold the fleet's probe lease sends no probe, but warms all the same. It
re-opens the connection when the server closed it meanwhile (an idle
timeout, a server that closes after each answer, as the lab's does), and
leaves an open one alone. A call's path pays nothing: warming runs only in
the probe thread, takes no lock of the session's, and hands the connection
to the pool, where a call takes it as it takes any pooled one (LIFO, the
most recently returned first). For https the handshake is done while
warming, with the pool's own TLS settings, so a call on a warmed
connection sends its request at once.

No request is sent to warm: a request would cost the region a DynamoDB
call per process per interval, and where the server closes a connection
after each answer (the lab's fault proxies, moto) it would leave nothing
open. Opening the connection is what urllib3 itself does for a call,
through the same steps (``_new_conn``, then ``connect()``, which performs
the TLS handshake; its ``_validate_conn`` skips both for a connection
already open), and what botocore does before each send (its
``_setup_ssl_cert`` sets the pool's verification from the client's
``verify``). These are private members of botocore 1.x and urllib3 2.x:
where one is missing (another HTTP session class, a changed urllib3),
warming does nothing and says so (``skipped``), and calls go on as before.

TLS 1.3 servers send session tickets after the handshake, as records a
client reads only with its next read. On an idle connection they leave the
socket readable, and urllib3 takes a readable idle connection for one the
server closed (``is_connection_dropped``): a call would throw the warmed
connection away and open another. So after opening a TLS 1.3 connection,
warming waits for the tickets (up to the connect timeout for the first,
then until none comes for ``TICKETS_QUIET``; in the probe thread) and
reads them; and a connection found readable later is read
without blocking: records that carry no data (more tickets) leave it open,
an end of stream or any data closes it.

Not warmed: an endpoint reached through a proxy (urllib3 opens the tunnel
in ``urlopen`` itself), and a pool whose every connection is out on a call
(``busy``: traffic keeps that region warm, and a connection put back into
a full pool would be discarded).
"""

from __future__ import annotations

import queue
import ssl
from typing import Any

from urllib3.util.wait import wait_for_read

# What one warming did.
KEPT = "kept"  # the pool's most recent connection was open: nothing to do
OPENED = "opened"  # a connection (and its TLS session) opened into the pool
FAILED = "failed"  # opening it failed: the probe, not warming, judges the region
BUSY = "busy"  # every pooled connection is out on a call
SKIPPED = "skipped"  # not warmable (a proxy, another HTTP session, a closed pool)

# After a TLS 1.3 server's first session ticket, how long a silence means it
# sent them all (they leave together; a late one is read at the next round).
TICKETS_QUIET = 0.2


def warm(client: Any) -> str:
    """Keep one connection open to ``client``'s endpoint in its own pool:
    re-open the pool's most recently used connection if the server closed
    it, open one if the pool has none. Blocks up to the client's connect
    timeout (and its TLS handshake); raises nothing."""
    try:
        url = client.meta.endpoint_url
        http = client._endpoint.http_session  # the URLLib3Session every send of this client goes through
    except Exception:  # noqa: BLE001 - another botocore: warming is an optimisation, never a failure
        return SKIPPED
    return warm_session(http, url)


def warm_session(http: Any, url: str) -> str:
    """:func:`warm` for a botocore ``URLLib3Session`` that sends to ``url``
    (a raw sender's, such as the sidecar's)."""
    try:
        if http._proxy_config.proxy_url_for(url):
            return SKIPPED
        pool = http._get_connection_manager(url, None).connection_from_url(url)
        http._setup_ssl_cert(pool, url, http._verify)  # what send() does before each request
        idle = pool.pool
        if idle is None:  # closed (the client was closed)
            return SKIPPED
    except Exception:  # noqa: BLE001 - another botocore: warming is an optimisation, never a failure
        return SKIPPED
    try:
        conn = idle.get(block=False)
    except queue.Empty:
        return BUSY
    result = KEPT
    try:
        if conn is None:
            conn = pool._new_conn()  # with the pool's timeouts, socket options and TLS settings
        elif not conn.is_closed and not still_open(conn.sock, wait=0.0):
            conn.close()  # the server closed it (urllib3's own check before reuse, tickets read first)
        if conn.is_closed:
            result = OPENED
            conn.connect()  # TCP, then for https the TLS handshake
            sock = conn.sock
            if (
                isinstance(sock, ssl.SSLSocket)
                and sock.version() == "TLSv1.3"
                and not still_open(sock, wait=conn.timeout, quiet=TICKETS_QUIET)
            ):
                conn.close()
                result = FAILED
    except Exception:  # noqa: BLE001 - refused, timed out, a bad certificate: the probe judges the region
        result = FAILED
        if conn is not None:
            conn.close()
    finally:
        pool._put_conn(conn)  # back on top: the next call takes it
    return result


def still_open(sock: Any, *, wait: Any = 0.0, quiet: float = 0.0) -> bool:
    """Whether an idle connection is still open, having read what the server
    sent since its handshake (TLS 1.3 session tickets): waits up to
    ``wait`` seconds for something to read, then after each read up to
    ``quiet`` seconds for more (a server sends its tickets one after
    another). A plain socket with anything to read is closed (an end of
    stream, or data no request asked for); a TLS one is open if what it held
    were records without data."""
    if not isinstance(wait, int | float) or wait < 0:
        wait = 0.0
    timeout = sock.gettimeout()
    try:
        for _ in range(16):  # a few tickets at most; bounded whatever the server sends
            if not wait_for_read(sock, timeout=wait):
                return True  # quiet: open
            if not isinstance(sock, ssl.SSLSocket):
                return False
            sock.settimeout(0.0)
            try:
                sock.recv(1)
                return False  # an end of stream (b""), or data nothing asked for
            except ssl.SSLWantReadError:
                wait = quiet  # records without data, read: any more?
            finally:
                sock.settimeout(timeout)
        return False
    except OSError:
        return False
