"""Replica: each region's boto3 client, built lazily under the session's
timeouts and pool, from one boto3 session per process."""

from __future__ import annotations

import time

import pytest
from botocore.config import Config

import regionproxy as rp
from tests.support import REGIONS, closed_port_url


def test_clients_get_the_callers_config_under_the_sessions_timeouts_and_one_botocore_attempt():
    session = rp.RegionSession(
        REGIONS,
        endpoints=dict.fromkeys(REGIONS, closed_port_url()),
        timeouts=rp.Timeouts(connect=0.7, read=1.3, attempts=3),
        config=Config(max_pool_connections=7, user_agent_extra="blog/1.0"),
    )
    config = session.replicas["eu-west-3"].client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (0.7, 1.3)
    assert config.retries["total_max_attempts"] == 1  # the session makes the other attempts itself
    assert (config.max_pool_connections, config.user_agent_extra) == (7, "blog/1.0")


def test_default_pool_fits_a_threaded_server():
    session = rp.RegionSession(REGIONS, endpoints=dict.fromkeys(REGIONS, closed_port_url()))
    assert session.replicas["us-east-1"].client.meta.config.max_pool_connections == 50


def test_a_chain_of_forks_keeps_one_boto3_session_per_process():
    import os

    from regionproxy._regions import replica

    replica._process_session()  # the parent's
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: fork once more, and report what the grandchild keeps
        os.close(read)
        inner = os.fork()
        if inner == 0:
            replica._process_session()
            os.write(write, repr(sorted(replica._SESSIONS) == [os.getpid()]).encode())
            os._exit(0)
        os.waitpid(inner, 0)
        os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 20  # never wait without a bound
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            pytest.fail("the forked child hung")
        time.sleep(0.01)
    with os.fdopen(read) as answer:
        assert answer.read() == "True"  # no ancestor's session left behind


def test_warming_builds_and_warms_a_raw_sender_only_where_calls_go_out_raw(monkeypatch):
    """Each pool this process's calls to the region go through gets a warm
    connection: the client's always, the raw sender's where the replica
    sends raw (the sidecar's); a process that never sends raw builds none."""
    from regionproxy._regions.wire import JsonRequest
    from regionproxy.testing import wait_for
    from tests._regions.test_transport import OK, Stub

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "SIDECAR")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sidecar-secret")
    stub = Stub(lambda connection, _: connection.sendall(OK) or True)
    session = rp.RegionSession(["eu-west-3"], endpoints={"eu-west-3": stub.url})
    replica = session.replicas["eu-west-3"]
    try:
        assert replica.warm() == "opened"
        assert replica._wire is None, "no raw sender built where none is used"
        replica.sends_raw = True
        assert replica.warm() == "opened"  # the client's kept, the raw sender's opened
        assert replica._wire is not None
        assert replica.warm() == "kept"
        assert wait_for(lambda: stub.connections == 2)
        replica.call("ListTables", JsonRequest({}))  # a raw call: on the raw sender's warmed connection
        assert stub.connections == 2
    finally:
        session.close()
        stub.close()
