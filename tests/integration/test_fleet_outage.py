"""A blackholed region under a fleet (two gunicorn masters of two workers,
one lab, one redis-server): the whole fleet pays ``fail_max`` timed-out reads
(and the ones already in flight), not each worker; then one trial per
``reset_timeout`` reaches the region, counted at the lab's proxy."""

from __future__ import annotations

import concurrent.futures
import time

from regionproxy._regions.breaker import OPEN
from tests.support import LOCAL, gunicorn_master

# The read timeout is what a blackholed read costs, and what the healthy
# region (in this test process, on a loaded machine) must answer within; the
# reset timeout is longer than the reads that find the outage take.
FAIL_MAX, READ_TIMEOUT, RESET_TIMEOUT = 3, 1.0, 2.5
MASTERS, WORKERS = 2, 2
SETTINGS = {
    "REGIONPROXY_BREAKER_FAIL_MAX": str(FAIL_MAX),
    "REGIONPROXY_BREAKER_RESET_TIMEOUT": str(RESET_TIMEOUT),
    "REGIONPROXY_CONNECT_TIMEOUT": "1.0",
    "REGIONPROXY_READ_TIMEOUT": str(READ_TIMEOUT),
    "REGIONPROXY_ATTEMPTS": "1",
    "FLEET_APP_PROBE_INTERVAL": "5",  # the reads find the outage here
}


def _blackholed(lab, since):
    return [r for r in lab.requests(LOCAL)[since:] if r.action == "blackholed"]


def test_a_blackholed_region_costs_the_fleet_fail_max_timeouts_then_one_trial_per_reset_timeout(lab, redis):
    with (
        gunicorn_master(lab, redis.url, workers=WORKERS, env=SETTINGS) as one,
        gunicorn_master(lab, redis.url, workers=WORKERS, env=SETTINGS) as two,
    ):
        masters = (one, two)
        for master in masters:
            master.every_worker(lambda who: who["fleet"]["connected"])
        since = len(lab.requests(LOCAL))
        lab.fault(LOCAL, "blackhole")

        def read(n):
            response = masters[n % MASTERS].get(f"/item?k=k{n}")
            assert response.status_code == 200, response.text  # served by the remote region

        # Enough reads for every worker to pay fail_max timeouts if it
        # learned the outage alone; at most one in flight per worker. (They
        # end well within a reset timeout: no trial counts here.)
        with concurrent.futures.ThreadPoolExecutor(MASTERS * WORKERS) as pool:
            list(pool.map(read, range(2 * MASTERS * WORKERS * FAIL_MAX)))
        paid = len(_blackholed(lab, since))
        # fail_max for the fleet, plus what was in flight when the fleet's
        # breaker opened: a read in each other worker, and a health probe.
        # Without the fleet each worker pays fail_max: 12 here.
        assert FAIL_MAX <= paid <= FAIL_MAX + MASTERS * WORKERS, paid
        for master in masters:
            master.every_worker(lambda who: who["breakers"][LOCAL] == OPEN)

        # Trials: keep the fleet busy for a few reset timeouts.
        since, started = len(lab.requests(LOCAL)), time.monotonic()
        n = 0
        while time.monotonic() - started < 3 * RESET_TIMEOUT:
            read(n)
            n += 1
        elapsed = time.monotonic() - started
        trials = len(_blackholed(lab, since))
        # One trial (a read or a probe) per reset timeout for the fleet; each
        # reopens the breaker for another reset timeout after its own read
        # timeout. Without the fleet, each of the 4 workers tries on its own.
        assert 1 <= trials <= elapsed / RESET_TIMEOUT + 1, (trials, elapsed)
