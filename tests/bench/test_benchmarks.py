"""The benchmark scripts and the bench package's parts: they run and print
their figures (no timing asserted here: speed is shown by running them, not
by timed tests; the one bound below is a lower bound that only a broken
scheduler can miss)."""

from __future__ import annotations

import json
import re
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

ROOT = Path(__file__).resolve().parents[2]


def test_overhead_benchmark_prints_a_row_per_surface_and_operation():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_overhead.py"), "--calls", "10", "--target", "canned"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    baselines = ("boto3 client", "boto3 client (as regions)", "boto3 Table", "boto3 Table (as regions)")
    for operation in ("GetItem", "PutItem", "Query"):
        for surface in (*baselines, "session.client", "session.table"):
            prefix = f"{operation:<9} {surface}  "
            row = next(line for line in out.splitlines() if line.startswith(prefix))
            figures = row[len(prefix) :].split()
            # median, p99, ratio, added; a session row also what it adds over
            # raw boto3 configured as its regional clients.
            assert len(figures) == (4 if surface in baselines else 5), row
            median, p99, ratio = figures[:3]
            assert float(median) > 0 and float(p99) >= float(median) and ratio.endswith("x")



def test_overhead_benchmark_counts_the_calls_each_surface_makes_beyond_its_baselines():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_overhead.py"), "--target", "calls"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for operation in ("GetItem", "PutItem", "Query"):
        for surface in ("boto3 client", "boto3 client (as regions)", "session.client", "session.table"):
            prefix = f"{operation:<9} {surface}  "
            row = next(line for line in out.splitlines() if line.startswith(prefix))
            python, into_c = row[len(prefix) :].split()[:2]
            assert int(python) > 100 and int(into_c) > 100, row
            if surface.startswith("session"):
                assert "python," in row and "into C" in row, "what it makes beyond its baselines"


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


# -- the targets: each judged on the figure a user would meet --------------------
# Fixtures are results.json-shaped dicts (figures from benchmarks/latest), not
# timings: the verdicts are judged from the figures alone.


def _json(data):
    """``data`` as it comes back from results.json."""
    return json.loads(json.dumps(data))


def _overhead_result(ratio=1.037):
    def row(ratio, baseline):
        return {"median_us": 920.2 * ratio, "p99_us": 1339.5, "ratio": ratio, "baseline": baseline, "added_us": 920.2 * (ratio - 1)}

    per_call = {
        operation: {"boto3 client": row(1.0, "boto3 client"), "session.client": row(worst, "boto3 client")}
        for operation, worst in (("GetItem", ratio), ("PutItem", 1.0))
    }
    rates = {"processes": 2, "seconds": 3.0, "boto3 client": 2087.7, "session.client": 2026.3, "ratio": 0.971}
    return _json({"endpoint": "canned", "calls": 800, "per_call": per_call, "throughput": rates})


def _webapp_result(bare=549.25, off=544.6, on=1784.87, errors_off=0):
    configs = {
        "bare": {"requests_per_s": bare, "errors": 0},
        "wrapped, cache off": {"requests_per_s": off, "errors": errors_off},
        "wrapped, cache on": {"requests_per_s": on, "errors": 0},
    }
    return _json({"configs": configs, "server": "1 gthread worker", "backend": "canned", "load_generator": "wrk", "seconds": 5.0})


def _phase(name, start, **drill):
    row = {"phase": name, "start_s": start, "requests": 120, "failed": 0, "latency": {"count": 120, "p99_ms": 100.0}}
    if name in ("refuse", "blackhole", "brownout"):
        row.update({"met_outage": 0, "added_ms_met": None, "added_ms_worst": None})
    row.update(drill)
    return row


