"""Sessions of one fleet (fleet=) over the lab and a real redis-server:
evacuations, probes, status, and a success path that never asks Redis."""

from __future__ import annotations

import redis as redis_py

import regionproxy as rp
from regionproxy._regions.breaker import CLOSED, EVACUATED, OPEN
from regionproxy._regions.health import FAIL, HealthMonitor
from regionproxy.testing import wait_for
from tests.support import FLEET_TIMEOUT, LOCAL, REMOTE, TABLE

KEY = {"pk": "a", "sk": "s"}
# One attempt per region; the only region fault here is a refusal, so the
# read timeout is never what a test waits for, and it is generous: the lab's
# in-process moto missed 0.5 s on a loaded machine, which counted a fault
# (and asked Redis) in a test of a success path that never asks it.
QUICK = rp.Timeouts(connect=0.5, read=3.0, attempts=1)


def member(lab, redis, **options):
    return lab.session(fleet=redis.url, timeouts=QUICK, fleet_timeout=FLEET_TIMEOUT, **options)


def test_an_evacuation_through_one_session_holds_in_every_session_of_the_fleet(lab, redis):
    a, b = member(lab, redis), member(lab, redis)
    b.table(TABLE).get_item(Key=KEY)  # b is in the fleet (its first call joins it)
    a.evacuate(LOCAL, by="ops@example")
    assert wait_for(lambda: b.breaker_state(LOCAL) == EVACUATED)
    late = member(lab, redis)
    since = len(lab.requests(LOCAL))
    late.table(TABLE).get_item(Key=KEY)  # its first call already avoids the region
    assert lab.requests(LOCAL)[since:] == []
    action = late.status()["fleet"]["actions"][LOCAL]
    assert (action["action"], action["by"]) == ("evacuate", "ops@example") and action["at"] > 0
    late.restore(LOCAL, by="ops")
    assert wait_for(lambda: a.breaker_state(LOCAL) == b.breaker_state(LOCAL) == CLOSED)


def test_sessions_of_different_fleets_on_one_redis_do_not_mix(lab, redis):
    blog = member(lab, redis, key_schemas={TABLE: ("pk", "sk")})
    shop = member(lab, redis, key_schemas={"Orders": ("id",)})
    shop.table(TABLE).get_item(Key=KEY)
    blog.evacuate(LOCAL)
    other = member(lab, redis, key_schemas={TABLE: ("pk", "sk")})
    other.prepare()
    assert other.breaker_state(LOCAL) == EVACUATED
    assert shop.breaker_state(LOCAL) == CLOSED


def test_a_call_that_succeeds_on_a_closed_breaker_never_asks_redis(lab, redis):
    session = member(lab, redis)
    table = session.table(TABLE)
    table.get_item(Key=KEY)
    assert wait_for(lambda: session.status()["fleet"]["connected"])
    before = _commands(redis)
    for n in range(30):
        table.put_item(Item={**KEY, "n": n})
        table.get_item(Key=KEY)
    assert _commands(redis) == before


def _commands(redis):
    """Redis commands served so far, but the listener's pings and heartbeats
    and what this count's own connection sends."""
    stats = redis_py.Redis.from_url(redis.url).info("commandstats")
    ours = ("cmdstat_ping", "cmdstat_publish", "cmdstat_info", "cmdstat_hello", "cmdstat_client|setinfo")
    return {name: stat["calls"] for name, stat in stats.items() if name not in ours}


def test_a_fault_counts_for_the_fleet_and_the_opening_reaches_the_other_session(lab, redis):
    policy = rp.BreakerPolicy(fail_max=2, reset_timeout=60)
    a, b = member(lab, redis, breaker=policy), member(lab, redis, breaker=policy)
    a.prepare()
    b.prepare()
    lab.fault(LOCAL, "refuse")
    a.table(TABLE).get_item(Key=KEY)  # served by the remote region, one fault here
    b.table(TABLE).get_item(Key=KEY)  # and one there: the fleet's second
    assert wait_for(lambda: a.breaker_state(LOCAL) == b.breaker_state(LOCAL) == OPEN)


