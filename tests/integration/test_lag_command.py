"""``regionproxy lag --table T``: the canary's figures beside CloudWatch's
``ReplicationLatency``, against the lab and moto's CloudWatch (served by
the lab's moto servers), with datapoints the test puts there."""

from __future__ import annotations

import datetime
import io
import json

from regionproxy._cli.lag import main as lag
from regionproxy._cli.main import build_parser
from tests.support import LOCAL, REMOTE, TABLE, free_port


def _args(lab, *extra):
    argv = ["lag", "--table", TABLE, "--cycles", "1", "--interval", "3"]
    for region in (LOCAL, REMOTE):
        argv += ["--region", region, "--endpoint", f"{region}={lab.endpoints[region]}"]
    return build_parser().parse_args([*argv, *extra])


def _put_latency(lab, region, receiving, values):
    cloudwatch = lab.client(region, direct=True, service="cloudwatch")
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    cloudwatch.put_metric_data(
        Namespace="AWS/DynamoDB",
        MetricData=[
            {
                "MetricName": "ReplicationLatency",
                "Dimensions": [{"Name": "TableName", "Value": TABLE}, {"Name": "ReceivingRegion", "Value": receiving}],
                "Timestamp": now,
                "Value": value,
                "Unit": "Milliseconds",
            }
            for value in values
        ],
    )


def test_lag_prints_the_canary_beside_cloudwatch(lab):
    _put_latency(lab, LOCAL, REMOTE, [850.0, 1250.0])
    watch = [f"--cloudwatch-endpoint={region}={lab.direct_endpoints[region]}" for region in (LOCAL, REMOTE)]
    out = io.StringIO()
    assert lag(_args(lab, "--json", *watch), environ={}, out=out) == 0
    report = json.loads(out.getvalue())
    assert report["cloudwatch_period_s"] == 300
    pairs = {(p["source"], p["replica"]): p for p in report["pairs"]}
    assert set(pairs) == {(LOCAL, REMOTE), (REMOTE, LOCAL)}
    assert all(p["state"] == "ok" and p["lag_s"] is not None for p in pairs.values())
    seen = pairs[(LOCAL, REMOTE)]["cloudwatch"]
    assert (seen["average_ms"], seen["maximum_ms"], seen["period_s"]) == (1050.0, 1250.0, 300)
    # Nothing was put for the other direction: said so, the canary stands.
    assert pairs[(REMOTE, LOCAL)]["cloudwatch"] == {"error": "no datapoints in the last 15 minutes"}

    out = io.StringIO()
    assert lag(_args(lab, *watch), environ={}, out=out) == 0
    text = out.getvalue()
    assert "avg 1050 ms, max 1250 ms (5-minute metric" in text
    assert "5-minute metric: it trails the canary" in text


def test_cloudwatch_out_of_reach_leaves_the_canary_figures(lab):
    closed = f"http://127.0.0.1:{free_port()}"
    out = io.StringIO()
    watch = [f"--cloudwatch-endpoint={region}={closed}" for region in (LOCAL, REMOTE)]
    assert lag(_args(lab, "--json", *watch), environ={}, out=out) == 0
    pairs = json.loads(out.getvalue())["pairs"]
    assert all(p["state"] == "ok" for p in pairs)
    assert {p["cloudwatch"]["error"] for p in pairs} == {"EndpointConnectionError"}
