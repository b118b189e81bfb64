"""Scenario ``webapp``: a Flask app under HTTP load, bare and wrapped.

The app (:mod:`regionproxy.bench.app`, one GetItem per request) runs under
gunicorn (one ``gthread`` worker, 8 threads) against the near-free canned
endpoint, so that what differs between configurations is the app
process's own work: bare boto3, wrapped without cache, wrapped with cache.
Load comes from ``wrk`` (Debian's ``wrk`` package) when it is installed,
else from a Python client in this process (closed loop over kept-alive
connections); the results say which. Both are closed loops: they measure
the most the app serves, not latency at a fixed rate.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from typing import Any

from regionproxy.bench.load import summarize
from regionproxy.bench.overhead import canned_endpoint
from regionproxy.bench.targets import target
from regionproxy.testing.servers import free_port

CONFIGS = {
    "bare": {"BENCH_MODE": "bare"},
    "wrapped, cache off": {"BENCH_MODE": "wrapped", "BENCH_CACHE": "0"},
    "wrapped, cache on": {"BENCH_MODE": "wrapped", "BENCH_CACHE": "1"},
}
CONNECTIONS = 16
THREADS = 8


def _get(port: int, timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/item")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _start(config: dict[str, str], endpoint: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()  # outside the kernel's ephemeral ports: no other process takes it meanwhile
    env = {**os.environ, **config, "BENCH_ENDPOINT": endpoint}
    server = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", str(THREADS),
            "-b", f"127.0.0.1:{port}", "--log-level", "warning", "regionproxy.bench.app:create_app()",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    return server, port


def _wait_ready(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {server.stderr.read().decode(errors='replace')[-2000:]}")  # type: ignore[union-attr]
        try:
            if _get(port) == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("gunicorn did not answer within 60 s")


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return round(float(number) * _UNITS[unit], 3)


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms) and errors from ``wrk --latency``."""
    result: dict[str, Any] = {"requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}  # type: ignore[union-attr]
    for percent, value in re.findall(r"^\s+(50|90|99)%\s+(\S+)$", output, re.M):
        result[f"p{percent}_ms"] = _ms(value)
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    result["errors"] = errors
    return result


def _wrk(port: int, seconds: float) -> dict[str, Any]:
    duration = max(int(round(seconds)), 1)
    output = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", f"http://127.0.0.1:{port}/item"],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
    ).stdout
    return parse_wrk(output)


def python_load(port: int, seconds: float, connections: int = CONNECTIONS) -> dict[str, Any]:
    """Closed-loop GETs over ``connections`` kept-alive connections for ``seconds``."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        mine: list[float] = []
        failed = 0
        try:
            while time.perf_counter() < deadline and len(mine) < 1_000_000:
                started = time.perf_counter()
                try:
                    conn.request("GET", "/item")
                    response = conn.getresponse()
                    response.read()
                    if response.status != 200:
                        failed += 1
                except (OSError, http.client.HTTPException):
                    failed += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                mine.append(time.perf_counter() - started)
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)
                errors[0] += failed

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 10)
    summary = summarize(latencies)
    return {
        "requests_per_s": round(len(latencies) / seconds, 1),
        **{key: summary.get(f"{key.split('_')[0]}_ms") for key in ("p50_ms", "p90_ms", "p99_ms")},
        "errors": errors[0],
    }


def run(size: Any, profile: Any, out: Any, progress: Any) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    generator = f"wrk -t2 -c{CONNECTIONS} (Debian)" if wrk else f"Python closed-loop client, {CONNECTIONS} connections (wrk not installed)"
    seconds = size.app_seconds
    results: dict[str, Any] = {
        "scenario": "webapp",
        "server": f"1 gthread worker x {THREADS} threads",
        "backend": "canned endpoint (near-free, another process)",
        "load_generator": generator,
        "seconds": seconds,
        "configs": {},
    }
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    with canned_endpoint() as endpoint:
        try:
            # Started together (each takes seconds to import), measured in turn.
            for name, config in CONFIGS.items():
                servers[name] = _start(config, endpoint)
            for server, port in servers.values():
                _wait_ready(server, port)
            for name, (_, port) in servers.items():
                progress(f"webapp: {name}, {seconds:g} s with {generator.split(',')[0]}")
                python_load(port, min(0.2 * seconds, 1.0), connections=2)  # warm up every thread's path
                results["configs"][name] = _wrk(port, seconds) if wrk else python_load(port, seconds)
        finally:
            for server, _ in servers.values():
                _stop(server)
    results["targets"] = targets(results)
    return results


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The middleware's cost, judged on the app with the cache off against
    the bare app (both call DynamoDB on every request); what the cache
    gains with one hot key served from memory is reported on its own row,
    with no target (see :mod:`regionproxy.bench.targets`)."""
    configs = {name: data or {} for name, data in result["configs"].items()}
    bare = configs.get("bare", {}).get("requests_per_s")

    def against_bare(config: str) -> tuple[str | None, bool]:
        """The figure, and whether it is at least 90% of bare with every
        request answered (an error page served fast is not throughput)."""
        rate = configs.get(config, {}).get("requests_per_s")
        if not bare or rate is None:  # no bare figure to compare with: not measured
            return None, False
        errors = {name: configs[name].get("errors") or 0 for name in ("bare", config)}
        shown = f"{rate:g} vs {bare:g} req/s = {100 * rate / bare:.0f}%"
        if any(errors.values()):
            shown += " (errors: " + ", ".join(f"{name} {count}" for name, count in errors.items()) + ")"
        return shown, rate >= 0.9 * bare and not any(errors.values())

    uncached, uncached_met = against_bare("wrapped, cache off")
    cached, _ = against_bare("wrapped, cache on")
    return [
        target(
            "wrapped app throughput vs bare (what the middleware and session cost)",
            ">= 90%, no errors",
            "cache off vs bare: every request calls DynamoDB in both",
            uncached,
            uncached_met,
        ),
        target("the read cache's gain", None, "cache on vs bare: one hot key, served from memory", cached, None),
    ]
