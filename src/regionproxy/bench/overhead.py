"""Scenario ``overhead``: what regionproxy costs per call, beside raw boto3.

Surfaces, the same calls interleaved round-robin (each round starting one
surface later, so that no surface is always timed first or right after a
near-twin) so that drift in the machine hits every surface alike:

- ``boto3 client``    boto3.client("dynamodb")             (baseline)
- ``boto3 client (as regions)``  the same, configured as the session's
  regional clients are                                     (second baseline)
- ``session.client``  RegionSession(...).client, no cache
- ``boto3 Table``     boto3.resource("dynamodb").Table     (baseline for tables)
- ``boto3 Table (as regions)``   the same, configured as the regional clients
- ``session.table``   RegionSession(...).table, no cache
- ``cache hit``       session.table with a CachePolicy (GetItem only)

Two baselines, because the session's regional clients are not configured
as plain boto3 is: the baseline users compare with is boto3 in its default
retry mode (``standard``, whose retry handlers run on every call), with the
session's default timeouts; the regional clients make one attempt in
``legacy`` mode (the session makes the others: see
:func:`regionproxy._regions.replica.client_config`), which costs less per
call. Each session row is compared with both (``added_us`` with the first,
``added_us_as_regions`` with the second); the targets are judged on the
first, the second is shown beside.

Against a near-free canned endpoint in another process
(:mod:`regionproxy.bench.canned`), so what is left is the client side. One
boto3 process tops out near 700 calls/s (the GIL), so throughput is
measured apart, with one closed loop per core in separate processes.

Each call is timed twice: wall time (``perf_counter``: what a caller waits,
the judged figure) and this thread's CPU time (``thread_time``: the
client-side work alone). On a shared machine the wall medians of two
surfaces drift apart by several microseconds from one run to the next
(another process takes the core mid-call); the CPU medians do not, so
they are shown beside the wall ones.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from regionproxy.bench.load import summarize
from regionproxy.bench.targets import target

REGIONS = ["eu-west-3", "us-east-1"]
TABLE = "Bench"
KEY = {"pk": "bench", "sk": "item"}
WIRE_KEY = {"pk": {"S": "bench"}, "sk": {"S": "item"}}
ITEM = {**KEY, "payload": "x" * 200, "n": 42}
WIRE_ITEM = {**WIRE_KEY, "payload": {"S": "x" * 200}, "n": {"N": "42"}}
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
BASELINES = {"session.client": "boto3 client", "session.table": "boto3 Table", "cache hit": "boto3 Table"}
# The second baseline: raw boto3 configured as the session's regional clients.
AS_REGIONS = {"boto3 client": "boto3 client (as regions)", "boto3 Table": "boto3 Table (as regions)"}


@contextlib.contextmanager
def canned_endpoint() -> Iterator[str]:
    """Run the canned endpoint in another process for the block; its URL."""
    server = subprocess.Popen([sys.executable, "-m", "regionproxy.bench.canned", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        yield f"http://127.0.0.1:{server.stdout.readline().strip()}"
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _boto3_session() -> Any:
    import boto3

    return boto3.session.Session(**CREDENTIALS)


def _raw_config() -> Any:
    from botocore.config import Config

    # What the session gives each region: its default Timeouts, 2 attempts
    # (in boto3's default retry mode, as a user's client has it).
    return Config(retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=0.5, read_timeout=1.0)


def _as_regions_config() -> Any:
    """The botocore ``Config`` the session gives each regional client (one
    attempt, ``legacy`` retries, its default timeouts and pool)."""
    from regionproxy._config.policies import Timeouts
    from regionproxy._regions.replica import client_config

    return client_config(Timeouts())


def surfaces(endpoint: str, session: Any, cached: Any = None) -> dict[str, dict[str, Callable[[], object]]]:
    """The calls to time, per operation and surface."""
    from boto3.dynamodb.conditions import Key

    boto = _boto3_session()
    raw = boto.client("dynamodb", region_name=REGIONS[0], endpoint_url=endpoint, config=_raw_config())
    like = boto.client("dynamodb", region_name=REGIONS[0], endpoint_url=endpoint, config=_as_regions_config())
    resource_table = boto.resource("dynamodb", region_name=REGIONS[0], endpoint_url=endpoint, config=_raw_config()).Table(
        TABLE
    )
    like_table = boto.resource("dynamodb", region_name=REGIONS[0], endpoint_url=endpoint, config=_as_regions_config()).Table(
        TABLE
    )
    client, table = session.client, session.table(TABLE)
    query = {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "bench"}}}
    get = {
        "boto3 client": lambda: raw.get_item(TableName=TABLE, Key=WIRE_KEY),
        "boto3 client (as regions)": lambda: like.get_item(TableName=TABLE, Key=WIRE_KEY),
        "session.client": lambda: client.get_item(TableName=TABLE, Key=WIRE_KEY),
        "boto3 Table": lambda: resource_table.get_item(Key=KEY),
        "boto3 Table (as regions)": lambda: like_table.get_item(Key=KEY),
        "session.table": lambda: table.get_item(Key=KEY),
    }
    if cached is not None:
        cached_table = cached.table(TABLE)
        get["cache hit"] = lambda: cached_table.get_item(Key=KEY)
    return {
        "GetItem": get,
        "PutItem": {
            "boto3 client": lambda: raw.put_item(TableName=TABLE, Item=WIRE_ITEM),
            "boto3 client (as regions)": lambda: like.put_item(TableName=TABLE, Item=WIRE_ITEM),
            "session.client": lambda: client.put_item(TableName=TABLE, Item=WIRE_ITEM),
            "boto3 Table": lambda: resource_table.put_item(Item=ITEM),
            "boto3 Table (as regions)": lambda: like_table.put_item(Item=ITEM),
            "session.table": lambda: table.put_item(Item=ITEM),
        },
        "Query": {
            "boto3 client": lambda: raw.query(TableName=TABLE, **query),
            "boto3 client (as regions)": lambda: like.query(TableName=TABLE, **query),
            "session.client": lambda: client.query(TableName=TABLE, **query),
            "boto3 Table": lambda: resource_table.query(KeyConditionExpression=Key("pk").eq("bench")),
            "boto3 Table (as regions)": lambda: like_table.query(KeyConditionExpression=Key("pk").eq("bench")),
            "session.table": lambda: table.query(KeyConditionExpression=Key("pk").eq("bench")),
        },
    }


def measure(
    calls: dict[str, Callable[[], object]], count: int, time_limit: float = 120.0
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """``count`` rounds of every call in turn, bounded by ``time_limit``
    too: each call's wall seconds, and its CPU seconds (this thread's)."""
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm up: clients, connections, caches
        for _ in range(20):
            call()
    deadline = time.monotonic() + time_limit
    clock, cpu_clock = time.perf_counter, time.thread_time
    # Each round starts one surface later: in a fixed order the surface
    # timed first always meets the caches the round before left, and each
    # other surface always follows the same one (raw boto3 in its two
    # configurations are near-twins), so a position's bias would land on
    # the same surfaces every round.
    order = list(calls.items())
    for round_ in range(count):
        shift = round_ % len(order)
        for name, call in order[shift:] + order[:shift]:
            started, cpu_started = clock(), cpu_clock()
            call()
            cpu_ended, ended = cpu_clock(), clock()
            wall[name].append(ended - started)
            cpu[name].append(cpu_ended - cpu_started)
        if time.monotonic() > deadline:
            break
    return wall, cpu


def compare(endpoint: str, session: Any, count: int, cached: Any = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Per operation and surface: HdrHistogram summary, median (us), ratio
    to its baseline's median and microseconds added; and the same median
    and microseconds added in CPU time (``cpu_us``, ``added_cpu_us``). A
    session row also has ``as_regions`` (its second baseline, raw boto3
    configured as the regional clients), ``added_us_as_regions`` and
    ``added_cpu_us_as_regions``."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for operation, calls in surfaces(endpoint, session, cached).items():
        samples, cpu = measure(calls, count)
        medians = {name: statistics.median(values) for name, values in samples.items()}
        cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
        rows = results[operation] = {}
        for name, values in samples.items():
            baseline = BASELINES.get(name, name)
            ordered = sorted(values)
            rows[name] = {
                **summarize(values),
                "median_us": round(medians[name] * 1e6, 1),
                "p99_us": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e6, 1),
                "baseline": baseline,
                "ratio": round(medians[name] / medians[baseline], 3),
                "added_us": round((medians[name] - medians[baseline]) * 1e6, 1),
                "cpu_us": round(cpu_medians[name] * 1e6, 1),
                "added_cpu_us": round((cpu_medians[name] - cpu_medians[baseline]) * 1e6, 1),
            }
            second = AS_REGIONS.get(baseline) if name in BASELINES else None
            if second in medians:
                rows[name].update(
                    as_regions=second,
                    added_us_as_regions=round((medians[name] - medians[second]) * 1e6, 1),
                    added_cpu_us_as_regions=round((cpu_medians[name] - cpu_medians[second]) * 1e6, 1),
                )
    return results


def print_rows(title: str, results: dict[str, dict[str, dict[str, Any]]], count: int) -> None:
    def as_regions(row: dict[str, Any], key: str) -> str:
        return f"{row[key]:>13.1f}" if key in row else f"{'':>13}"

    width = max(15, *(len(name) for rows in results.values() for name in rows))
    print(f"\n== {title}: {count} calls per surface and operation, interleaved")
    print(
        f"{'operation':<9} {'surface':<{width}} {'median us':>10} {'p99 us':>10} {'vs baseline':>12} {'added us':>9}"
        f" {'vs as regions':>13}"
    )
    for operation, rows in results.items():
        for name, row in rows.items():
            print(
                f"{operation:<9} {name:<{width}} {row['median_us']:>10.1f} {row['p99_us']:>10.1f}"
                f" {row['ratio']:>11.3f}x {row['added_us']:>9.1f} {as_regions(row, 'added_us_as_regions')}"
            )
    print("\n   the same calls in CPU time (this thread's): the client-side work alone")
    print(f"{'operation':<9} {'surface':<{width}} {'median us':>10} {'added us':>9} {'vs as regions':>13}")
    for operation, rows in results.items():
        for name, row in rows.items():
            print(
                f"{operation:<9} {name:<{width}} {row['cpu_us']:>10.1f} {row['added_cpu_us']:>9.1f}"
                f" {as_regions(row, 'added_cpu_us_as_regions')}"
            )
    print(
        "\n   added us: the session's median minus raw boto3's in its default retry mode (standard), what users"
        "\n   compare with; vs as regions: minus raw boto3 configured as the session's regional clients"
        "\n   (legacy retries, one attempt: the session makes the others)"
    )


def canned_sessions(endpoint: str) -> tuple[Any, Any]:
    """A session without cache and one with, both on the canned endpoint."""
    import regionproxy as rp

    endpoints = {region: endpoint for region in REGIONS}
    plain = rp.RegionSession(REGIONS, endpoints=endpoints, boto3_session=_boto3_session())
    cached = rp.RegionSession(
        REGIONS, endpoints=endpoints, boto3_session=_boto3_session(), cache=rp.CachePolicy(maxsize=1000, ttl=3600)
    )
    return plain, cached


# -- throughput: one closed loop per process ---------------------------------


def _worker(surface: str, endpoint: str, seconds: float) -> int:
    """Run GetItem through ``surface`` for ``seconds``; the number of calls."""
    if surface == "session.client":
        plain, cached = canned_sessions(endpoint)
        cached.close()
        client = plain.client
    else:
        plain = None
        client = _boto3_session().client("dynamodb", region_name=REGIONS[0], endpoint_url=endpoint, config=_raw_config())
    for _ in range(20):
        client.get_item(TableName=TABLE, Key=WIRE_KEY)
    calls, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline and calls < 10_000_000:
        client.get_item(TableName=TABLE, Key=WIRE_KEY)
        calls += 1
    if plain is not None:
        plain.close()
    return calls


def throughput(endpoint: str, seconds: float, processes: int | None = None) -> dict[str, Any]:
    """Calls/s of raw boto3 and of ``session.client``, each with one
    process per core running GetItem in a closed loop for ``seconds``."""
    processes = processes or os.cpu_count() or 1
    results: dict[str, Any] = {"processes": processes, "seconds": seconds}
    for surface in ("boto3 client", "session.client"):
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "regionproxy.bench.overhead", "worker", surface, endpoint, str(seconds)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        try:
            counts = [int(child.communicate(timeout=seconds + 60)[0].strip() or 0) for child in children]
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        results[surface] = round(sum(counts) / seconds, 1)
    results["ratio"] = round(results["session.client"] / results["boto3 client"], 3) if results["boto3 client"] else None
    return results


def run(size: Any, profile: Any, out: Any, progress: Any) -> dict[str, Any]:
    """The ``overhead`` scenario for the bench runner."""
    with canned_endpoint() as endpoint:
        plain, cached = canned_sessions(endpoint)
        try:
            progress(f"overhead: {size.overhead_calls} calls per surface against the canned endpoint")
            per_call = compare(endpoint, plain, size.overhead_calls, cached)
        finally:
            plain.close()
            cached.close()
        progress(f"overhead: throughput, {size.throughput_seconds:g} s per surface")
        rates = throughput(endpoint, size.throughput_seconds, size.throughput_processes or None)
    get = per_call["GetItem"]
    figures = {
        "session.client / boto3 client, GetItem median": get["session.client"]["ratio"],
        "session.table / boto3 Table, GetItem median": get["session.table"]["ratio"],
        "cache hit / boto3 Table, GetItem median": get["cache hit"]["ratio"],
        "session.client / boto3 client, throughput": rates["ratio"],
    }
    result = {
        "scenario": "overhead",
        "endpoint": "canned (near-free, another process)",
        "calls": size.overhead_calls,
        "per_call": per_call,
        "throughput": rates,
        "figures": figures,
    }
    result["targets"] = targets(result)
    return result


ADDED_LIMIT_US = 10.0  # what the session may add to a call at the client floor


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The overhead targets (see :mod:`regionproxy.bench.targets`): the
    worst operation's median ratio of ``session.client``, and the most the
    session adds to a call's median on either surface (``session.client``,
    ``session.table``), judged against raw boto3 as users run it; its CPU
    time, and what it adds over raw boto3 configured as the regional
    clients, shown beside."""
    per_call = result["per_call"]
    ratios = {operation: rows["session.client"]["ratio"] for operation, rows in per_call.items()}
    worst = max(ratios, key=ratios.__getitem__)
    added = {
        (operation, surface): rows[surface]
        for operation, rows in per_call.items()
        for surface in ("session.client", "session.table")
        if surface in rows
    }
    most = max(added, key=lambda key: added[key]["added_us"])
    row = added[most]
    cpu = row.get("added_cpu_us")
    beside = [("the same calls in CPU time", f"{cpu:.1f} us" if cpu is not None else "not measured")]
    # Beside, not judged: what it adds over raw boto3 configured as its
    # regional clients (one attempt, legacy retries), which users do not run.
    like = {key: value for key, value in added.items() if "added_us_as_regions" in value}
    if like:
        worst_like = max(like, key=lambda key: like[key]["added_us_as_regions"])
        shown = like[worst_like]
        beside.append(
            (
                f"minus raw boto3 configured as the regional clients (worst: {worst_like[0]} {worst_like[1]}), wall / CPU",
                f"{shown['added_us_as_regions']:.1f} us / {shown['added_cpu_us_as_regions']:.1f} us",
            )
        )
    return [
        target(
            "session.client median vs raw boto3, no cache (worst operation)",
            "<= 1.05x",
            f"per call against the canned endpoint, {result['calls']} calls per surface, interleaved: {worst}",
            f"{ratios[worst]:.3f}x",
            ratios[worst] <= 1.05,
        ),
        target(
            "what the session adds to a call at the client floor, no cache (worst operation and surface)",
            f"<= {ADDED_LIMIT_US:g} us",
            f"median per call against the canned endpoint minus boto3's, interleaved: {most[0]} {most[1]}",
            f"{row['added_us']:.1f} us",
            row["added_us"] <= ADDED_LIMIT_US,
            beside=beside,
        ),
    ]


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "worker":
    print(_worker(sys.argv[2], sys.argv[3], float(sys.argv[4])))
