"""``regionproxy demo``: the Flask blog over a local two-region lab.

Starts :class:`~regionproxy.testing.LocalRegions` with an OVHcloud-to-AWS
latency profile (an app server in Gravelines: ~5 ms to eu-west-3 Paris,
~80 ms to us-east-1 Virginia), seeds the example blog, serves it wrapped by
the middleware on 127.0.0.1, and sends it a light, bounded stream of reads
so that the status page shows traffic. The terminal counts in the status
page's terms (:func:`progress`): page reads, then the DynamoDB calls a
region served and those the cache answered (which the page's "served"
leaves out). From the status page a person can
cause and heal an outage of a region (demo mode only) and watch requests
keep working while readiness turns to fail and back.

Needs a source checkout (the blog lives in ``examples/``): ``make demo``
(``make demo PORT=8080`` for another port).
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

REGIONS = ["eu-west-3", "us-east-1"]
# One-way added delay per request from an OVHcloud Gravelines server.
OVH_GRAVELINES = {"eu-west-3": (0.005, 0.001), "us-east-1": (0.080, 0.005)}
TRAFFIC_INTERVAL = 0.25  # seconds between background reads
TRAFFIC_MAX = 20_000  # and never more than this many,
TRAFFIC_SECONDS = 3600.0  # nor for longer than this


def build(lab: Any, port: int) -> tuple[Any, Any]:
    """The wrapped Flask blog over ``lab``, and a werkzeug server for it."""
    import os

    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: object, **kwargs: object) -> None:
            """The background traffic would flood the terminal."""

    from regionproxy.testing.examples import find_examples_dir, prepare

    sys.path.insert(0, str(find_examples_dir()))
    flask_app = importlib.import_module("flask_blog.app")
    prepare(lab, "blog")  # creates, seeds and waits until replicated
    # The lab's fake credentials, for this demo process only.
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    config = {
        "REGIONPROXY_REGIONS": REGIONS,
        "REGIONPROXY_ENDPOINTS": lab.endpoints,
        "REGIONPROXY_CONNECT_TIMEOUT": 0.3,
        "REGIONPROXY_READ_TIMEOUT": 1.0,  # patient with the healthy region on a busy laptop
        "REGIONPROXY_HEDGE_DELAY": 0.25,  # a silent local region costs 0.25 s, not the read timeout
        "REGIONPROXY_ATTEMPTS": 1,
        "REGIONPROXY_BREAKER_RESET_TIMEOUT": 5.0,
        "REGIONPROXY_CACHE_TTL": 2.0,
        "REGIONPROXY_PROBE_INTERVAL": 0.5,
        "REGIONPROXY_SERVER_TIMING": True,
    }
    app = flask_app.create_app(config, lab=lab)
    return app, make_server("127.0.0.1", port, app, threaded=True, request_handler=QuietHandler)


class Traffic:
    """Reads a post every ``TRAFFIC_INTERVAL`` s and counts failures."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        deadline = time.monotonic() + TRAFFIC_SECONDS
        while (
            not self._stop.wait(TRAFFIC_INTERVAL)
            and self.ok + self.failed < TRAFFIC_MAX
            and time.monotonic() < deadline
        ):
            try:
                with urllib.request.urlopen(f"{self.url}/posts/post-1", timeout=5) as response:
                    response.read()
                self.ok += 1
            except (urllib.error.URLError, OSError):
                self.failed += 1


def progress(ok: int, failed: int, status: dict[str, Any], readiness: str) -> str:
    """The terminal's line, in the status page's terms: page reads are the
    demo's HTTP requests; each makes DynamoDB calls that the page counts as
    "served" when a region answered, and under "cache hits" when the cache
    did (the page's "served" leaves those out), so the two agree."""
    served = sum(counts["served"] for counts in status["operations"].values())
    hits = status["cache"]["hits"]
    return (
        f"  {ok} page reads answered, {failed} failed; their DynamoDB calls: {served} served by a region "
        f"(the status page's 'served'), {hits} cache hits; readiness {readiness}"
    )


def run(port: int = 8000, duration: float | None = None) -> int:
    from regionproxy.testing import LocalRegions

    with LocalRegions(REGIONS, lag=0.5) as lab:
        for region, (delay, jitter) in OVH_GRAVELINES.items():
            lab.fault(region, "latency", delay=delay, jitter=jitter)
        app, server = build(lab, port)
        url = f"http://127.0.0.1:{server.server_port}"
        serving = threading.Thread(target=server.serve_forever, name="demo-server", daemon=True)
        serving.start()
        traffic = Traffic(url)
        traffic.start()
        print("regionproxy demo: the Flask blog over two local regions (moto), OVH Gravelines latency profile")
        print(f"  blog          {url}/")
        print(f"  status page   {url}/_regionproxy/   (cause and heal outages here)")
        print(f"  readiness     {url}/readyz")
        print(f"  metrics       {url}/metrics")
        print("Stop with Ctrl-C." if duration is None else f"Stopping in {duration:g} s.", flush=True)
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(min(5.0, max(0.0, deadline - time.monotonic())) if deadline else 5.0)
                middleware = app.extensions["regionproxy"].middleware
                ready = middleware.monitor.readiness().status
                print(progress(traffic.ok, traffic.failed, middleware.session.status(), ready), flush=True)
        except KeyboardInterrupt:
            pass
        finally:
            traffic.stop()
            server.shutdown()
            server.server_close()
            app.extensions["regionproxy"].middleware.close()
    return 0
