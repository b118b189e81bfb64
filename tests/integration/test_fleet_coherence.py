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
    # A new connection each time, so that every worker may get requests.
    response = requests.get(f"{base}/item/{key}", timeout=REQUEST_TIMEOUT, headers={"Connection": "close"})
    assert response.status_code == 200, response.text
    return response.json()["v"]


def write(base: str, key: str, value: str) -> None:
    response = requests.put(f"{base}/item/{key}/{value}", timeout=REQUEST_TIMEOUT, headers={"Connection": "close"})
    assert response.status_code == 200, response.text


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


def fleet_status(base: str) -> dict:
    status = requests.get(f"{base}/_regionproxy/status.json", timeout=REQUEST_TIMEOUT, headers={"Connection": "close"})
    fleet = status.json()["fleet"]
    return {name: fleet.get(name) for name in ("member", "received", "settled", "settle_timeouts", "reconnects", "cache")}


def stale_reads(one: str, other: str, pairs: int, start: int = 0) -> list[tuple[int, str, str | None]]:
    """``pairs`` rounds: both masters read a key (their workers cache it),
    one master writes it, both read it right after. The reads after the
    write that did not see it."""
    stale = []
    for n, key in zip(range(start, start + pairs), itertools.cycle(KEYS), strict=False):
        read(other, key)
        read(one, key)
        write(one, key, str(n))
        for base in (other, one):
            seen = read(base, key)
            if seen != str(n):
                stale.append((n, base, seen))
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
    """Every worker has read once (its link started) and listens: a write
    through each master is seen through the other (bounded)."""
    for base in (one, other):
        for _ in range(4 * WORKERS):
            read(base, "warm")
    for n, (a, b) in enumerate(((one, other), (other, one))):
        write(a, "warm", f"w{n}")
        assert wait_for(lambda b=b, n=n: all(read(b, "warm") == f"w{n}" for _ in range(WORKERS)), timeout=START_TIMEOUT)


def test_a_write_through_one_master_is_read_through_the_other_right_after(fleet_table, redis, tmp_path):
    with master(fleet_table, redis.url, tmp_path / "one") as one, master(fleet_table, redis.url, tmp_path / "two") as two:
        warm_up(one, two)
        stale = stale_reads(one, two, PAIRS // 2) + stale_reads(two, one, PAIRS // 2, start=PAIRS)
        assert stale == [], [fleet_status(base) for base in (one, two) for _ in range(WORKERS)]
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
            finally:
                back()
            # Every worker lost its subscription (a paused Redis is found by
            # the listener's ping): each empties its cache once it is back.
            for base in (one, two):
                assert wait_for(
                    lambda base=base, gap=gap: metric(base, "regionproxy_fleet_reconnect_flushes") >= gap * WORKERS,
                    timeout=START_TIMEOUT,
                ), "not every worker flushed its cache after the gap"
            # What was written during the gap is read everywhere (the flush), and coherence is back.
            for n, key in enumerate(KEYS):
                assert read(two, key) == f"gap{gap}-{n}"
            assert stale_reads(one, two, 30, start=1000 * gap) == []
