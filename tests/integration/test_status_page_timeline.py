"""The status page's charts in headless Chromium: per region, the last 15
minutes of p50/p99 latency and error rate as inline SVG the page draws
itself, with breaker changes, failovers, evacuations and lag warnings
marked on the same time axis; and the replication-lag table. The shape of
the drawing is checked from the DOM; a screenshot of the charts is kept in
``test-artifacts/status-page-timeline.png``."""

from __future__ import annotations

import contextlib
import time

import pytest

import regionproxy as rp
from regionproxy.events import BreakerChanged, CallFinished, FailedOver, ReplicationLag
from regionproxy.testing import serving
from regionproxy.testing.lab import wait_for
from tests.integration.test_status_page_browser import ARTIFACTS, _fits, browser  # noqa: F401 (a fixture)
from tests.support import LOCAL, REMOTE, TABLE, hello

KEY = {"pk": {"S": "a"}, "sk": {"S": "s"}}


@pytest.fixture
def session(lab):
    return lab.session(
        timeouts=rp.Timeouts(connect=1, read=2, attempts=1),
        breaker=rp.BreakerPolicy(fail_max=2, reset_timeout=60),
    )


def _history(timeline, now):
    """Fourteen minutes of past traffic through the timeline's own listener
    (the events the session emits), its clock moved back and forth: a
    blackhole of the local region from -9 to -7 min (timeouts, failovers,
    breaker open and closed), an evacuation at -5 min, a lag warning at
    -3 min. Only the clock is the test's: what is drawn is what the events say."""
    clock = {"now": now}
    saved, timeline._clock = timeline._clock, lambda: clock["now"]
    try:
        for step in range(-14 * 60, -60, 2):
            clock["now"] = now + step
            outage = -9 * 60 <= step < -7 * 60
            jitter = (step % 7) / 7
            if outage:
                timeline(CallFinished(LOCAL, "GetItem", "read", 1.0, "fault"))
                timeline(FailedOver("GetItem", LOCAL, REMOTE, "read_timeout", clock["now"]))
            else:
                timeline(CallFinished(LOCAL, "GetItem", "read", 0.004 + 0.002 * jitter, "ok"))
                timeline(CallFinished(LOCAL, "GetItem", "read", 0.006 + 0.03 * jitter * jitter, "ok"))
            timeline(CallFinished(REMOTE, "GetItem", "read", 0.085 + 0.01 * jitter, "ok"))
            if outage:
                timeline(CallFinished(REMOTE, "GetItem", "read", 0.09 + 0.05 * jitter, "ok"))
            changes = {-9 * 60: (LOCAL, "closed", "open"), -7 * 60: (LOCAL, "open", "closed"),
                       -5 * 60: (REMOTE, "closed", "evacuated"), -4 * 60: (REMOTE, "evacuated", "closed")}
            if step in changes:
                timeline(BreakerChanged(*changes[step], clock["now"]))
            if step == -3 * 60:
                timeline(ReplicationLag(LOCAL, REMOTE, 12.0, "lagging", clock["now"]))
                timeline(ReplicationLag(LOCAL, REMOTE, 0.8, "ok", clock["now"]))
    finally:
        timeline._clock = saved


def _reads(session, n):
    for _ in range(n):
        with contextlib.suppress(rp.RegionProxyError):
            session.client.get_item(TableName=TABLE, Key=KEY)


def test_the_charts_draw_latency_errors_and_marks_per_region(browser, lab, session):  # noqa: F811
    lab.replicator.lag = 1.5  # past lag_warn: the canary's warning is marked
    middleware = rp.RegionProxyMiddleware(
        hello, session, probe_interval=3600, canary_table=TABLE, canary_interval=1.0, lag_warn=0.5
    )
    try:
        _history(middleware.timeline, time.time())
        with serving(middleware) as url:
            middleware.monitor.start()
            _reads(session, 30)
            lab.fault(LOCAL, "refuse")
            _reads(session, 10)  # two faults open the breaker; every read fails over
            lab.heal(LOCAL)
            session.evacuate(LOCAL, by="test")
            session.restore(LOCAL, by="test")
            _reads(session, 10)
            # a canary cycle announced a lagging pair (its figures go out at the end of a cycle)
            assert wait_for(lambda: any(m["kind"] == "lag" for m in middleware.timeline.snapshot()["marks"]), timeout=30)

            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors = []
            page.on("pageerror", lambda error: errors.append(error))
            page.goto(f"{url}/_regionproxy/")
            charts = page.locator("svg.timeline")
            assert charts.count() == 2
            local = page.locator(f'svg.timeline[data-region="{LOCAL}"]')
            remote = page.locator(f'svg.timeline[data-region="{REMOTE}"]')
            for chart in (local, remote):
                for line in ("p50", "p99"):
                    points = chart.locator(f"polyline.{line}").get_attribute("points")
                    assert points and len(points.split()) >= 1, (line, points)
            # Error bars: the local outage of the history (-9 to -7 min: 8 buckets
            # of 15 s) and the live refusals; none in the remote region's
            # history (its live reads may meet a slow moment on a loaded machine).
            def bars(chart, before_minutes):
                edge = 46 + (1 - before_minutes / 15) * 536
                xs = chart.locator("rect.errors").evaluate_all("rs => rs.map(r => Number(r.getAttribute('x')))")
                return [x for x in xs if x < edge]

            assert 7 <= len(bars(local, 1)) <= 9, bars(local, 1)
            assert bars(remote, 1) == []
            assert len(bars(local, 0)) > len(bars(local, 1))  # the live refusals, at "now"
            # one point per 15 s bucket over the last 15 minutes, at most
            assert 40 <= len(local.locator("polyline.p99").get_attribute("points").split()) <= 61
            kinds = set(local.locator("line.mark").evaluate_all("lines => lines.map(l => l.dataset.kind)"))
            assert {"breaker", "failover", "evacuation", "restore"} <= kinds, kinds
            lag_marks = page.locator('svg.timeline line.mark[data-kind="lag"]')
            assert lag_marks.count() >= 1
            # every mark is inside the plot, on the same time axis as the lines
            xs = local.locator("line.mark").evaluate_all("lines => lines.map(l => Number(l.getAttribute('x1')))")
            assert all(46 <= x <= 582 for x in xs), xs
            # The pair's state is the latest cycle's: with the lag (1.5 s) past
            # the interval (1 s), a cycle may end before its heartbeat arrives
            # and say the previous one's. The page shows what the canary says:
            # reloaded until a cycle says the pair lags (bounded).
            row = page.locator(f'#replication-pairs tr[data-source="{LOCAL}"][data-replica="{REMOTE}"]')

            def pair_lags() -> bool:
                page.reload()
                return row.locator("td.state").inner_text() in ("lagging", "stalled")

            assert wait_for(pair_lags, timeout=20, interval=0.5)

            ARTIFACTS.mkdir(exist_ok=True)
            page.locator("#timeline").screenshot(path=str(ARTIFACTS / "status-page-timeline.png"))
            page.screenshot(path=str(ARTIFACTS / "status-page-with-timeline.png"), full_page=True)
            assert (ARTIFACTS / "status-page-timeline.png").stat().st_size > 0
            assert _fits(page), "the page fits 1280x800 without scrolling"
            assert errors == []
    finally:
        middleware.close()