def _failover_result(refuse_drill=7.9, refuse_apart=1.2, hedged_drill=18.3, drill_delays=(19.7, 19.7), brownout_p99=118.975):
    marks = [["healthy", 0.0], ["refuse", 6.0], ["healed", 12.0], ["blackhole", 18.0], ["healed", 24.0], ["brownout", 30.0], ["healed", 36.0]]

    def stream(refuse, blackhole, brownout_p99=None):
        phases = []
        for name, at in marks:
            drill = {"refuse": refuse, "blackhole": blackhole}.get(name, {}) if name != "healed" else {}
            row = _phase(name, at, **drill)
            if name == "brownout" and brownout_p99 is not None:
                row["latency"]["p99_ms"] = brownout_p99
            phases.append(row)
        return {"available": True, "phases": phases}

    classic = stream({}, {})
    for row in classic["phases"]:
        if row["phase"] in ("refuse", "blackhole"):
            row["failed"] = 120
    # A hedge before the blackhole (13.1 ms) must not count as the phase's delay.
    delays = [[10.0, 13.1], *([19.0 + i / 10, delay] for i, delay in enumerate(drill_delays))]
    hedged = stream(
        {"met_outage": 5, "added_ms_met": 2.0, "added_ms_worst": 16.2},
        {"met_outage": 10, "added_ms_met": hedged_drill, "added_ms_worst": 23.6},
        brownout_p99,
    )
    hedged["hedge_delays_ms"] = delays
    return _json(
        {
            "regions": ["eu-west-3", "us-east-1"],
            "breaker": {"fail_max": 3, "reset_timeout": 2.0},
            "brownout_ms": 300.0,
            "rate_per_stream": 20,
            "phase_seconds": 6.0,
            "timeouts": {"connect": 0.5, "read": 1.0, "attempts": 2},
            "marks": marks,
            "streams": {
                "regionproxy": stream(
                    {"met_outage": 5, "added_ms_met": refuse_drill, "added_ms_worst": 17.7},
                    {"met_outage": 24, "added_ms_met": 1003.3, "added_ms_worst": 1016.2},
                ),
                "regionproxy+hedge": hedged,
                "classic": classic,
            },
            "meeting_cost": [
                {"fault": "refuse", "hedging": "no hedging", "requests": 40, "hedge_delay_ms": None, "direct_p50_ms": 89.8,
                 "added_p50_ms": refuse_apart, "added_max_ms": 7.3},
                {"fault": "blackhole", "hedging": "no hedging", "requests": 8, "hedge_delay_ms": None, "direct_p50_ms": 90.6,
                 "added_p50_ms": 1003.0, "added_max_ms": 1004.4},
                {"fault": "blackhole", "hedging": "hedging", "requests": 20, "hedge_delay_ms": 13.1, "direct_p50_ms": 90.4,
                 "added_p50_ms": 13.3, "added_max_ms": 16.5},
            ],
        }
    )  # fmt: skip


def _variant(p99, extra, delay):
    return {"available": True, "hedge_delay": delay, "latency": {"count": 1000, "p99_ms": p99}, "extra_requests_pct": extra}


def _tail_result(default=(210.0, 5.5), tuned=(59.647, 5.2), p95=(215.0, 5.5)):
    from regionproxy.bench import tail

    variants = {"no hedging": _variant(216.831, 0.0, None)}
    if default is not None:
        variants[tail.DEFAULT] = _variant(*default, 0.05)
    if tuned is not None:
        variants[tail.TUNED] = _variant(*tuned, 0.04)
    if p95 is not None:
        variants[tail.P95] = {**_variant(*p95, "p95"), "hedge_delay_waited_ms": 12.0}
    shape = {"regions": ["eu-west-3", "eu-central-1"], "spike_ms": 200.0, "spike_rate": 0.05, "rate": 40, "seconds": 25.0}
    return _json({**shape, "calibrated_local_p50_ms": 9.8, "variants": variants})


def _row(rows, figure_starts):
    return next(row for row in rows if row["figure"].startswith(figure_starts))


def _beside(row, on_starts):
    return next(shown["value"] for shown in row["beside"] if shown["on"].startswith(on_starts))


