"""``regionproxy probe``: measure the latency from this host to DynamoDB regions.

For each region's endpoint (``https://dynamodb.<region>.amazonaws.com`` by
default), ``count`` rounds of: DNS resolution (``getaddrinfo``), a TCP
connect, the TLS handshake, and one HTTPS request on that connection
(``GET /``: any HTTP answer counts); with ``--table`` and ``--key``, also
``count`` signed GetItems through boto3 on a kept-alive connection. Each
phase is summarised through an HdrHistogram (p50/p90/p99/p99.9/max) and
printed as a table; ``--json FILE`` writes the same, which
``regionproxy bench --profile FILE`` takes as a latency profile.

Standard library only for the network phases (``socket``, ``ssl``,
``http.client``), so what is timed is the network and the endpoint, not a
client library.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from regionproxy.bench.load import summarize
from regionproxy.errors import ConfigError

PHASES = ("dns", "connect", "tls", "request", "getitem")
KIND = "regionproxy-probe"


@dataclass
class _Phase:
    seconds: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def failed(self, error: BaseException) -> None:
        name = type(error).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

    def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = dict(summarize(self.seconds))
        if self.seconds:
            result["min_ms"] = round(min(self.seconds) * 1000, 3)
        result["errors"] = dict(self.errors)
        return result


def default_endpoint(region: str) -> str:
    return f"https://dynamodb.{region}.amazonaws.com"


def endpoints_for(regions: Sequence[str], overrides: Sequence[str]) -> dict[str, str]:
    """Each region's endpoint: ``REGION=URL`` overrides one, a bare ``URL``
    every region not named."""
    named: dict[str, str] = {}
    everywhere = None
    for override in overrides:
        region, sep, url = override.partition("=")
        if sep and not region.startswith(("http://", "https://")):
            named[region] = url
        else:
            everywhere = override
    for url in [*named.values(), *([everywhere] if everywhere else [])]:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ConfigError(f"--endpoint needs an http(s)://host[:port] URL, got {url!r}", setting="endpoint")
    unknown = sorted(set(named) - set(regions))
    if unknown:
        raise ConfigError(f"--endpoint names {unknown[0]!r}, which is not a --region", setting="endpoint")
    return {region: named.get(region) or everywhere or default_endpoint(region) for region in regions}


def parse_key(parts: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs (string attributes), or one JSON object in
    DynamoDB's wire format (``{"pk": {"S": "a"}, "n": {"N": "1"}}``)."""
    if len(parts) == 1 and parts[0].lstrip().startswith("{"):
        try:
            key = json.loads(parts[0])
        except ValueError as error:
            raise ConfigError(f"--key is not valid JSON: {error}", setting="key") from error
        if not isinstance(key, dict) or not all(isinstance(v, dict) and len(v) == 1 for v in key.values()):
            raise ConfigError('--key JSON must look like {"pk": {"S": "value"}}', setting="key")
        return key
    key = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep or not name:
            raise ConfigError(f"--key needs NAME=VALUE, got {part!r}", setting="key")
        key[name] = {"S": value}
    return key


