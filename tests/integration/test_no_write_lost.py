"""No acknowledged write is lost: writes from several threads through the
session while regions fail and heal; once every region is healed and
replication has caught up, every write the session acknowledged is in every
region with the value it wrote.

Each write names a key of its own, so the check does not depend on how the
lab's replicator orders concurrent writes to one key (last writer wins
within its poll interval, see ``regionproxy.testing.replication``).
"""

from __future__ import annotations

import itertools
import random
import threading
import time

import regionproxy as rp
from tests.support import LOCAL, REMOTE, TABLE

THREADS = 4
WRITES_PER_THREAD = 300  # at most; each writer stops when the chaos ends
CHAOS_SECONDS = 6.0
OUTAGES = [("refuse", {}), ("reset", {}), ("blackhole", {}), ("error", {"status": 500}), ("late", {"delay": 1.0})]


def test_every_acknowledged_write_survives_outages_and_reaches_every_region(lab):
    session = lab.session(
        timeouts=rp.Timeouts(connect=0.5, read=0.5, attempts=2),
        breaker=rp.BreakerPolicy(fail_max=3, reset_timeout=0.3),
        cache=rp.CachePolicy(ttl=1.0),
        key_schemas={TABLE: ("pk", "sk")},
    )
    session.prepare()  # clients built before the chaos starts
    acknowledged: dict[str, str] = {}
    refused: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    chaos_ends = time.monotonic() + CHAOS_SECONDS  # every loop is bounded in time as well as count

    def writer(thread: int) -> None:
        table = session.table(TABLE)
        for n in range(WRITES_PER_THREAD):
            if time.monotonic() > chaos_ends:
                break
            key, value = f"t{thread}-{n}", f"v{thread}-{n}"
            try:
                if n % 2:
                    table.put_item(Item={"pk": key, "sk": "s", "v": value})
                else:
                    table.update_item(
                        Key={"pk": key, "sk": "s"}, UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": value}
                    )
            except rp.RegionProxyError:  # not acknowledged: the caller knows it may not be there
                with lock:
                    refused.append(key)
            else:
                with lock:
                    acknowledged[key] = value
            time.sleep(0.02)  # paced, so the writes span the chaos

    def chaos() -> None:
        rng = random.Random(7)
        for step in itertools.count():
            if stop.is_set() or step >= 200 or time.monotonic() > chaos_ends:
                break
            region = rng.choice([LOCAL, LOCAL, REMOTE])
            mode, params = rng.choice(OUTAGES)
            lab.fault(region, mode, **params)
            stop.wait(rng.uniform(0.2, 0.6))
            lab.heal(region)
            stop.wait(rng.uniform(0.1, 0.3))

    chaos_thread = threading.Thread(target=chaos)
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    chaos_thread.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=CHAOS_SECONDS + 60)
    stop.set()
    chaos_thread.join(timeout=10)
    lab.heal()
    lab.wait_replicated(timeout=30)

    assert len(acknowledged) > THREADS * 10, f"too few writes acknowledged to mean anything: {len(acknowledged)}"
    for region in (LOCAL, REMOTE):
        client = lab.client(region, direct=True)
        items = {}
        for page in client.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True):
            items.update({item["pk"]["S"]: item["v"]["S"] for item in page["Items"]})
        lost = {key: value for key, value in acknowledged.items() if items.get(key) != value}
        assert lost == {}, f"{len(lost)} acknowledged writes missing or wrong in {region}"
