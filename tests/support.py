"""What many tests share, in one place: the lab's regions and table, a fake
clock, a free port, a closed port and a session on it, a hello WSGI app, and
running a check in a forked child.

It also runs a fleet under gunicorn (:func:`gunicorn_master`: masters of
``tests/fleet_app.py`` over one lab and one Redis).

A plain module: import what a test needs (``from tests.support import LOCAL,
FakeClock``). The fixtures built on it (``clock``, ``lab``) are in
``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

import pytest

import regionproxy as rp
from regionproxy.testing import servers

# The lab's two regions: the ``local_regions`` fixture's default (the
# ``--regions`` option of regionproxy's pytest plugin), local one first.
LOCAL, REMOTE = "eu-west-3", "us-east-1"
REGIONS = (LOCAL, REMOTE)

# The one table the ``lab`` fixture creates in every region.
TABLE = "Items"
# Sessions of a fleet in tests: seconds each Redis operation may take. The
# fault under test is a region's (or Redis gone), never Redis's speed: the
# production 50 ms is missed by a Lua script on a loaded machine, and a
# fault count or evacuation that did not reach Redis then fails a test for
# the machine's sake. The link's own timeouts are tested in
# tests/_fleet/test_link.py with their own values.
FLEET_TIMEOUT = 1.0
KEY_SCHEMA = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
}

CHILD_TIMEOUT = 20.0  # generous: the child of a busy test process starts slowly


class FakeClock:
    """A clock that moves only when a test moves it (``clock.now += 10``).

    Every clock regionproxy takes is a plain callable that returns seconds
    (``clock=``, ``monotonic=``, ``wall_clock=``), so one fake serves them
    all, the wall clock and the monotonic one alike.

    :param now: the first reading. Not zero by default, so that code which
        takes 0 for "never" is caught; a test that sets absolute readings
        (``clock.now = 5.1``) starts from the one it counts from.
    """

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now!r})"


def free_port() -> int:
    """A loopback port nothing is bound to now, for a server a test starts
    in another process (gunicorn, an example app) to bind.

    Chosen outside the ports the kernel hands out, which any process (another
    pytest-xdist worker) may take between now and the server's bind: see
    :func:`regionproxy.testing.servers.free_port`."""
    return servers.free_port("127.0.0.1")


@functools.cache
def _held_closed_port() -> socket.socket:
    # Bound and never listening: a connection to it is refused (RST), and
    # no other socket of any process can take the port while this process
    # lives (a port merely read and released could become another worker's
    # fault proxy, and answer).
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    return held


def closed_port_url() -> str:
    """An endpoint URL on loopback where nothing listens, and nothing will
    while this test process runs: every connection is refused at once, and
    nothing leaves the machine. One port per process, held bound."""
    return f"http://127.0.0.1:{_held_closed_port().getsockname()[1]}"


@contextlib.contextmanager
def closed_port_session(regions: Iterable[str] = REGIONS, **options: Any) -> Iterator[rp.RegionSession]:
    """A session whose regions are all a closed port: for what needs a
    session and no DynamoDB (the web surface, option checks). A call through
    it fails over and then fails everywhere. Closed on the way out."""
    regions = list(regions)
    endpoint = closed_port_url()
    session = rp.RegionSession(regions, endpoints=dict.fromkeys(regions, endpoint), **options)
    try:
        yield session
    finally:
        session.close()


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The app a middleware wraps in tests: answers ``the app`` to anything."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "7")])
    return [b"the app"]


def in_child(check: Callable[[], object], timeout: float = CHILD_TIMEOUT) -> None:
    """Run ``check()`` in a forked child; fail if it raises or outlives ``timeout``.

    The child reports through its exit code and a pipe for the traceback;
    the parent waits for it with a bound and kills a child that hangs, so a
    deadlock fails the test instead of hanging the run."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            check()
            code = 0
        except BaseException:  # noqa: BLE001 - reported to the parent
            os.write(write_end, traceback.format_exc()[-4000:].encode())  # below a pipe's buffer
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the forked child hung (killed after {timeout:.0f} s)")
            time.sleep(0.02)
        report = os.read(read_end, 8192).decode(errors="replace")
    finally:
        os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0, f"the child failed:\n{report}"


