"""What a read-cache hit costs, side by side with raw boto3, in one run.

Against a lab region (a ``moto_server`` subprocess behind the fault
proxy, replication off), for items of 1, 10 and 100 attributes, prints
the median per call of:

- raw boto3 ``client.get_item`` and ``Table.get_item`` (every call goes to
  the lab),
- a hit on ``session.client.get_item`` and on ``session.table(...).get_item``
  (``CachePolicy``: no call at all), and the ratio raw / hit,
- hits of a cached ``Query`` page and of a ``BatchGetItem`` of 10 cached keys;

then the memory (tracemalloc) of 100,000 cached 10-attribute items, in each
surface's form, each answer with a request id of its own; and how much the
process grows across 10,000 reads of items of a shape each (a map attribute
keyed by ids) with ``maxsize=100``, each read a miss then 40 hits, measured
after ``session.close()``: what copying hits keeps must stay bounded by
``maxsize``, not grow with the number of item shapes (issue 15: 123 MB
before). Targets (issue 16): a hit on a 10-attribute item under 5 us on
both surfaces, 100x or more faster than raw boto3; at most 1 KiB per
cached 10-attribute item in either form.

    python benchmarks/bench_cache.py [--calls 2000] [--items 100000] [--shapes 10000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from decimal import Decimal

import boto3

import regionproxy as rp
from regionproxy.bench.timing import median_us, per_call
from regionproxy.testing import LocalRegions

REGIONS = ("eu-west-3", "us-east-1")
TABLE = "CacheBench"
SIZES = (1, 10, 100)


def python_item(key: str, size: int) -> dict:
    """``size`` attributes, the key included: strings, numbers and a set."""
    item: dict = {"pk": key}
    for n in range(1, size):
        kind = n % 3
        item[f"a{n}"] = f"value {n}" if kind == 0 else Decimal(n) if kind == 1 else {f"x{n}", f"y{n}"}
    return item


def hit_rows(lab: LocalRegions, count: int) -> None:
    endpoint = lab.endpoints[REGIONS[0]]
    raw = boto3.session.Session(region_name=REGIONS[0], aws_access_key_id="testing", aws_secret_access_key="testing")
    raw_client = raw.client("dynamodb", endpoint_url=endpoint)
    raw_table = raw.resource("dynamodb", endpoint_url=endpoint).Table(TABLE)
    session = lab.session(cache=rp.CachePolicy(maxsize=200_000, ttl=3600), key_schemas={TABLE: ("pk",)})
    table = session.table(TABLE)
    print(f"\nGetItem hits (median us per call; raw boto3 calls go to the lab region, {count} calls each)")
    print(
        f"{'attributes':>10} {'boto3 client':>13} {'session.client':>15} {'ratio':>7} {'boto3 Table':>12} {'session.table':>14} {'ratio':>7}"
        f" {'client CPU':>11} {'Table CPU':>10}"
    )
    for size in SIZES:
        key = f"item-{size}"
        raw_table.put_item(Item=python_item(key, size))
        wire_key = {"pk": {"S": key}}
        slow = max(count // 10, 50)
        raw_c = median_us(lambda k=wire_key: raw_client.get_item(TableName=TABLE, Key=k), slow)
        raw_t = median_us(lambda k=key: raw_table.get_item(Key={"pk": k}), slow)
        client_hit = per_call(lambda k=wire_key: session.client.get_item(TableName=TABLE, Key=k), count)
        table_hit = per_call(lambda k=key: table.get_item(Key={"pk": k}), count)
        hit_c, hit_t = client_hit.wall_us, table_hit.wall_us
        print(
            f"{size:>10} {raw_c:>13.1f} {hit_c:>15.2f} {raw_c / hit_c:>6.0f}x {raw_t:>12.1f} {hit_t:>14.2f} {raw_t / hit_t:>6.0f}x"
            f" {client_hit.cpu_us:>11.2f} {table_hit.cpu_us:>10.2f}"
        )

    from boto3.dynamodb.conditions import Key

    for n in range(10):
        raw_table.put_item(Item=python_item(f"b-{n}", 10))
    keys = [{"pk": {"S": f"b-{n}"}} for n in range(10)]
    batch = {TABLE: {"Keys": keys}}
    raw_b = median_us(lambda: raw_client.batch_get_item(RequestItems=batch), max(count // 10, 50))
    hit_b = per_call(lambda: session.client.batch_get_item(RequestItems=batch), count)
    query = {"TableName": TABLE, "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "item-10"}}}
    raw_q = median_us(lambda: raw_client.query(**query), max(count // 10, 50))
    hit_q = per_call(lambda: session.client.query(**query), count)
    raw_tq = median_us(lambda: raw_table.query(KeyConditionExpression=Key("pk").eq("item-10")), max(count // 10, 50))
    hit_tq = per_call(lambda: table.query(KeyConditionExpression=Key("pk").eq("item-10")), count)
    print("\nOther cached reads (median us per call)")
    print(f"{'read':<34} {'raw boto3':>10} {'session hit':>12} {'ratio':>7} {'hit CPU':>8}")
    for name, slow_us, fast in (
        ("client BatchGetItem, 10 keys", raw_b, hit_b),
        ("client Query, 1 item", raw_q, hit_q),
        ("Table query, 1 item", raw_tq, hit_tq),
    ):
        print(f"{name:<34} {slow_us:>10.1f} {fast.wall_us:>12.2f} {slow_us / fast.wall_us:>6.0f}x {fast.cpu_us:>8.2f}")
    status = session.status()["cache"]
    print(
        f"\nsession.status()['cache']: entries {status['entries']}, hit ratio {status['hit_ratio']}, evictions {status['evictions']}"
    )
    session.close()


def memory_rows(lab: LocalRegions, items: int) -> None:
    """tracemalloc of ``items`` cached 10-attribute items, per surface's form
    (loads answered from one fetched item, copied per key: no I/O)."""
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    print(f"\nMemory of {items:,} cached 10-attribute items (tracemalloc, cache entries and their answers; target <= 1,024 bytes each)")
    for form in ("client (wire format)", "Table (Python values)"):
        session = lab.session(cache=rp.CachePolicy(maxsize=items, ttl=3600), key_schemas={TABLE: ("pk",)})
        metadata = session.client.get_item(TableName=TABLE, Key={"pk": {"S": "item-10"}})["ResponseMetadata"]
        cache = session.cache
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for n in range(items):
            item = python_item(f"m-{n}", 10)
            if form.startswith("client"):
                answer = {"Item": {name: serializer.serialize(value) for name, value in item.items()}}
                key = (TABLE, (("pk", ("S", f"m-{n}")),))
            else:
                answer = {"Item": item}
                key = (TABLE, (("pk", ("S", f"m-{n}")),), "values")
            request_id = f"{n:052}"  # each answer's own, as long as DynamoDB's
            headers = {**metadata["HTTPHeaders"], "x-amzn-requestid": request_id}
            answer["ResponseMetadata"] = {**metadata, "RequestId": request_id, "HTTPHeaders": headers}
            cache.get_or_load(key, lambda answer=answer: answer)
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        print(f"  {form:<24} {used / 2**20:8.1f} MiB  ({used / items:,.0f} bytes per item)")
        session.close()


SHAPES_TABLE = "CacheShapes"
SHAPE_HITS = 40  # hits per item after its miss: enough for its copier to compile


def shape_rows(lab: LocalRegions, reads: int) -> None:
    """tracemalloc of the whole process across ``reads`` reads of items
    whose map attribute is keyed by ids (a shape per item), ``maxsize=100``,
    per surface: each item read once (a miss) then SHAPE_HITS times (hits),
    the growth measured after ``session.close()`` (the lab's own memory
    left out)."""
    from regionproxy._cache import copies

    lab.create_table(
        TableName=SHAPES_TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    writer = lab.client(REGIONS[0], direct=True)
    for start in range(0, reads, 25):
        requests = [
            {"PutRequest": {"Item": {"pk": {"S": f"s-{n}"}, "m": {"M": {f"id-{n:08}": {"N": str(n)}, f"at-{n:08}": {"S": "x"}}}}}}
            for n in range(start, min(start + 25, reads))
        ]
        writer.batch_write_item(RequestItems={SHAPES_TABLE: requests})
    print(
        f"\nProcess growth across {reads:,} reads of items of a shape each (a map keyed by ids), maxsize=100,"
        f" each a miss then {SHAPE_HITS} hits (tracemalloc, after session.close(), the lab's own memory left out)"
    )
    for form in ("client (wire format)", "Table (Python values)"):
        session = lab.session(cache=rp.CachePolicy(maxsize=100, ttl=3600), key_schemas={SHAPES_TABLE: ("pk",)})
        read = _shape_reader(session, form)
        for n in range(min(reads, 200)):  # clients, models and pools built before measuring
            read(n)
        gc.collect()
        tracemalloc.start()
        before = _traced_outside_the_lab()
        for n in range(reads):
            for _ in range(1 + SHAPE_HITS):
                read(n)
        session.close()
        del session, read
        gc.collect()
        grown = _traced_outside_the_lab() - before
        tracemalloc.stop()
        print(
            f"  {form:<24} {grown / 2**20:8.2f} MiB  ({grown / reads:,.0f} bytes per item read;"
            f" copy shapes kept for sharing: {copies.shapes()} of at most {copies.SHAPES})"
        )


def _traced_outside_the_lab() -> int:
    """Bytes traced now, but for the lab's own (its fault proxies run in this
    process and log every request they forward)."""
    snapshot = tracemalloc.take_snapshot().filter_traces((tracemalloc.Filter(False, "*/regionproxy/testing/*"),))
    return sum(stat.size for stat in snapshot.statistics("filename"))


def _shape_reader(session: rp.RegionSession, form: str):
    """A GetItem of item ``n`` of the shapes table, through one surface."""
    if form.startswith("client"):
        client = session.client
        return lambda n: client.get_item(TableName=SHAPES_TABLE, Key={"pk": {"S": f"s-{n}"}})
    table = session.table(SHAPES_TABLE)
    return lambda n: table.get_item(Key={"pk": f"s-{n}"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000, help="timed hits per row (raw boto3 rows: a tenth)")
    parser.add_argument("--items", type=int, default=100_000, help="cached items for the memory row")
    parser.add_argument("--shapes", type=int, default=10_000, help="items of a shape each for the growth row")
    args = parser.parse_args(argv)
    print(f"regionproxy {rp.__version__}, boto3 {boto3.__version__}, Python {sys.version.split()[0]}")
    with LocalRegions(REGIONS, mode="process", replicate=False) as lab:
        lab.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        )
        hit_rows(lab, args.calls)
        memory_rows(lab, args.items)
        shape_rows(lab, args.shapes)


if __name__ == "__main__":
    main()
