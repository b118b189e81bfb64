"""The lab's host names and its ``unresolvable`` fault: the region's name
stops resolving (an empty DNS record), its server and replication carry on,
and no other name is touched."""

from __future__ import annotations

import socket

import pytest
from botocore.exceptions import EndpointConnectionError

from regionproxy.testing.lab import wait_for
from tests.support import LOCAL, REMOTE, TABLE


def _named_client(lab, region):
    import boto3
    from botocore.config import Config

    return boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s").client(
        "dynamodb",
        region_name=region,
        endpoint_url=lab.named_endpoints[region],
        config=Config(connect_timeout=1, read_timeout=5, retries={"total_max_attempts": 1}),
    )


def test_unresolvable_stops_the_name_only_and_heals(lab):
    local = _named_client(lab, LOCAL)
    assert local.list_tables()["TableNames"] == [TABLE]
    host = lab.named_endpoints[LOCAL].split("//")[1].rsplit(":", 1)[0]
    since = len(lab.requests(LOCAL))

    lab.fault(LOCAL, "unresolvable")
    assert lab.outage(LOCAL) == "unresolvable"
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(host, 80)
    with pytest.raises(EndpointConnectionError):
        local.list_tables()
    assert lab.requests(LOCAL)[since:] == []  # nothing reached the region
    # By address, and by the other region's name, everything still works;
    # other names go to the system resolver as before.
    assert lab.client(LOCAL).list_tables()["TableNames"] == [TABLE]
    assert _named_client(lab, REMOTE).list_tables()["TableNames"] == [TABLE]
    assert socket.getaddrinfo("127.0.0.1", 80)
    # Replication to and from the region carries on (the DNS record is
    # empty, the region is fine).
    lab.client(LOCAL).put_item(TableName=TABLE, Item={"pk": {"S": "dns"}, "sk": {"S": "s"}})
    assert wait_for(
        lambda: "Item" in lab.client(REMOTE).get_item(TableName=TABLE, Key={"pk": {"S": "dns"}, "sk": {"S": "s"}}), 10
    )

    lab.heal(LOCAL, "unresolvable")
    assert lab.outage(LOCAL) is None
    assert local.list_tables()["TableNames"] == [TABLE]


def test_a_lab_with_hostnames_gives_its_endpoints_by_name(lab):
    assert all(".lab.regionproxy.test:" in url for url in lab.named_endpoints.values())
    assert lab.endpoints != lab.named_endpoints  # the shared lab: by address
