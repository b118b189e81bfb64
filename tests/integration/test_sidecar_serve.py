"""``regionproxy serve`` as users start it: gunicorn with two workers, the
session from REGIONPROXY_* variables, an SDK client, the health and metrics
paths of the middleware, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import boto3

from regionproxy.testing.examples import environment
from tests.support import TABLE, free_port


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _wait_until_serving(url: str, child: subprocess.Popen) -> None:
    for _ in range(300):  # bounded: 30 s
        assert child.poll() is None, child.stderr.read()
        try:
            if _get(url + "/livez")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("regionproxy serve did not start in 30 s")


def test_regionproxy_serve_under_gunicorn_serves_an_sdk_its_health_and_its_metrics(lab):
    port = free_port()
    env = environment(lab, None, os.environ)
    env.update({"REGIONPROXY_SERVE_KEYS": "php:wp-secret", "REGIONPROXY_CACHE_TTL": "5"})
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    child = subprocess.Popen(
        [sys.executable, "-m", "regionproxy", "serve", "--listen", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, child)
        client = boto3.client(
            "dynamodb", region_name="us-east-1", endpoint_url=url, aws_access_key_id="php", aws_secret_access_key="wp-secret"
        )
        for i in range(6):  # over several connections: both workers may serve
            client.put_item(TableName=TABLE, Item={"pk": {"S": "serve"}, "sk": {"S": str(i)}})
        assert client.query(
            TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "serve"}}
        )["Count"] == 6
        # Ready once the worker that answers has probed its regions (before
        # its first probe a region is "warn": usable, not proven).
        for _ in range(100):  # bounded: 10 s
            status, body = _get(url + "/readyz")
            if '"status": "pass"' in body:
                break
            time.sleep(0.1)
        assert status == 200 and '"status": "pass"' in body
        status, metrics = _get(url + "/metrics")
        assert status == 200
        puts = [line for line in metrics.splitlines() if line.startswith("regionproxy_sidecar_requests_total{") and "PutItem" in line]
        assert puts and sum(float(line.rsplit(" ", 1)[1]) for line in puts) == 6.0  # summed over the workers
        assert f'table="{TABLE}"' in puts[0] and 'status="200"' in puts[0]
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            code = child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert code == 0
