"""A running ``regionproxy lab``, controlled from another shell.

::

    regionproxy lab fault REGION MODE [--delay S] [--jitter S] [--rate R] [--status N] [--code C] [--control URL]
    regionproxy lab heal [REGION] [--mode MODE] [--control URL]
    regionproxy lab status [--control URL]

The lab serves a small control endpoint on loopback (:class:`ControlServer`)
at a URL with a random token in its path, so that only who can read the
URL can act. The lab prints the URL, exports it to its command as
``REGIONPROXY_LAB_CONTROL`` and writes it to :func:`control_file` (mode
0600, removed when the lab stops). The commands here find it in that order:
``--control``, then ``REGIONPROXY_LAB_CONTROL``, then the file (the lab
started last by this user). A wrong region or mode is refused by the lab
with its :class:`~regionproxy.ConfigError` message, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

VARIABLE = "REGIONPROXY_LAB_CONTROL"
ACTIONS = ("fault", "heal", "status")
FAULT_PARAMETERS = {"delay": float, "jitter": float, "rate": float, "status": int, "code": str}
MAX_BODY = 4096  # bytes: a control request is a few fields
TIMEOUT = 10.0  # seconds a command waits for the lab


def control_file() -> Path:
    """Where a running lab writes its control URL for this user."""
    return Path(tempfile.gettempdir()) / f"regionproxy-lab-{os.getuid()}.control"


class ControlServer:
    """The lab's control endpoint: ``GET {url}/regions`` (each region's
    outage), ``POST {url}/regions/<region>/fault`` with ``{"mode": ...,
    "delay": ...}`` and ``POST {url}/regions/<region>/heal`` with an
    optional ``{"mode": ...}``; JSON answers, 400 with ``{"error": ...}``
    for a wrong region, mode or parameter, 404 for anything else."""

    def __init__(self, lab: Any, host: str = "127.0.0.1") -> None:
        self.lab = lab
        token = secrets.token_urlsafe(16)
        control = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                """Quiet: the lab's terminal belongs to its command."""

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == f"/{token}/regions":
                    self._answer(200, {region: control.lab.outage(region) for region in control.lab.regions})
                else:
                    self._answer(404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                parts = self.path.split("/")
                if len(parts) != 5 or parts[1] != token or parts[2] != "regions" or parts[4] not in ("fault", "heal"):
                    self._answer(404, {"error": "not found"})
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    if not 0 <= length <= MAX_BODY:
                        raise ValueError(f"the body must be 0 to {MAX_BODY} bytes")
                    body = json.loads(self.rfile.read(length) or b"{}")
                    if not isinstance(body, dict):
                        raise ValueError("the body must be a JSON object")
                    self._answer(200, control.act(parts[3], parts[4], body))
                except (ValueError, TypeError) as error:  # ConfigError is a ValueError
                    self._answer(400, {"error": str(error)})

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_port}/{token}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="lab-control", daemon=True)

    def act(self, region: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        if action == "fault":
            mode = body.pop("mode", None)
            unknown = sorted(set(body) - set(FAULT_PARAMETERS))
            if not isinstance(mode, str) or unknown:
                raise ValueError(f"expected a mode and parameters among {sorted(FAULT_PARAMETERS)}")
            self.lab.fault(region, mode, **body)
        else:
            mode = body.get("mode")
            self.lab.heal(region, mode)
        return {"region": region, "outage": self.lab.outage(region)}

    def __enter__(self) -> ControlServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def published(url: str) -> Any:
    """Write ``url`` to :func:`control_file` while the lab runs; remove it
    after, unless a lab started later wrote its own."""
    path = control_file()
    with contextlib.suppress(OSError):
        path.unlink()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(url + "\n")
    except OSError:
        pass  # another lab raced us to it: the variable and the printed URL still work
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if path.read_text().strip() == url:
                path.unlink()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regionproxy lab",
        description="Control a running regionproxy lab from another shell.",
        epilog=f"The lab is found with --control, else {VARIABLE}, else the file the lab writes ({control_file()}).",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    fault = actions.add_parser("fault", help="inject a fault in REGION (an outage or latency)")
    fault.add_argument("region", metavar="REGION")
    fault.add_argument("mode", metavar="MODE", help="refuse, reset, blackhole, error, late, flap, drop, corrupt or latency")
    fault.add_argument("--delay", type=float, help="seconds (latency, late, flap)")
    fault.add_argument("--jitter", type=float, help="seconds of spread around --delay")
    fault.add_argument("--rate", type=float, help="fraction of requests affected, 0 to 1 (error, corrupt, latency)")
    fault.add_argument("--status", type=int, help="HTTP status of injected errors (error; default 500)")
    fault.add_argument("--code", help="DynamoDB error code of injected errors (error)")
    heal = actions.add_parser("heal", help="remove REGION's faults (every region's without REGION)")
    heal.add_argument("region", nargs="?", metavar="REGION")
    heal.add_argument("--mode", help="remove only this fault: latency, or the outage (its mode)")
    actions.add_parser("status", help="each region's outage, if any")
    for command in actions.choices.values():
        command.add_argument("--control", metavar="URL", help=f"the lab's control URL (default {VARIABLE} or the file)")
    return parser


def find_control(given: str | None, environ: Any = os.environ) -> str:
    if given:
        return given
    if environ.get(VARIABLE):
        return str(environ[VARIABLE])
    try:
        return control_file().read_text().strip()
    except OSError:
        raise LookupError(f"no running lab found: pass --control URL or set {VARIABLE} (the lab prints it)") from None


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        url = find_control(args.control)
    except LookupError as error:
        parser.exit(2, f"regionproxy lab: error: {error}\n")
    if args.action == "status":
        request = urllib.request.Request(f"{url}/regions")
    else:
        if args.action == "fault":
            body = {"mode": args.mode, **{name: getattr(args, name) for name in FAULT_PARAMETERS if getattr(args, name) is not None}}
        else:
            body = {"mode": args.mode} if args.mode else {}
        region = args.region or ""
        if args.action == "heal" and not region:
            return _heal_all(url, body)
        request = _post(f"{url}/regions/{region}/{args.action}", body)
    return _send(request)


def _post(url: str, body: dict[str, Any]) -> urllib.request.Request:
    return urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")


def _heal_all(url: str, body: dict[str, Any]) -> int:
    with urllib.request.urlopen(f"{url}/regions", timeout=TIMEOUT) as response:
        regions = json.load(response)
    return max((_send(_post(f"{url}/regions/{region}/heal", dict(body))) for region in regions), default=0)


def _send(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            print(json.dumps(json.load(response)))
            return 0
    except urllib.error.HTTPError as error:
        try:
            message = json.load(error).get("error", error.reason)
        except ValueError:
            message = error.reason
        print(f"regionproxy lab: error: {message}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"regionproxy lab: error: the lab at {request.full_url.split('/regions')[0]} does not answer ({error})", file=sys.stderr)
        return 2
