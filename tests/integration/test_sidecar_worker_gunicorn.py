"""The sidecar's worker class under gunicorn's own master: a SIGTERM with a
request in flight (answered, then the worker exits), and ``max_requests``
(the worker is replaced and serving goes on), over loopback."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support import free_port

WORKER = "regionproxy._sidecar.worker.SidecarWorker"


@contextlib.contextmanager
def gunicorn(tmp_path: Path, *options: str) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    port = free_port()
    entered = tmp_path / "entered"
    env = {**os.environ, "REGIONPROXY_TEST_ENTERED": str(entered), "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", WORKER, "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2",
         "--graceful-timeout", "20", *options, "tests.integration.gunicorn_app:app"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for _ in range(300):  # bounded: 30 s
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            try:
                _get(port, "/")
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("gunicorn did not start in 30 s")
        yield child, port, entered
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def _get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_sigterm_with_a_request_in_flight_answers_it_then_exits(tmp_path):
    with gunicorn(tmp_path) as (child, port, entered):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/slow")
        for _ in range(300):  # bounded: 30 s, until the app has the request
            if entered.exists():
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        response = connection.getresponse()
        assert response.status == 200 and response.read().decode() == entered.read_text()
        assert response.getheader("Connection") == "close"
        assert child.wait(timeout=30) == 0
        assert "Traceback" not in (child.stderr.read() if child.stderr else "")


def test_max_requests_replaces_the_worker_and_serving_goes_on(tmp_path):
    with gunicorn(tmp_path, "--max-requests", "3") as (child, port, _):
        pids = [_get(port, "/")[1] for _ in range(8)]
        assert len(set(pids)) >= 2  # a new worker took over after three requests
        assert all(pid.isdigit() for pid in pids)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 0
