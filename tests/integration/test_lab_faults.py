"""Faults that hit a fraction of requests (``rate`` and tail spikes), and
what ``corrupt`` does to an answer.

The proxy records the latency it injected into each request
(``ProxiedRequest.delayed``), so these tests count what it did instead of
timing it.
"""

from __future__ import annotations

import http.client
import random
import threading
import zlib
from http.server import ThreadingHTTPServer

import pytest

from regionproxy.bench.canned import CannedHandler
from regionproxy.errors import ConfigError
from regionproxy.testing.fault_modes import Fault, corrupt_checksum
from regionproxy.testing.fault_proxy import FaultProxy
from tests.support import TABLE

REQUESTS = 200


@pytest.fixture
def proxy():
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), CannedHandler)
    thread = threading.Thread(target=upstream.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    fault_proxy = FaultProxy(upstream.server_address, rng=random.Random(7), timeout=5).start()
    try:
        yield fault_proxy
    finally:
        fault_proxy.stop()
        upstream.shutdown()
        upstream.server_close()
        thread.join(timeout=5)


def _send(proxy: FaultProxy, count: int = REQUESTS) -> list[float]:
    for _ in range(count):
        conn = http.client.HTTPConnection(*proxy.address, timeout=5)
        try:
            conn.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "DynamoDB_20120810.GetItem"})
            assert conn.getresponse().read()
        finally:
            conn.close()
    return [request.delayed for request in proxy.requests()]


def test_latency_rate_delays_only_that_fraction_of_requests(proxy):
    proxy.set_fault(Fault("latency", delay=0.001, rate=0.25))
    delayed = _send(proxy)
    assert len(delayed) == REQUESTS
    hit = sum(1 for seconds in delayed if seconds > 0)
    assert 0.10 * REQUESTS < hit < 0.40 * REQUESTS  # binomial(200, 0.25): mean 50, sd 6
    assert all(seconds == 0.0 or seconds == pytest.approx(0.001) for seconds in delayed)


def test_latency_without_rate_delays_every_request_within_its_jitter(proxy):
    proxy.set_fault(Fault("latency", delay=0.002, jitter=0.001))
    delayed = _send(proxy, 50)
    assert all(0.001 <= seconds <= 0.003 for seconds in delayed)


def test_latency_rate_zero_delays_nothing(proxy):
    proxy.set_fault(Fault("latency", delay=0.05, rate=0.0))
    assert _send(proxy, 50) == [0.0] * 50


def test_spikes_add_to_a_fraction_of_requests_on_top_of_the_base_delay(proxy):
    proxy.set_fault(Fault("latency", delay=0.001, spike=0.004, spike_rate=0.1))
    delayed = _send(proxy)
    spiked = [seconds for seconds in delayed if seconds > 0.002]
    assert all(seconds >= 0.001 for seconds in delayed)
    assert all(seconds == pytest.approx(0.005) for seconds in spiked)
    assert 0.02 * REQUESTS < len(spiked) < 0.20 * REQUESTS  # binomial(200, 0.1): mean 20, sd 4


def test_healing_latency_stops_the_spikes(proxy):
    proxy.set_fault(Fault("latency", delay=0.0, spike=0.002, spike_rate=1.0))
    assert all(seconds == pytest.approx(0.002) for seconds in _send(proxy, 10))
    proxy.heal("latency")
    assert _send(proxy, 10)[10:] == [0.0] * 10


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"mode": "latency", "spike": -0.1, "spike_rate": 0.1}, id="negative-spike"),
        pytest.param({"mode": "latency", "spike": 0.1, "spike_rate": 1.5}, id="spike-rate-above-one"),
        pytest.param({"mode": "error", "spike": 0.1, "spike_rate": 0.1}, id="spike-on-an-error-fault"),
        pytest.param({"mode": "latency", "delay": 0.1, "rate": 2.0}, id="rate-above-one"),
    ],
)
def test_bad_spike_settings_are_config_errors(params):
    with pytest.raises(ConfigError):
        Fault(**params)


def test_lab_fault_passes_spikes_to_the_region_proxy(lab):
    lab.fault("eu-west-3", "latency", delay=0.0, spike=0.003, spike_rate=1.0)
    client = lab.client("eu-west-3")
    for _ in range(3):
        client.get_item(TableName=TABLE, Key={"pk": {"S": "k"}, "sk": {"S": "s"}})
    gets = [request for request in lab.requests("eu-west-3") if request.operation == "GetItem"]
    assert len(gets) == 3 and all(request.delayed == pytest.approx(0.003) for request in gets)


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nx-amz-crc32: %d\r\nContent-Length: 2", id="replaces-the-header"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2", id="adds-one"),
    ],
)
def test_corrupt_answer_has_one_wrong_numeric_checksum_and_the_same_body(head):
    body = b"{}"
    right = zlib.crc32(body) & 0xFFFFFFFF
    answer = (head % right if b"%d" in head else head) + b"\r\n\r\n" + body
    corrupted_head, _, corrupted_body = corrupt_checksum(answer).partition(b"\r\n\r\n")
    checksums = [line.split(b":")[1].strip() for line in corrupted_head.split(b"\r\n") if line.lower().startswith(b"x-amz-crc32:")]
    assert corrupted_body == body
    assert len(checksums) == 1 and checksums[0].isdigit() and int(checksums[0]) != right


def test_corrupt_rate_corrupts_only_that_fraction_of_answers(proxy):
    proxy.set_fault(Fault("corrupt", rate=0.25))
    _send(proxy)
    corrupted = [request.action for request in proxy.requests()].count("corrupted")
    assert 0.10 * REQUESTS < corrupted < 0.40 * REQUESTS  # binomial(200, 0.25): mean 50, sd 6


def test_a_blackholed_connection_is_a_request_only_once_one_is_sent(proxy):
    import socket

    from regionproxy.testing.lab import wait_for

    proxy.set_fault(Fault("blackhole"))
    idle = socket.create_connection(proxy.address, timeout=5)  # opened, nothing sent: a warmed connection
    sending = socket.create_connection(proxy.address, timeout=5)
    try:
        sending.sendall(b"POST / HTTP/1.1\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\nContent-Length: 2\r\n\r\n{}")
        assert wait_for(lambda: len(proxy.connections()) == 2 and proxy.requests())
        [request] = proxy.requests()
        assert (request.operation, request.action) == ("GetItem", "blackholed")
        assert request.connection == 2, "the idle connection sent nothing: no request of it"
        sending.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sending.recv(1)  # held, never answered
        proxy.heal()
        assert idle.recv(1) == b"", "healing closes the held connections"
    finally:
        idle.close()
        sending.close()
