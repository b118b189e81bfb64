"""The middleware through werkzeug's test client and through a real server.

Timing on a loaded machine: the healthy region gets a generous read timeout
(a busy 2-core machine can hold an in-process moto answer for a while);
waits poll with ``wait_for`` up to ``WAIT`` seconds and return as soon as
the condition holds; the one speed claim (health answers never wait on
DynamoDB) is measured against the session's own read timeout, the least a
DynamoDB call to a blackholed region costs.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

import regionproxy as rp
from regionproxy._regions.health import HealthMonitor
from regionproxy.testing import serving, wait_for
from tests.support import LOCAL, REMOTE, TABLE

TOKEN = "s3cret-admin-token-0123"
TIMEOUTS = rp.Timeouts(connect=0.5, read=1.0, attempts=1)
WAIT = 30.0  # an upper bound for conditions that normally hold within a second or two


class StreamingApp:
    """A plain WSGI app: streams its body, records close() and the environ."""

    def __init__(self):
        self.closed = 0
        self.environ = None

    def __call__(self, environ, start_response):
        self.environ = environ
        if environ["PATH_INFO"] == "/item":
            session = environ["regionproxy._session.session"]
            session.table(TABLE).get_item(Key={"pk": "a", "sk": "s"})
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-App", "yes")])
        return self._body()

    def _body(self):
        try:
            yield b"first,"
            yield b"second"
        finally:
            self.closed += 1


@pytest.fixture
def session(lab):
    return lab.session(timeouts=TIMEOUTS, breaker=rp.BreakerPolicy(fail_max=2, reset_timeout=0.5))


@pytest.fixture
def app():
    return StreamingApp()


@pytest.fixture
def wrapped(app, session):
    middleware = rp.RegionProxyMiddleware(app, session, probe_interval=0.1, server_timing=True)
    yield middleware
    middleware.close()


def from_loopback(app):
    """werkzeug's test client sets no REMOTE_ADDR; a real server on loopback would."""
    return lambda environ, start_response: app({"REMOTE_ADDR": "127.0.0.1", **environ}, start_response)


@pytest.fixture
def client(wrapped):
    return Client(from_loopback(wrapped))


@pytest.fixture
def server(wrapped):
    with serving(wrapped) as url:
        yield url


def _ready(client):
    return client.get("/readyz").status_code


# -- pass-through -------------------------------------------------------------------


def test_other_paths_pass_through_untouched(client, app, session):
    response = client.get("/anything?x=1")
    assert response.status_code == 201
    assert response.headers["X-App"] == "yes"
    assert response.get_data() == b"first,second"
    assert app.environ["regionproxy._session.session"] is session
    assert app.environ["QUERY_STRING"] == "x=1"
    assert app.closed == 1


def test_body_is_streamed_not_buffered(wrapped, app):
    iterable = wrapped({"PATH_INFO": "/x", "REQUEST_METHOD": "GET", "REMOTE_ADDR": "127.0.0.1"}, lambda *a: None)
    assert next(iter(iterable)) == b"first,"
    assert app.closed == 0
    iterable.close()
    assert app.closed == 1


def test_real_server_streams_the_apps_response(server):
    response = requests.get(f"{server}/page", timeout=5)
    assert (response.status_code, response.text, response.headers["X-App"]) == (201, "first,second", "yes")


def test_server_timing_reports_dynamodb_time_and_regions(client):
    header = client.get("/item").headers["Server-Timing"]
    assert header.startswith("dynamodb;dur=") and '"1 calls"' in header and f'regions;desc="{LOCAL}"' in header


# -- health -------------------------------------------------------------------------


def test_livez_passes_without_checking_anything(client, lab):
    lab.fault(LOCAL, "refuse")
    lab.fault(REMOTE, "refuse")
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/health+json"
    assert response.json["status"] == "pass"


