"""Probe the middleware's own paths through real WSGI servers (werkzeug's
and the standard library's wsgiref) with hand-written requests: odd methods,
malformed and absent headers, bytes that are not ASCII, path tricks, and
Host/Origin combinations a DNS-rebound page would send.

Never a 5xx; never the admin surface, nor an action, without permission.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

import regionproxy as rp
from regionproxy._regions.health import HealthMonitor
from regionproxy.testing import serving
from tests.support import LOCAL, closed_port_session, hello

STATUS = "/_regionproxy/status.json"
EVACUATE = f"/_regionproxy/regions/{LOCAL}/evacuate"
RESTORE = f"/_regionproxy/regions/{LOCAL}/restore"
TIMEOUT = 10  # seconds for one raw exchange on loopback; generous for a loaded machine


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        """No request lines on stderr."""


@contextlib.contextmanager
def serving_wsgiref(app):
    server = make_server("127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="wsgiref", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def session():
    """Regions on a closed port and probes that do nothing: the breaker
    moves only when a request moves it."""
    with closed_port_session() as session:
        yield session


@pytest.fixture(scope="module", params=["werkzeug", "wsgiref"])
def port(request, session):
    monitor = HealthMonitor(session, interval=3600, probe=lambda replica: None)
    middleware = rp.RegionProxyMiddleware(hello, session, monitor=monitor)
    serve = serving if request.param == "werkzeug" else serving_wsgiref
    with serve(middleware) as url:
        yield int(url.rsplit(":", 1)[1])
    middleware.close()


@pytest.fixture(autouse=True)
def restored(session):
    session.restore(LOCAL)
    yield
    session.restore(LOCAL)


def breaker(session):
    return session.replicas[LOCAL].breaker.state


def exchange(port: int, request: bytes) -> tuple[int | None, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; status, headers, body.
    The status is None when the server answers without a status line (its
    HTTP/0.9 answer to a request line it cannot read)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        data = b""
        for _ in range(10_000):  # bounded: a response is far smaller than 10k reads
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/"):
        return None, {}, data
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def request(method: str, path: str, *headers: str, version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {path} {version}", *headers, "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def host(port: int, name: str = "127.0.0.1") -> str:
    return f"Host: {name}:{port}"


# -- permission --------------------------------------------------------------------


def test_dns_rebinding_reads_nothing_and_changes_nothing(port, session):
    rebound = (f"Host: evil.example:{port}", f"Origin: http://evil.example:{port}", "Sec-Fetch-Site: same-origin")
    status, _, body = exchange(port, request("GET", STATUS, *rebound))
    assert (status, body) == (404, b"Not Found\n")
    status, _, body = exchange(port, request("POST", EVACUATE, *rebound, "Content-Length: 0"))
    assert (status, body) == (404, b"Not Found\n")
    assert breaker(session) == "closed"
    status, _, _ = exchange(port, request("GET", "/metrics", *rebound))
    assert status == 404


def test_a_page_of_this_host_may_act(port, session):
    same = (host(port), f"Origin: http://127.0.0.1:{port}", "Sec-Fetch-Site: same-origin", "Content-Length: 0")
    status, headers, _ = exchange(port, request("POST", EVACUATE, *same))
    assert status == 303 and headers["location"] == "/_regionproxy/"
    assert breaker(session) == "evacuated"


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param("Origin: http://[", id="malformed"),
        pytest.param("Origin: null", id="opaque"),
        pytest.param("Origin: http://127.0.0.1:1", id="other-port"),
        pytest.param("Origin: https://evil.example", id="cross-site"),
        pytest.param("Origin: http://127.0.0.1:\xb2", id="latin-1-port"),
        pytest.param("Origin: \xff\xfe", id="latin-1-bytes"),
    ],
)
def test_actions_from_another_origin_are_refused(port, session, origin):
    status, _, _ = exchange(port, request("POST", EVACUATE, host(port), origin, "Content-Length: 0"))
    assert status == 403
    assert breaker(session) == "closed"


def test_curl_on_loopback_may_act_and_the_json_answer_says_so(port, session):
    # No Origin, no Sec-Fetch-Site: not a browser; allowed from loopback only.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("POST", EVACUATE, headers={"Accept": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read()) == {"region": LOCAL, "action": "evacuate", "breaker": "evacuated"}
    finally:
        connection.close()
    assert breaker(session) == "evacuated"


def test_http10_without_host_reaches_health_and_loopback_admin(port):
    status, _, body = exchange(port, request("GET", "/readyz", version="HTTP/1.0"))
    assert status == 200 and json.loads(body)["status"] in ("pass", "warn")
    status, _, body = exchange(port, request("GET", STATUS, version="HTTP/1.0"))
    assert status == 200 and LOCAL in json.loads(body)["regions"], "no Host from loopback: allowed (documented)"


def test_http_client_without_a_host_header_is_treated_like_http10(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.putrequest("GET", STATUS, skip_host=True, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 200
        response.read()
    finally:
        connection.close()


# -- never a 5xx, never admin content without permission -----------------------------

# (request, what may come back): "hidden" is the plain 404; "not admin" is
# anything below 500 without admin content (the server may normalise the
# path first: http.server turns '//x' into '/x').
PROBES = [
    pytest.param(("GET", STATUS, "Host: evil.example"), "hidden", id="foreign-host"),
    pytest.param(("GET", STATUS, "Host: \xff\xfe\x80"), "hidden", id="host-latin-1"),
    pytest.param(("GET", STATUS, "Host: [::1"), "hidden", id="host-open-bracket"),
    pytest.param(("GET", STATUS, "Host: 127.0.0.1:99999"), "hidden", id="host-port-too-big"),
    pytest.param(("GET", STATUS, "Host: 127.0.0.1.evil.example"), "hidden", id="host-address-prefix"),
    pytest.param(("GET", STATUS, "Host: " + "a." * 3000 + "example"), "hidden", id="host-long"),
    pytest.param(("GET", STATUS, "Host: evil.example", "Authorization: Bearer \xff\xfe"), "hidden", id="auth-latin-1"),
    pytest.param(("GET", "/_regionproxy", "Host: evil.example"), "hidden", id="prefix-foreign-host"),
    pytest.param(("GET", "/_regionproxy/", "Host: evil.example", "X-Forwarded-Host: localhost"), "hidden", id="forwarded-host"),
    pytest.param(("GET", STATUS, "Host: evil.example", "X-Forwarded-For: \xff, [, 127.0.0.1"), "hidden", id="forwarded-for"),
    pytest.param(("GET", "/_regionproxy/%2e%2e/_regionproxy/status.json", "Host: localhost"), "hidden", id="encoded-dot-dot"),
    pytest.param(("GET", "/_regionproxy/status.json/", "Host: localhost"), "hidden", id="trailing-slash"),
    pytest.param(("GET", "/_regionproxy/" + "a" * 8000, "Host: localhost"), "hidden", id="long-path"),
    pytest.param(("GET", "/_regionproxy/\xff", "Host: localhost"), "hidden", id="path-latin-1"),
    pytest.param(("POST", f"/_regionproxy/regions/{LOCAL}/evacuate/", "Host: localhost"), "hidden", id="action-trailing-slash"),
    pytest.param(("PROPFIND", "/readyz", "Host: localhost"), 405, id="propfind-health"),
    pytest.param(("TRACE", "/livez", "Host: localhost"), 405, id="trace-health"),
    pytest.param(("get", "/readyz", "Host: localhost"), 405, id="lowercase-get-health"),
    pytest.param(("PROPFIND", STATUS, "Host: localhost"), 405, id="propfind-admin"),
    pytest.param(("DELETE", "/metrics", "Host: localhost"), 405, id="delete-metrics"),
    pytest.param(("GET", EVACUATE, "Host: localhost"), 405, id="get-an-action"),
    pytest.param(("OPTIONS", "/readyz", "Host: localhost", "Origin: http://["), 200, id="options-health-bad-origin"),
    pytest.param(("HEAD", STATUS, "Host: localhost"), 200, id="head-status"),
    pytest.param(("GET", "//_regionproxy/status.json", "Host: evil.example"), "not admin", id="double-slash"),
    pytest.param(("GET", "///_regionproxy//status.json", "Host: evil.example"), "not admin", id="triple-slash"),
    pytest.param(("GET", "/readyz/", "Host: localhost"), "app", id="health-trailing-slash"),
]


@pytest.mark.parametrize(("probe", "expected"), PROBES)
def test_probes_never_get_a_5xx_nor_admin_content(port, session, probe, expected):
    method, path, *headers = probe
    status, response_headers, body = exchange(port, request(method, path, *headers))
    assert status is not None and status < 500
    assert b'"regions"' not in body or expected == 200
    if expected == "hidden":
        assert (status, body) == (404, b"Not Found\n")
    elif expected == "app":
        assert (status, body) == (200, b"the app")
    elif expected != "not admin":
        assert status == expected
        if status == 405:
            assert "allow" in response_headers
        if method == "HEAD":
            assert body == b""
    assert breaker(session) == "closed"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"GARBAGE\r\n\r\n", id="no-version"),
        pytest.param(b"GET /readyz HTTP/9.9\r\n\r\n", id="unknown-version"),
        pytest.param(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nBad Header Line\r\n\r\n", id="header-without-colon"),
        pytest.param(b"GET " + STATUS.encode() + b" HTTP/1.1\r\nHost: a\x00b\r\nConnection: close\r\n\r\n", id="nul-in-host"),
    ],
)
def test_malformed_requests_get_a_4xx_or_a_refusal(port, raw):
    status, _, body = exchange(port, raw)
    assert status is None or status < 500
    assert b"regions" not in body


# -- HEAD, bodies never read, duplicate headers, HTTP/1.0 ---------------------------


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        pytest.param("/readyz", (), 200, id="readyz-no-host"),
        pytest.param("/livez", ("Host: localhost",), 200, id="livez"),
        pytest.param(STATUS, ("Host: localhost",), 200, id="status"),
        pytest.param("/metrics", ("Host: localhost",), 200, id="metrics"),
        pytest.param("/_regionproxy", ("Host: localhost",), 308, id="prefix-redirect"),
        pytest.param(STATUS, ("Host: evil.example",), 404, id="foreign-host"),
        pytest.param("/_regionproxy/nothing", ("Host: localhost",), 404, id="no-such-path"),
        pytest.param(EVACUATE, ("Host: localhost",), 405, id="action"),
    ],
)
def test_head_answers_carry_no_body_on_the_wire(port, path, headers, status):
    got, response_headers, body = exchange(port, request("HEAD", path, *headers))
    assert (got, body) == (status, b"")
    if status == 200:
        get_status, _, get_body = exchange(port, request("GET", path, *headers))
        assert get_status == 200
        assert int(response_headers["content-length"]) > 0
        # A scrape between the two can change the exposition, and the status
        # carries the time (its length may change by a digit).
        if path not in ("/metrics", STATUS):
            assert int(response_headers["content-length"]) == len(get_body)


@pytest.mark.parametrize(
    "length",
    [
        pytest.param(("Content-Length: 99999999999999",), id="absurd"),
        pytest.param(("Content-Length: -5",), id="negative"),
        pytest.param(("Content-Length: abc",), id="not-a-number"),
        pytest.param(("Content-Length: 0", "Content-Length: 5"), id="two-lengths"),
        pytest.param(("Transfer-Encoding: chunked",), id="chunked-without-chunks"),
    ],
)
def test_an_action_never_waits_for_a_body(port, session, length):
    # The admin app never reads a body: a length the client never sends
    # cannot hold the answer (the exchange is bounded by TIMEOUT).
    status, headers, _ = exchange(port, request("POST", EVACUATE, host(port), *length))
    assert status == 303 and headers["location"] == "/_regionproxy/"
    assert breaker(session) == "evacuated"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param(("Host: 127.0.0.1", "Host: evil.example"), 404, id="host-then-foreign-host"),
        pytest.param(("Host: evil.example", "Host: 127.0.0.1"), 404, id="foreign-host-then-host"),
        pytest.param(("Host: 127.0.0.1", "Host: 127.0.0.1"), 404, id="host-twice"),
        pytest.param(("Host: 127.0.0.1", "Origin: http://127.0.0.1", "Origin: http://evil.example"), 403, id="two-origins"),
        pytest.param(("Host: 127.0.0.1", "Origin: http://127.0.0.1", "Origin: http://127.0.0.1"), 403, id="origin-twice"),
        pytest.param(("Host: 127.0.0.1", "Sec-Fetch-Site: same-origin", "Sec-Fetch-Site: cross-site"), 403, id="two-fetch-sites"),
    ],
)
def test_duplicate_headers_are_refused_never_picked_from(port, session, headers, status):
    # Both servers join repeated headers with ',': no single value is chosen.
    got, _, body = exchange(port, request("POST", EVACUATE, *headers, "Content-Length: 0"))
    assert got == status
    assert b"regions" not in body
    assert breaker(session) == "closed"


def test_http10_without_host_may_act_from_loopback_but_not_with_a_browser_origin(port, session):
    status, _, _ = exchange(port, request("POST", EVACUATE, "Origin: http://127.0.0.1", "Content-Length: 0", version="HTTP/1.0"))
    assert status == 403, "an Origin with no Host to compare it with"
    assert breaker(session) == "closed"
    status, headers, _ = exchange(port, request("POST", EVACUATE, "Content-Length: 0", version="HTTP/1.0"))
    assert status == 303 and headers["location"] == "/_regionproxy/"
    assert breaker(session) == "evacuated"


def test_ipv6_host_with_a_port_reads_and_acts_from_its_own_page(port, session):
    same = (f"Host: [::1]:{port}", f"Origin: http://[::1]:{port}", "Sec-Fetch-Site: same-origin")
    status, _, body = exchange(port, request("GET", STATUS, *same))
    assert status == 200 and LOCAL in json.loads(body)["regions"]
    status, _, _ = exchange(port, request("POST", EVACUATE, *same[:1], "Origin: http://[::1]:1", "Content-Length: 0"))
    assert status == 403
    assert breaker(session) == "closed"
    status, _, _ = exchange(port, request("POST", EVACUATE, *same, "Content-Length: 0"))
    assert status == 303
    assert breaker(session) == "evacuated"
