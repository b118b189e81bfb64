"""``regionproxy bench``: run scenarios, write JSON, markdown and plots.

Sizes: ``full`` (the default: long enough for stable tails), ``quick``
(the whole suite in under 3 minutes on 2 cores) and ``smoke`` (every
scenario's code path in seconds, for the test suite; its figures mean
nothing). Results go to ``--out`` (default ``benchmarks/results/<time>``):
``results.json``, ``results.md`` and one PNG per plotted scenario.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from regionproxy.bench.profiles import LatencyProfile, load
from regionproxy.bench.targets import SCENARIOS


@dataclass(frozen=True, slots=True)
class Size:
    """How long each scenario runs."""

    name: str
    lab_mode: str
    overhead_calls: int
    throughput_seconds: float
    throughput_processes: int  # 0: one per core
    failover_rate: float
    phase_seconds: float
    tail_rate: float
    tail_seconds: float
    app_seconds: float
    # Requests that meet each outage, measured one by one beside requests
    # served by the remote region directly: refuse, blackhole, blackhole hedged.
    meet_samples: tuple[int, int, int] = (3, 1, 2)
    # Scenario quiet: seconds of reads before the blackhole (the hedge
    # budget's window, 10 s, to see their rate), and seconds of it.
    quiet_seconds: tuple[float, float] = (0.5, 1.5)


SIZES = {
    "smoke": Size("smoke", "thread", 20, 0.3, 1, 10, 0.5, 20, 1.0, 1.0),
    "quick": Size("quick", "process", 800, 3.0, 0, 20, 6.0, 40, 25.0, 5.0, (40, 8, 20), (10.0, 5.0)),
    "full": Size("full", "process", 2000, 10.0, 0, 50, 20.0, 100, 120.0, 20.0, (200, 20, 100), (10.0, 10.0)),
}


def machine() -> dict[str, Any]:
    import boto3

    import regionproxy as rp

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "system": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "boto3": boto3.__version__,
        "regionproxy": rp.__version__,
    }


def _scenario(name: str) -> Callable[..., dict[str, Any]]:
    import importlib

    module = {"webapp": "regionproxy.bench.webapp"}.get(name, f"regionproxy.bench.{name}")
    return importlib.import_module(module).run


def run(
    scenarios: list[str],
    *,
    size: Size,
    profile: LatencyProfile,
    out: Path,
    command: str,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run ``scenarios`` in order; write results to ``out`` as they finish
    (a failed scenario is recorded and the others still run)."""
    from regionproxy.bench import report

    out.mkdir(parents=True, exist_ok=True)
    for name in scenarios:  # a plot left from an earlier run must not pass for this one's
        (out / f"{name}.png").unlink(missing_ok=True)
    results: dict[str, Any] = {
        "command": command,
        "size": asdict(size),
        "profile": profile.to_json(),
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "scenarios": {},
    }
    began = time.monotonic()
    for index, name in enumerate(scenarios, 1):
        progress(f"[{index}/{len(scenarios)}] {name} ({time.monotonic() - began:.0f} s so far)")
        started = time.monotonic()
        try:
            result = _scenario(name)(size, profile, out, progress)
        except Exception as error:  # noqa: BLE001 - one broken scenario must not lose the others
            import traceback

            traceback.print_exc()
            result = {"scenario": name, "error": f"{type(error).__name__}: {error}"}
        finally:
            gc.unfreeze()  # what a scenario froze for its timed run (load.settle) is collectable again
        result["elapsed_s"] = round(time.monotonic() - started, 1)
        results["scenarios"][name] = result
        report.write(results, out, plot=[name])
    results["elapsed_s"] = round(time.monotonic() - began, 1)
    written = report.write(results, out, plot=[])
    progress(f"done in {results['elapsed_s']:.0f} s; wrote:")
    for path in written:
        progress(f"  {path}")
    return results


def main(args: Any) -> int:
    """The ``bench`` subcommand (arguments parsed by :mod:`regionproxy._cli.main`)."""
    from regionproxy.errors import ConfigError

    scenarios = list(dict.fromkeys(args.scenarios)) or list(SCENARIOS)
    unknown = [name for name in scenarios if name not in SCENARIOS]
    if unknown:
        raise ConfigError(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}", setting="scenario")
    size = SIZES["smoke" if args.smoke else "quick" if args.quick else "full"]
    profile = load(args.profile)
    out = Path(args.out) if args.out else Path("benchmarks") / "results" / time.strftime("%Y%m%d-%H%M%S")
    command = "regionproxy bench " + " ".join(sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "bench" else [])
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # the lab's fake keys, this process only
    print(f"regionproxy bench: {', '.join(scenarios)}; size {size.name}; profile {profile.name} ({profile.origin})", flush=True)
    results = run(scenarios, size=size, profile=profile, out=out, command=command.strip(), progress=_progress)
    return 1 if any("error" in result for result in results["scenarios"].values()) else 0


def _progress(message: str) -> None:
    print(f"  {message}", flush=True)


def dumps(results: dict[str, Any]) -> str:
    return json.dumps(results, indent=1, default=str)
