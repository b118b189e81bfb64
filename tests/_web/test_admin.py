"""The admin surface through werkzeug's test client: which Host, peer,
token and Origin combinations see status and may act, and that no header a
client sends makes the middleware's own paths answer 5xx."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

import regionproxy as rp
from regionproxy._regions.health import HealthMonitor
from regionproxy._web.access import AdminAccess, parse_host
from regionproxy._web.admin import AdminApp
from regionproxy._web.metrics import MetricsApp, PrometheusListener
from tests.support import LOCAL, REMOTE, closed_port_session, hello

TOKEN = "s3cret-admin-token-0123"
STATUS = "/_regionproxy/status.json"
EVACUATE = f"/_regionproxy/regions/{LOCAL}/evacuate"
LOOPBACK_PEER = {"REMOTE_ADDR": "127.0.0.1"}


@pytest.fixture(scope="module")
def session():
    """A session whose regions are a closed local port: the admin surface
    needs no DynamoDB, and nothing here calls one."""
    with closed_port_session() as session:
        yield session


@pytest.fixture
def make(session):
    """Build a middleware over ``session`` whose probes do nothing (breakers
    move only when a test moves them); each is closed after the test."""
    built = []

    def make(**options):
        monitor = HealthMonitor(session, interval=3600, probe=lambda replica: None)
        middleware = rp.RegionProxyMiddleware(hello, session, monitor=monitor, **options)
        built.append(middleware)
        return middleware

    yield make
    for middleware in built:
        middleware.close()
    session.restore(LOCAL)


@pytest.fixture
def client(make):
    return Client(make())


def get(client, path=STATUS, peer="127.0.0.1", **headers):
    return client.get(path, environ_base={"REMOTE_ADDR": peer}, headers=headers)


def post(client, path=EVACUATE, peer="127.0.0.1", **headers):
    return client.post(path, environ_base={"REMOTE_ADDR": peer}, headers=headers)


def breaker(session):
    return session.replicas[LOCAL].breaker.state


# -- Host --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("localhost", id="localhost"),
        pytest.param("localhost:8000", id="localhost-port"),
        pytest.param("LOCALHOST:8000", id="upper-case"),
        pytest.param("localhost.", id="trailing-dot"),
        pytest.param("127.0.0.1", id="ipv4"),
        pytest.param("127.0.0.1:80", id="ipv4-port"),
        pytest.param("127.9.8.7:1", id="other-127"),
        pytest.param("[::1]", id="ipv6"),
        pytest.param("[::1]:8080", id="ipv6-port"),
        pytest.param("::1", id="ipv6-unbracketed"),
    ],
)
def test_loopback_hosts_see_the_admin_surface(client, host):
    response = get(client, Host=host)
    assert response.status_code == 200
    assert LOCAL in response.json["regions"]


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("evil.example", id="rebinding"),
        pytest.param("evil.example:8000", id="rebinding-port"),
        pytest.param("localhost.evil.example", id="localhost-prefix"),
        pytest.param("127.0.0.1.evil.example", id="address-prefix"),
        pytest.param("evil-localhost", id="localhost-suffix"),
        pytest.param("2130706433", id="decimal-address"),
        pytest.param("0x7f.1", id="hex-address"),
        pytest.param("[::1", id="open-bracket"),
        pytest.param("[127.0.0.1]", id="bracketed-ipv4"),
        pytest.param("[::1]x", id="after-bracket"),
        pytest.param("localhost:99999", id="port-too-big"),
        pytest.param("localhost:8o", id="port-not-digits"),
        pytest.param("localhost:80:80", id="two-ports"),
        pytest.param("localhost@evil.example", id="userinfo"),
        pytest.param("localhost/x", id="slash"),
        pytest.param("local host", id="space"),
        pytest.param("l\xf6calhost", id="latin-1"),
        pytest.param("localhost\x7f", id="control"),
        pytest.param("..", id="dots"),
    ],
)
def test_other_hosts_get_the_plain_404(client, host):
    for path in (STATUS, "/_regionproxy/", "/_regionproxy", "/metrics"):
        response = get(client, path, Host=host)
        assert (response.status_code, response.get_data()) == (404, b"Not Found\n"), path


def test_no_host_header_is_allowed_only_from_loopback(make):
    # werkzeug's client always sends a Host; a raw environ shows HTTP/1.0.
    middleware = make(admin_allow=["127.0.0.0/8", "10.0.0.0/8"])

    def status(peer):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": STATUS, "REMOTE_ADDR": peer, "SERVER_PROTOCOL": "HTTP/1.0"}
        started = []
        body = b"".join(middleware(environ, lambda status, headers, exc_info=None: started.append(status)))
        return started[0], body

    assert status("127.0.0.1")[0] == "200 OK"
    assert status("10.1.2.3") == ("404 Not Found", b"Not Found\n")


def test_configured_hosts_replace_the_loopback_names(make):
    client = Client(make(admin_hosts=["status.internal", "*.example.com", "10.0.0.0/8", "[fd00::1]"]))
    allowed = ["status.internal", "STATUS.internal:8080", "a.example.com", "a.b.example.com", "10.1.2.3:80", "[fd00::1]"]
    refused = ["localhost", "127.0.0.1", "example.com", "badexample.com", "status.internal.evil", "11.0.0.1"]
    assert {host: get(client, Host=host).status_code for host in allowed} == dict.fromkeys(allowed, 200)
    assert {host: get(client, Host=host).status_code for host in refused} == dict.fromkeys(refused, 404)


def test_a_token_does_not_lift_the_host_check(make):
    client = Client(make(admin_token=TOKEN))
    bearer = f"Bearer {TOKEN}"
    assert get(client, Host="localhost", Authorization=bearer).status_code == 200
    assert get(client, Host="evil.example", Authorization=bearer).status_code == 404
    assert get(client, Host="localhost").status_code == 404


# -- actions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "peer", "allowed"),
    [
        pytest.param({}, "127.0.0.1", True, id="curl-on-loopback"),
        pytest.param({}, "10.1.2.3", False, id="curl-from-the-network"),
        pytest.param({"Origin": "http://localhost"}, "127.0.0.1", True, id="same-origin"),
        pytest.param({"Origin": "http://localhost"}, "10.1.2.3", True, id="same-origin-from-the-network"),
        pytest.param({"Origin": "HTTP://LOCALHOST:80"}, "127.0.0.1", True, id="same-origin-spelled-out"),
        pytest.param({"Origin": "http://localhost:8000"}, "127.0.0.1", False, id="other-port"),
        pytest.param({"Origin": "https://evil.example"}, "127.0.0.1", False, id="cross-site"),
        pytest.param({"Origin": "null"}, "127.0.0.1", False, id="opaque-origin"),
        pytest.param({"Origin": "http://["}, "127.0.0.1", False, id="malformed-origin"),
        pytest.param({"Origin": "http://localhost:99999"}, "127.0.0.1", False, id="origin-port-too-big"),
        pytest.param({"Origin": "http://localhost/path"}, "127.0.0.1", False, id="origin-with-path"),
        pytest.param({"Origin": "ftp://localhost"}, "127.0.0.1", False, id="origin-other-scheme"),
        pytest.param({"Origin": ""}, "127.0.0.1", False, id="empty-origin"),
        pytest.param({"Sec-Fetch-Site": "same-origin"}, "127.0.0.1", True, id="fetch-same-origin"),
        pytest.param({"Sec-Fetch-Site": "none"}, "127.0.0.1", True, id="fetch-none"),
        pytest.param({"Sec-Fetch-Site": "same-site"}, "127.0.0.1", False, id="fetch-same-site"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, "127.0.0.1", False, id="fetch-cross-site"),
        pytest.param(
            {"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"}, "127.0.0.1", False, id="origin-disagrees"
        ),
    ],
)
def test_actions_need_a_same_origin_request_or_curl_on_loopback(make, session, headers, peer, allowed):
    client = Client(make(admin_allow=["127.0.0.0/8", "10.0.0.0/8"]))
    response = post(client, peer=peer, Host="localhost", **headers)
    if allowed:
        assert response.status_code == 303
        assert breaker(session) == "evacuated"
    else:
        assert response.status_code == 403
        assert breaker(session) == "closed"


def test_with_a_token_actions_need_it_and_nothing_else(make, session):
    client = Client(make(admin_token=TOKEN))
    cross_site = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert post(client, **cross_site).status_code == 404, "no token: nothing there"
    assert breaker(session) == "closed"
    response = post(client, Authorization=f"Bearer {TOKEN}", **cross_site)
    assert response.status_code == 303, "a browser cannot attach the bearer token by itself"
    assert breaker(session) == "evacuated"


def test_dns_rebinding_neither_reads_nor_acts(client, session):
    rebound = {"Host": "evil.example", "Origin": "http://evil.example", "Sec-Fetch-Site": "same-origin"}
    assert get(client, **rebound).status_code == 404
    assert post(client, **rebound).status_code == 404
    assert breaker(session) == "closed"
    session.evacuate(LOCAL)
    assert post(client, f"/_regionproxy/regions/{LOCAL}/restore", **rebound).status_code == 404
    assert breaker(session) == "evacuated"


# -- methods and paths -------------------------------------------------------------


@pytest.mark.parametrize("path", [STATUS, "/_regionproxy/", "/metrics"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PROPFIND", "TRACE", "get"])
def test_read_paths_answer_405_to_other_methods(client, path, method):
    response = client.open(path, method=method, environ_base=LOOPBACK_PEER)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "PROPFIND", "TRACE", "CONNECT", "get", "X" * 300])
def test_health_paths_answer_405_with_allow_to_other_methods(client, path, method):
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_head_of_a_read_path_has_no_body(client):
    response = client.head(STATUS, environ_base=LOOPBACK_PEER)
    assert response.status_code == 200
    assert response.get_data() == b""
    assert int(response.headers["Content-Length"]) > 0


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/_regionproxy/../_regionproxy/status.json", id="dot-dot"),
        pytest.param("/_regionproxy/%2e%2e/status.json", id="encoded-dot-dot"),
        pytest.param("/_regionproxy/status.json/", id="trailing-slash"),
        pytest.param("/_regionproxy//status.json", id="double-slash"),
        pytest.param("/_regionproxy/regions/eu-west-3/evacuate/", id="action-trailing-slash"),
        pytest.param("/_regionproxy/regions//eu-west-3/evacuate", id="action-empty-segment"),
        pytest.param("/_regionproxy/" + "a/" * 5000, id="very-long"),
    ],
)
def test_path_tricks_under_the_prefix_are_404(client, session, path):
    assert post(client, path).status_code == 404
    assert get(client, path).status_code == 404
    assert breaker(session) == "closed"


@pytest.mark.parametrize(
    "path",
    ["//_regionproxy/status.json", "/_REGIONPROXY/status.json", "/_regionproxy.json", "/readyz/", "/livez/x", "/metrics/"],
)
def test_near_misses_of_the_middlewares_paths_go_to_the_app(client, path):
    assert get(client, path).get_data() == b"the app"


def test_the_prefix_redirects_below_the_script_name(client):
    response = client.get("/_regionproxy", base_url="http://localhost/app", environ_base=LOOPBACK_PEER)
    assert response.status_code == 308
    assert response.headers["Location"] == "/app/_regionproxy/"


# -- odd environs, straight into the middleware ------------------------------------

ODD_ENVIRONS = [
    pytest.param({"REMOTE_ADDR": None}, id="remote-addr-none"),
    pytest.param({"REMOTE_ADDR": 2130706433}, id="remote-addr-int"),
    pytest.param({"REMOTE_ADDR": "not an address"}, id="remote-addr-garbage"),
    pytest.param({"REMOTE_ADDR": "fe80::1%eth0"}, id="remote-addr-zone"),
    pytest.param({"HTTP_HOST": None}, id="host-none"),
    pytest.param({"HTTP_HOST": b"localhost"}, id="host-bytes"),
    pytest.param({"HTTP_HOST": "\udcff"}, id="host-surrogate"),
    pytest.param({"HTTP_HOST": "[" * 10_000}, id="host-long"),
    pytest.param({"HTTP_AUTHORIZATION": "Bearer \udcff\udcfe"}, id="auth-surrogates"),
    pytest.param({"HTTP_AUTHORIZATION": "Bearer " + "\xff" * 40}, id="auth-latin-1"),
    pytest.param({"HTTP_AUTHORIZATION": None}, id="auth-none"),
    pytest.param({"HTTP_ORIGIN": None}, id="origin-none"),
    pytest.param({"HTTP_ORIGIN": "http://[::1"}, id="origin-open-bracket"),
    pytest.param({"HTTP_ORIGIN": "http://\udcff"}, id="origin-surrogate"),
    pytest.param({"HTTP_SEC_FETCH_SITE": 7}, id="fetch-site-int"),
    pytest.param({"HTTP_ACCEPT": None}, id="accept-none"),
    pytest.param({"HTTP_X_FORWARDED_FOR": "\x00, [", "HTTP_X_FORWARDED_HOST": "["}, id="forwarded-garbage"),
    pytest.param({"SCRIPT_NAME": None}, id="script-name-none"),
    pytest.param({"REQUEST_METHOD": None}, id="method-none"),
    pytest.param({"PATH_INFO": None}, id="path-none"),
]


@pytest.mark.parametrize("extra", ODD_ENVIRONS)
@pytest.mark.parametrize(("method", "path"), [("GET", STATUS), ("POST", EVACUATE), ("GET", "/readyz"), ("GET", "/_regionproxy")])
def test_odd_environ_values_never_make_a_5xx(make, session, extra, method, path):
    middleware = make()
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost", **extra}
    started = []
    body = b"".join(middleware(environ, lambda status, headers, exc_info=None: started.append(status)))
    assert started and not started[0].startswith("5"), (started, body)


# -- parsers and generated requests ------------------------------------------------


HEADER_TEXT = st.one_of(
    st.sampled_from(["localhost", "127.0.0.1:80", "[::1]", "http://localhost", "null", "same-origin", "cross-site", ""]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
)
PATHS = st.sampled_from(
    [STATUS, EVACUATE, f"/_regionproxy/regions/{LOCAL}/restore", "/_regionproxy/", "/_regionproxy", "/metrics", "/readyz", "/livez"]
)
METHODS = st.sampled_from(["GET", "HEAD", "POST", "OPTIONS", "PUT", "PROPFIND", "TRACE", "get"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=METHODS,
    path=PATHS,
    origin=st.none() | HEADER_TEXT,
    site=st.none() | HEADER_TEXT,
    auth=st.none() | HEADER_TEXT,
    # A foreign host: not an allowed one, and not empty (which stands for no Host at all).
    host=HEADER_TEXT.filter(lambda host: host and (parse_host(host) is None or parse_host(host)[0] not in AdminAccess().hosts)),
)
def test_generated_requests_from_a_foreign_host_never_see_or_change_anything(client, session, method, path, origin, site, auth, host):
    headers = {"Host": host}
    for name, value in (("Origin", origin), ("Sec-Fetch-Site", site), ("Authorization", auth)):
        if value is not None:
            headers[name] = value
    response = client.open(path, method=method, headers=headers, environ_base=LOOPBACK_PEER)
    assert response.status_code < 500
    if path not in ("/readyz", "/livez"):
        assert response.status_code == 404
        assert b"regions" not in response.get_data()
    assert breaker(session) == "closed"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=METHODS, path=PATHS, origin=st.none() | HEADER_TEXT, site=st.none() | HEADER_TEXT, host=HEADER_TEXT)
def test_generated_requests_never_get_a_5xx(client, session, method, path, origin, site, host):
    headers = {"Host": host, **({"Origin": origin} if origin is not None else {}), **({"Sec-Fetch-Site": site} if site else {})}
    response = client.open(path, method=method, headers=headers, environ_base=LOOPBACK_PEER)
    assert response.status_code < 500
    session.restore(LOCAL)


# -- each endpoint alone -----------------------------------------------------------


def test_the_admin_app_alone_answers_allowed_clients_only(session):
    monitor = HealthMonitor(session, interval=3600, probe=lambda replica: None)
    client = Client(AdminApp(session, monitor, AdminAccess()))
    assert client.get("/status.json").status_code == 404, "no peer address: nothing there"
    response = client.get("/status.json", environ_base=LOOPBACK_PEER)
    assert response.status_code == 200
    assert LOCAL in response.json["regions"]
    assert client.get("/", environ_base=LOOPBACK_PEER).mimetype == "text/html"
    assert client.get("/metrics", environ_base=LOOPBACK_PEER).status_code == 404, "no metrics endpoint given"


def test_the_metrics_app_alone_answers_get_and_head_with_the_exposition():
    client = Client(MetricsApp(PrometheusListener(regions=(LOCAL, REMOTE))))
    response = client.get("/")
    assert response.status_code == 200
    assert b"regionproxy_breaker_state" in response.get_data()
    head = client.head("/")
    assert (head.status_code, head.get_data()) == (200, b"")
    assert head.headers["Content-Length"] == response.headers["Content-Length"]
    for method in ("POST", "DELETE", "get"):
        refused = client.open("/", method=method)
        assert (refused.status_code, refused.headers["Allow"]) == (405, "GET, HEAD"), method


# -- HEAD, Accept, redirects -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        pytest.param("/readyz", {}, 200, id="readyz"),
        pytest.param("/livez", {}, 200, id="livez"),
        pytest.param(STATUS, {}, 200, id="status"),
        pytest.param("/_regionproxy/", {}, 200, id="page"),
        pytest.param("/metrics", {}, 200, id="metrics"),
        pytest.param("/_regionproxy", {}, 308, id="prefix-redirect"),
        pytest.param(STATUS, {"Host": "evil.example"}, 404, id="foreign-host"),
        pytest.param("/metrics", {"Host": "evil.example"}, 404, id="metrics-foreign-host"),
        pytest.param("/_regionproxy/nothing", {}, 404, id="no-such-path"),
        pytest.param(EVACUATE, {}, 405, id="action"),
    ],
)
def test_head_answers_carry_no_body_whatever_the_status(client, path, headers, status):
    # A body after a HEAD answer would be read as the start of the next
    # response on a kept-alive connection.
    response = client.head(path, headers=headers, environ_base=LOOPBACK_PEER)
    assert response.status_code == status
    assert response.get_data() == b""


@pytest.mark.parametrize(
    ("accept", "json_answer"),
    [
        pytest.param("application/json", True, id="json"),
        pytest.param("text/html;q=0.5, application/json", True, id="json-preferred"),
        pytest.param("application/*", True, id="json-by-type"),
        pytest.param(None, False, id="no-accept"),
        pytest.param("*/*", False, id="curl"),
        pytest.param("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False, id="browser-form"),
        pytest.param("application/json;q=0", False, id="json-refused"),
        pytest.param("application/json, text/html", False, id="tie-goes-to-the-page"),
        pytest.param(";;,, q=x", False, id="garbage"),
    ],
)
def test_an_action_answers_json_only_to_a_client_that_prefers_it(client, session, accept, json_answer):
    response = post(client, Host="localhost", **({"Accept": accept} if accept is not None else {}))
    assert breaker(session) == "evacuated"
    if json_answer:
        assert response.status_code == 200
        assert response.json == {"region": LOCAL, "action": "evacuate", "breaker": "evacuated"}
    else:
        assert (response.status_code, response.headers["Location"]) == (303, "/_regionproxy/")


def _direct(middleware, path, method="GET", **extra):
    """Call the middleware with a hand-made environ: status, headers, body."""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost", **extra}
    started = []
    body = b"".join(middleware(environ, lambda status, headers, exc_info=None: started.append((status, dict(headers)))))
    status, headers = started[0]
    return status, headers, body


@pytest.mark.parametrize(
    "script_name",
    [
        pytest.param("//evil.example", id="network-path"),
        pytest.param("///evil.example", id="three-slashes"),
        pytest.param("/a\r\nSet-Cookie: x=1", id="line-break"),
        pytest.param("/caf\xc3\xa9 bar", id="utf-8-as-latin-1"),
        pytest.param("/\u0100", id="beyond-latin-1"),
    ],
)
def test_redirects_stay_on_this_server_whatever_the_script_name(make, session, script_name):
    middleware = make()
    for path, method in (("/_regionproxy", "GET"), (EVACUATE, "POST")):
        status, headers, _ = _direct(middleware, path, method, SCRIPT_NAME=script_name)
        location = headers["Location"]
        assert status.startswith("30"), (path, status)
        assert location.startswith("/") and not location.startswith("//"), location
        assert location.isascii() and "\r" not in location and "\n" not in location, location
        assert location.endswith("/_regionproxy/"), location


def test_an_action_redirects_to_the_page_below_the_script_name(client, session):
    response = client.post(EVACUATE, base_url="http://localhost/app", environ_base=LOOPBACK_PEER)
    assert (response.status_code, response.headers["Location"]) == (303, "/app/_regionproxy/")
    assert breaker(session) == "evacuated"


# -- values werkzeug's Request cannot read -----------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"PATH_INFO": STATUS + "\u0100"}, id="path-beyond-latin-1"),
        pytest.param({"QUERY_STRING": "\u0100"}, id="query-beyond-latin-1"),
        pytest.param({"QUERY_STRING": None}, id="query-none"),
        pytest.param({"SCRIPT_NAME": b"/app"}, id="script-name-bytes"),
        pytest.param({"REQUEST_METHOD": "G\u0100T"}, id="method-beyond-latin-1"),
        pytest.param({"REQUEST_METHOD": ""}, id="method-empty"),
        pytest.param({"SERVER_PORT": "eighty", "SERVER_NAME": None}, id="server-garbage"),
        pytest.param({"wsgi.url_scheme": None}, id="scheme-none"),
        pytest.param({"HTTP_ACCEPT": "\udcff;q=\udcff"}, id="accept-surrogates"),
        pytest.param({"HTTP_ACCEPT": "application/json;q=nan"}, id="accept-nan"),
        pytest.param({"HTTP_ACCEPT": "application/json;q=" + "9" * 5000}, id="accept-huge-quality"),
        pytest.param({"CONTENT_LENGTH": "99999999999999999999"}, id="absurd-content-length"),
        pytest.param({"CONTENT_LENGTH": "-1", "CONTENT_TYPE": "multipart/form-data; boundary="}, id="negative-content-length"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", STATUS), ("POST", EVACUATE), ("GET", "/readyz"), ("GET", "/_regionproxy"), ("GET", "/metrics")]
)
def test_values_werkzeug_cannot_read_never_make_a_5xx(make, session, extra, method, path):
    middleware = make()
    status, _, body = _direct(middleware, path, method, **{"wsgi.input": _Unreadable(), **extra})
    assert not status.startswith("5"), (status, body)
    session.restore(LOCAL)


class _Unreadable:
    """A request body that must never be read: the middleware's own paths take no body."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = readlines = __iter__ = read


