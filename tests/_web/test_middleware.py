"""RegionProxyMiddleware's own checks: the app and the session it is given,
and the monitor. Its options are checked in ``test_options.py``; serving
(pass-through, health, admin, metrics) is in ``integration/test_middleware.py``."""

from __future__ import annotations

import pytest

import regionproxy as rp
from tests.support import closed_port_session, hello


@pytest.fixture(scope="module")
def session():
    with closed_port_session() as session:
        yield session


@pytest.mark.parametrize(
    ("app", "session_value", "setting"),
    [
        pytest.param("not an app", None, "app", id="app-not-callable"),
        pytest.param(hello, object(), "session", id="session-not-a-session"),
    ],
)
def test_the_app_and_session_are_checked_too(session, app, session_value, setting):
    with pytest.raises(rp.ConfigError) as caught:
        rp.RegionProxyMiddleware(app, session_value or session)
    assert caught.value.setting == setting


def test_a_monitor_must_be_a_health_monitor(session):
    with pytest.raises(rp.ConfigError) as caught:
        rp.RegionProxyMiddleware(hello, session, monitor="fast")
    assert caught.value.setting == "monitor"


@pytest.mark.parametrize(
    ("path", "settles"),
    [
        pytest.param("/page", True, id="the-apps-request"),
        pytest.param("/readyz", False, id="health"),
        pytest.param("/_regionproxy/status.json", False, id="admin"),
    ],
)
def test_the_apps_requests_settle_the_fleet_first_and_its_own_paths_do_not(session, monkeypatch, path, settles):
    from werkzeug.test import Client

    order = []
    monkeypatch.setattr(session, "settle", lambda: order.append("settled"))

    def app(environ, start_response):
        order.append("app")
        return hello(environ, start_response)

    middleware = rp.RegionProxyMiddleware(app, session, probe_interval=3600)
    try:
        Client(middleware).get(path)
    finally:
        middleware.close()
    assert order[:2] == (["settled", "app"] if settles else [])
