"""Two gunicorn masters, several workers each, over one lab and one Redis:
a write through one master is read through the other right after, with
no stale read; while Redis is killed, or paused and found so, no worker
answers a write made meanwhile from its cache; after Redis is back on the
same port every worker has emptied its cache, and coherence resumes.

Without the fleet's drops, or without the request settling first
(:meth:`regionproxy.RegionSession.settle`), the first test fails: 1 to 5
of its 400 reads after a write were stale in runs on a loaded 2-core
machine. The harness is tests/support.py's ``gunicorn_master`` and
tests/fleet_app.py."""

from __future__ import annotations

import itertools

from tests.support import gunicorn_master

WORKERS = 3
PAIRS = 200
KEYS = ("a", "b", "c")
# Generous: these are the healthy path, on a machine that may be loaded.
WAIT = 60.0


def settings(metrics_dir):
    """Each master's own multiprocess metrics directory, a cache, the lab's table's keys."""
    metrics_dir.mkdir()
    return {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "REGIONPROXY_CACHE_TTL": "60",
        "REGIONPROXY_KEY_SCHEMAS": "Items=pk:sk",
        "REGIONPROXY_FLEET_NAME": "coherence-test",
    }


def read_answer(master, key: str, query: str = "") -> dict:
    response = master.get(f"/item?k={key}{query}")
    assert response.status_code == 200, response.text
    return response.json()


def read(master, key: str) -> str | None:
    item = read_answer(master, key)["item"]
    return item["v"] if item else None


def write(master, key: str, value: str) -> bool:
    """Whether the write's drops reached the fleet before it returned (its
    publish was taken by Redis within the link's timeout)."""
    response = master.post(f"/item?k={key}&v={value}")
    assert response.status_code == 200, response.text
    return response.json()["delivered"]


def stale_reads(one, other, pairs: int, start: int = 0) -> list[tuple[int, str, dict]]:
    """``pairs`` rounds: the other master reads a key (a worker caches it),
    one master writes it, both read it right after (their workers cache
    it). The reads after a delivered write that did not see it, with what
    the reader's fleet link and cache had done.

    A write whose publish Redis did not take within the link's timeout (a
    loaded machine, Redis just back) returns all the same: Redis is never a
    new way to fail, so its drops reach the others later, and reads after
    it may be stale until then (the writer's own link is down then, and
    so its cache bypassed). Those rounds are not judged; at least half of
    them must be, or the test would prove nothing. Every read after a
    delivered write is judged, by a worker whose link is up (it heard the
    drop) or down (its cache is bypassed)."""
    stale, judged = [], 0
    for n, key in zip(range(start, start + pairs), itertools.cycle(KEYS), strict=False):
        read(other, key)  # (the reads after earlier writes of the key filled the other workers)
        if not write(one, key, str(n)):
            continue
        for master in (other, one):
            answer = read_answer(master, key, "&fleet=1")
            judged += 1
            if (answer["item"] or {}).get("v") != str(n):
                stale.append((n, master.base, answer))
    assert judged >= pairs, f"only {judged} of {2 * pairs} reads were judged (after a delivered write)"
    return stale


def warm_up(*masters) -> None:
    """Every worker of the masters has joined the fleet, and uses its cache."""
    for master in masters:
        master.every_worker(lambda who: who["fleet"]["connected"] and who["cache"].get("fleet_link") != "down", timeout=WAIT)


def test_a_write_through_one_master_is_read_through_the_other_right_after(lab, redis, tmp_path):
    with (
        gunicorn_master(lab, redis.url, workers=WORKERS, env=settings(tmp_path / "one")) as one,
        gunicorn_master(lab, redis.url, workers=WORKERS, env=settings(tmp_path / "two")) as two,
    ):
        warm_up(one, two)
        assert stale_reads(one, two, PAIRS // 2) + stale_reads(two, one, PAIRS // 2, start=PAIRS) == []
        assert two.metric("regionproxy_fleet_invalidations_applied") > 0


def test_no_worker_answers_from_its_cache_while_redis_is_away_and_coherence_resumes_on_the_same_port(lab, redis, tmp_path):
    with (
        gunicorn_master(lab, redis.url, workers=WORKERS, env=settings(tmp_path / "one")) as one,
        gunicorn_master(lab, redis.url, workers=WORKERS, env=settings(tmp_path / "two")) as two,
    ):
        warm_up(one, two)
        for gap, (stop, back) in enumerate(((redis.kill, redis.start), (redis.pause, redis.resume)), start=1):
            for key in KEYS:  # cached in the workers that read them
                for _ in range(WORKERS):
                    assert read(one, key) == read(two, key)
            stop()
            try:
                # Served all along, from DynamoDB and (before a worker finds the
                # outage) its own cache: no error.
                for n, key in enumerate(KEYS):
                    write(one, key, f"gap{gap}-{n}")
                    assert read(one, key) is not None and read(two, key) is not None
                # Every worker finds the outage: a killed Redis at once (its
                # sockets close), a paused one by the ping its listener sends
                # after a second of silence, unanswered for a second more.
                for master in (one, two):
                    master.every_worker(lambda who: not who["fleet"]["connected"], timeout=WAIT)
                # Once it has, no worker answers from its cache a write its
                # link could not hear of (the writer's publish fails: nobody
                # hears it).
                for n, key in enumerate(KEYS):
                    write(one, key, f"gap{gap}-{n}-down")
                    for _ in range(WORKERS):
                        assert read(two, key) == f"gap{gap}-{n}-down" and read(one, key) == f"gap{gap}-{n}-down"
                # Each says so. Which worker served those reads is the kernel's
                # choice (one may have served none), so the reads bypassed are
                # counted over the fleet: every one of them was.
                for master in (one, two):
                    master.every_worker(lambda who: who["cache"]["fleet_link"] == "down", timeout=WAIT)
                bypassed = one.metric("regionproxy_cache_bypassed") + two.metric("regionproxy_cache_bypassed")
                assert bypassed >= 2 * WORKERS * len(KEYS)
            finally:
                back()
            # Every worker lost its subscription: each empties its cache once it is back, and uses it.
            for master in (one, two):
                master.every_worker(
                    lambda who, gap=gap: who["fleet"]["connected"] and who["fleet"]["cache"]["reconnect_flushes"] >= gap and who["cache"].get("fleet_link") != "down",
                    timeout=WAIT,
                )  # fmt: skip
            assert one.metric("regionproxy_fleet_reconnect_flushes") >= gap * WORKERS
            # What was written during the gap is read everywhere, and coherence is back.
            for n, key in enumerate(KEYS):
                assert read(two, key) == f"gap{gap}-{n}-down"
            assert stale_reads(one, two, 20, start=1000 * gap) == []
