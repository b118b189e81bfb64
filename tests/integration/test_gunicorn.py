"""Under gunicorn: a session built before the fork serves in every worker,
multiprocess metrics (the recipe in docs/reference/metrics.md) sum over the workers, and a
killed worker's breaker state leaves the scrape."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from regionproxy.testing import wait_for
from tests.support import LOCAL, REMOTE, TABLE, free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gunicorn"
# Generous: these are the healthy path, on a machine that may be loaded.
START_TIMEOUT, REQUEST_TIMEOUT = 60, 10
MAX_REQUESTS = 400


@contextlib.contextmanager
def gunicorn(lab, metrics_dir: Path, workers: int) -> Iterator[str]:
    """The example app under gunicorn with the example's config; its base URL."""
    lab.client(LOCAL).put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"S": "s"}, "v": {"S": "x"}})
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "REGIONPROXY_REGIONS": f"{LOCAL},{REMOTE}",
        "REGIONPROXY_ENDPOINTS": ",".join(f"{region}={url}" for region, url in lab.endpoints.items()),
        "APP_TABLE": TABLE,
        "PYTHONPATH": str(EXAMPLE),
    }
    command = [
        sys.executable, "-m", "gunicorn", "--preload", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
        "--config", str(EXAMPLE / "gunicorn.conf.py"), "--log-level", "warning", "app:application",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, cwd=EXAMPLE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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


def _item(base: str) -> dict:
    # A new connection each time, so that every worker may get requests.
    response = requests.get(f"{base}/item", timeout=REQUEST_TIMEOUT, headers={"Connection": "close"})
    assert response.status_code == 200
    assert response.json()["item"]["v"] == "x"
    return response.json()


def _families(base: str) -> dict:
    scraped = requests.get(f"{base}/metrics", timeout=REQUEST_TIMEOUT, headers={"Connection": "close"}).text
    return {family.name: family for family in text_string_to_metric_families(scraped)}


def _breaker_state(base: str, region: str) -> float | None:
    try:
        samples = _families(base)["regionproxy_breaker_state"].samples
    except requests.RequestException:
        return None  # between the killed worker and its replacement
    return next(sample.value for sample in samples if sample.labels["region"] == region)


def test_preloaded_session_serves_in_every_worker_and_metrics_sum(lab, tmp_path):
    with gunicorn(lab, tmp_path / "metrics", workers=2) as base:
        pids, made = set(), 0
        # Until both workers have served (the second may still be booting
        # when the first answers), bounded in count.
        while len(pids) < 2 and made < MAX_REQUESTS:
            pids.add(_item(base)["pid"])
            made += 1
        assert len(pids) == 2, "both workers served"
        families = _families(base)
    # The app's calls, not attempts: a slow attempt retried on a loaded
    # machine is still one call.
    total = sum(
        sample.value
        for sample in families["regionproxy_operations"].samples
        if sample.name.endswith("_total") and sample.labels["operation"] == "GetItem"
    )
    assert total == made, "the scrape of one worker sums every worker's calls"


def test_a_killed_workers_breaker_state_leaves_the_scrape(lab, tmp_path):
    with gunicorn(lab, tmp_path / "metrics", workers=1) as base:
        victim = _item(base)["pid"]
        evacuated = requests.post(
            f"{base}/_regionproxy/regions/{LOCAL}/evacuate",
            headers={"Accept": "application/json", "Connection": "close"},
            timeout=REQUEST_TIMEOUT,
        )
        assert evacuated.json()["breaker"] == "evacuated"
        # Evacuation is per process: only this worker's breaker is forced open.
        assert _breaker_state(base, LOCAL) >= 2  # open (2) or evacuated (3)
        os.kill(victim, signal.SIGKILL)
        # gunicorn reaps it (child_exit: mark_process_dead) and forks a
        # replacement, whose breaker is closed: only the dead one's gauge said open.
        assert wait_for(lambda: _breaker_state(base, LOCAL) == 0, timeout=START_TIMEOUT, interval=0.2), (
            "the killed worker's breaker state is still in the scrape"
        )
        assert _item(base)["pid"] != victim
