"""The ``regionproxy`` command: ``demo``, ``lab``, ``probe``, ``bench``, ``evacuate``, ``restore`` and ``serve``.

::

    regionproxy --version
    regionproxy demo [--port PORT] [--for SECONDS]
    regionproxy lab [--regions REGION ...] [--example NAME] [--for SECONDS] [-- COMMAND ...]
    regionproxy lab fault REGION MODE [...] | lab heal [REGION] | lab status   (a running lab: _cli.lab_control)
    regionproxy probe --region REGION [--region ...] [--endpoint [REGION=]URL] [--table T --key K=V] [--count N] [--json FILE]
    regionproxy bench [SCENARIO ...] [--profile P] [--quick | --smoke] [--out DIR]
    regionproxy evacuate|restore REGION [--fleet URL] [--fleet-name NAME] [--by WHO]
    regionproxy serve [--listen HOST:PORT] [--workers N] [--threads T] [--keys-file FILE] [--dev]

``lab --example blog -- flask --app examples/flask_blog/app.py run`` starts a
lab, creates and seeds the example's tables, waits until they are replicated,
and runs the command with the variables that point it at the lab; the lab
stops when the command exits (or on Ctrl-C, or after ``--for`` seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from regionproxy._cli.lag import add_parser as add_lag_parser
from regionproxy.errors import ConfigError

DEMO_REGIONS = ["eu-west-3", "us-east-1"]
GRACE = 10.0  # seconds a command gets to exit after Ctrl-C or SIGTERM before it is killed
# What each command needs beyond the base package.
EXTRAS = {"demo": "testing,flask", "lab": "testing", "probe": "bench", "bench": "bench,testing,flask", "evacuate": "fleet", "restore": "fleet",
          "serve": "serve"}
EXPORTED = ("REGIONPROXY_REGIONS", "REGIONPROXY_ENDPOINTS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


def build_parser() -> argparse.ArgumentParser:
    from regionproxy.testing.examples import EXAMPLES

    parser = argparse.ArgumentParser(
        prog="regionproxy",
        description="A local multi-region DynamoDB lab, the demo that runs on it, a latency probe and the benchmarks.",
    )
    from regionproxy import __version__

    parser.add_argument("--version", action="version", version=f"regionproxy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,lab,probe,bench,evacuate,restore}")
    demo = commands.add_parser(
        "demo", help="the main job: the Flask blog over a local two-region lab", description="The Flask blog over a local two-region lab."
    )
    demo.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port; default 8000)")
    lab = commands.add_parser(
        "lab",
        help="a local multi-region lab; with -- COMMAND, run COMMAND against it",
        usage="regionproxy lab [-h] [--regions REGION [REGION ...]] [--example NAME] [--for SECONDS] [-- COMMAND ...]",
        description="One moto server per region on loopback behind a fault proxy, replicated like a Global Table.",
        epilog="Everything after -- is a command run with REGIONPROXY_REGIONS, REGIONPROXY_ENDPOINTS, fake AWS "
        "credentials and AWS_DEFAULT_REGION set; the lab stops when it exits. From another shell, "
        "'regionproxy lab fault REGION MODE', 'regionproxy lab heal [REGION]' and 'regionproxy lab status' "
        "act on the running lab (see 'regionproxy lab fault -h').",
    )
    lab.add_argument("--regions", nargs="+", default=DEMO_REGIONS, metavar="REGION", help="region names, local first")
    lab.add_argument(
        "--example",
        choices=sorted(EXAMPLES),
        help="create and seed this example's tables: "
        + "; ".join(f"{name}: {example.summary}" for name, example in sorted(EXAMPLES.items())),
    )
    for command in (demo, lab):
        command.add_argument("--for", dest="duration", type=float, default=None, metavar="SECONDS", help="stop after SECONDS")
    _add_probe(commands)
    _add_bench(commands)
    _add_fleet_actions(commands)
    _add_serve(commands)
    add_lag_parser(commands)
    return parser


def _add_fleet_actions(commands: Any) -> None:
    for action, summary in (
        ("evacuate", "send no traffic to REGION from any worker of the fleet, until restored"),
        ("restore", "take REGION back into service in every worker of the fleet"),
    ):
        command = commands.add_parser(
            action,
            help=summary + " (through the fleet's Redis)",
            description=summary.capitalize() + ". The fleet is the app's: REGIONPROXY_FLEET_URL, REGIONPROXY_FLEET_NAME "
            "and REGIONPROXY_REGIONS (its name is derived from them as the app derives it), or the options below.",
        )
        command.add_argument("region", metavar="REGION")
        command.add_argument("--fleet", metavar="URL", help="the fleet's redis:// or rediss:// URL (default REGIONPROXY_FLEET_URL)")
        command.add_argument("--fleet-name", metavar="NAME", help="the fleet's name (default REGIONPROXY_FLEET_NAME or derived)")
        command.add_argument("--by", metavar="WHO", help="who acts, for the status page (default cli user@host)")


def _add_serve(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="the sidecar: DynamoDB's JSON protocol on loopback, through the session (for PHP, Node, the AWS CLI)",
        description="A local endpoint that speaks DynamoDB's JSON protocol and runs each request through a RegionSession "
        "configured from REGIONPROXY_* variables; point an AWS SDK's endpoint at it. Clients sign with keys from "
        "REGIONPROXY_SERVE_KEYS=id:secret,... or --keys-file.",
    )
    serve.add_argument("--listen", default="127.0.0.1:8000", metavar="HOST:PORT", help="where to listen (default 127.0.0.1:8000)")
    serve.add_argument("--workers", type=int, default=1, metavar="N", help="gunicorn worker processes (default 1)")
    serve.add_argument("--threads", type=int, default=16, metavar="T", help="threads per worker (default 16)")
    serve.add_argument("--keys-file", metavar="FILE", help="client keys, one id:secret a line")
    serve.add_argument("--dev", action="store_true", help="werkzeug's threaded development server instead of gunicorn")


def _add_probe(commands: Any) -> None:
    probe = commands.add_parser(
        "probe",
        help="measure DNS, TCP, TLS, HTTPS and GetItem latency from this host to DynamoDB regions",
        description="From this host to each region's DynamoDB endpoint: DNS, TCP connect, TLS handshake, an HTTPS "
        "request and (with --table and --key) a signed GetItem; p50/p90/p99/p99.9/max as a table and JSON.",
    )
    probe.add_argument("--region", dest="regions", action="append", required=True, metavar="REGION", help="a region (repeat)")
    probe.add_argument(
        "--endpoint",
        dest="endpoints",
        action="append",
        default=[],
        metavar="[REGION=]URL",
        help="endpoint for REGION, or for every region (default https://dynamodb.REGION.amazonaws.com)",
    )
    probe.add_argument("--table", help="also time GetItem on this table (needs --key and AWS credentials)")
    probe.add_argument(
        "--key", action="append", default=[], metavar="NAME=VALUE", help="key attribute, a string (repeat), or one JSON key"
    )
    probe.add_argument("--count", type=int, default=20, metavar="N", help="rounds per region and phase (default 20)")
    probe.add_argument("--interval", type=float, default=0.1, metavar="SECONDS", help="pause between rounds (default 0.1)")
    probe.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="per phase (default 5)")
    probe.add_argument("--json", metavar="FILE", help="write the results here (a latency profile for bench --profile)")
    probe.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    probe.add_argument("--ca-file", metavar="PEM", help="trust the certificates in PEM (e.g. a test endpoint's)")


def _add_bench(commands: Any) -> None:
    from regionproxy.bench.profiles import SITES

    bench = commands.add_parser(
        "bench",
        help="run the benchmark scenarios on a local lab; JSON, markdown and plots",
        usage="regionproxy bench [-h] [SCENARIO ...] [--profile P] [--quick | --smoke] [--out DIR]",
        description="Scenarios: overhead, failover, tail, webapp, sidecar (default: all). Runs on LocalRegions with a latency "
        "profile and writes results.json, results.md and PNG plots to --out.",
    )
    bench.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="overhead, failover, tail, webapp or sidecar (default: all)")
    bench.add_argument(
        "--profile",
        default="GRA",
        metavar="P",
        help=f"an OVHcloud site ({', '.join(SITES)}; default GRA) or a JSON file from regionproxy probe --json",
    )
    size = bench.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="short runs: the whole suite in under 3 minutes on 2 cores")
    size.add_argument("--smoke", action="store_true", help="every code path in seconds; figures meaningless (for tests)")
    bench.add_argument("--out", metavar="DIR", help="where to write results (default benchmarks/results/<time>)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from regionproxy._cli import lab_control

    if argv[:1] == ["lab"] and len(argv) > 1 and argv[1] in lab_control.ACTIONS:
        return lab_control.main(argv[1:])  # a running lab, from another shell
    # argparse cannot tell a command's own options from ours: split at "--".
    command: list[str] = []
    dashes = "--" in argv
    if dashes:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if dashes and args.command != "lab":
        parser.error("only 'regionproxy lab' runs a command after --")
    if dashes and not command:
        parser.error("nothing to run after --")
    try:
        if args.command == "demo":
            from regionproxy._cli.demo import run

            return run(args.port, args.duration)
        if args.command == "probe":
            from regionproxy._cli.latency_probe import main as probe

            return probe(args)
        if args.command == "bench":
            from regionproxy.bench.runner import main as bench

            return bench(args)
        if args.command in ("evacuate", "restore"):
            from regionproxy._cli.fleet import act

            return act(args.command, args.region, fleet=args.fleet, fleet_name=args.fleet_name, by=args.by)
        if args.command == "serve":
            from regionproxy._sidecar.serve import main as serve

            return serve(args)
        if args.command == "lag":
            from regionproxy._cli.lag import main as lag

            return lag(args)
        return run_lab(args.regions, args.duration, example=args.example, command=command)
    except ConfigError as error:
        parser.exit(2, f"regionproxy: error: {error}\n")
    except ModuleNotFoundError as error:
        if (error.name or "regionproxy").startswith("regionproxy"):
            raise  # our own module missing is a bug, not a missing extra
        if args.command not in EXTRAS:
            raise  # needs nothing beyond the core: a missing module is a bug
        extra = EXTRAS[args.command]
        parser.exit(2, f"regionproxy: error: {args.command} needs {error.name}: pip install 'regionproxy[{extra}]'\n")
    return 2  # unreachable: parser.exit raises


def run_lab(
    regions: list[str], duration: float | None, *, example: str | None = None, command: Sequence[str] = ()
) -> int:
    from regionproxy.testing.examples import EXAMPLES, REAL_ACCOUNT, find_examples_dir

    if example is not None and EXAMPLES[example].needs_checkout:
        find_examples_dir()  # a clear error before anything starts
    # The lab signs with fake keys; a profile the lab's boto3 cannot find
    # (or a real one) must not leak in, here or in the command.
    for name in REAL_ACCOUNT:
        os.environ.pop(name, None)
    stop, interrupted = threading.Event(), threading.Event()
    # Signals set flags, never raise: a KeyboardInterrupt could land anywhere
    # (inside Popen, between two statements) and skip the clean-up. Ctrl-C
    # reaches the whole process group, so the command got it too.
    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda *_: stop.set()),
        signal.SIGINT: signal.signal(signal.SIGINT, lambda *_: (interrupted.set(), stop.set())),
    }
    try:
        return _serve_lab(regions, duration, example, command, stop, interrupted)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _serve_lab(
    regions: list[str],
    duration: float | None,
    example: str | None,
    command: Sequence[str],
    stop: threading.Event,
    interrupted: threading.Event,
) -> int:
    from regionproxy._cli.lab_control import VARIABLE, ControlServer, published
    from regionproxy.testing import LocalRegions
    from regionproxy.testing.examples import environment, exports, prepare

    with (
        LocalRegions(regions) as lab,
        tempfile.TemporaryDirectory(prefix="regionproxy-lab-") as scratch,
        ControlServer(lab) as control,
        published(control.url),
        contextlib.ExitStack() as later,
    ):
        print("regionproxy lab: one moto server per region behind a fault proxy")
        for region, endpoint in lab.endpoints.items():
            print(f"  {region:<16} {endpoint}")
        print(f"  control          {control.url}  (regionproxy lab fault REGION MODE / heal REGION, from another shell)")
        chosen = prepare(lab, example) if example else None
        if chosen is not None:
            print(f"  example {chosen.name}: {chosen.summary} (created, seeded, replicated)")
        # After the example's tables exist everywhere: adopting one half-created would race create_table.
        later.enter_context(_adopting(lab))
        env = environment(lab, chosen, os.environ)
        env[VARIABLE] = control.url
        for name in chosen.temp_dirs if chosen else ():
            env.setdefault(name, os.path.join(scratch, name.lower()))
        # This Python's scripts (flask, gunicorn, ...) first, as if its venv were active.
        env["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), env.get("PATH", os.defpath)])
        if command:
            print(f"Running: {shlex.join(command)}", flush=True)
            return run_command(command, env, duration, stop, interrupted)
        print("To point an app at it, in another shell:")
        for line in exports(env, [*EXPORTED, VARIABLE, *(chosen.env if chosen else ())]):
            print(f"  {line}")
        print("Stop with Ctrl-C." if duration is None else f"Stopping in {duration:g} s.", flush=True)
        _wait_for_stop(stop, duration)
    return 0


SIGNAL_POLL = 0.2  # seconds: how late the lab may notice a SIGTERM or Ctrl-C


def _wait_for_stop(stop: threading.Event, duration: float | None) -> None:
    """Until ``stop`` is set or ``duration`` passes, in short waits. A
    signal the kernel delivers to another of the lab's threads (moto's,
    the proxies', the replicator's) only flags the main thread, which runs
    the Python handler once it next runs bytecode: one long ``wait`` would
    sleep through a SIGTERM until its timeout (seen: a lab still up 30 s
    after ``terminate()``, one run in four under load)."""
    deadline = None if duration is None else time.monotonic() + duration
    while not stop.wait(SIGNAL_POLL):
        if deadline is not None and time.monotonic() >= deadline:
            return


ADOPT_INTERVAL = 0.5  # seconds between looks for tables a user created through the lab's endpoints


@contextlib.contextmanager
def _adopting(lab: Any) -> Iterator[None]:
    """Replicate the tables a user creates through the lab's endpoints
    (:meth:`LocalRegions.adopt_tables`), every ``ADOPT_INTERVAL`` seconds,
    while the lab runs: every table of ``regionproxy lab`` is replicated
    like a Global Table, not only the example's."""
    done = threading.Event()

    def adopt() -> None:
        while not done.wait(ADOPT_INTERVAL):
            try:
                lab.adopt_tables()
            except Exception:  # noqa: BLE001 - a table being created, a lab stopping: try again next time
                continue

    thread = threading.Thread(target=adopt, name="lab-adopt", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)


def run_command(
    command: Sequence[str],
    env: dict[str, str],
    duration: float | None,
    stop: threading.Event,
    interrupted: threading.Event | None = None,
) -> int:
    """Run ``command`` until it exits, ``duration`` passes or ``stop`` is set;
    its exit status (a signal ``n`` as ``128 + n``), or 0 if we stopped it.
    When ``interrupted`` (Ctrl-C: the command got the SIGINT too), the
    command gets ``GRACE`` seconds to finish and its own status is returned."""
    try:
        child = subprocess.Popen(list(command), env=env)
    except OSError as error:
        print(f"regionproxy lab: cannot run {command[0]!r}: {error}", file=sys.stderr)
        return 127
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                return _status(child.wait(timeout=0.2))
            except subprocess.TimeoutExpired:
                continue
        if interrupted is not None and interrupted.is_set():
            try:
                return _status(child.wait(timeout=GRACE))
            except subprocess.TimeoutExpired:
                pass
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=GRACE)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return 0


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    sys.exit(main())