def bounded(target, timeout=10.0):
    """``target()``'s result, run in a daemon thread; fails instead of hanging."""
    out = []
    thread = threading.Thread(target=lambda: out.append(target()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the reader waited without a bound"
    return out[0]


RESPONSE_METADATA = frozenset({"ResponseMetadata"})


def canonical(value: Any, volatile: frozenset[str] = RESPONSE_METADATA) -> Any:
    """``value`` in a form where equal means identical: types kept,
    ``Decimal`` by its digits (``1.50`` is not ``1.5``), sets unordered,
    the keys in ``volatile`` left out of every dict."""
    from boto3.dynamodb.types import Binary

    if isinstance(value, dict):
        return {key: canonical(item, volatile) for key, item in value.items() if key not in volatile}
    if isinstance(value, list | tuple):
        return [canonical(item, volatile) for item in value]
    if isinstance(value, set | frozenset):
        return ("set", sorted((canonical(item, volatile) for item in value), key=repr))
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    if isinstance(value, Binary):
        return ("Binary", bytes(value))
    return (type(value).__name__, value)


def outcome(scenario: Callable[[Any], Any], api: Any, volatile: frozenset[str] = RESPONSE_METADATA) -> tuple[Any, ...]:
    """What ``scenario(api)`` returned or raised, in :func:`canonical` form,
    so that boto3 and the session can be compared side by side."""
    from botocore.exceptions import ClientError

    try:
        return ("returned", canonical(scenario(api), volatile))
    except ClientError as error:
        return ("raised", type(error).__name__, str(error), canonical(error.response, volatile))
    except Exception as error:  # noqa: BLE001 - client-side errors must match too
        return ("raised", type(error).__name__, str(error))


# -- a fleet under gunicorn: masters of tests/fleet_app.py over one lab and one Redis --

FLEET_APP_TOKEN = "fleet-admin-token-0123456789"
GUNICORN_START_TIMEOUT = 60.0  # generous: a loaded machine imports boto3 slowly
HTTP_TIMEOUT = 10.0


class Master:
    """One gunicorn master of ``tests/fleet_app.py``: its base URL, its
    number of workers, and requests to it (a new connection each, so that
    every worker may get one)."""

    def __init__(self, base: str, workers: int, process: Any) -> None:
        self.base = base
        self.workers = workers
        self.process = process

    def __repr__(self) -> str:
        return f"Master({self.base!r}, workers={self.workers})"

    def get(self, path: str, **options: Any) -> Any:
        import requests

        return requests.get(self.base + path, timeout=HTTP_TIMEOUT, headers={"Connection": "close"}, **options)

    def post(self, path: str, **options: Any) -> Any:
        import requests

        return requests.post(self.base + path, timeout=HTTP_TIMEOUT, headers={"Connection": "close"}, **options)

    def act(self, region: str, action: str) -> dict[str, Any]:
        """Evacuate or restore ``region`` through one worker's admin surface."""
        import requests

        response = requests.post(
            f"{self.base}/_regionproxy/regions/{region}/{action}",
            timeout=HTTP_TIMEOUT,
            headers={"Authorization": f"Bearer {FLEET_APP_TOKEN}", "Accept": "application/json", "Connection": "close"},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def metric(self, name: str) -> float:
        """The sum of the counter ``name`` over every worker of the master
        (``PROMETHEUS_MULTIPROC_DIR`` set for it: multiprocess metrics)."""
        import requests
        from prometheus_client.parser import text_string_to_metric_families

        scraped = requests.get(
            f"{self.base}/metrics",
            timeout=HTTP_TIMEOUT,
            headers={"Authorization": f"Bearer {FLEET_APP_TOKEN}", "Connection": "close"},
        )
        assert scraped.status_code == 200, scraped.text
        return sum(
            sample.value
            for family in text_string_to_metric_families(scraped.text)
            if family.name == name
            for sample in family.samples
            if sample.name.endswith("_total")
        )

    def every_worker(self, check: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict[int, dict[str, Any]]:
        """``/who`` of each worker, once every worker's latest answer passes
        ``check``; fails after ``timeout`` (the answers then in the message)."""
        latest: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.get("/who").json()
            latest[body["pid"]] = body
            alive = {pid: seen for pid, seen in latest.items() if _alive(pid)}
            if len(alive) >= self.workers and sum(check(seen) for seen in alive.values()) >= self.workers:
                return alive
            time.sleep(0.01)
        pytest.fail(f"not every worker of {self} passed within {timeout:.0f} s: {latest}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def gunicorn_master(lab: Any, fleet_url: str | None, *, workers: int = 2, env: dict[str, str] | None = None) -> Iterator[Master]:
    """``tests/fleet_app.py`` under gunicorn (``--preload``, ``workers``
    sync workers) over ``lab``, in the fleet of ``fleet_url`` (None: no
    fleet). ``env`` adds or overrides ``REGIONPROXY_*`` and ``FLEET_APP_*``
    variables. Stopped on the way out; a traceback in its output fails."""
    import subprocess
    import sys
    from pathlib import Path

    import requests

    here = Path(__file__).resolve().parent
    port = free_port()
    variables = {
        **os.environ,
        "REGIONPROXY_REGIONS": ",".join(lab.regions),
        "REGIONPROXY_ENDPOINTS": ",".join(f"{region}={url}" for region, url in lab.endpoints.items()),
        "FLEET_APP_TOKEN": FLEET_APP_TOKEN,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(here), os.environ.get("PYTHONPATH")])),
        **({"REGIONPROXY_FLEET_URL": fleet_url} if fleet_url else {}),
        **(env or {}),
    }
    command = [
        sys.executable, "-m", "gunicorn", "--preload", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning", "--graceful-timeout", "2", "fleet_app:application",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=variables, cwd=here, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    master = Master(f"http://127.0.0.1:{port}", workers, process)

    def answers() -> bool:
        try:
            return requests.get(f"{master.base}/livez", timeout=HTTP_TIMEOUT).status_code == 200
        except requests.RequestException:
            return False

    try:
        deadline = time.monotonic() + GUNICORN_START_TIMEOUT
        while not answers():
            assert process.poll() is None, f"gunicorn exited: {process.communicate(timeout=10)[0]}"
            assert time.monotonic() < deadline, "gunicorn did not answer in time"
            time.sleep(0.1)
        yield master
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate(timeout=10)
    assert "Traceback" not in output, output


@contextlib.contextmanager
def moto_table(table: str, credentials: dict[str, str]) -> Iterator[Any]:
    """In-process DynamoDB (moto's ``mock_aws``) with ``table`` (hash key
    ``p``, a string) in LOCAL and REMOTE, for pure-logic tests; yields
    the boto3 session that made it."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        boto = boto3.session.Session(**credentials)
        for region in (LOCAL, REMOTE):
            boto.client("dynamodb", region_name=region).create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "p", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "p", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        yield boto
