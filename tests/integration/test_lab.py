"""The lab as a boto3 client meets it: real sockets, real timeouts."""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import threading
import time

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from regionproxy.errors import ConfigError
from regionproxy.testing import LocalRegions
from tests.conftest import KEY_SCHEMA, TABLE

LOCAL, REMOTE = "eu-west-3", "us-east-1"
TIGHT = Config(connect_timeout=0.2, read_timeout=0.2, retries={"total_max_attempts": 1})
KEY = {"pk": {"S": "k"}, "sk": {"S": "s"}}


def _get(client, key=KEY):
    return client.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item")


def _timed_failure(client):
    started = time.perf_counter()
    with pytest.raises(Exception) as caught:
        _get(client)
    return caught.value, time.perf_counter() - started


def test_refuse_is_an_immediate_connection_error(lab):
    lab.fault(LOCAL, "refuse")
    error, elapsed = _timed_failure(lab.client(LOCAL, config=TIGHT))
    assert isinstance(error, EndpointConnectionError)
    assert elapsed < 0.15


def test_reset_is_a_closed_connection_before_any_response(lab):
    lab.fault(LOCAL, "reset")
    client = lab.client(LOCAL, config=TIGHT)
    seen = set()
    for _ in range(20):
        error, elapsed = _timed_failure(client)
        # The RST races the client's first send: urllib3 reports most as a
        # dropped connection, a few as a failed connect (measured ~4%).
        assert isinstance(error, (ConnectionClosedError, EndpointConnectionError))
        assert elapsed < 0.15
        seen.add(type(error))
    assert ConnectionClosedError in seen


def test_blackhole_fails_after_the_read_timeout(lab):
    lab.fault(LOCAL, "blackhole")
    error, elapsed = _timed_failure(lab.client(LOCAL, config=TIGHT))
    assert isinstance(error, ReadTimeoutError)
    assert 0.19 <= elapsed < 1.0


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        pytest.param({"status": 500}, 500, "InternalServerError", id="500"),
        pytest.param({"status": 503}, 503, "ServiceUnavailable", id="503"),
        pytest.param({"status": 400}, 400, "ThrottlingException", id="throttling"),
        pytest.param(
            {"status": 400, "code": "ProvisionedThroughputExceededException"},
            400,
            "ProvisionedThroughputExceededException",
            id="provisioned-throughput",
        ),
    ],
)
def test_error_fault_answers_with_a_dynamodb_error(lab, params, status, code):
    lab.fault(LOCAL, "error", **params)
    error, _ = _timed_failure(lab.client(LOCAL, config=TIGHT))
    assert isinstance(error, ClientError)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error.response["Error"]["Code"] == code
    assert lab.requests(LOCAL)[-1].action == "error"


def test_error_rate_answers_about_that_fraction(lab):
    lab.fault(LOCAL, "error", status=500, rate=0.3)
    client = lab.client(LOCAL, config=TIGHT)
    failures = 0
    for _ in range(200):
        try:
            _get(client)
        except ClientError:
            failures += 1
    assert 0.18 <= failures / 200 <= 0.42


@pytest.mark.parametrize("delay", [0.020, 0.080], ids=["20ms", "80ms"])
def test_latency_adds_the_requested_delay(lab, delay):
    client = lab.client(LOCAL)
    _get(client)

    def median_call():
        samples = []
        for _ in range(15):
            started = time.perf_counter()
            _get(client)
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    baseline = median_call()
    lab.fault(LOCAL, "latency", delay=delay, jitter=delay / 20)
    added = median_call() - baseline
    assert added == pytest.approx(delay, rel=0.2)


def test_heal_after_refuse_serves_on_the_same_endpoint(lab):
    client = lab.client(LOCAL, config=TIGHT)
    endpoint = lab.endpoints[LOCAL]
    lab.fault(LOCAL, "refuse")
    with pytest.raises(EndpointConnectionError):
        _get(client)
    lab.heal(LOCAL)
    assert lab.endpoints[LOCAL] == endpoint
    assert _get(client) is None


