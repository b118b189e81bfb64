"""Two gunicorn masters, several workers each, over one lab and one Redis:
a write through one master is read through the other right after, with
no stale read; after Redis is killed and started again on the same port,
or paused and resumed, every worker has emptied its cache and coherence
resumes.

Without the fleet's drops, or without the request settling first
(:meth:`regionproxy.RegionSession.settle`), the first test fails: 1 to 5
of its 400 reads after a write were stale in runs on a loaded 2-core
machine."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from regionproxy.testing import wait_for
from tests.support import LOCAL, REMOTE, free_port

APP = Path(__file__).resolve().parent / "fleet_app"
TABLE = "FleetItems"
WORKERS = 3
PAIRS = 200
KEYS = ("a", "b", "c")
# Generous: these are the healthy path, on a machine that may be loaded.
START_TIMEOUT, REQUEST_TIMEOUT = 60, 10
PING_AFTER = 1.0  # FleetLink's default: an idle listener pings Redis after this much silence


@contextlib.contextmanager
def master(lab, redis_url: str | None, metrics_dir: Path) -> Iterator[str]:
    """The fleet app under one gunicorn master with WORKERS workers; its base URL."""
    metrics_dir.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "REGIONPROXY_REGIONS": f"{LOCAL},{REMOTE}",
        "REGIONPROXY_ENDPOINTS": ",".join(f"{region}={url}" for region, url in lab.endpoints.items()),
        "REGIONPROXY_CACHE_TTL": "60",
        "REGIONPROXY_KEY_SCHEMAS": f"{TABLE}=pk",
        "APP_TABLE": TABLE,
        "PYTHONPATH": os.pathsep.join([str(APP), os.environ.get("PYTHONPATH", "")]),
    }
    if redis_url is not None:
        env["REGIONPROXY_FLEET_URL"] = redis_url
        env["REGIONPROXY_FLEET_NAME"] = "coherence-test"
    command = [
        sys.executable, "-m", "gunicorn", "--preload", "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning", "fleet_app:application",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, cwd=APP, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: _answers(base) or server.poll() is not None, timeout=START_TIMEOUT, interval=0.1)
        assert server.poll() is None, "gunicorn did not start"
        yield base
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "Traceback" not in output, output


def _answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/livez", timeout=REQUEST_TIMEOUT).status_code == 200
    except requests.RequestException:
        return False


def read(base: str, key: str) -> str | None:
    return read_answer(base, key)["v"]


def read_answer(base: str, key: str, query: str = "") -> dict:
    # A new connection each time, so that every worker may get requests.
    response = requests.get(f"{base}/item/{key}{query}", timeout=REQUEST_TIMEOUT, headers={"Connection": "close"})
    assert response.status_code == 200, response.text
    return response.json()


def write(base: str, key: str, value: str) -> bool:
    """Whether the write's drops reached the fleet before it returned (its
    publish was taken by Redis within the link's timeout)."""
    response = requests.put(f"{base}/item/{key}/{value}", timeout=REQUEST_TIMEOUT, headers={"Connection": "close"})
    assert response.status_code == 200, response.text
    return response.json()["delivered"]


def metric(base: str, name: str) -> float:
    """The sum of ``name`` over every worker of a master (multiprocess metrics)."""
    scraped = requests.get(f"{base}/metrics", timeout=REQUEST_TIMEOUT, headers={"Connection": "close"}).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(scraped)
        if family.name == name
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def every_worker(base: str, check) -> bool:
    """Whether ``check(fleet)`` holds for the latest ``/fleet`` answer of
    each of the master's WORKERS workers (polled until it does, bounded)."""
    latest: dict[int, dict] = {}

    def all_pass() -> bool:
        fleet = requests.get(f"{base}/fleet", timeout=REQUEST_TIMEOUT, headers={"Connection": "close"}).json()
        latest[fleet["pid"]] = fleet
        return len(latest) == WORKERS and all(check(answer) for answer in latest.values())

    return wait_for(all_pass, timeout=START_TIMEOUT, interval=0.02)


