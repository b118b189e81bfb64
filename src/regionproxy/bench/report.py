"""Write bench results: ``results.json``, ``results.md`` and PNG plots.

The targets table judges each target on the figure a user would meet and
shows the other figures beside it (the rule is in
:mod:`regionproxy.bench.targets`). Results already written can be judged
and rendered again from their ``results.json``, figures untouched::

    python -m regionproxy.bench.report benchmarks/latest

Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from regionproxy.bench.targets import judge, verdict


def write(results: dict[str, Any], out: Path, plot: list[str] | None = None) -> list[Path]:
    """Write the JSON and markdown for the scenarios finished so far, and
    the plots of the scenarios named in ``plot`` (all if None); the paths
    of everything in ``out`` that belongs to these results."""
    for name in results["scenarios"] if plot is None else plot:
        result = results["scenarios"][name]
        if "error" not in result and name in PLOTS:
            try:
                PLOTS[name](result, out / f"{name}.png")
            except Exception as error:  # noqa: BLE001 - a broken plot must not lose the figures
                result["plot_error"] = f"{type(error).__name__}: {error}"
    plots = [out / f"{name}.png" for name in results["scenarios"] if (out / f"{name}.png").is_file()]
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "results.md").write_text(markdown(results, [path.name for path in plots]))
    return [out / "results.json", out / "results.md", *plots]


def render(out: Path, note: str) -> list[Path]:
    """Judge the targets in ``out/results.json`` again from its figures
    (each scenario module's ``targets``) and write the JSON, markdown and
    plots again; ``note`` (when and why) is kept in the results and shown
    under the targets table. The figures themselves are not touched."""
    results = json.loads((out / "results.json").read_text())
    judge(results)
    results["judged_again"] = note
    return write(results, out)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import time

    parser = argparse.ArgumentParser(
        prog="python -m regionproxy.bench.report", description="Judge and render a bench run's results.json again."
    )
    parser.add_argument("out", type=Path, help="the directory holding results.json (e.g. benchmarks/latest)")
    parser.add_argument("--note", default=f"{time.strftime('%Y-%m-%d')}, by python -m regionproxy.bench.report")
    args = parser.parse_args(argv)
    if not (args.out / "results.json").is_file():
        parser.error(f"no results.json in {args.out}")
    for path in render(args.out, args.note):
        print(path)
    return 0


# -- markdown -----------------------------------------------------------------


def _row(cells: list[Any]) -> str:
    # A "|" inside a cell (an error message, a reason) would split it.
    return "| " + " | ".join("" if cell is None else str(cell).replace("|", "\\|") for cell in cells) + " |"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(row) for row in rows)]


def _cells(columns: dict[str, str], data: dict[str, Any]) -> list[Any]:
    """``data``'s values for ``columns`` (header -> key), in order; a missing one is blank."""
    return [data.get(key) for key in columns.values()]


def markdown(results: dict[str, Any], plots: list[str]) -> str:
    m = results["machine"]
    lines = [
        "# regionproxy bench results",
        "",
        f"Command: `{results['command']}` (size `{results['size']['name']}`), started {results['started']}"
        + (f", {results['elapsed_s']:.0f} s." if "elapsed_s" in results else "."),
        "",
        f"Machine: {m['cpus']} x {m['cpu']}, {m['system']}, Python {m['python']}, boto3 {m['boto3']}, "
        f"regionproxy {m['regionproxy']}. DynamoDB: moto on loopback behind the lab's fault proxy, "
        "latency injected per request from the profile.",
        "",
        f"Latency profile `{results['profile']['name']}` ({results['profile']['origin']}): "
        + ", ".join(f"{region} {values['rtt_ms']:g} ms" for region, values in results["profile"]["regions"].items())
        + ".",
        "",
        "## Targets",
        "",
    ]
    lines += _targets(results)
    for name, result in results["scenarios"].items():
        lines += ["", f"## {name}", ""]
        if "error" in result:
            lines.append(f"Failed: `{result['error']}`")
            continue
        lines += SECTIONS.get(name, lambda r: [])(result)
        if f"{name}.png" in plots:
            lines += ["", f"![{name}]({name}.png)"]
    return "\n".join(lines) + "\n"


def _targets(results: dict[str, Any]) -> list[str]:
    """The targets table: each target's verdict, the figure it is judged
    on, and the figures shown beside it (not judged)."""
    rows = []
    for name, result in results["scenarios"].items():
        for row in result.get("targets", []):
            beside = "; ".join(f"{shown['on']}: {shown['value']}" for shown in row.get("beside", []))
            value = row["value"] if row["value"] is not None else "not measured"
            goal = row["target"] if row["target"] is not None else "none"
            rows.append([name, row["figure"], goal, row.get("judged_on"), value, beside, verdict(row)])
        if "error" in result:
            rows.append([name, "scenario failed", "", "", result["error"], "", "NOT met"])
    lines = [
        "Each target is judged on the figure a user would meet (the measurement named under *judged on*); "
        "figures measured another way are shown beside it and not judged.",
        "",
        *_table(["scenario", "figure", "target", "judged on", "measured", "shown beside (not judged)", "verdict"], rows),
    ]
    if results.get("judged_again"):
        lines += ["", f"Targets judged again from this run's results.json: {results['judged_again']}."]
    return lines


def _overhead(result: dict[str, Any]) -> list[str]:
    rows = []
    for operation, surfaces in result["per_call"].items():
        for surface, row in surfaces.items():
            rows.append(
                [operation, surface, row["median_us"], row["p99_us"], f"{row['ratio']:.3f}x vs {row['baseline']}", row["added_us"]]
            )
    rates = result["throughput"]
    return [
        f"Per call, {result['calls']} calls per surface, interleaved, against the {result['endpoint']} endpoint:",
        "",
        *_table(["operation", "surface", "median us", "p99 us", "ratio", "added us"], rows),
        "",
        f"Throughput, GetItem, {rates['processes']} processes x {rates['seconds']:g} s closed loops: "
        f"raw boto3 {rates['boto3 client']} calls/s, session.client {rates['session.client']} calls/s "
        f"({rates['ratio']}x).",
    ]


def _failover(result: dict[str, Any]) -> list[str]:
    lines = [
        f"Regions {' (local) + '.join(result['regions'])}; {result['rate_per_stream']:g} GetItem/s per stream, "
        f"phases of {result['phase_seconds']:g} s; timeouts connect {result['timeouts']['connect']} s, read "
        f"{result['timeouts']['read']} s; breaker fail_max {result['breaker']['fail_max']}, reset_timeout "
        f"{result['breaker']['reset_timeout']:g} s; brownout +{result['brownout_ms']:g} ms. Latency from the intended "
        "send time.",
        "",
    ]
    latency_columns = {"p50 ms": "p50_ms", "p99 ms": "p99_ms", "max ms": "max_ms"}
    rows = []
    for stream, data in result["streams"].items():
        if not data.get("available"):
            rows.append([stream, "not run", "", "", *[""] * len(latency_columns), data.get("reason")])
            continue
        for row in data["phases"]:
            extra = []
            if row.get("added_ms_met") is not None:
                extra.append(f"{row['met_outage']} met it: +{row['added_ms_met']} ms (worst +{row['added_ms_worst']} ms)")
            if row.get("failed_over_after_s") is not None:
                extra.append(f"failed over after {row['failed_over_after_s']} s")
            if row.get("back_after_s") is not None:
                extra.append(f"back after {row['back_after_s']} s")
            latency = _cells(latency_columns, row["latency"])
            rows.append([stream, row["phase"], row["requests"], row["failed"], *latency, "; ".join(extra)])
    lines += _table(["stream", "phase", "requests", "failed", *latency_columns, "notes"], rows)
    meets = result.get("meeting_cost") or []
    if meets:
        lines += [
            "",
            "What one request pays for meeting the outage, measured apart after the drill: requests that meet it "
            "(a breaker that never opens) alternate with requests served by the remote region directly (the local "
            "one evacuated), one at a time, each region's round trip held steady (no jitter); added = met - direct, "
            "in ms. The targets are judged on the drill (the notes above: the profile's jitter, three streams side "
            "by side); these figures are shown beside them, not judged:",
            "",
        ]
        columns = {
            "fault": "fault",
            "hedging": "hedging",
            "requests": "requests",
            "hedge delay ms": "hedge_delay_ms",  # None without hedging: a blank cell
            "met p50": "met_p50_ms",
            "met max": "met_max_ms",
            "direct p50": "direct_p50_ms",
            "added p50": "added_p50_ms",
            "added max": "added_max_ms",
        }
        lines += _table(list(columns), [_cells(columns, row) for row in meets])
    return lines


def _tail(result: dict[str, Any]) -> list[str]:
    columns = {"requests": "count", "p50 ms": "p50_ms", "p99 ms": "p99_ms", "p99.9 ms": "p99.9_ms", "max ms": "max_ms"}
    rows = []
    for variant, data in result["variants"].items():
        delay = data.get("hedge_delay")
        delay_cell = f"{delay * 1000:g} ms" if isinstance(delay, int | float) else delay
        if delay is not None and data.get("hedge_delay_waited_ms") is not None and not isinstance(delay, int | float):
            delay_cell = f"{delay} (waited {data['hedge_delay_waited_ms']:g} ms)"
        if not data.get("available"):
            rows.append([variant, delay_cell, *[""] * len(columns), data.get("reason")])
            continue
        notes = f"extra requests {data['extra_requests_pct']}%" if "extra_requests_pct" in data else ""
        rows.append([variant, delay_cell, *_cells(columns, data["latency"]), notes])
    return [
        f"Regions {' (local) + '.join(result['regions'])}; the local region adds {result['spike_ms']:g} ms to "
        f"{result['spike_rate'] * 100:g}% of requests; {result['rate']:g} GetItem/s per variant for "
        f"{result['seconds']:g} s, side by side (the local region's median before the spikes: "
        f"{result['calibrated_local_p50_ms']:g} ms). The targets are judged on the default delay "
        "(`HedgePolicy()` as it comes); the others are shown beside it.",
        "",
        *_table(["variant", "hedge delay", *columns, "notes"], rows),
    ]


def _quiet(result: dict[str, Any]) -> list[str]:
    columns = {
        "reads": "reads",
        "failed": "failed",
        "p50 ms": "p50_ms",
        "p99 ms": "p99_ms",
        "max ms": "max_ms",
        "bound ms": "bound_ms",
        "waited a timeout": "waited_timeout",
        "breaker open after s": "breaker_opened_after_s",
        "extra after open %": "extra_after_open_pct",
    }
    rows = [[f"{row['rate']:g}/s", *_cells(columns, row), row.get("hedges")] for row in result["rows"]]
    return [
        f"Regions {' (local) + '.join(result['regions'])}; one session per rate, one rate at a time, "
        f"`HedgePolicy(demote_after=0)` (no demotion: the budget is under test; delay {result['hedge_delay_ms']:g} ms, budget {result['budget'] * 100:g}% "
        f"plus {result['min_per_second']:g} hedges/s), read timeout {result['read_timeout_ms']:g} ms; "
        f"{result['warm_seconds']:g} s of reads, then the local region blackholed for {result['blackhole_seconds']:g} s. "
        "Figures are for the reads sent from the blackhole on; *bound* is the hedge delay plus the remote round trip.",
        "",
        *_table(["rate", *columns, "hedges"], rows),
    ]


def _webapp(result: dict[str, Any]) -> list[str]:
    columns = {"requests/s": "requests_per_s", "p50 ms": "p50_ms", "p90 ms": "p90_ms", "p99 ms": "p99_ms", "errors": "errors"}
    rows = [[config, *_cells(columns, data)] for config, data in result["configs"].items()]
    return [
        f"A Flask app (one GetItem per request) under gunicorn ({result['server']}), backed by the "
        f"{result['backend']}; load from {result['load_generator']}, {result['seconds']:g} s per configuration.",
        "",
        *_table(["configuration", *columns], rows),
        "",
        "The middleware's cost is judged on cache off vs bare (both call DynamoDB on every request); cache on "
        "serves one hot key from memory, so its figure is the cache's gain, reported on its own row.",
    ]


def _sidecar(result: dict[str, Any]) -> list[str]:
    rows = [[name, row["p50_ms"], row["p99_ms"], row["count"]] for name, row in result["per_call"].items()]
    load = [
        [name, row["rate"], row["p50_ms"], row["p99_ms"], row["processes"], row.get("sidecar_cpu_us", "")]
        for name, row in result["load"].items()
    ]
    return [
        f"Against {result['endpoint']}. Per call, one client process, {result['calls']} calls per surface, interleaved "
        "(`http`: one signed request replayed over a keep-alive connection, the endpoint's own time; "
        "`boto3`: boto3's client-side work included):",
        "",
        *_table(["surface", "median ms", "p99 ms", "calls"], rows),
        "",
        "Under load, closed loops in several client processes beside the sidecar on the same cores:",
        "",
        *_table(["surface", "requests/s", "median ms", "p99 ms", "client processes", "sidecar CPU us/request"], load),
    ]


SECTIONS = {"overhead": _overhead, "failover": _failover, "tail": _tail, "quiet": _quiet, "webapp": _webapp, "sidecar": _sidecar}


# -- plots --------------------------------------------------------------------


@contextlib.contextmanager
def _figure(path: Path, *grid: int, **options: Any) -> Iterator[tuple[Any, Any]]:
    """A figure and its axes (``pyplot.subplots(*grid, **options)``), saved
    to ``path`` when the block ends and closed in any case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*grid, **options)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def _plot_overhead(result: dict[str, Any], path: Path) -> None:
    operations = list(result["per_call"])
    surfaces = list(dict.fromkeys(s for rows in result["per_call"].values() for s in rows))
    width = 0.8 / len(surfaces)
    with _figure(path, figsize=(9, 4.5)) as (_, ax):
        for index, surface in enumerate(surfaces):
            xs = [i + index * width for i, op in enumerate(operations) if surface in result["per_call"][op]]
            ys = [result["per_call"][op][surface]["median_us"] for op in operations if surface in result["per_call"][op]]
            ax.bar(xs, ys, width, label=surface)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(operations))], operations)
        ax.set_ylabel("median per call (us)")
        ax.set_title("Per-call cost against a near-free endpoint (lower is better)")
        ax.legend(fontsize=8)


def _plot_failover(result: dict[str, Any], path: Path) -> None:
    streams = list(result["samples"])
    marks = result["marks"]
    end = result["phase_seconds"] * len(marks)
    with _figure(path, len(streams), 1, figsize=(10, 2.6 * len(streams)), sharex=True, squeeze=False) as (_, axes):
        for ax, stream in zip(axes[:, 0], streams, strict=True):
            samples = result["samples"][stream]
            ok = [(t, lat * 1000) for t, lat, _, error in samples if error is None]
            failed = [(t, lat * 1000) for t, lat, _, error in samples if error is not None]
            if ok:
                ax.scatter(*zip(*ok, strict=True), s=4, label="served")
            if failed:
                ax.scatter(*zip(*failed, strict=True), s=14, marker="x", color="red", label=f"failed ({len(failed)})")
            for index, (name, at) in enumerate(marks):
                finish = marks[index + 1][1] if index + 1 < len(marks) else end
                if name != "healthy" and name != "healed":
                    ax.axvspan(at, finish, alpha=0.15, color="orange")
                    ax.text(at, 1.02, name, transform=ax.get_xaxis_transform(), fontsize=8)
            ax.set_yscale("log")
            ax.set_ylabel("latency (ms)")
            ax.set_title(stream, fontsize=9, loc="right")
            ax.legend(fontsize=7, loc="upper left")
        axes[-1, 0].set_xlabel("seconds (intended send time)")


def _plot_tail(result: dict[str, Any], path: Path) -> None:
    with _figure(path, figsize=(8, 4.5)) as (_, ax):
        for variant, latencies in result.get("latencies", {}).items():
            ordered = sorted(latencies)
            if not ordered:
                continue
            n = len(ordered)
            xs = [1 / (1 - (i + 0.5) / n) for i in range(n)]
            ax.plot(xs, [value * 1000 for value in ordered], label=variant)
        ax.set_xscale("log")
        ticks = [2, 10, 100, 1000]
        ax.set_xticks(ticks, ["p50", "p90", "p99", "p99.9"])
        ax.set_ylabel("latency (ms)")
        ax.set_title("Latency by percentile, local region with spikes")
        ax.legend(fontsize=8)


def _plot_quiet(result: dict[str, Any], path: Path) -> None:
    rows = result["rows"]
    labels = [f"{row['rate']:g}/s" for row in rows]
    with _figure(path, figsize=(7, 4)) as (_, ax):
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [row.get("p50_ms") or 0 for row in rows], width=0.4, label="p50")
        ax.bar([x + 0.2 for x in xs], [row.get("max_ms") or 0 for row in rows], width=0.4, label="max")
        if rows:
            ax.axhline(rows[0]["bound_ms"], color="green", linestyle="--", label="hedge delay + remote round trip")
        ax.axhline(result["read_timeout_ms"], color="red", linestyle=":", label="read timeout")
        ax.set_xticks(list(xs), labels)
        ax.set_ylabel("latency (ms)")
        ax.set_title("Reads meeting a blackholed local region, hedged", fontsize=9)
        ax.legend(fontsize=7)


def _plot_webapp(result: dict[str, Any], path: Path) -> None:
    configs = list(result["configs"])
    with _figure(path, figsize=(7, 4)) as (_, ax):
        ax.bar(configs, [result["configs"][c].get("requests_per_s") or 0 for c in configs])
        ax.set_ylabel("requests/s")
        ax.set_title(f"Flask app throughput ({result['load_generator']})", fontsize=9)


def _plot_sidecar(result: dict[str, Any], path: Path) -> None:
    names = list(result["per_call"])
    with _figure(path, 1, 2, figsize=(11, 4.5)) as (_, (left, right)):
        xs = range(len(names))
        left.bar([x - 0.2 for x in xs], [result["per_call"][n]["p50_ms"] for n in names], 0.4, label="median")
        left.bar([x + 0.2 for x in xs], [result["per_call"][n]["p99_ms"] for n in names], 0.4, label="p99")
        left.set_xticks(list(xs), names, rotation=30, ha="right", fontsize=7)
        left.set_ylabel("ms per call (one client)")
        left.set_title("Per call: straight to the region vs through the sidecar")
        left.legend(fontsize=8)
        loads = list(result["load"])
        right.bar(range(len(loads)), [result["load"][n]["rate"] for n in loads])
        right.set_xticks(list(range(len(loads))), loads, rotation=30, ha="right", fontsize=7)
        right.set_ylabel("requests/s")
        right.set_title("Closed loops, several client processes")


PLOTS = {
    "overhead": _plot_overhead,
    "failover": _plot_failover,
    "tail": _plot_tail,
    "quiet": _plot_quiet,
    "webapp": _plot_webapp,
    "sidecar": _plot_sidecar,
}


if __name__ == "__main__":
    raise SystemExit(main())
