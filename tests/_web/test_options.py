"""Middleware options are checked at construction: a wrong one is a
ConfigError naming it, never a TypeError later nor a silently wrong value.
Framework settings (strings) are parsed strictly and name the variable."""

from __future__ import annotations

import math

import pytest
from werkzeug.test import Client

import regionproxy as rp
from regionproxy._regions.health import HealthMonitor
from regionproxy._web.options import check_options, middleware_options
from tests.support import closed_port_session, hello

TOKEN = "s3cret-admin-token-0123"


@pytest.fixture(scope="module")
def session():
    with closed_port_session() as session:
        yield session


BAD_OPTIONS = [
    pytest.param("readiness", "sometimes", id="readiness-unknown"),
    pytest.param("readiness", None, id="readiness-none"),
    pytest.param("live_paths", "/livez", id="live-paths-a-string"),
    pytest.param("live_paths", (), id="live-paths-empty"),
    pytest.param("live_paths", ("livez",), id="live-paths-no-slash"),
    pytest.param("live_paths", ("/livez?x",), id="live-paths-query"),
    pytest.param("live_paths", ("/li vez",), id="live-paths-space"),
    pytest.param("live_paths", (b"/livez",), id="live-paths-bytes"),
    pytest.param("live_paths", 5, id="live-paths-number"),
    pytest.param("ready_paths", "/readyz", id="ready-paths-a-string"),
    pytest.param("ready_paths", ("/livez",), id="ready-paths-overlap-live"),
    pytest.param("ready_paths", ("/readyz", "/readyz"), id="ready-paths-twice"),
    pytest.param("ready_paths", ("/metrics",), id="ready-paths-overlap-metrics"),
    pytest.param("ready_paths", ("/_regionproxy/ready",), id="ready-paths-under-admin"),
    pytest.param("admin_prefix", "/_regionproxy/", id="prefix-trailing-slash"),
    pytest.param("admin_prefix", "/", id="prefix-root"),
    pytest.param("admin_prefix", "_regionproxy", id="prefix-no-slash"),
    pytest.param("admin_prefix", "/a//b", id="prefix-empty-segment"),
    pytest.param("admin_prefix", None, id="prefix-none"),
    pytest.param("metrics_path", "metrics", id="metrics-no-slash"),
    pytest.param("metrics_path", "", id="metrics-empty"),
    pytest.param("metrics_path", "/_regionproxy", id="metrics-is-the-prefix"),
    pytest.param("admin_allow", "127.0.0.1", id="allow-a-string"),
    pytest.param("admin_allow", ["not-a-network"], id="allow-garbage"),
    pytest.param("admin_allow", [2130706433], id="allow-a-number"),
    pytest.param("admin_token", "short", id="token-short"),
    pytest.param("admin_token", "x" * 15, id="token-15"),
    pytest.param("admin_token", " " + TOKEN, id="token-space"),
    pytest.param("admin_token", "t\xf6ken-with-latin-1-bytes", id="token-non-ascii"),
    pytest.param("admin_token", b"s3cret-admin-token-0123", id="token-bytes"),
    pytest.param("admin_hosts", "localhost", id="hosts-a-string"),
    pytest.param("admin_hosts", [], id="hosts-empty"),
    pytest.param("admin_hosts", ["*"], id="hosts-star"),
    pytest.param("admin_hosts", ["localhost:8000"], id="hosts-with-port"),
    pytest.param("admin_hosts", ["http://localhost"], id="hosts-url"),
    pytest.param("admin_hosts", ["*.1.2.3.4"], id="hosts-star-address"),
    pytest.param("admin_hosts", [None], id="hosts-none"),
    pytest.param("server_timing", "false", id="timing-string"),
    pytest.param("server_timing", 1, id="timing-int"),
    pytest.param("server_timing", None, id="timing-none"),
    pytest.param("probe_interval", math.inf, id="interval-inf"),
    pytest.param("probe_interval", math.nan, id="interval-nan"),
    pytest.param("probe_interval", 0, id="interval-zero"),
    pytest.param("probe_interval", -1.0, id="interval-negative"),
    pytest.param("probe_interval", 0.001, id="interval-too-fast"),
    pytest.param("probe_interval", 86_400, id="interval-too-slow"),
    pytest.param("probe_interval", "2", id="interval-string"),
    pytest.param("probe_interval", True, id="interval-bool"),
    pytest.param("probe_table", "", id="table-empty"),
    pytest.param("probe_table", " Items", id="table-space"),
    pytest.param("probe_table", 7, id="table-number"),
]


