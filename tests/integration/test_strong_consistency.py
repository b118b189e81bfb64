"""Strongly consistent reads and MRSC tables on the lab (issue 20): what the
fault matrix does not show. The lab's stand-in for MRSC changes what a
table says of itself (DescribeTable), not how it replicates."""

from __future__ import annotations

import pytest

import regionproxy as rp
from regionproxy.events import ConsistencyDowngraded
from tests.support import LOCAL, REMOTE, TABLE

KEY = {"pk": {"S": "k"}, "sk": {"S": "s"}}


def test_a_witness_region_listed_as_a_region_is_a_config_error_once_the_table_says_so(lab):
    lab.strongly_consistent(TABLE, witness=REMOTE)
    session = lab.session()
    session.client.put_item(TableName=TABLE, Item=KEY)  # nothing known yet: served as usual
    with pytest.raises(rp.ConfigError) as caught:
        session.client.get_item(TableName=TABLE, Key=KEY, ConsistentRead=True)  # described once: the witness is named
    assert caught.value.setting == "regions" and REMOTE in str(caught.value)
    for call in (
        lambda: session.client.get_item(TableName=TABLE, Key=KEY),
        lambda: session.client.put_item(TableName=TABLE, Item=KEY),
    ):
        with pytest.raises(rp.ConfigError):
            call()  # never a target: every call of the table says so


def test_a_strongly_consistent_read_that_stays_home_raises_no_event(lab):
    events = []
    session = lab.session(listeners=[events.append])
    session.client.put_item(TableName=TABLE, Item=KEY)
    assert session.client.get_item(TableName=TABLE, Key=KEY, ConsistentRead=True)["Item"] == KEY
    assert [e for e in events if isinstance(e, ConsistencyDowngraded)] == []


def test_strong_tables_from_the_environment_fail_over_without_an_event(lab):
    events = []
    environ = {
        "REGIONPROXY_REGIONS": f"{LOCAL},{REMOTE}",
        "REGIONPROXY_ENDPOINTS": ",".join(f"{r}={u}" for r, u in lab.endpoints.items()),
        "REGIONPROXY_STRONG_TABLES": TABLE,
        "REGIONPROXY_CONSISTENT_READ_FAILOVER": "refuse",
    }
    session = rp.RegionSession.from_env(environ, listeners=[events.append])
    try:
        session.client.put_item(TableName=TABLE, Item=KEY)
        lab.wait_replicated()
        lab.fault(LOCAL, "refuse")
        assert session.client.get_item(TableName=TABLE, Key=KEY, ConsistentRead=True)["Item"] == KEY
        assert [e for e in events if isinstance(e, ConsistencyDowngraded)] == []
    finally:
        session.close()
