"""``regionproxy bench`` end to end, at the ``--smoke`` size: every scenario's
code path (labs, faults on a timeline, sessions with and without hedging,
gunicorn under load, JSON, markdown, plots) in seconds. ``--quick`` (the
3-minute run whose figures mean something) is the same code with longer
phases; it is run by hand and its results kept in ``benchmarks/latest/``.
No timing is asserted: the figures are printed, not judged, here; what is
asserted is the shape of the write-up (each target names the figure it is
judged on and shows the others beside it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from regionproxy.bench.tail import DEFAULT, TUNED, hedge_delays
from regionproxy.bench.targets import SCENARIOS

PNG = b"\x89PNG\r\n\x1a\n"


def _bench(out, size, timeout):
    """``regionproxy bench --<size> --out <out>``: what it printed, and its results."""
    done = subprocess.run(
        [sys.executable, "-m", "regionproxy", "bench", f"--{size}", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads((out / "results.json").read_text())


def test_bench_smoke_runs_every_scenario_and_writes_json_markdown_and_plots(tmp_path):
    out = tmp_path / "bench"
    done, results = _bench(out, "smoke", timeout=180)
    markdown = (out / "results.md").read_text()
    assert list(results["scenarios"]) == list(SCENARIOS)
    for name, result in results["scenarios"].items():
        assert "error" not in result, (name, result.get("error"))
        assert result["targets"], name
        assert (out / f"{name}.png").read_bytes().startswith(PNG)
        assert f"![{name}]({name}.png)" in markdown
    for written in ("results.json", "results.md", "failover.png"):
        assert str(out / written) in done.stdout  # it says where it wrote
    streams = results["scenarios"]["failover"]["streams"]
    assert streams["regionproxy"]["total"] > 0 and streams["classic"]["total"] > 0
    # The pinned app fails while its region refuses connections.
    assert sum(row["failed"] for row in streams["classic"]["phases"] if row["phase"] == "refuse") > 0
    for variant in (streams["regionproxy+hedge"], *results["scenarios"]["tail"]["variants"].values()):
        assert variant["available"], variant
    # What meeting each outage costs one request, measured apart: every case ran.
    meets = results["scenarios"]["failover"]["meeting_cost"]
    assert [(row["fault"], row["hedging"]) for row in meets] == [
        ("refuse", "no hedging"),
        ("blackhole", "no hedging"),
        ("blackhole", "hedging"),
    ]
    assert all(row["requests"] > 0 and row["met_p50_ms"] > 0 for row in meets)
    assert "What one request pays for meeting the outage" in markdown
    generator = results["scenarios"]["webapp"]["load_generator"]
    assert generator.startswith(("wrk", "Python"))
    _assert_targets_judged_on_what_users_meet(results, markdown)


def _assert_targets_judged_on_what_users_meet(results, markdown):
    """The targets' structure (figures are not judged here): each row names
    the figure it is judged on and shows the others beside it."""
    for name, result in results["scenarios"].items():
        for row in result["targets"]:
            assert row["judged_on"] and isinstance(row["beside"], list), (name, row)
            assert f"| {name} | {row['figure']} |" in markdown
    targets = {(name, row["figure"]): row for name, result in results["scenarios"].items() for row in result["targets"]}
    webapp = [row for (name, _), row in targets.items() if name == "webapp"]
    assert [row["judged_on"].split(":")[0] for row in webapp] == ["cache off vs bare", "cache on vs bare"]
    assert webapp[1]["target"] is None and webapp[1]["met"] is None  # the cache's gain: reported, not judged
    for (name, figure), row in targets.items():
        if name == "failover" and figure.startswith("latency added to a request that meets"):
            assert row["judged_on"].startswith("the drill"), row
            assert [shown["on"].split(":")[0] for shown in row["beside"]] == ["apart"], row
    (classic,) = targets[("failover", next(f for n, f in targets if f.startswith("failed reads")))]["beside"]
    assert "not from a run" in classic["on"]
    tail = results["scenarios"]["tail"]
    delays = {name: variant["hedge_delay"] for name, variant in tail["variants"].items()}
    assert delays == {"no hedging": None, **hedge_delays()}
    for row in tail["targets"]:
        assert row["judged_on"].startswith(f"{DEFAULT}: HedgePolicy() as it comes"), row
        assert any(shown["on"].startswith(TUNED) for shown in row["beside"]), row


def test_bench_refuses_an_unknown_scenario_before_starting_anything(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "regionproxy", "bench", "nosuch", "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "unknown scenario 'nosuch'" in done.stderr
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_bench_quick_runs_every_scenario_and_measures_every_target(tmp_path):
    # The 3-minute run itself (issue 10: "bench --quick ... a test runs it").
    # Slow, so out of the default suite, which must stay under 5 minutes on
    # 2 cores: `make test-slow` runs it. Figures are printed, not judged: a
    # loaded machine moves them, and that is not a defect of the code.
    out = tmp_path / "bench"
    _, results = _bench(out, "quick", timeout=900)
    assert results["size"]["name"] == "quick"
    assert list(results["scenarios"]) == list(SCENARIOS)
    for name, result in results["scenarios"].items():
        assert "error" not in result, (name, result.get("error"))
        judged = [target for target in result["targets"] if target["target"] is not None]
        assert judged and all(target["met"] is not None for target in judged), (name, result["targets"])
    print((out / "results.md").read_text().split("## overhead")[0])