def test_the_web_apps_overhead_is_judged_on_cache_off_against_bare_not_on_the_cache():
    from regionproxy.bench import webapp
    from regionproxy.bench.targets import REPORTED, verdict

    # Half the bare app's throughput without the cache, 3.25x with it: the
    # cache-on figure must not hide what the middleware costs.
    rows = webapp.targets(_webapp_result(bare=549.25, off=274.6, on=1784.87))
    overhead = _row(rows, "wrapped app throughput vs bare")
    assert overhead["judged_on"].startswith("cache off vs bare")
    assert overhead["value"] == "274.6 vs 549.25 req/s = 50%" and overhead["met"] is False
    gain = _row(rows, "the read cache's gain")
    assert gain["judged_on"].startswith("cache on vs bare")
    assert gain["value"] == "1784.87 vs 549.25 req/s = 325%"
    assert gain["target"] is None and verdict(gain) == REPORTED
    assert _row(webapp.targets(_webapp_result()), "wrapped app throughput")["met"] is True  # 99%


def test_a_wrapped_app_that_answers_errors_does_not_meet_the_throughput_target():
    from regionproxy.bench import webapp

    overhead = _row(webapp.targets(_webapp_result(off=549.0, errors_off=12)), "wrapped app throughput")
    assert overhead["met"] is False and "wrapped, cache off 12" in overhead["value"]


@pytest.mark.parametrize(
    ("drill", "apart", "met"),
    [
        pytest.param(7.9, 1.2, False, id="drill-misses-steady-meets"),
        pytest.param(1.2, 7.9, True, id="drill-meets-steady-misses"),
    ],
)
def test_the_refuse_target_is_judged_on_the_drill_with_the_steady_measurement_beside(drill, apart, met):
    from regionproxy.bench import failover

    row = _row(failover.targets(_failover_result(refuse_drill=drill, refuse_apart=apart)), "latency added to a request that meets refuse")
    assert row["judged_on"].startswith("the drill: regionproxy stream") and "jitter" in row["judged_on"]
    assert row["value"] == f"+{drill} ms (worst +17.7 ms) over 5 requests"
    assert row["met"] is met
    assert _beside(row, "apart: one request at a time") == f"+{apart} ms (worst +7.3 ms) over 40 requests"


def test_the_blackhole_targets_are_judged_on_the_drill_with_the_steady_measurement_beside():
    from regionproxy.bench import failover

    rows = failover.targets(_failover_result())
    plain = _row(rows, "latency added to a request that meets blackhole, no hedging")
    assert plain["value"] == "+1003.3 ms (worst +1016.2 ms) over 24 requests" and plain["met"] is True
    assert _beside(plain, "apart") == "+1003.0 ms (worst +1004.4 ms) over 8 requests"
    hedged = _row(rows, "latency added to a request that meets blackhole, with hedging")
    assert hedged["judged_on"].startswith("the drill: regionproxy+hedge stream")
    assert hedged["value"] == "+18.3 ms (worst +23.6 ms) over 10 requests"
    assert _beside(hedged, "apart") == "+13.3 ms (worst +16.5 ms) over 20 requests at a hedge delay of 13.1 ms"


@pytest.mark.parametrize(
    ("added", "delays", "met"),
    [
        pytest.param(18.3, (19.7, 19.7, 19.9), True, id="within-the-drills-delay"),
        pytest.param(26.0, (19.7, 19.7, 19.9), False, id="beyond-the-drills-delay"),
        pytest.param(18.3, (12.0, 13.1, 13.1), False, id="beyond-a-shorter-delay"),
        pytest.param(18.3, (), None, id="no-hedge-in-the-phase"),
    ],
)
def test_a_hedged_blackhole_is_held_to_the_delay_the_drills_hedges_waited_in_that_phase(added, delays, met):
    from regionproxy.bench import failover

    row = _row(failover.targets(_failover_result(hedged_drill=added, drill_delays=delays)), "latency added to a request that meets blackhole, with")
    assert row["met"] is met
    if delays:
        assert f"({sorted(delays)[len(delays) // 2]:g} ms, the median the drill's hedges waited" in row["target"]