def test_readyz_and_healthz_pass_when_the_local_region_is_healthy(client):
    assert wait_for(lambda: client.get("/readyz").json["status"] == "pass", timeout=WAIT)
    body = client.get("/healthz").json
    assert body["status"] == "pass"
    assert set(body["checks"]) == {f"dynamodb:{LOCAL}", f"dynamodb:{REMOTE}"}
    assert body["checks"][f"dynamodb:{LOCAL}"][0]["observedValue"] > 0


def test_readiness_fails_during_a_local_outage_and_returns_after_healing(client, lab):
    assert wait_for(lambda: _ready(client) == 200, timeout=WAIT)
    lab.fault(LOCAL, "blackhole")
    assert wait_for(lambda: _ready(client) == 503, timeout=WAIT)
    body = client.get("/readyz").json
    assert body["checks"][f"dynamodb:{LOCAL}"][0]["status"] == "fail"
    assert body["checks"][f"dynamodb:{REMOTE}"][0]["status"] in ("pass", "warn"), "the remote region still serves"
    lab.heal(LOCAL)
    assert wait_for(lambda: _ready(client) == 200, timeout=WAIT)


def test_any_policy_stays_ready_while_a_remote_region_serves(app, session, lab):
    middleware = rp.RegionProxyMiddleware(app, session, readiness="any", probe_interval=0.1, metrics_path=None)
    client = Client(from_loopback(middleware))
    try:
        lab.fault(LOCAL, "refuse")
        assert wait_for(
            lambda: client.get("/readyz").json["checks"][f"dynamodb:{LOCAL}"][0]["status"] == "fail", timeout=WAIT
        )
        assert client.get("/readyz").status_code == 200
    finally:
        middleware.close()


