"""The status page's fleet section in headless Chromium: the link's state,
who evacuated a region through another member of the fleet and when, and
"disconnected" once Redis is gone, and the worker's cache bypassed; the
page still fits 1280x800."""

from __future__ import annotations

import regionproxy as rp
from regionproxy.testing import serving
from tests.integration.test_status_page_browser import ARTIFACTS, _fits, browser  # noqa: F401 - the fixture
from tests.support import FLEET_TIMEOUT, LOCAL, hello


def test_the_status_page_shows_the_fleet_who_evacuated_and_a_lost_link(browser, lab, redis):  # noqa: F811
    from playwright.sync_api import expect

    session = lab.session(fleet=redis.url, fleet_timeout=FLEET_TIMEOUT, cache=rp.CachePolicy(maxsize=100, ttl=60))
    other = lab.session(fleet=redis.url, fleet_timeout=FLEET_TIMEOUT)
    middleware = rp.RegionProxyMiddleware(hello, session, probe_interval=0.2)
    with serving(middleware) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = []
        page.on("pageerror", lambda error: errors.append(error))
        page.goto(f"{url}/_regionproxy/")
        expect(page.locator("#fleet-link")).to_have_text("connected", timeout=10_000)
        assert page.locator("#fleet-name").inner_text() == session.settings.fleet_name
        other.evacuate(LOCAL, by="oncall@example")
        row = page.locator(f'#fleet tr[data-fleet-region="{LOCAL}"]')
        expect(row.locator("td.by")).to_have_text("oncall@example", timeout=10_000)
        expect(row.locator("td.action")).to_have_text("evacuate")
        expect(page.locator(f'#regions tr[data-region="{LOCAL}"] td.breaker')).to_have_text("evacuated")
        expect(row.locator("td.prober")).not_to_have_text("-", timeout=10_000)  # the fleet's probes, by whom
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "status-page-fleet.png"), full_page=True)
        assert _fits(page), "the page fits 1280x800 without scrolling"
        redis.kill()
        expect(page.locator("#fleet-link")).to_have_text("disconnected", timeout=10_000)
        expect(page.locator("#cache-bypassed")).to_contain_text("BYPASSED, fleet link down", timeout=10_000)
        assert errors == []
    middleware.close()
