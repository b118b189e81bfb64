"""The soak: the Flask blog example under gunicorn (3 workers x 4 threads,
``--preload``) over the lab, reached by host name, a bounded constant-rate
load from a real HTTP client (``requests``) for ``SOAK_SECONDS`` (300 by
default; ``REGIONPROXY_SOAK_SECONDS``), while the local region fails and
heals on a schedule: refused, blackholed, answering 500s, slow, and its
name unresolvable, each held ``PHASE`` seconds then healed as long.

Asserts: no 5xx (nor a failed connection) for any read; every write the
client was told succeeded (201) is in both regions exactly once, and no
other write is there more than once; the workers' resident memory and
thread count at the end are not growing past a generous bound from the
middle of the soak (start, middle and end reported in
``test-artifacts/soak.json`` and printed); at the
end every worker the status page reaches says the local breaker is closed.

Slow: ``pytest -m slow tests/integration/test_soak_gunicorn.py``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from regionproxy.testing.examples import load_blog_model, prepare_blog
from regionproxy.testing.lab import wait_for
from tests.support import GUNICORN_START_TIMEOUT, LOCAL, REMOTE, free_port

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("REGIONPROXY_SOAK_SECONDS", "300"))
RATE = 15.0  # requests per second, constant
WRITE_EVERY = 5  # one request in five is a write
PHASE = 15.0  # seconds each fault is held, then healed
WARM_UP, COOL_DOWN = 20.0, 25.0
WORKERS, THREADS = 3, 4
ALL_FAULTS = {
    "refuse": {},
    "blackhole": {},
    "error": {"status": 500},
    "latency": {"delay": 0.3},
    "unresolvable": {},
}
# REGIONPROXY_SOAK_FAULTS: the modes to cycle through (a comma list, in
# order), e.g. "blackhole" to repeat one phase; all five by default.
FAULTS = [(mode, ALL_FAULTS[mode]) for mode in os.environ.get("REGIONPROXY_SOAK_FAULTS", ",".join(ALL_FAULTS)).split(",")]
# 2 s, not 1 s: the healthy region's server (in-process moto and its proxy,
# in this test's process) misses 1 s when the machine starves this process
# of CPU. Diagnosed with REGIONPROXY_SOAK_EVENTS and the pause watch below:
# at 1 s, two runs of five had 503s, each a read whose local attempt timed
# out (blackholed) or was refused (breaker open) and whose remote attempt
# timed out while every worker's remote calls stalled together and then
# finished in one burst; in one, this process got 33 ms of CPU in 2.9 s of
# wall time around the 503s (load average 7.5 on 2 cores): not running, not
# garbage-collecting (its collections took under 0.2 s). The session did
# what it must: both regions failed the read in time.
READ_TIMEOUT = os.environ.get("REGIONPROXY_SOAK_READ_TIMEOUT", "2.0")
PAUSE = 0.15  # seconds this process's pause watch must miss its 10 ms tick by to record a pause
EVENTS = os.environ.get("REGIONPROXY_SOAK_EVENTS")  # a directory: every worker's events (soak_app.py)
HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parents[1] / "test-artifacts"
REQUEST_TIMEOUT = 15.0


def _children(pid):
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return sorted(kids)


def _usage(pid):
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_kb": int(status["VmRSS"].split()[0]), "threads": int(status["Threads"])}


def _workers_usage(master):
    return {pid: _usage(pid) for pid in _children(master)}


@pytest.fixture
def blog(lab, tmp_path):
    prepare_blog(lab)
    lab.wait_replicated(30)
    port = free_port()
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("REGIONPROXY_")},
        **lab.resolver_environment(tmp_path / "unresolvable"),
        "REGIONPROXY_REGIONS": f"{LOCAL},{REMOTE}",
        "REGIONPROXY_ENDPOINTS": ",".join(f"{r}={url}" for r, url in lab.named_endpoints.items()),
        "REGIONPROXY_CONNECT_TIMEOUT": "1.0",
        # The healthy region answers from an in-process moto on a loaded
        # machine: a generous read timeout (MOTO.md, READ_TIMEOUT); a blackhole costs it.
        "REGIONPROXY_READ_TIMEOUT": READ_TIMEOUT,
        "REGIONPROXY_BREAKER_FAIL_MAX": "3",
        "REGIONPROXY_BREAKER_RESET_TIMEOUT": "3",
        "REGIONPROXY_PROBE_INTERVAL": "0.5",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        **({"REGIONPROXY_SOAK_EVENTS": EVENTS} if EVENTS else {}),
    }
    command = [
        sys.executable, "-m", "gunicorn", "--preload", "--workers", str(WORKERS), "--threads", str(THREADS),
        "--worker-class", "gthread", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
        "--graceful-timeout", "5", "--timeout", "60", "soak_app:application",
    ]  # fmt: skip
    log = open(tmp_path / "gunicorn.log", "w+")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, env=env, cwd=HERE, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def answers():
        try:
            return requests.get(f"{base}/livez", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        assert wait_for(lambda: answers() or process.poll() is not None, timeout=GUNICORN_START_TIMEOUT, interval=0.2)
        assert process.poll() is None, "gunicorn exited"
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.seek(0)
        output = log.read()
        log.close()
        assert "Traceback" not in output, output[-4000:]


def test_soak_under_gunicorn_with_the_local_region_failing_and_healing(lab, blog):
    base, master = blog
    model = load_blog_model()
    local = threading.local()

    def http():
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    outcomes = collections.Counter()
    writes: dict[str, int] = {}
    read_failures: list[str] = []
    lock = threading.Lock()

    def one(n):
        if n % WRITE_EVERY == 0:
            token = f"soak-{uuid.uuid4().hex}"
            try:
                status = http().post(
                    f"{base}/posts", json={"title": token, "body": "soak", "author_id": "ada"}, timeout=REQUEST_TIMEOUT
                ).status_code
            except requests.RequestException as error:
                status = type(error).__name__
            with lock:
                writes[token] = status
                outcomes[("write", status)] += 1
            return
        sent = time.time()
        try:
            status = http().get(f"{base}/posts/post-{n % 5 + 1}", timeout=REQUEST_TIMEOUT).status_code
        except requests.RequestException as error:
            status = type(error).__name__
        with lock:
            outcomes[("read", status)] += 1
            if status != 200:  # wall-clock times, to find it among the workers' events
                read_failures.append(f"{n}: {status}, sent {sent:.3f}, answered {time.time():.3f}")

    stop = threading.Event()
    schedule: list[tuple[float, str]] = []
    pauses: list[tuple[float, float, float]] = []  # (from, to) wall clock, CPU seconds this process had meanwhile

    def watch_pauses():
        # This process serves the healthy region: when it does not run, that
        # region cannot answer. Bounded by the soak's stop.
        last, cpu = time.time(), time.process_time()
        while not stop.wait(0.01):
            now, now_cpu = time.time(), time.process_time()
            if now - last > PAUSE:
                pauses.append((round(last, 3), round(now, 3), round(now_cpu - cpu, 3)))
            last, cpu = now, now_cpu

    watcher = threading.Thread(target=watch_pauses, name="soak-pauses", daemon=True)
    watcher.start()

    def faults(started):
        # Healthy warm-up, then each fault held PHASE s and healed PHASE s,
        # in turn, until the cool-down; healed at the end whatever happens.
        try:
            if stop.wait(WARM_UP):
                return
            n = 0
            while time.monotonic() - started < SOAK_SECONDS - COOL_DOWN - 2 * PHASE:
                mode, params = FAULTS[n % len(FAULTS)]
                lab.fault(LOCAL, mode, **params)
                schedule.append((round(time.monotonic() - started, 1), mode))
                if stop.wait(PHASE):
                    return
                lab.heal(LOCAL)
                schedule.append((round(time.monotonic() - started, 1), "healed"))
                if stop.wait(PHASE):
                    return
                n += 1
        finally:
            lab.heal(LOCAL)

    started = time.monotonic()
    faulter = threading.Thread(target=faults, args=(started,), name="soak-faults")
    faulter.start()
    total = int(SOAK_SECONDS * RATE)
    usage_start = usage_mid = None
    try:
        with concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="soak-client") as pool:
            pending = []
            for n in range(total):  # bounded by count; each slot at its time
                delay = started + n / RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if usage_start is None and time.monotonic() - started >= WARM_UP - 2:
                    usage_start = _workers_usage(master)
                if usage_mid is None and time.monotonic() - started >= SOAK_SECONDS / 2:
                    usage_mid = _workers_usage(master)
                pending.append(pool.submit(one, n))
            for future in pending:
                future.result(timeout=REQUEST_TIMEOUT * 4)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        faulter.join(timeout=30)
    usage_end = _workers_usage(master)

    # Every worker the status page reaches says the local breaker is closed.
    def all_closed():
        seen = []
        for _ in range(3 * WORKERS * THREADS):
            status = http().get(f"{base}/_regionproxy/status.json", timeout=REQUEST_TIMEOUT).json()
            seen.append(status["regions"][LOCAL]["breaker"])
        return set(seen) == {"closed"}

    consistent = wait_for(all_closed, timeout=60, interval=1)

    lab.wait_replicated(60)
    counts = {}
    for region in (LOCAL, REMOTE):
        client = lab.client(region, direct=True)
        titles = collections.Counter()
        for page in client.get_paginator("scan").paginate(TableName=model.TABLE):
            for item in page["Items"]:
                title = item.get("title", {}).get("S", "")
                if title.startswith("soak-"):
                    titles[title] += 1
        counts[region] = titles

    note = {
        "seconds": round(elapsed, 1),
        "rate_per_s": RATE,
        "requests": total,
        "outcomes": {f"{kind} {status}": count for (kind, status), count in sorted(outcomes.items(), key=str)},
        "schedule": schedule,
        "workers_start": usage_start,
        "workers_mid": usage_mid,
        "workers_end": usage_end,
        "breakers_consistent_at_end": consistent,
        "test_process_pauses": len(pauses),
        "longest_pause_s": max((to - start for start, to, _ in pauses), default=0.0),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "soak.json").write_text(json.dumps(note, indent=2, default=str))
    print(json.dumps(note, indent=2, default=str))

    # With each failed read, this process's pauses around it (the healthy
    # region's server did not run then: see READ_TIMEOUT).
    assert read_failures == [], (read_failures[:20], pauses[-40:])
    acknowledged = [token for token, status in writes.items() if status == 201]
    assert len(acknowledged) >= len(writes) * 0.9, "most writes succeed"  # failed-over writes are acknowledged too
    for region in (LOCAL, REMOTE):
        lost = [t for t in acknowledged if counts[region][t] != 1]
        assert lost == [], (region, lost[:10], [counts[region][t] for t in lost[:10]])
        assert all(count == 1 for count in counts[region].values()), "a write applied twice"
    assert consistent, "a worker's local breaker is not closed at the end"
    # Flat: the same workers throughout; from the middle (every worker has
    # served and filled its thread pool by then) to the end, threads and
    # memory within a generous bound.
    assert set(usage_end) == set(usage_start) == set(usage_mid), (usage_start, usage_mid, usage_end)
    for pid, start in usage_mid.items():
        end = usage_end[pid]
        assert end["threads"] <= start["threads"] + 2 * THREADS, (pid, start, end)
        assert end["rss_kb"] <= start["rss_kb"] * 1.5 + 30_000, (pid, start, end)
