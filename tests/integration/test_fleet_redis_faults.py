"""Redis is never a new way to fail: a fleet under gunicorn (two masters of
two workers, one lab) keeps answering every request, none slower than the
Redis timeout plus the call, while its redis-server is paused (SIGSTOP) and
then killed; what a worker decided meanwhile reaches the fleet when Redis is
back, and sharing resumes on the same port."""

from __future__ import annotations

import threading
import time

from regionproxy._regions.breaker import CLOSED, EVACUATED
from tests.support import LOCAL, gunicorn_master

SETTINGS = {
    # Half the local region's answers are 500s: each is a fault the fleet
    # counts in Redis (fail_max is never reached), so requests use Redis
    # while it is paused and killed.
    "REGIONPROXY_BREAKER_FAIL_MAX": "1000",
    "REGIONPROXY_ATTEMPTS": "1",
    "REGIONPROXY_READ_TIMEOUT": "5",  # no region is slow here: a loaded machine must not make one so
    "FLEET_APP_PROBE_INTERVAL": "0.5",
}
PAUSE = 3.0  # seconds Redis is stopped, then down
SLOWEST = 2.0  # a request that waited for Redis to come back would take up to PAUSE


class Traffic:
    """Reads through both masters from a few threads until stopped (bounded)."""

    def __init__(self, masters, threads=4, limit=5000):
        self.masters, self.limit = masters, limit
        self.answers = []  # (status, seconds)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in self._threads)

    def _run(self, n):
        for i in range(self.limit):
            if self._stop.is_set():
                return
            started = time.monotonic()
            try:
                status = self.masters[(n + i) % len(self.masters)].get(f"/item?k=k{n}").status_code
            except Exception as error:  # noqa: BLE001 - counted as unanswered
                status = repr(error)
            self.answers.append((status, time.monotonic() - started))


def test_a_paused_then_killed_redis_costs_no_request_and_sharing_resumes(lab, redis):
    lab.fault(LOCAL, "error", status=500, rate=0.5)
    with (
        gunicorn_master(lab, redis.url, env=SETTINGS) as one,
        gunicorn_master(lab, redis.url, env=SETTINGS) as two,
    ):
        masters = (one, two)
        for master in masters:
            master.every_worker(lambda who: who["fleet"]["connected"])
        with Traffic(masters) as traffic:
            time.sleep(0.3)
            redis.pause()
            try:
                time.sleep(PAUSE / 2)
                began = time.monotonic()
                one.act(LOCAL, "evacuate")  # answered without Redis, sent when it is back
                assert time.monotonic() - began < SLOWEST
                time.sleep(PAUSE / 2)
                for master in masters:
                    assert master.get("/who").json()["fleet"]["connected"] is False
            finally:
                redis.resume()
            for master in masters:
                master.every_worker(lambda who: who["breakers"][LOCAL] == EVACUATED and who["fleet"]["connected"])

            redis.kill()
            time.sleep(PAUSE)
            for master in masters:
                assert master.get("/who").json()["fleet"]["connected"] is False
            redis.start()  # the same port, empty: the fleet asserts its evacuation again
            for master in masters:
                master.every_worker(lambda who: who["fleet"]["connected"])
            two.act(LOCAL, "restore")
            for master in masters:
                master.every_worker(lambda who: who["breakers"][LOCAL] == CLOSED)
            time.sleep(0.3)
        unanswered = [status for status, _ in traffic.answers if status != 200]
        assert unanswered == [] and len(traffic.answers) > 100
        assert max(seconds for _, seconds in traffic.answers) < SLOWEST
