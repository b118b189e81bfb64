"""``regionproxy lag --table T``: the canary's replication lag beside CloudWatch's.

The session is the app's (``REGIONPROXY_*``; ``--region`` and
``--endpoint`` override): a :class:`~regionproxy._regions.canary.ReplicationCanary`
runs ``--cycles`` cycles on ``--table`` (heartbeats under the canary's
reserved key prefix) and prints each (source, replica) pair's lag and state.

Beside it, where the caller's credentials allow ``cloudwatch:GetMetricStatistics``,
the Global Table's own ``ReplicationLatency`` (namespace ``AWS/DynamoDB``,
dimensions ``TableName`` and ``ReceivingRegion``, published in the source
region): the newest datapoint of the last 15 minutes, average and maximum
in milliseconds. It is a 5-minute metric (its period is 300 s), so it lags
the canary's figure by up to five minutes, and the output says so. A call
CloudWatch refuses (no credentials, access denied, no such region) prints
why, and the canary's figures stand alone.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

from regionproxy.errors import ConfigError

NAMESPACE, METRIC = "AWS/DynamoDB", "ReplicationLatency"
PERIOD = 300  # seconds: ReplicationLatency is a 5-minute metric
WINDOW = datetime.timedelta(minutes=15)


def add_parser(commands: Any) -> None:
    lag = commands.add_parser(
        "lag",
        help="replication lag between regions: the canary's heartbeats, and CloudWatch's ReplicationLatency",
        description="Run the replication-lag canary on TABLE (a Global Table; heartbeat items under a reserved key "
        "prefix) with the app's REGIONPROXY_* settings, and print its lag per source and replica region beside "
        "CloudWatch's ReplicationLatency (a 5-minute metric) where credentials allow.",
    )
    lag.add_argument("--table", required=True, help="the Global Table to measure (keys of any type: S, N or B)")
    lag.add_argument("--region", dest="regions", action="append", default=[], metavar="REGION", help="a region (repeat; default REGIONPROXY_REGIONS)")
    lag.add_argument("--endpoint", dest="endpoints", action="append", default=[], metavar="REGION=URL", help="DynamoDB endpoint for REGION")
    lag.add_argument(
        "--cloudwatch-endpoint", dest="cloudwatch", action="append", default=[], metavar="REGION=URL", help="CloudWatch endpoint for REGION"
    )
    lag.add_argument("--cycles", type=int, default=2, metavar="N", help="canary cycles (default 2)")
    lag.add_argument("--interval", type=float, default=5.0, metavar="SECONDS", help="seconds per cycle (default 5)")
    lag.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        region, sep, url = value.partition("=")
        if not sep or not region or not url:
            raise ConfigError(f"{option} takes REGION=URL, got {value!r}", setting=option)
        pairs[region] = url
    return pairs


def cloudwatch_latency(
    region: str, table: str, receiving: str, *, endpoint: str | None = None, boto3_session: Any = None, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """The newest ``ReplicationLatency`` datapoint for ``table`` from
    ``region`` to ``receiving`` (milliseconds), or ``{"error": ...}``."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3_session or boto3.session.Session()
    end = now or datetime.datetime.now(datetime.UTC)
    try:
        client = session.client(
            "cloudwatch",
            region_name=region,
            endpoint_url=endpoint,
            config=Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 2}),
        )
        answer = client.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=METRIC,
            Dimensions=[{"Name": "TableName", "Value": table}, {"Name": "ReceivingRegion", "Value": receiving}],
            StartTime=end - WINDOW,
            EndTime=end,
            Period=PERIOD,
            Statistics=["Average", "Maximum"],
        )
    except ClientError as error:
        return {"error": error.response.get("Error", {}).get("Code") or type(error).__name__}
    except BotoCoreError as error:
        return {"error": type(error).__name__}
    points = sorted(answer.get("Datapoints", []), key=lambda point: point["Timestamp"])
    if not points:
        return {"error": "no datapoints in the last 15 minutes"}
    newest = points[-1]
    return {
        "average_ms": round(float(newest["Average"]), 3),
        "maximum_ms": round(float(newest["Maximum"]), 3),
        "at": newest["Timestamp"].isoformat(),
        "period_s": PERIOD,
    }


def main(args: argparse.Namespace, *, environ: Any = None, out: Any = None) -> int:
    from regionproxy._regions.canary import ReplicationCanary
    from regionproxy._session.session import RegionSession

    out = out or sys.stdout
    overrides: dict[str, Any] = {}
    if args.regions:
        overrides["regions"] = args.regions
    endpoints = _pairs(args.endpoints, "--endpoint")
    if endpoints:
        overrides["endpoints"] = endpoints
    if args.cycles < 1 or args.cycles > 100:
        raise ConfigError("--cycles must be from 1 to 100", setting="cycles")
    cloudwatch = _pairs(args.cloudwatch, "--cloudwatch-endpoint")
    session = RegionSession.from_env(environ, **overrides)
    try:
        canary = ReplicationCanary(session, args.table, interval=args.interval)
        for _ in range(args.cycles):
            canary.run_cycle()
        rows = canary.pairs()
        for row in rows:
            row["cloudwatch"] = cloudwatch_latency(
                row["source"], args.table, row["replica"], endpoint=cloudwatch.get(row["source"])
            )
    finally:
        session.close()
    if args.json:
        json.dump({"table": args.table, "cloudwatch_period_s": PERIOD, "pairs": rows}, out, indent=2)
        out.write("\n")
        return 0
    out.write(f"replication lag of {args.table} (canary: {args.cycles} cycles of {args.interval:g} s)\n")
    out.write(f"{'source':<16} {'replica':<16} {'canary lag s':>12}  {'state':<13} CloudWatch ReplicationLatency\n")
    for row in rows:
        lag = "" if row["lag_s"] is None else f"{row['lag_s']:.3f}"
        watch = row["cloudwatch"]
        if "error" in watch:
            seen = f"not available: {watch['error']}"
        else:
            seen = f"avg {watch['average_ms']:.0f} ms, max {watch['maximum_ms']:.0f} ms (5-minute metric, as of {watch['at']})"
        out.write(f"{row['source']:<16} {row['replica']:<16} {lag:>12}  {row['state']:<13} {seen}\n")
    out.write("CloudWatch's ReplicationLatency is a 5-minute metric: it trails the canary by up to 5 minutes.\n")
    return 0
