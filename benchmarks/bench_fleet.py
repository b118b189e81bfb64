"""What sharing cache drops through the fleet's Redis costs, in one run.

Against a real ``redis-server`` on loopback (started here, as the tests'
``redis`` fixture starts it) and a lab region (``moto_server`` behind the
fault proxy, replication off), prints:

- a cache hit on ``session.client.get_item`` with the fleet off and on
  (median us per call), and how many commands Redis processed during the
  fleet-on hits: a hit never touches Redis, so the count is 0 but for the
  idle listener's pings, shown apart;
- a ``PutItem`` through ``session.client`` with the fleet off and on (the
  lab answers in a few ms: median and p99), and what the fleet adds to a
  write alone (``SharedWrites.wrote``: the publish and the round trip after
  it; median, p99);
- how long after a write returns every worker has dropped it: ``--workers``
  processes (8 by default), each with its own link, cache and subscription,
  and a writer process publishing ``--writes`` writes (1000), one at a
  time, each of a new item; for each write, the time from its return to the
  moment the last worker applied its drop (``time.monotonic``, one clock
  for every process on Linux), p50, p99 and the worst.

Everything runs on loopback on one machine: the lag includes each worker's
wake-up (its listener thread waits on the socket), which a loaded machine
lengthens.

    python benchmarks/bench_fleet.py [--hits 20000] [--writes 1000] [--workers 8]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time

import boto3

import regionproxy as rp
from regionproxy._cache.keys import ITEM
from regionproxy._cache.store import ReadCache
from regionproxy._config.policies import CachePolicy
from regionproxy._dynamodb.keys import key_fingerprint
from regionproxy._fleet.coherence import SharedWrites
from regionproxy._fleet.link import FleetLink
from regionproxy._routing.router import StickyWrites
from regionproxy.bench.timing import median_us
from regionproxy.events import FleetDropsApplied, Hooks
from regionproxy.testing import LocalRegions, RedisServer, wait_for

REGIONS = ("eu-west-3", "us-east-1")
TABLE = "FleetBench"
FLEET = "bench"
PACE = 0.002  # seconds between two writes of the lag row


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _commands(admin) -> dict[str, int]:
    """Calls per command since Redis started (INFO commandstats)."""
    stats = admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def session_rows(lab: LocalRegions, redis: RedisServer, hits: int) -> None:
    import redis as redis_py

    key = {"pk": {"S": "hot"}}
    lab.client(REGIONS[0]).put_item(TableName=TABLE, Item={**key, "v": {"S": "x" * 100}})
    policy = rp.CachePolicy(maxsize=10_000, ttl=3600)
    off = lab.session(cache=policy, key_schemas={TABLE: ("pk",)})
    on = lab.session(cache=policy, key_schemas={TABLE: ("pk",)}, fleet=redis.url, fleet_name=FLEET)
    on.prepare()  # joins the fleet: its cache is used once the subscription is live
    assert wait_for(lambda: on.status()["cache"]["fleet_link"] == "live", timeout=10), "the fleet did not connect"
    for session in (off, on):
        session.client.get_item(TableName=TABLE, Key=key)  # the miss that fills it
    print(f"\nGetItem hits, fleet off and on (median us per call, {hits} calls each)")
    admin = redis_py.Redis.from_url(redis.url)  # one connection, made before counting
    hit_off = median_us(lambda: off.client.get_item(TableName=TABLE, Key=key), hits)
    before = _commands(admin)
    started = time.monotonic()
    hit_on = median_us(lambda: on.client.get_item(TableName=TABLE, Key=key), hits)
    seconds = time.monotonic() - started
    after = _commands(admin)
    during = {name: calls - before.get(name, 0) for name, calls in after.items() if calls != before.get(name, 0)}
    during.pop("info", None)  # our own INFO
    background = {name: during.pop(name) for name in ("ping", "publish") if name in during}
    print(f"  {'fleet off':<12} {hit_off:8.2f}\n  {'fleet on':<12} {hit_on:8.2f}")
    print(
        f"  Redis commands during the fleet-on hits ({seconds * 1000:.0f} ms): {sum(during.values())} {during or ''}"
        f" (and the listener's own, on its timers: {background or 'none'})"
    )

    print("\nPutItem through session.client, fleet off and on (ms per call, the lab's DynamoDB answering)")
    writes = max(hits // 100, 200)
    for name, session in (("fleet off", off), ("fleet on", on)):
        samples = []
        for n in range(writes):
            item = {"pk": {"S": f"w-{n % 50}"}, "v": {"S": str(n)}}
            start = time.perf_counter()
            session.client.put_item(TableName=TABLE, Item=item)
            samples.append((time.perf_counter() - start) * 1000)
        print(f"  {name:<12} median {statistics.median(samples):6.2f}  p99 {percentile(samples, 0.99):6.2f}  ({writes} writes)")
    off.close()
    on.close()


def _shared_writes(link: FleetLink, hooks: Hooks) -> SharedWrites:
    """A worker's fleet cache coherence over ``link``, with a cache of its own."""
    return SharedWrites(
        link,
        regions=REGIONS,
        cache=ReadCache(CachePolicy(maxsize=10_000, ttl=3600)),
        sticky=StickyWrites(5.0, home=REGIONS[0]),
        forget_table=lambda table: None,
        hooks=hooks,
    )


