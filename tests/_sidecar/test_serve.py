import pytest

from regionproxy._cli.main import main
from regionproxy._sidecar.serve import check_listen, parse_listen
from regionproxy._sidecar.signatures import ClientKeys
from regionproxy.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8000", ("127.0.0.1", 8000)),
        ("[::1]:9000", ("::1", 9000)),
        ("localhost:0", ("localhost", 0)),
        ("0.0.0.0:8000", ("0.0.0.0", 8000)),
    ],
)
def test_listen_is_host_and_port(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8000", "127.0.0.1", "127.0.0.1:http", ":8000", "127.0.0.1:70000"])
def test_a_malformed_listen_address_is_a_config_error(text):
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_listen(text)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_client_keys(host):
    check_listen(host, ClientKeys({}))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "sidecar.example"])
def test_any_other_address_without_client_keys_is_refused_at_start(host):
    with pytest.raises(ConfigError, match="REGIONPROXY_SERVE_KEYS"):
        check_listen(host, ClientKeys({}))
    check_listen(host, ClientKeys({"app": "secret"}))


def test_the_command_refuses_to_listen_beyond_loopback_without_client_keys(monkeypatch, capsys):
    monkeypatch.delenv("REGIONPROXY_SERVE_KEYS", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--listen", "0.0.0.0:8000"])
    assert exited.value.code == 2
    assert "needs client keys" in capsys.readouterr().err


def test_the_command_refuses_malformed_client_keys(monkeypatch, capsys):
    monkeypatch.setenv("REGIONPROXY_SERVE_KEYS", "no-secret-here")
    with pytest.raises(SystemExit) as exited:
        main(["serve"])
    assert exited.value.code == 2 and "id:secret" in capsys.readouterr().err


def test_the_sidecars_clients_ignore_the_endpoint_variables_meant_for_the_apps(monkeypatch):
    # Set for the apps on the host, they name the sidecar itself.
    from regionproxy._sidecar.serve import build_app

    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8000")
    env = {"REGIONPROXY_REGIONS": "eu-west-3,us-east-1", "REGIONPROXY_METRICS_PATH": ""}
    app = build_app(env, listen=("127.0.0.1", 8000))
    try:
        assert app.session.local_client().meta.endpoint_url == "https://dynamodb.eu-west-3.amazonaws.com"
    finally:
        app.close()
        app.session.close()


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8000", "http://localhost:8000/", "http://127.0.0.1:8000/x"])
def test_a_region_endpoint_that_is_the_sidecar_itself_is_refused_at_start(endpoint):
    from regionproxy._sidecar.serve import build_app

    env = {"REGIONPROXY_REGIONS": "eu-west-3,us-east-1", "REGIONPROXY_ENDPOINTS": f"eu-west-3={endpoint}"}
    with pytest.raises(ConfigError, match="itself"):
        build_app(env, listen=("127.0.0.1", 8000))


def test_the_sidecar_refuses_a_misspelled_variable_naming_the_nearest():
    import regionproxy as rp
    from regionproxy._sidecar.serve import build_app

    with pytest.raises(rp.ConfigError, match="did you mean REGIONPROXY_CACHE_TTL"):
        build_app({"REGIONPROXY_REGIONS": "eu-west-3", "REGIONPROXY_CACHE_TTLS": "5"})
