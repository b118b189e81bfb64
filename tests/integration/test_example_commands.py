"""The examples as a new user meets them: one ``make`` command each starts a
lab with the example's tables and serves the app; and when every region is
down, the apps answer a short 503 page with ``Retry-After``, no traceback."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from types import ModuleType

import pytest
import requests

from regionproxy import AmbiguousWriteError
from tests.support import LOCAL, REMOTE, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))
sys.path.insert(0, str(EXAMPLES / "django_blog"))
BIN = Path(sysconfig.get_path("scripts"))
START_TIMEOUT = 120  # a lab, its tables and an app server, on a loaded machine


# -- one command per example -------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "path", "expect"),
    [
        pytest.param("example-flask", "/posts/post-1", '"title":"Post 1"', id="flask"),
        pytest.param("example-django", "/posts/post-1", '"title": "Post 1"', id="django"),
        pytest.param("example-gunicorn", "/", '"v": "hello from the lab"', id="gunicorn"),
    ],
)
def test_make_example_serves_the_app_over_a_seeded_lab(target, path, expect):
    port = free_port()
    command = [shutil.which("make"), "-o", f"{BIN}/regionproxy", f"BIN={BIN}", target, f"PORT={port}"]
    server = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert server.poll() is None, f"{target} exited: {server.stdout.read()}"
            try:
                response = requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, f"{target} did not serve within {START_TIMEOUT} s"
                time.sleep(0.2)
        assert response.status_code == 200 and expect in response.text, response.text
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # make, the lab and the app: what Ctrl-C stops
        try:
            output, _ = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            output, _ = server.communicate()
    assert re.search(rf"^Running: .*{port}", output, re.M), output
    assert "Traceback" not in output, output


# -- every region down: 503 with Retry-After ---------------------------------------


def settings_for(lab):
    return {
        "REGIONS": [LOCAL, REMOTE],
        "ENDPOINTS": lab.endpoints,
        "CONNECT_TIMEOUT": 0.5,
        "READ_TIMEOUT": 2.0,
        "ATTEMPTS": 1,
        "PROBE_INTERVAL": 0.5,
    }


def ambiguous_write(*args, **kwargs):
    """Stands for a view whose non-idempotent write timed out."""
    raise AmbiguousWriteError(LOCAL, "UpdateItem", TimeoutError("read timeout"))


@pytest.fixture
def flask_client(local_regions):
    from flask_blog.app import create_app

    app = create_app({f"REGIONPROXY_{name}": value for name, value in settings_for(local_regions).items()})
    app.add_url_rule("/ambiguous", view_func=ambiguous_write, methods=["POST"])
    yield app.test_client()
    state = app.extensions["regionproxy"]
    state.middleware.close()
    state.session.close()


@pytest.fixture(scope="module")
def django_setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "blogsite.settings")
    import django

    django.setup()


@pytest.fixture
def django_client(django_setup, local_regions):
    from blogsite import urls
    from django.test import Client, override_settings
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    from regionproxy.contrib import django as rp_django

    urlconf = ModuleType("blog_with_an_ambiguous_write")  # the blog's urls and one more
    urlconf.urlpatterns = [*urls.urlpatterns, path("ambiguous", csrf_exempt(ambiguous_write))]
    with override_settings(REGIONPROXY=settings_for(local_regions), ROOT_URLCONF=urlconf):
        yield Client(raise_request_exception=False)
    rp_django.reset()


@pytest.fixture(params=[pytest.param("flask_client", id="flask"), pytest.param("django_client", id="django")])
def call(request):
    """``call(method, path, payload) -> (status, headers, body)`` through the
    framework's own test client."""
    client = request.getfixturevalue(request.param)

    def call(method, path, payload=None):
        data = None if payload is None else json.dumps(payload)
        if request.param == "flask_client":
            response = client.open(path, method=method, data=data, content_type="application/json")
            return response.status_code, response.headers, response.get_data(as_text=True)
        response = client.generic(method, path, data=data or "", content_type="application/json")
        return response.status_code, response.headers, response.content.decode()

    return call


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        pytest.param("GET", "/posts/post-1", None, id="read"),
        pytest.param("GET", "/", None, id="index"),
        pytest.param("POST", "/posts", {"title": "t", "body": "b", "author_id": "ada"}, id="write"),
    ],
)
def test_every_region_down_answers_503_with_retry_after(local_regions, call, caplog, method, path, payload):
    for region in (LOCAL, REMOTE):
        local_regions.fault(region, "refuse")
    with caplog.at_level(logging.WARNING):
        status, headers, body = call(method, path, payload)
    assert status == 503, body[:2000]
    assert headers["Retry-After"] == "5"
    assert headers["Content-Type"].startswith("text/html")
    assert "Temporarily unavailable" in body and len(body) < 1000
    assert "Traceback" not in body and "AllRegionsFailed" not in body
    assert not [record for record in caplog.records if record.exc_info], "a traceback was logged"


def test_ambiguous_write_answers_504_and_says_to_check(call, caplog):
    with caplog.at_level(logging.WARNING):
        status, headers, body = call("POST", "/ambiguous")
    assert status == 504, body[:2000]
    assert "Retry-After" not in headers, "repeating it blindly could apply it twice"
    assert "may not have been saved" in body and "Traceback" not in body
    assert not [record for record in caplog.records if record.exc_info], "a traceback was logged"