def test_health_answers_fast_while_the_local_region_is_blackholed(server, lab):
    # Wait out start-up: the first probes build each region's boto3 client
    # (~60 ms of CPU each), which slows any request that shares the GIL.
    assert wait_for(lambda: requests.get(f"{server}/readyz", timeout=5).json()["status"] == "pass", timeout=WAIT)
    lab.fault(LOCAL, "blackhole")
    lab.fault(REMOTE, "blackhole")
    with requests.Session() as http:
        durations = []
        for _ in range(20):
            started = time.perf_counter()
            http.get(f"{server}/readyz", timeout=5)
            durations.append(time.perf_counter() - started)
    # A health answer that called DynamoDB would wait out the read timeout
    # (the regions never answer); one from kept state takes milliseconds.
    # Half the timeout leaves a loaded machine ample room between the two.
    bound = TIMEOUTS.read / 2
    assert max(durations) < bound, f"slowest health answer {max(durations) * 1000:.1f} ms: {[round(d * 1000) for d in durations]}"


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_probe_methods_answer_with_the_readiness_status(server, method):
    response = requests.request(method, f"{server}/readyz", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/health+json"
    assert (response.content == b"") == (method == "HEAD")


def test_other_methods_are_not_allowed_on_health(client):
    response = client.post("/readyz")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_http10_probe_without_host_header(server):
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["status"] in ("pass", "warn")


def test_health_body_leaks_no_endpoint_host_or_credential(client, lab):
    text = client.get("/readyz").get_data(as_text=True)
    for endpoint in lab.endpoints.values():
        assert endpoint.split("//")[1] not in text
    assert "127.0.0.1" not in text and "testing" not in text and "http" not in text


# -- admin surface ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/_regionproxy/", "/_regionproxy/status.json", "/metrics"])
def test_admin_surface_is_404_to_other_addresses(client, wrapped, path):
    assert client.get(path, environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 404
    assert Client(wrapped).get(path).status_code == 404, "no peer address: refused"
    assert client.get(path).status_code == 200


def test_admin_allow_list_and_token(app, session):
    middleware = rp.RegionProxyMiddleware(app, session, admin_allow=["10.1.0.0/16"], admin_token=TOKEN)
    client = Client(middleware)
    inside = {"REMOTE_ADDR": "10.1.2.3"}
    assert client.get("/_regionproxy/status.json", environ_base=inside).status_code == 404
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    assert client.get("/_regionproxy/status.json", environ_base=inside, headers=wrong).status_code == 404
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/_regionproxy/status.json", environ_base=inside, headers=right).status_code == 200
    outside = {"REMOTE_ADDR": "10.2.0.1"}
    assert client.get("/_regionproxy/status.json", environ_base=outside, headers=right).status_code == 404
    assert TOKEN not in repr(middleware.admin.access)
    middleware.close()


def test_bad_admin_settings_fail_at_startup(app, session):
    with pytest.raises(rp.ConfigError, match="admin_allow"):
        rp.RegionProxyMiddleware(app, session, admin_allow=["not-a-network"])
    with pytest.raises(rp.ConfigError, match="admin_token"):
        rp.RegionProxyMiddleware(app, session, admin_token="short")
    with pytest.raises(rp.ConfigError, match="readiness"):
        rp.RegionProxyMiddleware(app, session, readiness="sometimes")


def test_status_page_and_json(client):
    page = client.get("/_regionproxy/")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert b"regionproxy" in page.get_data()
    status = client.get("/_regionproxy/status.json").json
    assert set(status["regions"]) == {LOCAL, REMOTE}
    assert status["readiness"]["status"] in ("pass", "warn")
    assert client.get("/_regionproxy").status_code == 308


def test_evacuate_and_restore_switch_readiness(client, session):
    assert wait_for(lambda: _ready(client) == 200, timeout=WAIT)
    response = client.post(f"/_regionproxy/regions/{LOCAL}/evacuate", headers={"Accept": "application/json"})
    assert response.json == {"region": LOCAL, "action": "evacuate", "breaker": "evacuated"}
    assert _ready(client) == 503
    redirect = client.post(f"/_regionproxy/regions/{LOCAL}/restore")
    assert redirect.status_code == 303 and redirect.headers["Location"] == "/_regionproxy/"
    assert session.replicas[LOCAL].breaker.state == "closed"
    assert wait_for(lambda: _ready(client) == 200, timeout=WAIT)


def test_region_actions_refuse_cross_site_posts_and_gets(client):
    response = client.post(
        f"/_regionproxy/regions/{LOCAL}/evacuate", headers={"Origin": "https://evil.example", "Host": "localhost"}
    )
    assert response.status_code == 403
    assert client.get(f"/_regionproxy/regions/{LOCAL}/evacuate").status_code == 405
    assert client.post("/_regionproxy/regions/mars-1/evacuate").status_code == 404
    assert client.post(f"/_regionproxy/regions/{LOCAL}/outage").status_code == 404, "outage buttons are demo-only"


class IdleMonitor(HealthMonitor):
    """A monitor that never probes: only the test's own requests move the breakers."""

    def start(self) -> None:
        pass


def test_metrics_scrape_parses_and_counts_calls(app, lab):
    # Its own session and an idle monitor: background probes would race the
    # requests to open the breaker, and a short reset_timeout would let it
    # go half-open before the scrape on a slow machine.
    session = lab.session(timeouts=TIMEOUTS, breaker=rp.BreakerPolicy(fail_max=2, reset_timeout=60))
    middleware = rp.RegionProxyMiddleware(app, session, monitor=IdleMonitor(session))
    client = Client(from_loopback(middleware))
    lab.fault(LOCAL, "refuse")
    for _ in range(3):
        assert client.get("/item").status_code == 201
    response = client.get("/metrics")
    middleware.close()
    assert response.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(response.get_data(as_text=True))}
    calls = {
        (s.labels["region"], s.labels["operation"], s.labels["outcome"]): s.value
        for s in families["regionproxy_dynamodb_calls"].samples
        if s.name.endswith("_total")
    }
    assert calls[(REMOTE, "GetItem", "ok")] == 3
    assert calls[(LOCAL, "GetItem", "fault")] >= 1
    breaker = {s.labels["region"]: s.value for s in families["regionproxy_breaker_state"].samples}
    assert breaker[LOCAL] == 2
    assert any(s.value >= 1 for s in families["regionproxy_failovers"].samples if s.name.endswith("_total"))
    assert "regionproxy_dynamodb_call_duration_seconds" in families
