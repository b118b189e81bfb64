"""Listeners that call back into the session, against the lab.

An alerting hook that evacuates a region when its breaker opens, and makes
a DynamoDB call while it is at it, is a natural thing to write. Events are
emitted after every lock is released, so such a listener finishes, on the
thread whose call tripped the breaker.
"""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry

import regionproxy as rp
from regionproxy._regions.breaker import CLOSED, EVACUATED, OPEN
from regionproxy._web.metrics import PrometheusListener
from regionproxy.events import BreakerChanged
from tests.support import LOCAL, TABLE

KEYS = [{"pk": {"S": f"p{n}"}, "sk": {"S": "s"}} for n in range(3)]
BOUND = 60.0  # far above the few fast calls the caller makes; a deadlock never ends


@pytest.mark.parametrize(
    "cache",
    [
        pytest.param(None, id="no-cache"),
        # The listener reads the very key whose load tripped the breaker.
        pytest.param(rp.CachePolicy(maxsize=100, ttl=60.0), id="cache"),
    ],
)
def test_listener_that_evacuates_and_calls_dynamodb_completes(lab, cache):
    session = lab.session(
        timeouts=rp.Timeouts(connect=1.0, read=5.0, attempts=1),
        breaker=rp.BreakerPolicy(fail_max=3, reset_timeout=60.0),
        cache=cache,
    )
    for key in KEYS:
        lab.client(LOCAL).put_item(TableName=TABLE, Item={**key, "v": {"S": "x"}})
    lab.wait_replicated()
    metrics = PrometheusListener(CollectorRegistry(), regions=session.regions)
    session.hooks.add(metrics)
    heard, served = [], []

    def alert(event):
        if isinstance(event, BreakerChanged) and event.region == LOCAL:
            heard.append((event.old, event.new, threading.current_thread().name))
            if event.new == OPEN:
                session.evacuate(LOCAL)
                # the key whose read (and cache load) is tripping the breaker
                served.append(session.client.get_item(TableName=TABLE, Key=KEYS[-1])["Item"]["v"])

    session.hooks.add(alert)
    lab.fault(LOCAL, "refuse")
    answers = []

    def caller():
        for key in KEYS:  # fail_max refusals open the local breaker; three misses in the cache
            answers.append(session.client.get_item(TableName=TABLE, Key=key)["Item"]["v"])

    thread = threading.Thread(target=caller, name="caller", daemon=True)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), "the listener's calls into the session deadlocked the calling thread"
    assert answers == [{"S": "x"}] * 3, "every read was served by the remote region"
    assert served == [{"S": "x"}], "the listener's own DynamoDB call was served"
    assert heard == [(CLOSED, OPEN, "caller"), (OPEN, EVACUATED, "caller")]
    assert session.replicas[LOCAL].breaker.state == EVACUATED
    gauge = metrics.registry.get_sample_value("regionproxy_breaker_state", {"region": LOCAL})
    assert gauge == 3, "regionproxy_breaker_state shows 3 while evacuated"
