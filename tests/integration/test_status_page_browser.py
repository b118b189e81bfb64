"""The status page in headless Chromium (Debian's ``chromium``; ``.ci/run``
installs it where missing): a region's outage is caused from the page, and
the page shows that region's breaker open. The screenshot is kept in
``test-artifacts/``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import regionproxy as rp
from regionproxy.testing import serving

LOCAL = "eu-west-3"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@pytest.fixture
def status_url(lab):
    session = lab.session(
        timeouts=rp.Timeouts(connect=0.2, read=0.3, attempts=1),
        breaker=rp.BreakerPolicy(fail_max=2, reset_timeout=30),
    )
    middleware = rp.RegionProxyMiddleware(hello, session, probe_interval=0.2, lab=lab)
    with serving(middleware) as url:
        yield f"{url}/_regionproxy/"
    middleware.close()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Debian's chromium is not installed: .ci/run installs it (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


def test_status_page_shows_the_breaker_of_a_failed_region_open(browser, status_url):
    page = browser.new_page(viewport={"width": 1280, "height": 600})
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(status_url)
    breaker = page.locator(f'tr[data-region="{LOCAL}"] td.breaker')
    assert breaker.inner_text() == "closed"
    page.locator(f'tr[data-region="{LOCAL}"] button[name="outage"]').click()  # demo mode: blackhole the region
    from playwright.sync_api import expect

    # The page refreshes itself from status.json: no reload here.
    expect(page.locator(f'tr[data-region="{LOCAL}"] td.breaker')).to_have_text("open", timeout=10_000)
    expect(page.locator("#readiness")).to_have_text("fail")
    assert page.locator(f'tr[data-region="{LOCAL}"] td.health').inner_text() == "fail"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "status-page-outage.png"), full_page=True)
    assert (ARTIFACTS / "status-page-outage.png").stat().st_size > 0
    assert errors == []
    page.locator(f'tr[data-region="{LOCAL}"] button[name="heal"]').click()
    assert page.locator(f'tr[data-region="{LOCAL}"] button[name="outage"]').count() == 1
