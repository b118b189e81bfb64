"""Scenario ``sidecar``: what ``regionproxy serve`` costs an app, beside
boto3 straight to the region.

The lab's local region on loopback (no injected latency: what is left is
the sidecar's own cost), and ``regionproxy serve`` under gunicorn (one
worker per core, the sidecar's own worker class) in front of it, as a PHP or Node app would
run it. Two tables: ``Plain`` (not cached: every call reaches the region)
and ``Hot`` (cached by the sidecar's session, ``REGIONPROXY_CACHE_TABLES``).

Clients, in processes of their own:

- ``boto3``: ``boto3.client("dynamodb")``, the endpoint set to the region
  or to the sidecar (what an app in Python would do; boto3's own
  client-side work, about 0.4 ms a call, is in every figure);
- ``http``: one signed GetItem request (botocore's SigV4, re-signed every
  minute) replayed over one keep-alive connection: a client that costs
  next to nothing, so the figure is the endpoint's own (what a PHP or Node
  SDK adds on top is its own, as it is against DynamoDB).

Measured: per call, one client process, the surfaces interleaved
round-robin (median and p99); and throughput, several client processes
in closed loops for a while (requests/s, median and p99 under load).
Targets: the sidecar adds under 0.5 ms to a call's median; a cached
GetItem through the sidecar answers in under 0.5 ms; at least 3,000
cached GetItem/s on the machine (2 cores).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from regionproxy.bench.load import summarize
from regionproxy.bench.targets import target

REGIONS = ["eu-west-3", "us-east-1"]
PLAIN, HOT = "Plain", "Hot"
KEY = {"pk": {"S": "bench"}}
ITEM = {**KEY, "payload": {"S": "x" * 200}, "n": {"N": "42"}}
LAB_KEYS = ("testing", "testing")
CLIENT_KEYS = ("bench", "bench-secret")
ADDED_LIMIT_MS = 0.5
CACHED_LIMIT_MS = 0.5
CACHED_RATE = 3000.0
# (client kind, endpoint, table): the surfaces, as the report names them.
SURFACES = {
    "boto3 -> region": ("boto3", "region", PLAIN),
    "boto3 -> sidecar": ("boto3", "sidecar", PLAIN),
    "boto3 -> sidecar, cached": ("boto3", "sidecar", HOT),
    "http -> region": ("http", "region", PLAIN),
    "http -> sidecar": ("http", "sidecar", PLAIN),
    "http -> sidecar, cached": ("http", "sidecar", HOT),
}
LOADS = ("http -> region", "http -> sidecar", "http -> sidecar, cached", "boto3 -> sidecar, cached")


# -- clients -----------------------------------------------------------------------


class _SignedGet:
    """One GetItem, signed once a minute, sent over one keep-alive connection."""

    def __init__(self, url: str, table: str, keys: tuple[str, str], region: str) -> None:
        self.url, self.keys, self.region = url, keys, region
        self.body = json.dumps({"TableName": table, "Key": KEY}).encode()
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.signed_at = -1e9
        self.headers: dict[str, str] = {}

    def _sign(self) -> None:
        from botocore.credentials import Credentials

        from regionproxy._regions.wire import LightRequest, SigV4

        headers = {"X-Amz-Target": "DynamoDB_20120810.GetItem", "Content-Type": "application/x-amz-json-1.0"}
        request = LightRequest("POST", self.url + "/", headers, self.body)
        SigV4(Credentials(*self.keys), "dynamodb", self.region).add_auth(request)  # botocore's SigV4, the time now
        self.headers = headers
        self.signed_at = time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self.signed_at > 60:
            self._sign()
        self.connection.request("POST", "/", self.body, self.headers)
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200 or b'"Item"' not in body:
            raise RuntimeError(f"GetItem answered {response.status}: {body[:200]!r}")


def _client(kind: str, endpoint: str, table: str, urls: dict[str, str]) -> Callable[[], None]:
    keys, region = (LAB_KEYS, REGIONS[0]) if endpoint == "region" else (CLIENT_KEYS, "us-east-1")
    if kind == "http":
        return _SignedGet(urls[endpoint], table, keys, region)
    import boto3

    client = boto3.client(
        "dynamodb", region_name=region, endpoint_url=urls[endpoint], aws_access_key_id=keys[0], aws_secret_access_key=keys[1]
    )

    def call() -> None:
        if "Item" not in client.get_item(TableName=table, Key=KEY):
            raise RuntimeError("GetItem found no item")

    return call


def _per_call_worker(urls: dict[str, str], calls: int) -> dict[str, list[float]]:
    """Each surface ``calls`` times, interleaved round-robin: latencies (s)."""
    clients = {name: _client(*surface, urls) for name, surface in SURFACES.items()}
    for client in clients.values():
        for _ in range(20):
            client()  # warm: connections, the cache, botocore's models
    latencies: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(calls):
        for name, client in clients.items():
            started = time.perf_counter()
            client()
            latencies[name].append(time.perf_counter() - started)
    return latencies


def _load_worker(urls: dict[str, str], surface: str, seconds: float) -> list[float]:
    """A closed loop of one surface for ``seconds``: latencies (s)."""
    client = _client(*SURFACES[surface], urls)
    for _ in range(20):
        client()
    latencies, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline and len(latencies) < 10_000_000:
        started = time.perf_counter()
        client()
        latencies.append(time.perf_counter() - started)
    return latencies


def _in_processes(argv: list[str], count: int, timeout: float) -> list[Any]:
    children = [
        subprocess.Popen([sys.executable, "-m", "regionproxy.bench.sidecar", *argv], stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    try:
        return [json.loads(child.communicate(timeout=timeout)[0]) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


# -- the sidecar ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user and system) of process ``pid`` and its children so
    far, from ``/proc``; None where ``/proc`` cannot tell."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        pids = [pid, *(int(child) for child in open(f"/proc/{pid}/task/{pid}/children").read().split())]
        total = 0
        for each in pids:
            fields = open(f"/proc/{each}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def serving_sidecar(lab: Any, workers: int) -> Iterator[tuple[str, int]]:
    """``regionproxy serve`` (gunicorn) over ``lab`` for the block; its URL and pid."""
    from regionproxy.testing.examples import environment

    with contextlib.closing(__import__("socket").socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = environment(lab, None, os.environ)
    env.update(
        REGIONPROXY_SERVE_KEYS=":".join(CLIENT_KEYS),
        REGIONPROXY_CACHE_TTL="60",
        REGIONPROXY_CACHE_TABLES=HOT,
    )
    command = [sys.executable, "-m", "regionproxy", "serve", "--listen", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", "8"]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # bounded: 30 s
            if child.poll() is not None:
                raise RuntimeError(f"regionproxy serve exited: {child.stderr.read()[-2000:] if child.stderr else ''}")
            try:
                with urllib.request.urlopen(url + "/livez", timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("regionproxy serve did not start in 30 s")
        yield url, child.pid
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def run(size: Any, profile: Any, out: Any, progress: Any) -> dict[str, Any]:
    """The ``sidecar`` scenario for the bench runner (the profile's latency is
    not applied: the lab answers on loopback, to show the sidecar's own cost)."""
    from regionproxy.testing import LocalRegions

    workers = os.cpu_count() or 1
    processes = size.throughput_processes or workers
    with LocalRegions(REGIONS, mode=size.lab_mode, replicate=False) as lab:
        for table in (PLAIN, HOT):
            lab.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            )
            for region in REGIONS:
                lab.client(region, direct=True).put_item(TableName=table, Item=ITEM)
        with serving_sidecar(lab, workers) as (sidecar, pid):
            urls = {"region": lab.endpoints[REGIONS[0]], "sidecar": sidecar}
            calls = max(size.overhead_calls // 2, 10)  # six surfaces: half the overhead scenario's calls each
            progress(f"sidecar: {calls} calls per surface, interleaved, one client process")
            (latencies,) = _in_processes(["per-call", json.dumps(urls), str(calls)], 1, 600)
            per_call = {name: summarize(values) for name, values in latencies.items()}
            load = {}
            for surface in LOADS:
                progress(f"sidecar: {surface}, {processes} client processes x {size.throughput_seconds:g} s")
                before = cpu_seconds(pid)
                runs = _in_processes(["load", json.dumps(urls), surface, str(size.throughput_seconds)], processes, size.throughput_seconds + 120)
                after = cpu_seconds(pid)
                merged = [value for values in runs for value in values]
                load[surface] = {**summarize(merged), "rate": round(len(merged) / size.throughput_seconds, 1), "processes": processes}
                if "sidecar" in surface and before is not None and after is not None and merged:
                    # Warm-up calls included: a slight overestimate.
                    load[surface]["sidecar_cpu_us"] = round((after - before) * 1e6 / (len(merged) + 20 * processes), 1)
    result = {
        "scenario": "sidecar",
        "endpoint": f"the lab's {REGIONS[0]} on loopback (no injected latency); regionproxy serve, gunicorn, {workers} workers (regionproxy's worker class)",
        "calls": calls,
        "per_call": per_call,
        "load": load,
    }
    result["targets"] = targets(result)
    return result


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The sidecar's targets (see :mod:`regionproxy.bench.targets`)."""
    per_call, load = result["per_call"], result["load"]

    def added(kind: str) -> float:
        return per_call[f"{kind} -> sidecar"]["p50_ms"] - per_call[f"{kind} -> region"]["p50_ms"]

    cached_http, cached_boto3 = per_call["http -> sidecar, cached"], per_call["boto3 -> sidecar, cached"]
    rate = load["http -> sidecar, cached"]["rate"]
    return [
        target(
            "what the sidecar adds to a call's median, no cache",
            f"< {ADDED_LIMIT_MS:g} ms",
            f"per call, one client, interleaved, {result['calls']} calls each: boto3 via the sidecar minus boto3 to the region",
            f"{added('boto3'):.3f} ms",
            added("boto3") < ADDED_LIMIT_MS,
            beside=[("the same with the signed-request client", f"{added('http'):.3f} ms")],
        ),
        target(
            "a cached GetItem through the sidecar, median",
            f"< {CACHED_LIMIT_MS:g} ms",
            "per call, one client: the signed-request client (the endpoint's own time; an SDK adds its own work, as against DynamoDB)",
            f"{cached_http['p50_ms']:.3f} ms",
            cached_http["p50_ms"] < CACHED_LIMIT_MS,
            beside=[
                ("boto3 as the client (boto3's own work included)", f"{cached_boto3['p50_ms']:.3f} ms"),
                ("p99, signed-request client", f"{cached_http['p99_ms']:.3f} ms"),
            ],
        ),
        target(
            "cached GetItem through the sidecar, requests/s on this machine",
            f">= {CACHED_RATE:g}/s",
            f"{load['http -> sidecar, cached']['processes']} signed-request client processes in closed loops beside the sidecar",
            f"{rate:.0f}/s",
            rate >= CACHED_RATE,
            beside=[
                ("boto3 client processes", f"{load['boto3 -> sidecar, cached']['rate']:.0f}/s"),
                ("uncached, signed-request clients", f"{load['http -> sidecar']['rate']:.0f}/s"),
                ("signed-request clients straight to the region", f"{load['http -> region']['rate']:.0f}/s"),
                (
                    "the sidecar's CPU per cached GetItem (all its processes), and what 2 cores would serve at that cost",
                    _capacity(load["http -> sidecar, cached"].get("sidecar_cpu_us")),
                ),
            ],
        ),
    ]


def _capacity(cpu_us: float | None) -> str:
    if not cpu_us:
        return "not measured"
    return f"{cpu_us:.0f} us CPU, {2e6 / cpu_us:.0f}/s"


if __name__ == "__main__" and len(sys.argv) >= 4 and sys.argv[1] in ("per-call", "load"):
    _urls = json.loads(sys.argv[2])
    if sys.argv[1] == "per-call":
        print(json.dumps(_per_call_worker(_urls, int(sys.argv[3]))))
    else:
        print(json.dumps(_load_worker(_urls, sys.argv[3], float(sys.argv[4]))))
