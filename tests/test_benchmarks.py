"""The benchmark scripts and the bench package's parts: they run and print
their figures (no timing asserted here: speed is shown by running them, not
by timed tests; the one bound below is a lower bound that only a broken
scheduler can miss)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from regionproxy.bench import profiles
from regionproxy.bench.load import run_constant_rate, summarize
from regionproxy.bench.webapp import parse_wrk
from regionproxy.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_overhead_benchmark_prints_a_row_per_surface_and_operation():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_overhead.py"), "--calls", "10", "--target", "canned"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for operation in ("GetItem", "PutItem", "Query"):
        for surface in ("boto3 client", "session.client", "boto3 Table", "session.table"):
            row = next(line for line in out.splitlines() if line.startswith(f"{operation:<9} {surface:<15}"))
            median, p99, ratio, added = row[25:].split()
            assert float(median) > 0 and float(p99) >= float(median) and ratio.endswith("x")


# -- the bench package's parts ---------------------------------------------------


def test_latency_counts_from_the_intended_send_time_not_from_when_a_worker_was_free():
    # One worker, calls of 50 ms, 100 sends a second: request k cannot start
    # before k x 50 ms though it was due at k x 10 ms, so it waited >= k x 40 ms.
    def slow_call():
        time.sleep(0.05)
        return None, 1

    samples = run_constant_rate(slow_call, rate=100, duration=0.1, workers=1)
    assert [round(s.intended, 3) for s in samples] == [round(k * 0.01, 3) for k in range(10)]
    for k, sample in enumerate(samples):
        assert sample.latency >= k * 0.04 + 0.05 - 0.001


def test_constant_rate_records_failures_with_their_error_and_keeps_going():
    calls = iter(range(1000))
    lock = threading.Lock()

    def call():
        with lock:
            n = next(calls)
        if n % 2:
            raise TimeoutError("odd")
        return "eu-west-3", 1

    samples = run_constant_rate(call, rate=200, duration=0.05, workers=2)
    assert len(samples) == 10
    assert sorted(s.error for s in samples if not s.ok) == ["TimeoutError"] * 5
    assert {(s.region, s.attempts) for s in samples if s.ok} == {("eu-west-3", 1)}


def test_summaries_come_in_milliseconds_and_in_percentile_order():
    summary = summarize([i / 1000 for i in range(1, 1001)])
    assert summary["count"] == 1000
    assert summary["p50_ms"] == pytest.approx(500, rel=0.01) and summary["max_ms"] == pytest.approx(1000, rel=0.01)
    assert summary["p50_ms"] <= summary["p90_ms"] <= summary["p99_ms"] <= summary["p99.9_ms"] <= summary["max_ms"]
    assert summarize([]) == {"count": 0}


@pytest.mark.parametrize("site", sorted(profiles.SITES))
def test_every_site_has_a_derived_round_trip_to_every_region_with_its_range(site):
    profile = profiles.derive(site)
    assert set(profile.regions) == set(profiles.REGIONS)
    for latency in profile.regions.values():
        assert 0 < latency.low_ms < latency.rtt_ms < latency.high_ms
        assert latency.how.startswith("derived:")


@pytest.mark.parametrize(
    ("site", "local", "near"),
    [
        pytest.param("GRA", "eu-west-3", "eu-central-1", id="gravelines"),
        pytest.param("LIM", "eu-central-1", "eu-west-3", id="limburg"),
        pytest.param("BHS", "ca-central-1", "us-east-1", id="beauharnois"),
    ],
)
def test_profiles_choose_the_nearest_region_as_local(site, local, near):
    profile = profiles.derive(site)
    assert (profile.local, profile.nearest_remote()) == (local, near)


def test_transatlantic_round_trips_match_the_published_paris_new_york_average_within_its_range():
    paris, new_york = profiles.REGIONS["eu-west-3"], profiles.Place("New York", 40.71, -74.01, "america")
    km = profiles.distance_km(paris, new_york)
    assert 5800 < km < 5900
    model = profiles.FIXED_MS + km / 100 * profiles.ROUTE_FACTOR_OCEAN
    assert 0.8 * model <= 77 <= 1.25 * model  # WonderProxy 2011: 77 ms


def test_a_profile_file_round_trips_and_unknown_profiles_are_config_errors(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(profiles.derive("WAW").to_json()))
    assert profiles.load(str(path)).regions == profiles.derive("WAW").regions
    with pytest.raises(ConfigError):
        profiles.load("XYZ")


def test_wrk_output_is_parsed_into_requests_per_second_percentiles_and_errors():
    output = """Running 1s test @ http://127.0.0.1:1/item
  2 threads and 16 connections
  Latency Distribution
     50%    1.50ms
     75%    2.00ms
     90%  750.00us
     99%    1.20s
  1000 requests in 1.00s, 100.00KB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:    999.50
"""
    assert parse_wrk(output) == {"requests_per_s": 999.5, "p50_ms": 1.5, "p90_ms": 0.75, "p99_ms": 1200.0, "errors": 7}