def test_a_region_is_probed_once_per_interval_by_the_fleet_and_every_monitor_has_the_result(lab, redis):
    a, b = member(lab, redis), member(lab, redis)
    monitors = [HealthMonitor(a, interval=3600), HealthMonitor(b, interval=3600)]
    try:
        for monitor in monitors:
            monitor.start()
        assert wait_for(lambda: all(r.latency_ms is not None for m in monitors for r in m.readiness().regions), timeout=10)
        for region in (LOCAL, REMOTE):
            assert [r.operation for r in lab.requests(region)].count("ListTables") == 1
        assert monitors[0].readiness() == monitors[1].readiness() or [
            (r.region, r.status) for r in monitors[0].readiness().regions
        ] == [(r.region, r.status) for r in monitors[1].readiness().regions]
        a.evacuate(LOCAL)
        assert wait_for(lambda: all(m.readiness().status == FAIL for m in monitors))
    finally:
        for monitor in monitors:
            monitor.stop()


def test_the_status_shows_the_fleet_and_never_the_password(lab):
    from regionproxy.testing import RedisServer

    with RedisServer(password="hunter2") as server:
        session = member(lab, server)
        session.prepare()
        assert wait_for(lambda: session.status()["fleet"]["connected"])
        fleet = session.status()["fleet"]
        assert fleet["name"] == session.settings.fleet_name and session.fleet.link.member in fleet["members"]
        assert "hunter2" not in repr(session.status()) and "hunter2" not in repr(session.settings)
        server.kill()
        assert wait_for(lambda: not session.status()["fleet"]["connected"], timeout=10)
        assert "hunter2" not in repr(session.status())
        session.table(TABLE).get_item(Key=KEY)  # served without the fleet


def test_metrics_say_whether_the_fleet_is_connected_and_count_its_messages(lab, redis):
    from prometheus_client.parser import text_string_to_metric_families

    a, b = member(lab, redis), member(lab, redis)
    metrics = rp.PrometheusListener(regions=a.regions, fleet=True)
    a.add_listener(metrics)

    def samples():
        text = metrics.exposition()[0].decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples
        }

    assert samples()[("regionproxy_fleet_connected", ())] == 0  # not joined yet
    a.prepare()
    b.prepare()
    assert wait_for(lambda: samples()[("regionproxy_fleet_connected", ())] == 1)
    b.evacuate(LOCAL)
    key = ("regionproxy_fleet_messages_total", (("direction", "received"), ("topic", "evacuation")))
    assert wait_for(lambda: samples().get(key, 0) >= 1)
    a.evacuate(REMOTE)
    assert samples()[("regionproxy_fleet_messages_total", (("direction", "sent"), ("topic", "evacuation")))] >= 1
    redis.kill()
    a.restore(REMOTE)  # the first operation that fails takes the link down
    assert wait_for(lambda: samples()[("regionproxy_fleet_connected", ())] == 0)


def test_a_session_whose_fleet_link_is_down_reads_past_its_cache_and_says_so(lab, redis):
    from prometheus_client.parser import text_string_to_metric_families

    cache = rp.CachePolicy(maxsize=100, ttl=60.0)
    a, b = member(lab, redis, cache=cache), member(lab, redis, cache=cache)
    metrics = rp.PrometheusListener(regions=a.regions, fleet=True)
    a.add_listener(metrics)
    a.table(TABLE).put_item(Item={**KEY, "v": "old"})
    b.prepare()
    assert wait_for(lambda: a.status()["cache"]["fleet_link"] == b.status()["cache"]["fleet_link"] == "live")
    assert [a.table(TABLE).get_item(Key=KEY)["Item"]["v"] for _ in range(2)] == ["old", "old"]  # cached
    redis.kill()
    assert wait_for(lambda: a.status()["cache"]["fleet_link"] == "down", timeout=10)
    b.table(TABLE).put_item(Item={**KEY, "v": "new"})  # its drop cannot reach a
    assert a.table(TABLE).get_item(Key=KEY)["Item"]["v"] == "new"
    assert a.status()["cache"]["bypassed"] == 1 and a.status()["fleet"]["connected"] is False
    text = metrics.exposition()[0].decode()
    bypassed = [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == "regionproxy_cache_bypassed_total"]
    assert [(s.labels, s.value) for s in bypassed] == [({"table": TABLE}, 1.0)]
    redis.start()
    assert wait_for(lambda: a.status()["cache"]["fleet_link"] == "live", timeout=10)
    assert a.status()["fleet"]["cache"]["reconnect_flushes"] == 1
    assert [a.table(TABLE).get_item(Key=KEY)["Item"]["v"] for _ in range(2)] == ["new", "new"]
    assert a.status()["cache"]["bypassed"] == 1  # cached again
