"""Global Tables replication for the lab, through DynamoDB Streams.

moto does not replicate Global Tables, so the lab ships changes itself: it
reads each region's stream, and applies every local change to the other
regions. Conflicts resolve last-writer-wins on (write time, region,
sequence number), as Global Tables do on write time. Changes this
replicator applies are recognised when they come back on the target's
stream and are not shipped again, so there are no echo loops. A region that
is cut off (refused, reset, blackholed) neither sends nor receives until it
heals, then catches up, as Global Tables queue changes during an outage.

Limit, by design of a lab: a local write that lands in a region within one
poll of a replicated write to the same key may lose to it even if it is
newer. Tests that need exact conflict outcomes pause replication while they
write (:meth:`Replicator.pause`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Version = tuple[float, str, int]


@dataclass(frozen=True, slots=True)
class _Change:
    table: str
    key: str
    keys: dict[str, Any]
    image: dict[str, Any] | None  # None: the item was deleted
    version: Version
    observed: float


class Replicator:
    """Replicate every table added with :meth:`add_table` between regions.

    :param clients: a DynamoDB client per region that reaches its server
        directly (not through the fault proxy).
    :param streams: a DynamoDB Streams client per region, likewise direct.
    :param is_cut: tells whether a region is cut off from replication now.
    :param lag: seconds each change waits before it is applied elsewhere.
    :param poll_interval: seconds between polls when nothing is moving.
    """

    def __init__(
        self,
        clients: Mapping[str, Any],
        streams: Mapping[str, Any],
        is_cut: Callable[[str], bool],
        *,
        lag: float = 0.0,
        poll_interval: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = dict(clients)
        self._streams = dict(streams)
        self._is_cut = is_cut
        self.lag = lag
        self._poll_interval = poll_interval
        self._clock = clock
        self._iterators: dict[tuple[str, str], dict[str, str]] = {}
        self._log: dict[tuple[str, str], list[_Change]] = {}
        self._sent: dict[tuple[str, str, str], int] = {}  # (source, target, table) -> index into log
        self._versions: dict[tuple[str, str, str], Version] = {}  # (region, table, key)
        self._echoes: dict[tuple[str, str, str], list[str | None]] = {}
        self._cond = threading.Condition()
        self._cycles = 0
        self._settled = -1
        self._paused = False
        self._shipping = False  # a cycle that found replication running is at work
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: BaseException | None = None

    def add_table(self, table: str) -> None:
        for region, streams in self._streams.items():
            arn = self._clients[region].describe_table(TableName=table)["Table"]["LatestStreamArn"]
            shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
            iterators = {
                shard["ShardId"]: streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                for shard in shards
            }
            with self._cond:
                self._iterators[(region, table)] = iterators
                self._log[(region, table)] = []

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lab-replicator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def pause(self) -> None:
        """Stop shipping changes (they still queue) until :meth:`resume`.
        Returns once a cycle that started before the pause has ended: it
        polls after it looked, and would ship a change made just after."""
        deadline = time.monotonic() + 30.0  # a cycle's calls are bounded by their client timeouts
        with self._cond:
            self._paused = True
            while self._shipping and time.monotonic() < deadline:
                self._cond.wait(0.05)

    def resume(self) -> None:
        with self._cond:
            self._paused = False

    def wait_replicated(self, timeout: float = 5.0) -> None:
        """Block until every change made before the call reached every region
        that is not cut off; raise ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            # The cycle running now may have polled before our caller wrote,
            # so only a cycle that starts after this call can prove anything.
            wanted = self._cycles + 2
            while self._settled < wanted:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"replication not settled within {timeout} s ({self._pending_count()} changes pending"
                        + (f"; last error: {self.last_error!r}" if self.last_error else "")
                        + ")"
                    )
                self._cond.wait(min(remaining, 0.05))

    # -- the loop ------------------------------------------------------------

    def _run(self) -> None:
        idle = False
        while not self._stopping.wait(self._poll_interval if idle else 0):
            try:
                moved = self._cycle()
                self.last_error = None
            except Exception as error:  # noqa: BLE001 - a lab thread must outlive a bad poll
                log.debug("replication cycle failed", exc_info=True)
                self.last_error = error
                moved = False
            idle = not moved

    def _cycle(self) -> bool:
        with self._cond:
            paused = self._paused
            self._shipping = not paused
        moved = False
        try:
            for (region, table), iterators in list(self._iterators.items()):
                if not self._is_cut(region):
                    moved |= self._poll(region, table, iterators)
            if not paused:
                for source, target in self._pairs():
                    for table in self._tables():
                        moved |= self._ship(source, target, table)
        finally:
            with self._cond:
                self._shipping = False
                self._cond.notify_all()
        with self._cond:
            self._cycles += 1
            if not paused and self._pending_count() == 0:
                self._settled = self._cycles
            self._cond.notify_all()
        return moved

    def _pairs(self) -> list[tuple[str, str]]:
        regions = [region for region in self._clients if not self._is_cut(region)]
        return [(source, target) for source in regions for target in regions if source != target]

    def _tables(self) -> list[str]:
        return sorted({table for _, table in self._iterators})

    def _pending_count(self) -> int:
        pending = 0
        for source, target in self._pairs():
            for table in self._tables():
                pending += len(self._log.get((source, table), ())) - self._sent.get((source, target, table), 0)
        return pending

    def _poll(self, region: str, table: str, iterators: dict[str, str]) -> bool:
        streams = self._streams[region]
        moved = False
        for shard, iterator in list(iterators.items()):
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            if page.get("NextShardIterator"):
                iterators[shard] = page["NextShardIterator"]
            else:
                del iterators[shard]
            for record in page["Records"]:
                moved = True
                self._observe(region, table, record)
        return moved

    def _observe(self, region: str, table: str, record: dict[str, Any]) -> None:
        data = record["dynamodb"]
        keys = data["Keys"]
        key = _fingerprint(keys)
        image = None if record["eventName"] == "REMOVE" else data.get("NewImage")
        echoes = self._echoes.get((region, table, key))
        if echoes and _fingerprint(image) in echoes:
            echoes.remove(_fingerprint(image))  # our own replicated write coming back
            return
        created = data.get("ApproximateCreationDateTime")
        written = created.timestamp() if created is not None else time.time()
        version = (written, region, int(data["SequenceNumber"]))
        self._versions[(region, table, key)] = version
        self._log[(region, table)].append(_Change(table, key, keys, image, version, self._clock()))

    def _ship(self, source: str, target: str, table: str) -> bool:
        changes = self._log.get((source, table), [])
        position = self._sent.get((source, target, table), 0)
        start = position
        while position < len(changes):
            change = changes[position]
            if self._clock() < change.observed + self.lag:
                break
            self._apply(target, change)
            position += 1
        self._sent[(source, target, table)] = position
        return position != start

    def _apply(self, target: str, change: _Change) -> None:
        current = self._versions.get((target, change.table, change.key))
        if current is not None and current >= change.version:
            return  # the target holds a newer write: last writer wins
        client = self._clients[target]
        if change.image is None:
            old = client.delete_item(TableName=change.table, Key=change.keys, ReturnValues="ALL_OLD")
            echoed = "Attributes" in old
        else:
            client.put_item(TableName=change.table, Item=change.image)
            echoed = True
        if echoed:
            self._echoes.setdefault((target, change.table, change.key), []).append(_fingerprint(change.image))
        self._versions[(target, change.table, change.key)] = change.version


def _fingerprint(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
