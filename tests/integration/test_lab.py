"""The lab as a boto3 client meets it: real sockets, real timeouts."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ChecksumError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError,
)

from regionproxy.errors import ConfigError
from regionproxy.testing import LocalRegions, servers, wait_for
from regionproxy.testing.examples import environment
from regionproxy.testing.lab import CREDENTIALS
from tests.support import KEY_SCHEMA, LOCAL, REMOTE, TABLE, closed_port_url

# Timeouts far above any call on a loaded machine: a test that means an
# immediate failure asserts it beat the timeout by a wide margin, so it
# can fail only if the fault waited for a timeout instead.
PATIENT = Config(connect_timeout=5, read_timeout=5, retries={"total_max_attempts": 1})
IMMEDIATE = 2.5  # seconds; half of PATIENT's timeouts
# Short only where the fault under test is a blackhole, which never answers.
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
    error, elapsed = _timed_failure(lab.client(LOCAL, config=PATIENT))
    assert isinstance(error, EndpointConnectionError)
    assert elapsed < IMMEDIATE


def test_reset_is_a_closed_connection_before_any_response(lab):
    lab.fault(LOCAL, "reset")
    client = lab.client(LOCAL, config=PATIENT)
    seen = set()
    for _ in range(20):
        error, elapsed = _timed_failure(client)
        # The RST races the client's first send: urllib3 reports most as a
        # dropped connection, a few as a failed connect (measured ~4%).
        assert isinstance(error, (ConnectionClosedError, EndpointConnectionError))
        assert elapsed < IMMEDIATE
        seen.add(type(error))
    assert ConnectionClosedError in seen


def test_blackhole_fails_after_the_read_timeout(lab):
    lab.fault(LOCAL, "blackhole")
    error, elapsed = _timed_failure(lab.client(LOCAL, config=TIGHT))
    assert isinstance(error, ReadTimeoutError)
    # At least the read timeout; the upper bound only tells the client's
    # timeout from the proxy's 30 s hold, so it is generous.
    assert 0.19 <= elapsed < 0.2 + IMMEDIATE


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
    error, _ = _timed_failure(lab.client(LOCAL, config=PATIENT))
    assert isinstance(error, ClientError)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error.response["Error"]["Code"] == code
    assert lab.requests(LOCAL)[-1].action == "error"


def test_error_rate_answers_about_that_fraction(lab):
    lab.fault(LOCAL, "error", status=500, rate=0.3)
    client = lab.client(LOCAL, config=PATIENT)
    failures = 0
    for _ in range(200):
        try:
            _get(client)
        except ClientError:
            failures += 1
    # Binomial(200, 0.3): sd 0.032; these bounds are 4.6 sd away (~1e-5 a run).
    assert 0.15 <= failures / 200 <= 0.45


@pytest.mark.parametrize("delay", [pytest.param(0.020, id="20ms"), pytest.param(0.080, id="80ms")])
def test_latency_adds_the_requested_delay(lab, delay):
    client = lab.client(LOCAL, config=PATIENT)
    _get(client)

    def timed_calls():
        samples = []
        for _ in range(15):
            started = time.perf_counter()
            _get(client)
            samples.append(time.perf_counter() - started)
        return samples

    baseline = timed_calls()
    jitter = delay / 20
    lab.fault(LOCAL, "latency", delay=delay, jitter=jitter)
    delayed = timed_calls()
    # Every delayed call waited at least delay - jitter: exact on any machine.
    assert min(delayed) >= delay - jitter
    # Nothing much more than the delay was added: a bound well above the
    # noise of a loaded machine, well below a delay applied in the wrong unit
    # or once per chunk of the response.
    assert statistics.median(delayed) - statistics.median(baseline) < delay + 0.25


def test_heal_after_refuse_serves_on_the_same_endpoint(lab):
    client = lab.client(LOCAL, config=PATIENT)
    endpoint = lab.endpoints[LOCAL]
    lab.fault(LOCAL, "refuse")
    with pytest.raises(EndpointConnectionError):
        _get(client)
    lab.heal(LOCAL)
    assert lab.endpoints[LOCAL] == endpoint
    assert _get(client) is None


def test_a_refused_region_keeps_its_port_until_healed(lab):
    # Another process (a pytest-xdist worker's server, a client's ephemeral
    # port) must not take the port while the region refuses: healing listens
    # on it again.
    client = lab.client(LOCAL, config=PATIENT)
    port = int(lab.endpoints[LOCAL].rsplit(":", 1)[1])
    lab.fault(LOCAL, "refuse")
    with socket.socket() as intruder, pytest.raises(OSError):
        intruder.bind(("127.0.0.1", port))
    with pytest.raises(EndpointConnectionError):
        _get(client)
    lab.heal(LOCAL)
    assert _get(client) is None


def test_a_port_for_a_server_to_bind_later_is_outside_the_kernels_own_ports():
    # What the kernel hands out (bind to port 0, outgoing connections) another
    # process may take before the server binds the port.
    with open(servers.EPHEMERAL_RANGE) as ports:
        low = int(ports.read().split()[0])
    chosen = {servers.free_port() for _ in range(20)}
    assert all(servers.LOWEST_CHOSEN_PORT <= port < low for port in chosen), chosen
    assert len(chosen) > 1  # at random, not one port for every process
    for port in chosen:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


def test_a_closed_port_stays_closed_while_the_test_process_runs():
    port = int(closed_port_url().rsplit(":", 1)[1])
    with socket.socket() as intruder, pytest.raises(OSError):
        intruder.bind(("127.0.0.1", port))  # no other socket can take it
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_latency_combines_with_an_error_fault_and_heals_separately(lab):
    client = lab.client(LOCAL, config=PATIENT)
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
    client = lab.client(LOCAL, config=PATIENT)
    outcomes = []
    done = threading.Event()

    def traffic():
        deadline = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < deadline and len(outcomes) < 5000:
            try:
                _get(client)
                outcomes.append("ok")
            except Exception as error:  # noqa: BLE001 - counting what clients see
                outcomes.append(type(error).__name__)

    def seen(outcome, after):
        return lambda: outcome in outcomes[after:]

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        # Each phase lasts until the traffic has met it, however slow the machine.
        assert wait_for(seen("ok", 0), timeout=10)
        lab.fault(LOCAL, "refuse")
        assert wait_for(seen("EndpointConnectionError", 0), timeout=10)
        lab.heal(LOCAL)
        healed_at = len(outcomes)
        assert wait_for(seen("ok", healed_at + 1), timeout=10)  # +1: a call that was out during heal
    finally:
        done.set()
        worker.join(timeout=10)
    assert outcomes[-1] == "ok"


def test_requests_records_what_the_proxy_did(lab):
    client = lab.client(LOCAL, config=PATIENT)
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
    with pytest.raises(ConfigError, match="tls=True"):
        lab.fault(LOCAL, "handshake")  # a plain-HTTP lab has no handshake to break


def _direct_get(lab, region, key=KEY):
    return lab.client(region, direct=True).get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item")


def test_drop_applies_the_request_and_drops_the_connection(lab):
    lab.fault(LOCAL, "drop")
    with pytest.raises(ConnectionClosedError):
        lab.client(LOCAL, config=PATIENT).put_item(TableName=TABLE, Item={**KEY, "v": {"S": "dropped"}})
    assert _direct_get(lab, LOCAL)["v"] == {"S": "dropped"}  # applied all the same
    assert [(r.operation, r.action) for r in lab.requests(LOCAL)] == [("PutItem", "dropped")]


# What botocore does with a bad checksum depends on the retry mode: "legacy"
# (the session's) raises ChecksumError once its attempts are spent.
LEGACY = Config(connect_timeout=5, read_timeout=5, retries={"mode": "legacy", "total_max_attempts": 1})


def test_corrupt_applies_the_request_and_answers_a_wrong_checksum(lab):
    lab.fault(LOCAL, "corrupt")
    with pytest.raises(ChecksumError):
        lab.client(LOCAL, config=LEGACY).put_item(TableName=TABLE, Item={**KEY, "v": {"S": "corrupted"}})
    assert _direct_get(lab, LOCAL)["v"] == {"S": "corrupted"}  # applied; only the answer was corrupted
    assert [(r.operation, r.action) for r in lab.requests(LOCAL)] == [("PutItem", "corrupted")]
    lab.heal(LOCAL)
    assert _get(lab.client(LOCAL, config=LEGACY))["v"] == {"S": "corrupted"}


# -- https ----------------------------------------------------------------------


def test_tls_lab_serves_https_with_a_certificate_only_its_clients_trust():
    with LocalRegions([LOCAL, REMOTE], tls=True, replicate=False) as lab:
        assert all(url.startswith("https://127.0.0.1:") for url in lab.endpoints.values())
        assert all(url.startswith("http://") for url in lab.direct_endpoints.values())
        ca_bundle = lab.ca_bundle
        assert os.path.isfile(ca_bundle)
        lab.create_table(TableName=TABLE, **KEY_SCHEMA)
        lab.client(LOCAL).put_item(TableName=TABLE, Item=_item("k"))
        assert _get(lab.client(LOCAL), KEY) is not None  # verified against the lab's CA

        # A client that does not trust the lab's CA meets a real verification.
        stranger = boto3.session.Session(**CREDENTIALS).client(
            "dynamodb", region_name=LOCAL, endpoint_url=lab.endpoints[LOCAL], config=PATIENT, verify=True
        )
        with pytest.raises(SSLError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            _get(stranger)
        # ... and is let in by the bundle, as AWS_CA_BUNDLE would.
        trusting = boto3.session.Session(**CREDENTIALS).client(
            "dynamodb", region_name=LOCAL, endpoint_url=lab.endpoints[LOCAL], config=PATIENT, verify=ca_bundle
        )
        assert _get(trusting) is not None

        session = lab.session()
        assert "Item" in session.client.get_item(TableName=TABLE, Key=KEY)
        assert environment(lab)["AWS_CA_BUNDLE"] == ca_bundle
    assert not os.path.exists(ca_bundle)  # removed with the lab


def test_tls_handshake_fault_fails_the_handshake_and_heals():
    with LocalRegions([LOCAL, REMOTE], tls=True, replicate=False) as lab:
        lab.create_table(TableName=TABLE, **KEY_SCHEMA)
        client = lab.client(LOCAL, config=PATIENT)
        lab.fault(LOCAL, "handshake")
        error, elapsed = _timed_failure(client)
        assert isinstance(error, SSLError)
        assert elapsed < IMMEDIATE
        assert [r.action for r in lab.requests(LOCAL)] == ["handshake"]  # no request was read
        lab.heal(LOCAL)
        assert _get(client) is None


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


def test_lag_delays_replication(lab):
    lag = 0.5
    lab.replicator.lag = lag  # the shared lab's replicator is new for each test
    local, remote = lab.client(LOCAL), lab.client(REMOTE)  # built before the clock starts
    key = {"pk": {"S": "lag"}, "sk": {"S": "s"}}
    started = time.monotonic()
    local.put_item(TableName=TABLE, Item=_item("lag"))
    # The change waits `lag` from when the replicator saw it, which is after
    # the write began: it cannot be in the remote region sooner than that,
    # however fast or slow the machine. (No check that it is absent "just
    # after" the write: how soon "just after" comes depends on the machine.)
    assert wait_for(lambda: _get(remote, key) is not None, timeout=10 + lag, interval=0.02)
    assert time.monotonic() - started >= lag


# -- lifecycle --------------------------------------------------------------------


def _refused(endpoint):
    host, port = endpoint.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_stop_leaves_no_threads_or_ports():
    # Threads by identity, not by count: other labs' threads (the shared
    # one's connections) may come and go meanwhile.
    before = set(threading.enumerate())
    lab = LocalRegions([LOCAL, REMOTE]).start()
    endpoints = list(lab.endpoints.values()) + list(lab.direct_endpoints.values())
    lab.create_table(TableName=TABLE, **KEY_SCHEMA)
    lab.client(LOCAL).put_item(TableName=TABLE, Item=_item("x"))
    lab.fault(REMOTE, "blackhole")
    held = socket.create_connection(("127.0.0.1", int(lab.endpoints[REMOTE].rsplit(":", 1)[1])))
    lab.stop()
    held.close()
    assert all(_refused(endpoint) for endpoint in endpoints)

    def left_over():
        return [thread.name for thread in threading.enumerate() if thread not in before and thread.is_alive()]

    wait_for(lambda: not left_over(), timeout=10)
    assert left_over() == []


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