def test_latency_combines_with_an_error_fault_and_heals_separately(lab):
    client = lab.client(LOCAL, config=TIGHT)
    lab.fault(LOCAL, "latency", delay=0.05)
    lab.fault(LOCAL, "error", status=500)
    started = time.perf_counter()
    with pytest.raises(ClientError):
        _get(client)
    assert time.perf_counter() - started >= 0.05
    lab.heal(LOCAL, "error")
    started = time.perf_counter()
    assert _get(client) is None
    assert time.perf_counter() - started >= 0.05


def test_fault_changes_while_traffic_flows(lab):
    client = lab.client(LOCAL, config=TIGHT)
    outcomes = []
    stop = time.monotonic() + 1.0

    def traffic():
        while time.monotonic() < stop and len(outcomes) < 2000:
            try:
                _get(client)
                outcomes.append("ok")
            except Exception as error:  # noqa: BLE001 - counting what clients see
                outcomes.append(type(error).__name__)

    worker = threading.Thread(target=traffic)
    worker.start()
    time.sleep(0.2)
    lab.fault(LOCAL, "refuse")
    time.sleep(0.2)
    lab.heal(LOCAL)
    worker.join()
    assert "EndpointConnectionError" in outcomes
    assert outcomes[-1] == "ok"


def test_requests_records_what_the_proxy_did(lab):
    client = lab.client(LOCAL, config=TIGHT)
    _get(client)
    lab.fault(LOCAL, "error", status=500)
    with pytest.raises(ClientError):
        _get(client)
    actions = [(request.operation, request.action) for request in lab.requests(LOCAL)]
    assert actions[-2:] == [("GetItem", "forwarded"), ("GetItem", "error")]


def test_bad_fault_is_a_config_error(lab):
    with pytest.raises(ConfigError, match="unknown fault mode"):
        lab.fault(LOCAL, "meltdown")
    with pytest.raises(ConfigError, match="unknown region"):
        lab.fault("mars-north-1", "refuse")


# -- replication ----------------------------------------------------------------


def _item(pk, **attrs):
    return {"pk": {"S": pk}, "sk": {"S": "s"}, **{name: {"S": value} for name, value in attrs.items()}}


def test_put_update_and_delete_replicate(lab):
    local, remote = lab.client(LOCAL), lab.client(REMOTE)
    key = {"pk": {"S": "p"}, "sk": {"S": "s"}}
    local.put_item(TableName=TABLE, Item=_item("p", v="1"))
    lab.wait_replicated()
    assert _get(remote, key)["v"] == {"S": "1"}
    local.update_item(
        TableName=TABLE, Key=key, UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": {"S": "2"}}
    )
    lab.wait_replicated()
    assert _get(remote, key)["v"] == {"S": "2"}
    remote.delete_item(TableName=TABLE, Key=key)
    lab.wait_replicated()
    assert _get(local, key) is None


@pytest.mark.parametrize("first", [LOCAL, REMOTE])
def test_conflict_resolves_last_writer_wins(lab, first):
    second = REMOTE if first == LOCAL else LOCAL
    lab.replicator.pause()
    lab.client(first).put_item(TableName=TABLE, Item=_item("c", by=first))
    time.sleep(0.01)  # DynamoDB Streams timestamps have millisecond resolution
    lab.client(second).put_item(TableName=TABLE, Item=_item("c", by=second))
    lab.replicator.resume()
    lab.wait_replicated()
    key = {"pk": {"S": "c"}, "sk": {"S": "s"}}
    for region in (LOCAL, REMOTE):
        assert _get(lab.client(region), key)["by"] == {"S": second}


def test_replication_does_not_echo(lab):
    lab.client(LOCAL).put_item(TableName=TABLE, Item=_item("e", v="1"))
    lab.wait_replicated()
    lab.wait_replicated()
    changes = {region: len(lab.replicator._log[(region, TABLE)]) for region in (LOCAL, REMOTE)}
    assert changes == {LOCAL: 1, REMOTE: 0}


