"""Connection warming through the lab, on real sockets: every process keeps a
connection open to every region in its client's pool (TLS handshake done),
so the first call that fails over to the remote region is served on a
connection opened before the call: the remote region's proxy accepts no new
connection for it. In a fleet too, in a process that does not hold the
probe lease and so never probes; and in the sidecar, whose calls go out
through its raw senders' pools (the lean transport, or URLLib3Session)."""

from __future__ import annotations

import time

import pytest

import regionproxy as rp
from regionproxy._regions.health import HealthMonitor
from regionproxy._regions.warming import BUSY, FAILED, KEPT, OPENED
from regionproxy.events import PROBE, CallFinished, ConnectionWarmed, FailedOver
from regionproxy.testing import wait_for
from tests.support import FLEET_TIMEOUT, LOCAL, REMOTE, TABLE

KEY = {"pk": "a", "sk": "s"}
# The blackholed local region costs a read timeout; the remote one answers
# from an in-process moto on a loaded machine (MOTO.md): generous.
TIMEOUTS = rp.Timeouts(connect=1.0, read=2.0, attempts=1)


@pytest.fixture(params=["http", "https"])
def any_lab(request):
    return request.getfixturevalue("lab" if request.param == "http" else "tls_lab")


def _warmed(session):
    """The regions this session's probe threads have warmed (a connection
    opened, or one kept), as they announce it."""
    warmed = set()
    session.add_listener(
        lambda e: warmed.add(e.region) if isinstance(e, ConnectionWarmed) and e.result in (OPENED, KEPT) else None
    )
    return warmed


def _idle_ready(lab, region):
    """Connections the region's proxy accepted, made ready (handshake done)
    and never sent a request on: warmed ones."""
    used = {r.connection for r in lab.requests(region)}
    return [c for c in lab.connections(region) if c.ready_at is not None and c.number not in used]


def _first_failed_over_call(lab, session, mode, read=None):
    """Fail the local region, make one read (``read()``, or the session's
    own); what the remote proxy saw of it."""
    failed_over = []
    session.add_listener(lambda e: failed_over.append(e) if isinstance(e, FailedOver) else None)
    accepted = len(lab.connections(REMOTE))
    seen = len(lab.requests(REMOTE))
    lab.fault(LOCAL, mode)
    started = time.monotonic()  # the proxies' clock
    item = read() if read is not None else session.table(TABLE).get_item(Key=KEY)["Item"]
    assert item["v"] in (1, {"N": "1"}), item
    assert [(e.from_region, e.to_region) for e in failed_over] == [(LOCAL, REMOTE)]
    [request] = [r for r in lab.requests(REMOTE)[seen:] if r.operation == "GetItem"]
    connection = lab.connections(REMOTE)[request.connection - 1]
    return accepted, started, connection


@pytest.mark.parametrize("mode", ["blackhole", "refuse"])
def test_the_first_failed_over_call_is_served_on_a_connection_warmed_before_it(any_lab, mode):
    lab = any_lab
    lab.client(LOCAL, direct=True).put_item(TableName=TABLE, Item={**{k: {"S": v} for k, v in KEY.items()}, "v": {"N": "1"}})
    lab.client(REMOTE, direct=True).put_item(TableName=TABLE, Item={**{k: {"S": v} for k, v in KEY.items()}, "v": {"N": "1"}})
    session = lab.session(timeouts=TIMEOUTS)
    warmed = _warmed(session)
    monitor = HealthMonitor(session, interval=3600)  # one round at start; a local fault wakes only the local thread
    monitor.start()
    try:
        assert wait_for(lambda: warmed == {LOCAL, REMOTE}, timeout=15)
        # The client's connect() returns once the kernel has done the TCP
        # handshake, before the proxy's thread has accepted and numbered it.
        assert wait_for(lambda: _idle_ready(lab, LOCAL) and _idle_ready(lab, REMOTE), timeout=10), (
            lab.connections(REMOTE),
            lab.requests(REMOTE),
        )
        accepted, started, connection = _first_failed_over_call(lab, session, mode)
    finally:
        monitor.stop()
    # Served on a connection the proxy accepted, and for https finished its
    # handshake with, before the call began: no connection set-up on its path.
    assert connection.accepted_at < started and connection.ready_at < started, (connection, started)
    assert len(lab.connections(REMOTE)) == accepted, "the remote proxy accepted no new connection for the call"


