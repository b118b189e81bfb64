"""Under gunicorn: a session built before the fork serves in every worker,
and multiprocess metrics (the README's recipe) sum over the workers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TABLE

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gunicorn"
LOCAL, REMOTE = "eu-west-3", "us-east-1"
REQUESTS = 40


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_preloaded_session_serves_in_every_worker_and_metrics_sum(lab, tmp_path):
    lab.client(LOCAL).put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"S": "s"}, "v": {"S": "x"}})
    port = _free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "REGIONPROXY_REGIONS": f"{LOCAL},{REMOTE}",
        "REGIONPROXY_ENDPOINTS": ",".join(f"{region}={url}" for region, url in lab.endpoints.items()),
        "APP_TABLE": TABLE,
        "PYTHONPATH": str(EXAMPLE),
    }
    command = [
        sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--bind", f"127.0.0.1:{port}",
        "--config", str(EXAMPLE / "gunicorn.conf.py"), "--log-level", "warning", "app:application",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, cwd=EXAMPLE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/livez", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not start"
                time.sleep(0.1)
        pids = set()
        with requests.Session() as http:
            for _ in range(REQUESTS):
                # A new connection each time, so that both workers get requests.
                response = requests.get(f"http://127.0.0.1:{port}/item", timeout=5, headers={"Connection": "close"})
                assert response.status_code == 200
                assert response.json()["item"]["v"] == "x"
                pids.add(response.json()["pid"])
            scraped = http.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert len(pids) == 2, "both workers served"
        families = {family.name: family for family in text_string_to_metric_families(scraped)}
        total = sum(
            sample.value
            for sample in families["regionproxy_dynamodb_calls"].samples
            if sample.name.endswith("_total") and sample.labels["operation"] == "GetItem"
        )
        assert total == REQUESTS, "the scrape of one worker sums every worker's calls"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    assert "Traceback" not in output, output
