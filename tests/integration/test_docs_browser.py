"""The documentation site in headless Chromium (Debian's ``chromium``): a
concept page draws its Mermaid diagram (mkdocs-material renders it into a
closed shadow root, so the test sees the source block replaced by a drawn
one of some size), and the API reference shows the session's entry. Both
screenshots are kept in ``test-artifacts/`` (``docs-concept-failover.png``,
``docs-reference-api.png``).

The site is built into ``tmp_path`` and served from loopback; Mermaid comes
from ``docs/assets/javascripts/mermaid.min.js`` (``make docs-mermaid``,
which ``make test`` runs), never from the network.
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

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


def test_a_concept_page_draws_its_diagram_and_the_reference_shows_the_api(tmp_path, browser):  # noqa: F811
    assert MERMAID.is_file(), "Mermaid is not fetched: make docs-mermaid (make test runs it)"
    done = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr
    server = _serve(tmp_path / "site")
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