def test_a_path_beyond_latin_1_is_not_found_rather_than_served(make):
    status, _, body = _direct(make(), STATUS + "\u0100")
    assert (status, body) == ("404 Not Found", b"Not Found\n")


# -- Host and Origin: more of what a client may send -------------------------------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        pytest.param("127.0.0.1.", True, id="ipv4-trailing-dot"),
        pytest.param("localhost.:8000", True, id="trailing-dot-port"),
        pytest.param("[::ffff:127.0.0.1]", True, id="ipv4-mapped"),
        pytest.param("[0:0:0:0:0:0:0:1]:80", True, id="ipv6-spelled-out"),
        pytest.param("[::1]:0", True, id="port-zero"),
        pytest.param("localhost..", False, id="two-trailing-dots"),
        pytest.param(".localhost", False, id="leading-dot"),
        pytest.param("0177.0.0.1", False, id="octal-address"),
        pytest.param("127.1", False, id="short-address"),
        pytest.param("[::2]", False, id="other-ipv6"),
        pytest.param("[::1]:65536", False, id="ipv6-port-too-big"),
        pytest.param("[::1]]", False, id="two-brackets"),
        pytest.param("[[::1]]", False, id="nested-brackets"),
        pytest.param("::1:8080", False, id="ipv6-port-unbracketed"),
        pytest.param("\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", False, id="fullwidth-localhost"),
        pytest.param("localhost\u3002", False, id="ideographic-full-stop"),
        pytest.param("LOCALHOST\u0130", False, id="dotted-capital-i"),
        pytest.param("localhost,evil.example", False, id="two-hosts-joined"),
        pytest.param("evil.example,localhost", False, id="two-hosts-joined-reversed"),
        pytest.param("localhost ", False, id="trailing-space"),
    ],
)
def test_more_host_spellings(client, host, allowed):
    assert get(client, Host=host).status_code == (200 if allowed else 404)


