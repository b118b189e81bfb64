"""The replication canary's judgement, against an in-memory stand-in for the
regions (what it reads and when is the test's to arrange): a pair is ``ok``
only on a heartbeat that arrived in the replica, and a replica waits for
the heartbeat its source writes in the same cycle."""

from __future__ import annotations

import copy
import threading

from regionproxy._regions.canary import KEY_PREFIX, ReplicationCanary
from tests.support import LOCAL, REMOTE

KEY = (("id", "S"),)


class Regions:
    """Each region's copy of one table (key ``id``, a string); a PutItem
    reaches the other regions at once while ``replicate`` is on."""

    regions = (LOCAL, REMOTE)
    local_region = LOCAL

    def __init__(self, *, replicate: bool = True) -> None:
        self.replicate = replicate
        self.copies: dict[str, dict[str, dict]] = {region: {} for region in self.regions}
        self.found: list[tuple[str, str]] = []  # (replica, source) of every read that found a heartbeat
        self.before_put = lambda region: None  # called in the writing thread, before the write lands
        self.read = threading.Event()  # set by the first GetItem
        self.found_local_in_remote = threading.Event()  # set once REMOTE read LOCAL's heartbeat
        self._lock = threading.Lock()
        self._names: tuple[str, ...] | None = None

    def call_region(self, region, operation, params):
        if operation == "DescribeTable":
            return {
                "Table": {
                    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                }
            }
        key = (params.get("Item") or params.get("Key"))["id"]["S"]
        if operation == "PutItem":
            self.before_put(region)
            with self._lock:
                for target in self.regions if self.replicate else (region,):
                    self.copies[target][key] = copy.deepcopy(params["Item"])
            return {}
        assert operation == "GetItem", operation
        self.read.set()
        with self._lock:
            item = copy.deepcopy(self.copies[region].get(key))
            if item is not None:
                self.found.append((region, key.removeprefix(KEY_PREFIX)))
                if region == REMOTE and key == KEY_PREFIX + LOCAL:
                    self.found_local_in_remote.set()
        return {"Item": item} if item is not None else {}

    def key_names(self, table):
        return self._names

    def learn_table(self, table, description):
        self._names = tuple(k["AttributeName"] for k in description["KeySchema"])

    def probe_sharing(self):
        return None

    def announce(self, event):
        pass


def _states(canary):
    return {(row["source"], row["replica"]): row["state"] for row in canary.pairs()}


def test_a_replica_waits_for_the_heartbeat_its_source_writes_after_the_replica_began_reading():
    regions = Regions()

    def late(region):
        # LOCAL writes only once REMOTE has read (or after half a second):
        # the regions write side by side, and either may be first.
        if region == LOCAL:
            regions.read.wait(0.5)

    regions.before_put = late
    canary = ReplicationCanary(regions, "T", interval=30.0, lag_warn=60.0)
    assert canary.run_cycle()
    # REMOTE read LOCAL's heartbeat in its own copy before calling the pair ok.
    assert (REMOTE, LOCAL) in regions.found, regions.found
    assert (LOCAL, REMOTE) in regions.found, regions.found
    assert set(_states(canary).values()) == {"ok"}, canary.pairs()


def test_a_pair_whose_heartbeat_has_not_arrived_is_not_ok():
    regions = Regions(replicate=False)
    canary = ReplicationCanary(regions, "T", interval=0.2, lag_warn=60.0, stall_after=60.0)
    assert canary.run_cycle()
    # Written a moment ago, not arrived: too young to be lagging, no proof of ok.
    assert regions.found == []
    assert set(_states(canary).values()) == {"unknown"}, canary.pairs()
    assert all(row["lag_s"] is not None for row in canary.pairs())  # how long it has been on its way
    assert canary.warning() is None
    regions.replicate = True
    assert canary.run_cycle()
    assert set(_states(canary).values()) == {"ok"}, canary.pairs()


def test_a_source_slow_to_write_does_not_hide_its_earlier_heartbeat_arriving():
    regions = Regions(replicate=False)
    # Cycle one: nothing replicates; both heartbeats are on their way when it ends.
    canary = ReplicationCanary(regions, "T", interval=0.2, lag_warn=120.0, stall_after=120.0)
    assert canary.run_cycle() and set(_states(canary).values()) == {"unknown"}
    # They arrive late; in cycle two LOCAL writes only once REMOTE has read its earlier one.
    for region in regions.regions:
        regions.copies[region].update(regions.copies[LOCAL] | regions.copies[REMOTE])
    regions.replicate = True
    order = []

    def late(region):
        if region == LOCAL:
            order.append(regions.found_local_in_remote.wait(30))  # bounded; True at once when REMOTE reads first

    regions.before_put = late
    canary.interval = 60.0
    assert canary.run_cycle()
    assert order == [True], "REMOTE did not read LOCAL's earlier heartbeat while LOCAL was writing"
    assert set(_states(canary).values()) == {"ok"}, canary.pairs()
