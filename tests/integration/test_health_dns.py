"""Region probes resolve each endpoint's host name every interval: how long
it took, whether it failed (``dns``: readiness, the health+json check, the
status JSON and metrics), against the lab's host names and its
``unresolvable`` fault."""

from __future__ import annotations

import prometheus_client

import regionproxy as rp
from regionproxy._regions.health import FAIL, PASS, HealthMonitor, health_json
from regionproxy._web.metrics import PrometheusListener
from regionproxy.events import NameResolved, RegionProbed
from regionproxy.testing.lab import wait_for
from tests.support import LOCAL, REMOTE


def _sample(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0.0


def test_an_unresolvable_endpoint_fails_the_region_with_reason_dns(lab):
    events = []
    registry = prometheus_client.CollectorRegistry()
    metrics = PrometheusListener(registry, (LOCAL, REMOTE))
    session = lab.session(
        endpoints=lab.named_endpoints,
        timeouts=rp.Timeouts(connect=1.0, read=5.0, attempts=1),
        listeners=[metrics, lambda e: events.append(e) if isinstance(e, (NameResolved, RegionProbed)) else None],
    )
    monitor = HealthMonitor(session, interval=3600)  # probed by hand below
    for region in (LOCAL, REMOTE):
        assert monitor.resolve_now(region).ok
        assert monitor.probe_now(region).ok
    ready = monitor.readiness()
    assert ready.status == PASS
    checks = health_json(ready)["checks"]
    assert checks[f"dynamodb:{LOCAL}"][0]["dns"]["status"] == PASS
    assert checks[f"dynamodb:{LOCAL}"][0]["dns"]["observedValue"] >= 0
    assert ".test" not in str(checks)  # the check never names the host

    lab.fault(LOCAL, "unresolvable")
    assert not monitor.resolve_now(LOCAL).ok
    probe = monitor.probe_now(LOCAL)
    assert (probe.ok, probe.reason) == (False, "dns")
    ready = monitor.readiness()
    assert ready.status == FAIL
    local = {r.region: r for r in ready.regions}[LOCAL]
    assert (local.status, local.reason, local.dns_ok) == (FAIL, "dns", False)
    check = health_json(ready)["checks"][f"dynamodb:{LOCAL}"][0]
    assert (check["output"], check["dns"]["status"]) == ("dns", FAIL)
    assert {r.region: r.status for r in ready.regions}[REMOTE] == PASS

    assert _sample(registry, "regionproxy_dns_failures_total", region=LOCAL) == 1
    assert _sample(registry, "regionproxy_dns_failures_total", region=REMOTE) == 0
    assert _sample(registry, "regionproxy_dns_resolution_seconds_count", region=LOCAL) == 2
    assert _sample(registry, "regionproxy_probe_failures_total", region=LOCAL, reason="dns") == 1
    assert [(e.region, e.ok) for e in events if isinstance(e, NameResolved)][-1] == (LOCAL, False)

    # Healed: the next resolution clears it (no probe needed for the name).
    lab.heal(LOCAL)
    assert monitor.resolve_now(LOCAL).ok
    assert {r.region: r.reason for r in monitor.readiness().regions}[LOCAL] == "dns"  # the last probe's, until probed
    assert monitor.probe_now(LOCAL).ok
    assert monitor.readiness().status == PASS


def test_the_probe_threads_resolve_every_interval_and_follow_the_fault(lab):
    # Failed probes open the breaker; a short reset timeout lets a trial in
    # soon after the heal.
    session = lab.session(
        endpoints=lab.named_endpoints,
        timeouts=rp.Timeouts(connect=1.0, read=5.0, attempts=1),
        breaker=rp.BreakerPolicy(fail_max=3, reset_timeout=1.0),
    )
    resolved = []
    session.add_listener(lambda e: resolved.append(e.region) if isinstance(e, NameResolved) else None)
    monitor = HealthMonitor(session, interval=0.1)
    monitor.start()
    try:
        assert wait_for(lambda: monitor.readiness().status == PASS, timeout=30)
        lab.fault(LOCAL, "unresolvable")
        assert wait_for(lambda: {r.region: r.reason for r in monitor.readiness().regions}[LOCAL] == "dns", timeout=30)
        assert monitor.readiness().status == FAIL
        lab.heal(LOCAL)
        assert wait_for(lambda: monitor.readiness().status == PASS, timeout=30)
        # Every interval, every region: the count grows with the intervals the
        # test took, which a quick run keeps few, so it is waited for.
        assert wait_for(lambda: resolved.count(LOCAL) >= 3 and resolved.count(REMOTE) >= 3, timeout=30)
    finally:
        monitor.stop()


def test_an_endpoint_given_by_address_resolves_nothing(lab):
    session = lab.session()
    monitor = HealthMonitor(session, interval=3600)
    assert monitor.resolve_now(LOCAL) is None
    monitor.probe_now(LOCAL)
    assert "dns" not in health_json(monitor.readiness())["checks"][f"dynamodb:{LOCAL}"][0]