@pytest.mark.parametrize(
    "peer", [pytest.param("::1", id="ipv6-loopback"), pytest.param("::ffff:127.0.0.1", id="ipv4-mapped-loopback")]
)
def test_ipv6_loopback_peers_with_bracketed_hosts_and_ports(client, session, peer):
    assert get(client, peer=peer, Host="[::1]:8080").status_code == 200
    assert post(client, peer=peer, Host="[::1]:8080", Origin="http://[::1]:8080").status_code == 303
    assert breaker(session) == "evacuated"


def test_an_empty_host_counts_as_none_so_only_loopback_may_send_it(make):
    client = Client(make(admin_allow=["127.0.0.0/8", "10.0.0.0/8"]))
    assert get(client, Host="").status_code == 200
    assert get(client, peer="10.1.2.3", Host="").status_code == 404


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param("http://localhost, http://evil.example", id="two-origins-joined"),
        pytest.param("http://localhost http://evil.example", id="origin-list"),
        pytest.param("http://user@localhost", id="userinfo"),
        pytest.param("http://localhost?x", id="query"),
        pytest.param("http://localhost#x", id="fragment"),
        pytest.param("http://localhost.evil.example", id="prefix"),
        pytest.param("http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", id="fullwidth"),
        pytest.param("null", id="null"),
        pytest.param("NULL", id="null-upper-case"),
        pytest.param("file://", id="file"),
        pytest.param("http://localhost:", id="empty-port-other-default"),
    ],
)
def test_more_cross_origin_spellings_may_not_act(client, session, origin):
    assert post(client, Host="localhost:8000", Origin=origin).status_code == 403
    assert breaker(session) == "closed"