def test_the_classic_designs_loss_in_a_longer_outage_is_labelled_as_modelled_not_run():
    from regionproxy.bench import failover

    row = _row(failover.targets(_failover_result()), "failed reads during refuse + blackhole")
    assert row["value"] == "regionproxy 0, regionproxy+hedge 0, classic 240" and row["met"] is True
    (shown,) = row["beside"]
    assert "modelled from Route 53's published timings" in shown["on"] and "not from a run" in shown["on"]
    assert shown["value"] == "1800-3600 requests lost (90-180 s at 20/s)"


def test_the_tail_is_judged_on_the_default_hedge_delay_with_the_tuned_one_beside():
    from regionproxy.bench import tail

    p99, extra = tail.targets(_tail_result(default=(210.0, 5.5), tuned=(59.647, 5.2)))
    for row in (p99, extra):
        assert row["judged_on"].startswith(f"{tail.DEFAULT}: HedgePolicy() as it comes, delay 50 ms")
    assert p99["value"] == "216.831 / 210.0 ms = 1.0x" and p99["met"] is False
    assert _beside(p99, f"{tail.TUNED}, 40 ms") == "216.831 / 59.647 ms = 3.6x"
    assert _beside(p99, f'{tail.P95}, "p95" (waited 12 ms)') == "216.831 / 215.0 ms = 1.0x"
    assert extra["value"] == "5.5%" and extra["met"] is True
    assert _beside(extra, tail.TUNED) == "5.2%"


def test_a_tail_run_without_the_default_delay_is_not_measured_and_still_shows_the_tuned_one():
    from regionproxy.bench import tail
    from regionproxy.bench.targets import NOT_MEASURED, verdict

    p99, extra = tail.targets(_tail_result(default=None, p95=None))
    for row in (p99, extra):
        assert row["value"] is None and verdict(row) == NOT_MEASURED
        assert _beside(row, tail.DEFAULT).startswith("not measured")
    assert _beside(p99, tail.TUNED) == "216.831 / 59.647 ms = 3.6x"


def test_the_tail_runs_hedgepolicys_own_delay_first_and_the_tuned_one_beside():
    import regionproxy as rp
    from regionproxy.bench import tail

    delays = tail.hedge_delays()
    assert next(iter(delays)) == tail.DEFAULT and delays[tail.DEFAULT] == rp.HedgePolicy().delay
    assert delays[tail.TUNED] == tail.TUNED_DELAY
    assert len(set(delays.values())) == len(delays)  # no variant runs the same delay twice


def test_extra_requests_count_only_the_timed_runs_hedges_not_the_warm_ups():
    from regionproxy.bench import tail
    from regionproxy.bench.lab import RegionOfCall
    from regionproxy.bench.load import Sample
    from regionproxy.events import CallFinished, Hedged, OperationFinished

    listener = RegionOfCall(time.perf_counter)

    def read(hedged):
        listener(CallFinished("eu-west-3", "GetItem", "read", 0.01, "ok"))
        if hedged:
            listener(Hedged("GetItem", "eu-west-3", "eu-central-1", "won", 0.05))
            listener(CallFinished("eu-central-1", "GetItem", "read", 0.01, "ok"))
        listener(OperationFinished("GetItem", "read", "ok", "eu-west-3", 0.01, 2 if hedged else 1))

    for _ in range(5):  # a warm-up in which every read hedged
        read(True)
    before = listener.counts()
    for index in range(20):
        read(index == 0)
    samples = [Sample(i / 40, 0.01, "eu-west-3") for i in range(20)]
    data = tail._variant(samples, listener, before, 0.05)
    assert (data["operations"], data["attempts"], data["hedges"]) == (20, 21, {"won": 1})
    assert data["extra_requests_pct"] == 5.0


def _results(**scenarios):
    return _json(
        {
            "command": "regionproxy bench --quick",
            "size": {"name": "quick"},
            "started": "2026-11-26 09:58:49 UTC",
            "machine": {"cpus": 2, "cpu": "x", "system": "Linux", "python": "3.11", "boto3": "1", "regionproxy": "0"},
            "profile": {"name": "GRA", "origin": "Gravelines", "regions": {"eu-west-3": {"rtt_ms": 5.3}}},
            "scenarios": scenarios,
        }
    )


