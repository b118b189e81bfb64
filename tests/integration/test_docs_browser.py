"""The documentation site in headless Chromium (Debian's ``chromium``):
every page with a Mermaid diagram draws it without a script error (a
diagram Mermaid cannot parse stays source), a concept page draws its diagram (mkdocs-material renders it into a
closed shadow root, so the test sees the source block replaced by a drawn
one of some size), and the API reference shows the session's entry. Both
screenshots are kept in ``test-artifacts/`` (``docs-concept-failover.png``,
``docs-reference-api.png``).

The site is built into ``tmp_path`` and served from loopback; Mermaid comes
from ``docs/assets/javascripts/mermaid.min.js`` (``make docs-mermaid``,
which ``make test`` runs), never from the network.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.integration.test_status_page_browser import ARTIFACTS, browser  # noqa: F401 - the fixture
from tests.test_docs import DOCS, ROOT, _build

MERMAID = DOCS / "assets" / "javascripts" / "mermaid.min.js"
DRAWN_TIMEOUT_MS = 60_000


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def _serve(directory):
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built once for this module's tests."""
    assert MERMAID.is_file(), "Mermaid is not fetched: make docs-mermaid (make test runs it)"
    site = tmp_path_factory.mktemp("docs") / "site"
    done = _build(ROOT / "mkdocs.yml", site)
    assert done.returncode == 0, done.stderr
    return site


def test_every_diagram_is_drawn(site, browser):  # noqa: F811
    pages = sorted(
        str(html.parent.relative_to(site)) for html in site.rglob("index.html") if 'class="mermaid"' in html.read_text()
    )
    assert "concepts/failover" in pages
    server = _serve(site)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.route("http*://**", lambda route: route.abort() if "127.0.0.1" not in route.request.url else route.continue_())
    try:
        for path in pages:
            page.goto(f"{url}/{path}/")
            drawn = "() => !document.querySelector('pre.mermaid') && document.querySelector('div.mermaid')"
            with contextlib.suppress(PlaywrightTimeout):  # reported below, with the page's errors
                page.wait_for_function(drawn, timeout=DRAWN_TIMEOUT_MS // 4)
            assert page.evaluate(drawn), f"{path}: a diagram is not drawn: {errors}"
        assert not errors, errors
    finally:
        page.close()
        server.shutdown()
        server.server_close()


def test_a_concept_page_draws_its_diagram_and_the_reference_shows_the_api(site, browser):  # noqa: F811
    server = _serve(site)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.route("http*://**", lambda route: route.abort() if "127.0.0.1" not in route.request.url else route.continue_())
    try:
        page.goto(f"{url}/concepts/failover/")
        page.wait_for_function(
            "() => !document.querySelector('pre.mermaid') && document.querySelector('div.mermaid')",
            timeout=DRAWN_TIMEOUT_MS,
        )
        box = page.locator("div.mermaid").first.bounding_box()
        assert box and box["height"] > 200 and box["width"] > 200, box
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "docs-concept-failover.png"), full_page=True)

        page.goto(f"{url}/reference/api/")
        entry = page.locator('[id="regionproxy.RegionSession"]')
        assert entry.is_visible()
        entry.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "docs-reference-api.png"))
    finally:
        page.close()
        server.shutdown()
        server.server_close()