def test_duplicate_fetch_site_headers_joined_are_refused(client, session):
    assert post(client, Host="localhost", **{"Sec-Fetch-Site": "same-origin, cross-site"}).status_code == 403
    assert breaker(session) == "closed"


# -- where werkzeug's helpers do not fit ------------------------------------------


def test_werkzeug_helpers_still_miss_what_the_docstrings_say():
    """The reasons in access.py's and admin.py's docstrings, as werkzeug
    behaves today. If this fails, werkzeug changed: see whether its
    helpers now fit."""
    from werkzeug.datastructures import Authorization
    from werkzeug.routing import Map, Rule
    from werkzeug.sansio.utils import host_is_trusted
    from werkzeug.wrappers import Request
    from werkzeug.wsgi import get_host

    request = Request({"REQUEST_METHOD": "get", "PATH_INFO": "//status.json"})
    assert (request.method, request.path) == ("GET", "/status.json")
    assert Map([Rule("/status.json", endpoint="status")]).bind("").match("//status.json", method="get") == ("status", {})
    with pytest.raises(AttributeError):
        Request({"REQUEST_METHOD": None})

    trusted = ["localhost", "127.0.0.1", "[::1]", "::1"]
    assert not host_is_trusted("LOCALHOST:8000", trusted)
    assert not host_is_trusted("localhost.", trusted)
    assert not host_is_trusted("[::1]:8080", trusted)
    assert not host_is_trusted("::1", trusted)
    assert not host_is_trusted("127.9.8.7", ["127.0.0.0/8"])
    scheme = {"wsgi.url_scheme": "http"}
    assert get_host({**scheme, "HTTP_HOST": "localhost:99999"}) == get_host(scheme) == ""
    assert get_host({**scheme, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000"}) == "127.0.0.1:8000"
    assert Authorization.from_header("Bearer abc=def-0123456789").token is None


def test_the_admin_app_acts_through_the_sessions_methods():
    class AdministeredStandIn:
        regions = (LOCAL, REMOTE)

        def __init__(self):
            self.breakers = {LOCAL: "closed", REMOTE: "closed"}
            self.actors = []

        def status(self):
            return {"regions": dict(self.breakers)}

        def breaker_state(self, region):
            return self.breakers[region]

        def evacuate(self, region, *, by=None):
            self.breakers[region] = "evacuated"
            self.actors.append(by)

        def restore(self, region, *, by=None):
            self.breakers[region] = "closed"
            self.actors.append(by)

    class ReadyMonitor:
        def readiness(self):
            from regionproxy._regions.health import Readiness

            return Readiness("pass", ())

    session = AdministeredStandIn()
    client = Client(AdminApp(session, ReadyMonitor(), AdminAccess(token=TOKEN)))
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    response = client.post(f"/regions/{LOCAL}/evacuate", environ_base=LOOPBACK_PEER, headers=auth)
    assert response.json == {"region": LOCAL, "action": "evacuate", "breaker": "evacuated"}
    assert session.actors == [f"admin from {LOOPBACK_PEER['REMOTE_ADDR']}"]  # who acted, for the fleet's status
    status = client.get("/status.json", environ_base=LOOPBACK_PEER, headers=auth)
    assert status.status_code == 200, (status.status_code, status.get_data())
    assert status.json["regions"][LOCAL] == "evacuated"


class RecordingLab:
    """The demo's lab as the outage buttons see it: what they asked for."""

    def __init__(self):
        self.calls = []

    def fault(self, region, mode, **params):
        self.calls.append(("fault", region, mode))

    def heal(self, region=None, mode=None):
        self.calls.append(("heal", region, mode))

    def outage(self, region):
        return None


def test_the_demo_buttons_blackhole_a_region_and_heal_only_that_outage(make):
    lab = RecordingLab()
    client = Client(make(lab=lab))
    assert post(client, f"/_regionproxy/regions/{LOCAL}/outage").status_code == 303
    assert post(client, f"/_regionproxy/regions/{LOCAL}/heal").status_code == 303
    # Healing removes the blackhole, never the demo's latency profile.
    assert lab.calls == [("fault", LOCAL, "blackhole"), ("heal", LOCAL, "blackhole")]