@pytest.mark.parametrize("mode", ["blackhole", "refuse"])
def test_the_sidecars_first_failed_over_request_is_served_on_a_connection_warmed_before_it(any_lab, mode):
    """The sidecar sends raw (its WireSender: the lean transport for the
    lab's http and https endpoints), not through the botocore client's
    pool: warming reaches the pool its requests go through, in the process
    that serves them."""
    from tests.integration.sidecar_lab import serving

    lab = any_lab
    for region in (LOCAL, REMOTE):
        lab.client(region, direct=True).put_item(TableName=TABLE, Item={**{k: {"S": v} for k, v in KEY.items()}, "v": {"N": "1"}})
    session = lab.session(timeouts=TIMEOUTS)
    warmed = _warmed(session)
    monitor = HealthMonitor(session, interval=3600)  # one round at start; a local fault wakes only the local thread
    with serving(lab, session, monitor=monitor) as sidecar:
        client = sidecar.client(retries={"total_max_attempts": 1}, read_timeout=30)
        try:
            monitor.start()
            assert wait_for(lambda: warmed == {LOCAL, REMOTE}, timeout=15)
            # The proxy accepts a warmed connection a moment after the client
            # opened it: let it see both pools' (the botocore client's, for
            # probes; the raw sender's, for the sidecar's calls) before
            # counting. Not asserted: what the call is served on is.
            wait_for(lambda: len(_idle_ready(lab, REMOTE)) >= 2, timeout=5)
            accepted, started, connection = _first_failed_over_call(
                lab, session, mode, read=lambda: client.get_item(TableName=TABLE, Key={k: {"S": v} for k, v in KEY.items()})["Item"]
            )
        finally:
            monitor.stop()
            client.close()
    assert connection.accepted_at < started and connection.ready_at < started, (connection, started)
    assert len(lab.connections(REMOTE)) == accepted, "the remote proxy accepted no new connection for the sidecar's request"


def test_a_process_that_does_not_hold_the_probe_lease_warms_its_own_pool(lab, redis):
    lab.client(REMOTE, direct=True).put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"S": "s"}, "v": {"N": "1"}})
    holder = lab.session(fleet=redis.url, fleet_timeout=FLEET_TIMEOUT, timeouts=TIMEOUTS)
    worker = lab.session(fleet=redis.url, fleet_timeout=FLEET_TIMEOUT, timeouts=TIMEOUTS)
    probes = []
    held, warmed = _warmed(holder), _warmed(worker)
    worker.add_listener(lambda e: probes.append(e) if isinstance(e, CallFinished) and e.operation == PROBE else None)
    holder.prepare()
    worker.prepare()
    assert wait_for(lambda: holder.status()["fleet"]["connected"] and worker.status()["fleet"]["connected"], timeout=10)
    monitors = [HealthMonitor(holder, interval=3600)]
    try:
        monitors[0].start()  # takes both regions' leases for the interval, probes, warms its pool
        assert wait_for(lambda: held == {LOCAL, REMOTE}, timeout=15)
        monitors.append(HealthMonitor(worker, interval=3600))
        monitors[1].start()  # no lease: no probe, but a warmed pool of its own
        assert wait_for(lambda: warmed == {LOCAL, REMOTE}, timeout=15)
        assert wait_for(lambda: len(_idle_ready(lab, REMOTE)) == 2, timeout=10), lab.connections(REMOTE)
        accepted, started, connection = _first_failed_over_call(lab, worker, "refuse")
    finally:
        for monitor in monitors:
            monitor.stop()
    assert probes == [], "the worker never held the lease, never probed"
    assert connection.ready_at < started
    assert len(lab.connections(REMOTE)) == accepted


def test_warming_keeps_an_open_connection_and_reopens_one_the_server_closed(lab):
    session = lab.session(timeouts=TIMEOUTS)
    assert session.warm(REMOTE) == OPENED
    assert session.warm(REMOTE) == KEPT
    assert wait_for(lambda: len(lab.connections(REMOTE)) == 1)  # the proxy accepts it a moment later
    session.table(TABLE).get_item(Key=KEY)  # a local read: the remote pool is untouched
    lab.fault(REMOTE, "refuse")  # closes the idle connection, as a dead server's
    assert session.warm(REMOTE) == FAILED
    lab.heal(REMOTE)
    assert session.warm(REMOTE) == OPENED
    assert wait_for(lambda: len(lab.connections(REMOTE)) == 2)
    assert lab.requests(REMOTE) == [], "warming sends no request"


def test_warming_leaves_a_pool_whose_connections_are_all_out_on_calls(lab):
    from botocore.config import Config

    session = lab.session(timeouts=TIMEOUTS, config=Config(max_pool_connections=1))
    pool = session.replicas[REMOTE].client._endpoint.http_session._manager.connection_from_url(lab.endpoints[REMOTE])
    taken = pool._get_conn()  # a call holds the only connection
    try:
        assert session.warm(REMOTE) == BUSY
    finally:
        pool._put_conn(taken)
    assert lab.connections(REMOTE) == []