def _worker(url: str, writes: int, ready, results) -> None:
    """One worker: a link, a cache, a subscription; the monotonic time at
    which each write's drop was applied, sent back in order."""
    link = FleetLink(url, FLEET, heartbeat=0)
    applied: list[float] = []

    def heard(event: object) -> None:
        if isinstance(event, FleetDropsApplied):
            applied.append(time.monotonic())

    shared = _shared_writes(link, Hooks([heard]))
    shared.start()
    wait_for(lambda: link.connected, timeout=10)
    ready.put(link.connected)
    wait_for(lambda: len(applied) >= writes, timeout=30 + writes * 0.01)
    results.put(applied)
    link.close()


def lag_rows(redis: RedisServer, writes: int, workers: int) -> None:
    context = multiprocessing.get_context("spawn")  # no inherited state: each its own process from scratch
    ready, results = context.Queue(), context.Queue()
    processes = [context.Process(target=_worker, args=(redis.url, writes, ready, results)) for _ in range(workers)]
    for process in processes:
        process.start()
    assert all(ready.get(timeout=60) for _ in processes), "a worker did not connect"
    link = FleetLink(redis.url, FLEET, heartbeat=0)
    shared = _shared_writes(link, Hooks())
    shared.start()
    assert wait_for(lambda: link.connected, timeout=10)
    returned, publish = [], []
    for n in range(writes):
        drops = ((ITEM, TABLE, key_fingerprint({"pk": {"S": f"item-{n}"}})),)
        start = time.monotonic()
        shared.wrote(drops, None)
        end = time.monotonic()
        returned.append(end)
        publish.append((end - start) * 1000)
        time.sleep(PACE)
    applied = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    link.close()
    complete = [times for times in applied if len(times) == writes]
    lags = [(max(times[n] for times in complete) - returned[n]) * 1000 for n in range(writes)]
    print(
        f"\nPublish inside the write, and the round trip after it (ms, {writes} writes): median {statistics.median(publish):.3f}  p99 {percentile(publish, 0.99):.3f}"
    )
    print(
        f"\nFrom a write's return until all {workers} workers have dropped it (ms, {writes} writes, one every {PACE * 1000:g} ms;"
        f" {len(complete)} of {workers} workers heard every write)"
    )
    print(
        f"  p50 {percentile(lags, 0.50):.3f}  p99 {percentile(lags, 0.99):.3f}  max {max(lags):.3f}"
        f"  (negative: dropped before the writer's clock was read after its publish)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hits", type=int, default=20_000, help="timed hits per row")
    parser.add_argument("--writes", type=int, default=1000, help="writes of the lag row")
    parser.add_argument("--workers", type=int, default=8, help="worker processes of the lag row")
    args = parser.parse_args(argv)
    print(f"regionproxy {rp.__version__}, boto3 {boto3.__version__}, Python {sys.version.split()[0]}")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    with RedisServer() as redis:
        with LocalRegions(REGIONS, mode="process", replicate=False) as lab:
            lab.create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            )
            session_rows(lab, redis, args.hits)
        lag_rows(redis, args.writes, args.workers)


if __name__ == "__main__":
    main()
