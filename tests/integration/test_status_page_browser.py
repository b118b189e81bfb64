"""The status page in headless Chromium (Debian's ``chromium``; ``.ci/run``
installs it where missing): a region's outage is caused from the page, the
page shows what is true during it (breaker open, probe timed out, reads
served by the remote region, failovers by route and reason) and after it
heals (closed again), and fits a 1280x800 screen. Both screenshots are kept
in ``test-artifacts/``."""

from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path

import pytest

import regionproxy as rp
from regionproxy.testing import serving
from tests.support import LOCAL, REMOTE, TABLE, hello

REMOTE_READS = 100  # with a 100 ms pause each: ten or more of the page's refreshes
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


@pytest.fixture
def session(lab):
    # reset_timeout: a healed region is taken back by a probe's trial within seconds.
    # The outage is a blackhole, so the read timeout is what a call to it
    # costs; the healthy region shares it, so it stays well above what a
    # call takes on a loaded machine.
    return lab.session(
        timeouts=rp.Timeouts(connect=1, read=1, attempts=1),
        breaker=rp.BreakerPolicy(fail_max=2, reset_timeout=2),
    )


@pytest.fixture
def status_url(lab, session):
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


def _read_until(session, page, predicate, reads=REMOTE_READS):
    """App reads, until the page shows what ``predicate`` looks for (bounded)."""
    for _ in range(reads):
        with contextlib.suppress(rp.RegionProxyError):
            session.client.get_item(TableName=TABLE, Key={"pk": {"S": "a"}, "sk": {"S": "s"}})
        page.wait_for_timeout(100)  # the page's own refresh, every second
        if predicate():
            return True
    return predicate()


def _fits(page):
    return page.evaluate(
        "document.documentElement.scrollHeight <= window.innerHeight && document.documentElement.scrollWidth <= window.innerWidth"
    )


def test_status_page_shows_the_outage_then_the_healed_region(browser, status_url, session):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(status_url)
    local = page.locator(f'tr[data-region="{LOCAL}"]')
    assert local.locator("td.breaker").inner_text() == "closed"
    assert "last 60 s" in page.locator("#p50-head").inner_text(), "latency says its window"
    local.locator('button[name="outage"]').click()  # demo mode: blackhole the region

    # The page refreshes itself from status.json: no reload here.
    expect(local.locator("td.breaker")).to_have_text("open", timeout=10_000)
    expect(page.locator("#readiness")).to_have_text("fail")
    expect(local.locator("td.health")).to_have_text("fail")
    expect(local.locator("td.probe")).to_have_text("timed out")  # not the timeout as if it were a latency
    served_remote = page.locator('#operations tr[data-kind="read"] td.served-remote')
    assert _read_until(session, page, lambda: served_remote.count() == 1 and served_remote.inner_text() != "0"), (
        "reads served by the remote region during the outage show on the page"
    )
    route = page.locator("#failovers tbody tr").filter(has_text=LOCAL).filter(has_text=REMOTE)
    expect(route.first).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "status-page-outage.png"), full_page=True)
    assert _fits(page), "the page fits 1280x800 without scrolling"

    local.locator('button[name="heal"]').click()
    # Taken back by a probe's half-open trial once the reset timeout passes.
    expect(local.locator("td.breaker")).to_have_text("closed", timeout=20_000)
    expect(local.locator("td.health")).not_to_have_text("fail")
    expect(local.locator("td.probe")).not_to_have_text("timed out")
    assert local.locator('button[name="outage"]').count() == 1
    page.screenshot(path=str(ARTIFACTS / "status-page-healed.png"), full_page=True)
    assert _fits(page), "the page fits 1280x800 without scrolling"
    assert errors == []
    for name in ("status-page-outage.png", "status-page-healed.png"):
        assert (ARTIFACTS / name).stat().st_size > 0


def test_the_dns_column_shows_each_resolution_and_an_unresolvable_name(browser, lab):
    from playwright.sync_api import expect

    # Endpoints by the lab's host names: each probe interval resolves them.
    session = lab.session(endpoints=lab.named_endpoints, timeouts=rp.Timeouts(connect=1, read=2, attempts=1))
    middleware = rp.RegionProxyMiddleware(hello, session, probe_interval=0.2)
    try:
        with serving(middleware) as url:
            middleware.monitor.start()
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors = []
            page.on("pageerror", lambda error: errors.append(error))
            page.goto(f"{url}/_regionproxy/")
            local, remote = (page.locator(f'tr[data-region="{region}"] td.dns') for region in (LOCAL, REMOTE))
            for cell in (local, remote):  # a resolution time in ms, a number (the page refreshes itself)
                expect(cell).to_have_text(re.compile(r"^\d+(\.\d+)?$"), timeout=10_000)
                assert "bad" not in (cell.get_attribute("class") or "")
            lab.fault(LOCAL, "unresolvable")
            expect(local).to_have_text("unresolvable", timeout=10_000)
            expect(local).to_have_class(re.compile(r"\bbad\b"))
            expect(page.locator(f'tr[data-region="{LOCAL}"] td.health')).to_have_text("fail")
            expect(remote).to_have_text(re.compile(r"^\d+(\.\d+)?$"))  # the other region's name still resolves
            assert "regionproxy.test" not in page.content(), "the page never names an endpoint's host"
            lab.heal(LOCAL)
            expect(local).to_have_text(re.compile(r"^\d+(\.\d+)?$"), timeout=10_000)
            assert errors == []
    finally:
        middleware.close()