def _targets_table(markdown):
    """The targets table's rows as dicts (header -> cell)."""
    lines = markdown.split("## Targets", 1)[1].split("\n## ", 1)[0].splitlines()
    table = [line for line in lines if line.startswith("| ")]

    def cells(line):
        return [cell.strip() for cell in re.split(r"(?<!\\)\|", line[1:-1])]  # an escaped "\|" is inside a cell

    header = cells(table[0])
    return [dict(zip(header, cells(line), strict=True)) for line in table[2:]]


def test_the_targets_table_names_the_judged_figure_and_shows_the_others_beside_it():
    from regionproxy.bench import failover, report, tail, webapp

    scenarios = {"failover": _failover_result(), "tail": _tail_result(), "webapp": _webapp_result()}
    for name, module in (("failover", failover), ("tail", tail), ("webapp", webapp)):
        scenarios[name]["targets"] = module.targets(scenarios[name])
    rows = _targets_table(report.markdown(_results(**scenarios), []))
    by_figure = {(row["scenario"], row["figure"].split(" (")[0].split(",")[0]): row for row in rows}
    refuse = by_figure[("failover", "latency added to a request that meets refuse")]
    assert refuse["judged on"].startswith("the drill") and refuse["measured"].startswith("+7.9 ms")
    assert "jitter 0): +1.2 ms" in refuse["shown beside (not judged)"] and refuse["verdict"] == "NOT met"
    classic = by_figure[("failover", "failed reads during refuse + blackhole")]
    assert "not from a run: 1800-3600 requests lost" in classic["shown beside (not judged)"]
    p99 = by_figure[("tail", "p99 under spikes")]
    assert p99["judged on"].startswith(tail.DEFAULT) and p99["measured"].endswith("= 1.0x")
    assert f"{tail.TUNED}, 40 ms: 216.831 / 59.647 ms = 3.6x" in p99["shown beside (not judged)"]
    assert p99["verdict"] == "NOT met"
    overhead = by_figure[("webapp", "wrapped app throughput vs bare")]
    assert overhead["judged on"].startswith("cache off vs bare") and overhead["measured"].endswith("= 99%")
    gain = by_figure[("webapp", "the read cache's gain")]
    assert gain["measured"].endswith("= 325%") and gain["verdict"] == "reported (no target)"
    assert all(row["judged on"] for row in rows)


def test_a_results_json_is_judged_again_from_its_figures_and_rendered(tmp_path):
    from regionproxy.bench import report

    stale = [{"figure": "wrapped app throughput vs bare, cache on", "target": ">= 90%", "value": "325%", "met": True}]
    kept = [{"figure": "from a newer version | kept", "target": "x", "judged_on": "y", "value": "z", "met": True, "beside": []}]
    results = _results(
        overhead=_overhead_result(), webapp={**_webapp_result(off=274.6), "targets": stale}, newer={"targets": kept}
    )
    (tmp_path / "results.json").write_text(json.dumps(results))
    report.render(tmp_path, note="in a test")
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["scenarios"]["webapp"]["configs"] == results["scenarios"]["webapp"]["configs"]  # figures untouched
    assert [row["met"] for row in again["scenarios"]["webapp"]["targets"]] == [False, None]
    assert again["scenarios"]["overhead"]["targets"][0]["value"] == "1.037x"
    markdown = (tmp_path / "results.md").read_text()
    verdicts = {row["figure"]: row["verdict"] for row in _targets_table(markdown)}
    assert verdicts["wrapped app throughput vs bare (what the middleware and session cost)"] == "NOT met"
    assert "wrapped app throughput vs bare, cache on" not in verdicts
    assert "judged again from this run's results.json: in a test" in markdown
    # A scenario this version does not know keeps its verdicts; a "|" in a cell stays in its cell.
    assert again["scenarios"]["newer"]["targets"] == kept
    assert "| newer | from a newer version \\| kept | x | y | z |  | met |" in markdown
