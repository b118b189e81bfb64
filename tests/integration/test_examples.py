"""The Flask and Django example blogs: CRUD through the wrapped app, with
the local region failing mid-test and zero failed reads."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import requests

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))
sys.path.insert(0, str(EXAMPLES / "django_blog"))

from blog.model import TABLE_SPEC, BlogStore, seed  # noqa: E402

import regionproxy as rp  # noqa: E402
from regionproxy.testing import serving  # noqa: E402
from tests.support import LOCAL, REMOTE


def settings_for(lab):
    # The outage in these tests is a blackhole, which never answers, so the
    # read timeout is what a call to it costs; the healthy region shares that
    # timeout, so it is short only next to a blackhole (a healthy call missed
    # 1 s on a loaded 2-core machine), not next to a call. The first fault
    # opens the breaker, and it stays open for the whole test: the outage
    # costs one timeout, and no trial calls go into the blackhole.
    return {
        "REGIONS": [LOCAL, REMOTE],
        "ENDPOINTS": lab.endpoints,
        "CONNECT_TIMEOUT": 1.0,
        "READ_TIMEOUT": 3.0,
        "ATTEMPTS": 1,
        "BREAKER_FAIL_MAX": 1,
        "BREAKER_RESET_TIMEOUT": 60.0,
        "PROBE_INTERVAL": 0.2,
    }


@pytest.fixture
def blog_lab(local_regions):
    local_regions.create_table(**TABLE_SPEC)
    patient = rp.Timeouts(connect=1, read=5, attempts=1)
    seed(BlogStore(local_regions.session(timeouts=patient).table(TABLE_SPEC["TableName"])))
    local_regions.wait_replicated()
    return local_regions


class Traffic:
    """Counts reads and writes and the failed ones, through a client
    callable ``(method, path, json) -> (status, body)``."""

    def __init__(self, call):
        self.call = call
        self.failed_reads: list[tuple[str, int]] = []

    def read(self, path, expect=200):
        status, body = self.call("GET", path, None)
        if status != expect:
            self.failed_reads.append((path, status))
        return body

    def write(self, method, path, payload=None, expect=200):
        status, body = self.call(method, path, payload)
        assert status == expect, (method, path, status, body)
        return body


def crud_across_an_outage(lab, traffic):
    user = traffic.write("POST", "/users", {"name": "Linus", "email": "Linus@Example.com"}, expect=201)
    assert traffic.read(f"/users/{user['id']}")["name"] == "Linus"
    assert traffic.read("/users?email=linus@example.com")["id"] == user["id"]
    traffic.write("PUT", f"/users/{user['id']}", {"name": "Linus T."})
    post = traffic.write("POST", "/posts", {"title": "Before", "body": "b", "author_id": user["id"]}, expect=201)
    assert traffic.read("/posts")[0]["id"] == post["id"], "newest post first"
    lab.wait_replicated()

    lab.fault(LOCAL, "blackhole")  # the local region fails mid-test
    for _ in range(3):
        assert traffic.read(f"/posts/{post['id']}")["title"] == "Before"
        assert traffic.read("/posts/post-1")["title"] == "Post 1"
        assert traffic.read(f"/users/{user['id']}")["name"] == "Linus T."
        assert len(traffic.read("/posts?limit=3")) == 3
    during = traffic.write("POST", "/posts", {"title": "During", "body": "d", "author_id": user["id"]}, expect=201)
    assert traffic.read(f"/posts/{during['id']}")["title"] == "During", "read your own write from the remote region"
    traffic.write("PUT", f"/posts/{during['id']}", {"title": "During, edited"})
    assert traffic.read(f"/posts/{during['id']}")["title"] == "During, edited"
    traffic.write("DELETE", "/posts/post-2", expect=204)
    traffic.read("/posts/post-2", expect=404)
    traffic.write("DELETE", f"/users/{user['id']}", expect=204)

    lab.heal(LOCAL)
    lab.wait_replicated()
    assert traffic.read(f"/posts/{during['id']}")["title"] == "During, edited"
    assert traffic.failed_reads == []


# -- Flask -------------------------------------------------------------------------


@pytest.fixture
def flask_app(blog_lab):
    from flask_blog.app import create_app

    app = create_app({f"REGIONPROXY_{name}": value for name, value in settings_for(blog_lab).items()})
    yield app
    state = app.extensions["regionproxy"]
    state.middleware.close()
    state.session.close()


def test_flask_blog_crud_survives_a_local_outage(blog_lab, flask_app):
    client = flask_app.test_client()

    def call(method, path, payload):
        response = client.open(path, method=method, json=payload)
        return response.status_code, response.get_json(silent=True)

    crud_across_an_outage(blog_lab, Traffic(call))


def test_flask_blog_through_a_real_server(blog_lab, flask_app):
    with serving(flask_app) as base:
        assert "Post 5" in requests.get(f"{base}/", timeout=5).text
        blog_lab.fault(LOCAL, "refuse")
        assert requests.get(f"{base}/posts/post-3", timeout=5).json()["title"] == "Post 3"
        assert requests.get(f"{base}/livez", timeout=5).status_code == 200


def test_flask_extension_keeps_state_and_helpers(flask_app):
    from regionproxy.contrib.flask import session, table

    state = flask_app.extensions["regionproxy"]
    assert flask_app.wsgi_app is state.middleware
    with flask_app.app_context():
        assert session() is state.session
        assert table("Blog").name == "Blog"


def test_flask_extension_rejects_unknown_settings():
    from flask import Flask

    from regionproxy import ConfigError
    from regionproxy.contrib.flask import RegionProxy

    app = Flask("bad")
    app.config.update(REGIONPROXY_REGIONS="eu-west-3", REGIONPROXY_READ_TIMOUT=1)
    with pytest.raises(ConfigError, match="READ_TIMOUT"):
        RegionProxy(app)


# -- Django ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_setup():
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "blogsite.settings")
    import django

    django.setup()
    yield


@pytest.fixture
def django_client(django_setup, blog_lab):
    from django.test import Client, override_settings

    from regionproxy.contrib import django as rp_django

    with override_settings(REGIONPROXY=settings_for(blog_lab)):
        yield Client()
    rp_django.reset()


def test_django_blog_crud_survives_a_local_outage(blog_lab, django_client):
    def call(method, path, payload):
        response = django_client.generic(method, path, data=None if payload is None else json.dumps(payload))
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body

    crud_across_an_outage(blog_lab, Traffic(call))


def test_django_middleware_answers_health_and_sets_the_session(blog_lab, django_client):
    from regionproxy.contrib.django import get_session

    response = django_client.get("/readyz")
    assert response.status_code in (200, 503)
    assert response["Content-Type"] == "application/health+json"
    assert django_client.get("/livez").json()["status"] == "pass"
    assert django_client.get("/_regionproxy/status.json", REMOTE_ADDR="198.51.100.1").status_code == 404
    assert set(django_client.get("/_regionproxy/status.json").json()["regions"]) == {LOCAL, REMOTE}
    assert get_session().regions == (LOCAL, REMOTE)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        pytest.param({"REGIONS": ""}, "REGIONPROXY_REGIONS", id="no-regions"),
        pytest.param({"REGIONS": "eu-west-3", "BREAKER_FAIL_MAX": "x"}, "BREAKER_FAIL_MAX", id="bad-number"),
        pytest.param({"REGIONS": "eu-west-3", "READINESS": "maybe"}, "READINESS", id="bad-readiness"),
        pytest.param({"REGIONS": "eu-west-3", "REGION": "x"}, "REGION", id="typo"),
    ],
)
def test_django_system_check_rejects_bad_settings(django_setup, setting, message):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError
    from django.test import override_settings

    with override_settings(REGIONPROXY=setting), pytest.raises(SystemCheckError) as caught:
        call_command("check")
    assert "regionproxy.E001" in str(caught.value) and message in str(caught.value)


def test_django_system_check_passes_good_settings(django_setup, capsys):
    from django.core.management import call_command
    from django.test import override_settings

    with override_settings(REGIONPROXY={"REGIONS": ["eu-west-3", "us-east-1"], "READINESS": "any"}):
        call_command("check")
    assert "no issues" in capsys.readouterr().out


def test_example_modules_import_cleanly():
    assert importlib.import_module("blogsite.urls").urlpatterns


def test_flask_extension_can_be_initialised_later(lab):
    from flask import Flask

    from regionproxy.contrib.flask import RegionProxy

    extension = RegionProxy(session=lab.session(), metrics_path=None)
    app = Flask("later")
    app.config["REGIONPROXY_READINESS"] = "any"
    state = extension.init_app(app)
    assert app.extensions["regionproxy"] is state
    assert state.middleware.monitor.policy == "any"
    assert app.test_client().get("/livez").status_code == 200
    state.middleware.close()


# -- the environment and its typos, in both integrations --------------------------


def test_flask_extension_refuses_a_misspelled_environment_variable(monkeypatch):
    from flask import Flask

    from regionproxy.contrib.flask import RegionProxy

    monkeypatch.setenv("REGIONPROXY_CACHE_TTLS", "5")
    app = Flask("typo")
    app.config.update(REGIONPROXY_REGIONS="eu-west-3")
    with pytest.raises(rp.ConfigError, match="did you mean REGIONPROXY_CACHE_TTL"):
        RegionProxy(app)


def test_flask_config_typo_names_the_nearest_setting():
    from flask import Flask

    from regionproxy.contrib.flask import RegionProxy

    app = Flask("typo")
    app.config.update(REGIONPROXY_REGIONS="eu-west-3", REGIONPROXY_REGION="eu-west-3")
    with pytest.raises(rp.ConfigError, match="did you mean REGIONS"):
        RegionProxy(app)


def test_django_reads_the_environment_under_its_settings(django_setup, monkeypatch):
    from django.test import override_settings

    from regionproxy.contrib import django as rp_django

    # What `regionproxy lab -- python manage.py runserver` exports, and a setting that wins over its variable.
    monkeypatch.setenv("REGIONPROXY_ENDPOINTS", f"{LOCAL}=http://127.0.0.1:9,{REMOTE}=http://127.0.0.1:10")
    monkeypatch.setenv("REGIONPROXY_CACHE_TTL", "5")
    monkeypatch.setenv("REGIONPROXY_READINESS", "any")
    with override_settings(REGIONPROXY={"REGIONS": [LOCAL, REMOTE], "CACHE_TTL": 7}):
        try:
            session = rp_django.get_session()
            assert session.settings.endpoints == {LOCAL: "http://127.0.0.1:9", REMOTE: "http://127.0.0.1:10"}
            assert session.settings.cache.ttl == 7
            assert rp_django.RegionProxyMiddleware(lambda request: None).wsgi.monitor.policy == "any"
        finally:
            rp_django.reset()


def test_django_check_refuses_a_misspelled_environment_variable(django_setup, monkeypatch):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError
    from django.test import override_settings

    monkeypatch.setenv("REGIONPROXY_REGION", "eu-west-3")
    with override_settings(REGIONPROXY={"REGIONS": "eu-west-3"}), pytest.raises(SystemCheckError) as caught:
        call_command("check")
    assert "did you mean REGIONPROXY_REGIONS" in str(caught.value)