@pytest.mark.parametrize(("name", "value"), BAD_OPTIONS)
def test_a_wrong_option_is_a_config_error_naming_it(session, name, value):
    listeners = session.hooks._listeners
    with pytest.raises(rp.ConfigError) as caught:
        rp.RegionProxyMiddleware(hello, session, **{name: value})
    assert caught.value.setting == name
    assert name in str(caught.value)
    assert session.hooks._listeners == listeners, "nothing hooked up before the check"


def test_good_options_in_lists_or_tuples_are_accepted(session):
    monitor = HealthMonitor(session, interval=3600, probe=lambda replica: None)
    middleware = rp.RegionProxyMiddleware(
        hello,
        session,
        monitor=monitor,
        readiness="any",
        live_paths=["/alive"],
        ready_paths=["/ready", "/health/"],
        admin_prefix="/ops/regionproxy",
        metrics_path=None,
        admin_allow=["10.0.0.0/8", "127.0.0.1"],
        admin_token=TOKEN,
        admin_hosts=["status.internal", "*.example.com", "[::1]", "127.0.0.0/8"],
        server_timing=True,
        probe_interval=60,
        probe_table="Items",
    )
    try:
        client = Client(middleware)
        assert client.get("/alive").status_code == 200
        assert client.get("/livez").get_data() == b"the app", "the default path is not mounted any more"
        assert client.get("/health/").status_code == 200
        headers = {"Authorization": f"Bearer {TOKEN}", "Host": "status.internal"}
        peer = {"REMOTE_ADDR": "10.0.0.9"}
        assert client.get("/ops/regionproxy/status.json", headers=headers, environ_base=peer).status_code == 200
        foreign = {**headers, "Host": "localhost"}
        assert client.get("/ops/regionproxy/status.json", headers=foreign, environ_base=peer).status_code == 404
    finally:
        middleware.close()


# -- framework settings (strings) --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), (" on ", True)]
    + [("false", False), ("False", False), ("0", False), ("no", False), ("off", False)],
)
def test_server_timing_setting_parses_strictly(text, expected):
    assert middleware_options({"SERVER_TIMING": text}) == {"server_timing": expected}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("SERVER_TIMING", "maybe", id="timing-maybe"),
        pytest.param("SERVER_TIMING", "", id="timing-empty"),
        pytest.param("SERVER_TIMING", "2", id="timing-two"),
        pytest.param("SERVER_TIMING", 1, id="timing-int"),
        pytest.param("PROBE_INTERVAL", "fast", id="interval-word"),
        pytest.param("PROBE_INTERVAL", "inf", id="interval-inf"),
        pytest.param("PROBE_INTERVAL", "nan", id="interval-nan"),
        pytest.param("PROBE_INTERVAL", "0", id="interval-zero"),
        pytest.param("READINESS", "maybe", id="readiness"),
        pytest.param("LIVE_PATHS", "", id="live-paths-empty"),
        pytest.param("LIVE_PATHS", "livez", id="live-paths-no-slash"),
        pytest.param("METRICS_PATH", "metrics", id="metrics-no-slash"),
        pytest.param("ADMIN_ALLOW", "10.0.0.0/8,nope", id="allow-garbage"),
        pytest.param("ADMIN_HOSTS", "localhost,*", id="hosts-star"),
        pytest.param("ADMIN_TOKEN", "", id="token-empty"),
        pytest.param("PROBE_TABLE", "", id="table-empty"),
    ],
)
def test_a_wrong_setting_is_a_config_error_naming_the_variable(name, value):
    with pytest.raises(rp.ConfigError) as caught:
        middleware_options({name: value})
    assert caught.value.setting == f"REGIONPROXY_{name}"
    assert f"REGIONPROXY_{name}" in str(caught.value)