def tls_context(*, insecure: bool = False, ca_file: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def probe_http(endpoint: str, count: int, *, context: ssl.SSLContext, timeout: float, interval: float) -> dict[str, Any]:
    """``count`` rounds of DNS, connect, TLS (https only) and GET /."""
    url = urlsplit(endpoint)
    phases = {name: _Phase() for name in ("dns", "connect", "tls", "request")}
    statuses: dict[str, int] = {}
    address = None
    for index in range(count):
        if index and interval:
            time.sleep(interval)
        address, status = _round(url, context, timeout, phases)
        if status is not None:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
    result: dict[str, Any] = {"endpoint": endpoint, "address": address, "http_statuses": statuses}
    result["phases"] = {name: phase.summary() for name, phase in phases.items() if url.scheme == "https" or name != "tls"}
    return result


def _round(url: Any, context: ssl.SSLContext, timeout: float, phases: dict[str, _Phase]) -> tuple[str | None, int | None]:
    """One round; the address connected to and the HTTP status, if it got that far."""
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    started = time.perf_counter()
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        phases["dns"].failed(error)
        return None, None
    phases["dns"].seconds.append(time.perf_counter() - started)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.settimeout(timeout)
    try:
        if not _timed(phases["connect"], lambda: sock.connect(sockaddr)):
            return sockaddr[0], None
        if url.scheme == "https":
            wrapped: list[socket.socket] = []
            if not _timed(phases["tls"], lambda: wrapped.append(context.wrap_socket(sock, server_hostname=host))):
                return sockaddr[0], None
            sock = wrapped[0]
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = sock  # the connection just opened: time the request alone
        answer: list[int] = []

        def request() -> None:
            conn.request("GET", url.path or "/")
            response = conn.getresponse()
            response.read()
            answer.append(response.status)

        _timed(phases["request"], request)
        return sockaddr[0], answer[0] if answer else None
    finally:
        sock.close()


def _timed(phase: _Phase, action: Callable[[], object]) -> bool:
    started = time.perf_counter()
    try:
        action()
    except (OSError, http.client.HTTPException) as error:  # ssl.SSLError and timeouts are OSErrors
        phase.failed(error)
        return False
    phase.seconds.append(time.perf_counter() - started)
    return True


def probe_getitem(
    region: str, endpoint: str, count: int, *, table: str, key: dict[str, Any], verify: Any, timeout: float, interval: float
) -> dict[str, Any]:
    """``count`` signed GetItems through boto3 on a kept-alive connection
    (one untimed call first opens it)."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1})
    client = boto3.session.Session().client("dynamodb", region_name=region, endpoint_url=endpoint, verify=verify, config=config)
    phase = _Phase()
    for index in range(count + 1):
        if index and interval:
            time.sleep(interval)
        started = time.perf_counter()
        try:
            client.get_item(TableName=table, Key=key)
        except Exception as error:  # noqa: BLE001 - ClientError, no credentials, connection errors: all reported
            phase.failed(error)
            continue
        if index:
            phase.seconds.append(time.perf_counter() - started)
    return phase.summary()


def run(
    regions: Sequence[str],
    *,
    endpoints: Sequence[str] = (),
    count: int = 20,
    interval: float = 0.1,
    timeout: float = 5.0,
    table: str | None = None,
    key: Sequence[str] = (),
    insecure: bool = False,
    ca_file: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Probe every region; the JSON-ready result."""
    if not regions:
        raise ConfigError("name at least one --region", setting="region")
    if count < 1 or count > 100_000:
        raise ConfigError(f"--count must be 1-100000, got {count}", setting="count")
    if bool(table) != bool(key):
        raise ConfigError("--table and --key go together", setting="table")
    urls = endpoints_for(list(dict.fromkeys(regions)), endpoints)
    wire_key = parse_key(key) if key else None
    context = tls_context(insecure=insecure, ca_file=ca_file)
    verify: Any = False if insecure else (ca_file or True)
    result: dict[str, Any] = {
        "kind": KIND,
        "version": 1,
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "count": count,
        "regions": {},
    }
    for region, url in urls.items():
        if progress:
            progress(f"probing {region} at {url} ({count} rounds)")
        probed = probe_http(url, count, context=context, timeout=timeout, interval=interval)
        if table and wire_key is not None:
            probed["phases"]["getitem"] = probe_getitem(
                region, url, count, table=table, key=wire_key, verify=verify, timeout=timeout, interval=interval
            )
        result["regions"][region] = probed
    return result


def render(result: dict[str, Any]) -> str:
    """The result as a fixed-width table, one row per region and phase."""
    header = f"{'region':<16} {'phase':<8} {'count':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8}  errors"
    lines = [header, "-" * len(header)]
    for region, probed in result["regions"].items():
        for phase in PHASES:
            summary = probed["phases"].get(phase)
            if summary is None:
                continue
            cells = [summary.get(f"{name}_ms") for name in ("p50", "p90", "p99", "p99.9", "max")]
            shown = [f"{cell:>8.2f}" if cell is not None else f"{'-':>8}" for cell in cells]
            errors = ", ".join(f"{name} x{n}" for name, n in summary["errors"].items()) or "-"
            lines.append(
                f"{region:<16} {phase:<8} {summary.get('count', 0):>6} {shown[0]} {shown[1]} {shown[2]} {shown[3]:>9} {shown[4]}  {errors}"
            )
    return "\n".join(lines)


def main(args: Any) -> int:
    """The ``probe`` subcommand (arguments parsed by :mod:`regionproxy._cli.main`)."""
    result = run(
        args.regions,
        endpoints=args.endpoints,
        count=args.count,
        interval=args.interval,
        timeout=args.timeout,
        table=args.table,
        key=args.key,
        insecure=args.insecure,
        ca_file=args.ca_file,
        progress=lambda message: print(message, flush=True),
    )
    print(render(result))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
            handle.write("\n")
        print(f"wrote {args.json} (use it with: regionproxy bench --profile {args.json})")
    failed = any(
        summary.get("errors") and not summary.get("count")
        for probed in result["regions"].values()
        for summary in probed["phases"].values()
    )
    return 1 if failed else 0