def stale_reads(one: str, other: str, pairs: int, start: int = 0) -> list[tuple[int, str, str | None]]:
    """``pairs`` rounds: the other master reads a key (a worker caches it),
    one master writes it, both read it right after (their workers cache it). The reads after a
    delivered write that did not see it, with what the worker's fleet link had done.

    A write whose publish Redis did not take within the link's timeout (a
    loaded machine, Redis just back) returns all the same: Redis is never a
    new way to fail, so its drops reach the others later, and reads after it
    may be stale until then. Likewise a worker whose own link is down when
    it reads (a 50 ms timeout missed under load: it reconnects, and empties
    its cache then) serves from its own cache meanwhile. Those reads are not
    judged; at least half of them must be, or the test would prove nothing."""
    stale, judged = [], 0
    for n, key in zip(range(start, start + pairs), itertools.cycle(KEYS), strict=False):
        read(other, key)  # (the reads after earlier writes of the key filled the other workers)
        if not write(one, key, str(n)):
            continue
        for base in (other, one):
            answer = read_answer(base, key, "?fleet")
            if not answer["fleet"]["connected"]:
                continue
            judged += 1
            if answer["v"] != str(n):
                stale.append((n, base, answer))
    assert judged >= pairs, f"only {judged} of {2 * pairs} reads were judged (a delivered write, a connected reader)"
    return stale


@pytest.fixture
def fleet_table(local_regions):
    local_regions.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    return local_regions


def warm_up(one: str, other: str) -> None:
    """Every worker of both masters has joined the fleet and listens."""
    for base in (one, other):
        assert every_worker(base, lambda fleet: fleet["connected"]), "not every worker joined the fleet"


def test_a_write_through_one_master_is_read_through_the_other_right_after(fleet_table, redis, tmp_path):
    with master(fleet_table, redis.url, tmp_path / "one") as one, master(fleet_table, redis.url, tmp_path / "two") as two:
        warm_up(one, two)
        assert stale_reads(one, two, PAIRS // 2) + stale_reads(two, one, PAIRS // 2, start=PAIRS) == []
        assert metric(two, "regionproxy_fleet_invalidations_applied") > 0


def test_coherence_resumes_after_redis_is_killed_or_paused_and_back_on_the_same_port(fleet_table, redis, tmp_path):
    with master(fleet_table, redis.url, tmp_path / "one") as one, master(fleet_table, redis.url, tmp_path / "two") as two:
        warm_up(one, two)
        for gap, (stop, back) in enumerate(((redis.kill, redis.start), (redis.pause, redis.resume)), start=1):
            stop()
            try:
                # Served all along, from each worker's own cache and DynamoDB: no error.
                for n, key in enumerate(KEYS):
                    write(one, key, f"gap{gap}-{n}")
                    assert read(one, key) is not None and read(two, key) is not None
                # Long enough for every idle listener to find the pause by
                # its ping (after 1 s of silence): a shorter one, unnoticed,
                # loses nothing (Redis delivers what it took once it runs).
                wait_for(lambda: False, timeout=PING_AFTER + 1.5)
            finally:
                back()
            # Every worker lost its subscription (a paused Redis is found by
            # the listener's ping): each empties its cache once it is back.
            for base in (one, two):
                assert every_worker(base, lambda fleet, gap=gap: fleet["connected"] and fleet["flushes"] >= gap), (
                    "not every worker flushed its cache after the gap"
                )
            assert metric(one, "regionproxy_fleet_reconnect_flushes") >= gap * WORKERS
            # What was written during the gap is read everywhere (the flush), and coherence is back.
            for n, key in enumerate(KEYS):
                assert read(two, key) == f"gap{gap}-{n}"
            assert stale_reads(one, two, 20, start=1000 * gap) == []
