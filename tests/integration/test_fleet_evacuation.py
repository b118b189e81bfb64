"""Evacuate and restore through one worker of a fleet under gunicorn: every
worker of every master follows, a master started afterwards too, and every
worker's /readyz agrees (two masters of two workers over one lab and one
redis-server)."""

from __future__ import annotations

from regionproxy._regions.breaker import CLOSED, EVACUATED
from tests.support import LOCAL, REMOTE, gunicorn_master

# No region is slow here: a loaded machine must not make one so.
FLEET = {"FLEET_APP_PROBE_INTERVAL": "0.5", "REGIONPROXY_READ_TIMEOUT": "5"}


def _evacuated(who):
    return who["breakers"][LOCAL] == EVACUATED and who["fleet"]["connected"]


def _closed(who):
    return who["breakers"][LOCAL] == CLOSED


def _read_everywhere(masters, rounds=10):
    for _ in range(rounds):
        for master in masters:
            response = master.get("/item?k=a")
            assert response.status_code == 200, response.text


def test_an_evacuation_through_one_worker_holds_in_every_worker_of_every_master(lab, redis):
    with gunicorn_master(lab, redis.url, env=FLEET) as one, gunicorn_master(lab, redis.url, env=FLEET) as two:
        for master in (one, two):
            master.every_worker(lambda who: who["fleet"]["connected"])  # every worker in the fleet
        one.act(LOCAL, "evacuate")
        for master in (one, two):
            workers = master.every_worker(_evacuated)
            action = next(iter(workers.values()))["fleet"]["actions"][LOCAL]
            assert action["action"] == "evacuate" and action["by"] == "admin from 127.0.0.1"
        since = len(lab.requests(LOCAL))
        _read_everywhere((one, two))
        assert [r for r in lab.requests(LOCAL)[since:] if r.operation == "GetItem"] == []  # no worker sent one there
        assert len([r for r in lab.requests(REMOTE) if r.operation == "GetItem"]) >= 20
        for master in (one, two):  # every worker's readiness says so: the local region is out
            for _ in range(2 * master.workers):
                assert master.get("/readyz").status_code == 503

        with gunicorn_master(lab, redis.url, env=FLEET) as later:
            since = len(lab.requests(LOCAL))
            _read_everywhere((later,))  # its workers' first calls already avoid the region
            assert [r for r in lab.requests(LOCAL)[since:] if r.operation == "GetItem"] == []
            later.every_worker(_evacuated)

            two.act(LOCAL, "restore")
            for master in (one, two, later):
                master.every_worker(_closed)
            since = len(lab.requests(LOCAL))
            _read_everywhere((one, two, later))
            assert len([r for r in lab.requests(LOCAL)[since:] if r.operation == "GetItem"]) == 30