def test_no_change_lost_across_blackhole_then_heal(lab):
    lab.fault(LOCAL, "blackhole")
    cut_off = lab.client(LOCAL, direct=True)  # the app inside the cut-off region still writes there
    for n in range(5):
        cut_off.put_item(TableName=TABLE, Item=_item(f"local-{n}"))
        lab.client(REMOTE).put_item(TableName=TABLE, Item=_item(f"remote-{n}"))
    lab.wait_replicated()
    assert _get(lab.client(REMOTE), {"pk": {"S": "local-0"}, "sk": {"S": "s"}}) is None
    lab.heal(LOCAL)
    lab.wait_replicated()
    for region in (LOCAL, REMOTE):
        items = lab.client(region).scan(TableName=TABLE, ConsistentRead=True)["Items"]
        assert sorted(item["pk"]["S"] for item in items) == sorted(
            [f"local-{n}" for n in range(5)] + [f"remote-{n}" for n in range(5)]
        )


def test_lag_delays_replication():
    with LocalRegions([LOCAL, REMOTE], lag=0.5) as lab:
        lab.create_table(TableName=TABLE, **KEY_SCHEMA)
        lab.client(LOCAL).put_item(TableName=TABLE, Item=_item("lag"))
        key = {"pk": {"S": "lag"}, "sk": {"S": "s"}}
        time.sleep(0.1)
        assert _get(lab.client(REMOTE), key) is None
        lab.wait_replicated()
        assert _get(lab.client(REMOTE), key) is not None


# -- lifecycle --------------------------------------------------------------------


def _refused(endpoint):
    host, port = endpoint.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_start_is_fast_and_stop_leaves_no_threads_or_ports():
    before = threading.active_count()
    started = time.perf_counter()
    lab = LocalRegions([LOCAL, REMOTE]).start()
    assert time.perf_counter() - started < 2.0
    endpoints = list(lab.endpoints.values()) + list(lab.direct_endpoints.values())
    lab.create_table(TableName=TABLE, **KEY_SCHEMA)
    lab.client(LOCAL).put_item(TableName=TABLE, Item=_item("x"))
    lab.fault(REMOTE, "blackhole")
    held = socket.create_connection(("127.0.0.1", int(lab.endpoints[REMOTE].rsplit(":", 1)[1])))
    lab.stop()
    held.close()
    assert all(_refused(endpoint) for endpoint in endpoints)
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


def test_lab_is_quiet(capfd, lab):
    lab.client(LOCAL).put_item(TableName=TABLE, Item=_item("quiet"))
    lab.wait_replicated()
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_process_mode_runs_moto_in_subprocesses():
    with LocalRegions([LOCAL, REMOTE], mode="process") as lab:
        lab.create_table(TableName=TABLE, **KEY_SCHEMA)
        lab.client(LOCAL).put_item(TableName=TABLE, Item=_item("proc"))
        lab.wait_replicated(timeout=10)
        assert _get(lab.client(REMOTE), {"pk": {"S": "proc"}, "sk": {"S": "s"}}) is not None
        pids = {server._process.pid for server in lab._servers.values()}
    assert len(pids) == 2


def test_regions_must_be_distinct():
    with pytest.raises(ConfigError, match="distinct"):
        LocalRegions([LOCAL, LOCAL])


@pytest.mark.parametrize("local_regions", [["ap-south-1", "eu-central-1", "sa-east-1"]], indirect=True)
def test_fixture_takes_regions_from_a_parameter(local_regions):
    assert list(local_regions.endpoints) == ["ap-south-1", "eu-central-1", "sa-east-1"]


def test_plugin_module_does_not_import_moto():
    code = "import sys, regionproxy.testing.plugin; print('moto' in sys.modules, 'boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