def test_a_wrong_token_setting_is_not_repeated_in_the_error():
    with pytest.raises(rp.ConfigError) as caught:
        middleware_options({"ADMIN_TOKEN": "short-secret"})
    assert "short-secret" not in str(caught.value)


def test_settings_strings_become_the_keywords():
    options = middleware_options(
        {
            "LIVE_PATHS": "/alive, /livez",
            "ADMIN_ALLOW": "10.0.0.0/8, 127.0.0.1",
            "ADMIN_HOSTS": "status.internal,*.example.com",
            "PROBE_INTERVAL": " 0.5 ",
            "METRICS_PATH": "",
            "REGIONS": "not a middleware setting",
        }
    )
    assert options == {
        "live_paths": ("/alive", "/livez"),
        "admin_allow": ("10.0.0.0/8", "127.0.0.1"),
        "admin_hosts": ("status.internal", "*.example.com"),
        "probe_interval": 0.5,
        "metrics_path": None,
    }


def test_settings_that_collide_are_found_by_the_settings_check():
    # What the Django system check runs: each value, then the paths together.
    with pytest.raises(rp.ConfigError) as caught:
        check_options(middleware_options({"READY_PATHS": "/readyz,/livez"}))
    assert caught.value.setting == "ready_paths"


def test_flask_extension_checks_its_keywords_when_built():
    from regionproxy.contrib.flask import RegionProxy

    with pytest.raises(rp.ConfigError) as caught:
        RegionProxy(server_timing="false")
    assert caught.value.setting == "server_timing"
    with pytest.raises(rp.ConfigError) as caught:
        RegionProxy(admin_host=["localhost"])  # a typo: admin_hosts
    assert caught.value.setting == "admin_host"


def test_flask_config_passes_admin_hosts_through(session):
    from flask import Flask

    from regionproxy.contrib.flask import RegionProxy

    app = Flask("hosts")
    app.config.update(REGIONPROXY_ADMIN_HOSTS="status.internal", REGIONPROXY_METRICS_PATH="")
    RegionProxy(app, session=session, monitor=HealthMonitor(session, interval=3600, probe=lambda replica: None))
    try:
        client = app.test_client()
        peer = {"REMOTE_ADDR": "127.0.0.1"}
        assert client.get("/_regionproxy/status.json", headers={"Host": "status.internal"}, environ_base=peer).status_code == 200
        assert client.get("/_regionproxy/status.json", environ_base=peer).status_code == 404, "localhost is not listed"
    finally:
        app.extensions["regionproxy"].middleware.close()


@pytest.mark.parametrize(
    ("options", "blamed", "named"),
    [
        pytest.param({"live_paths": ["/readyz"]}, "live_paths", "ready_paths", id="live-takes-a-default-ready-path"),
        pytest.param({"ready_paths": ["/livez"]}, "ready_paths", "live_paths", id="ready-takes-the-default-live-path"),
        pytest.param({"metrics_path": "/livez"}, "metrics_path", "live_paths", id="metrics-takes-the-default-live-path"),
        pytest.param({"live_paths": ["/metrics"]}, "live_paths", "metrics_path", id="live-takes-the-default-metrics-path"),
    ],
)
def test_a_path_clash_blames_the_option_given_not_a_default(options, blamed, named):
    with pytest.raises(rp.ConfigError) as caught:
        check_options(options)
    assert caught.value.setting == blamed
    assert named in str(caught.value)


def test_live_paths_variable_taking_readyz_blames_live_paths(session):
    options = middleware_options({"LIVE_PATHS": "/readyz"})
    with pytest.raises(rp.ConfigError) as caught:
        rp.RegionProxyMiddleware(hello, session, **options)
    assert caught.value.setting == "live_paths"
