"""``regionproxy lab`` as a user drives it from a second shell: faults and
heals through the lab's control endpoint, and tables the user creates
through the lab's endpoints replicated like the example's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request

import boto3
import pytest
from botocore.config import Config

from regionproxy._cli.lab_control import VARIABLE, ControlServer, find_control
from regionproxy._cli.main import main
from regionproxy.testing import wait_for
from tests.support import LOCAL, REMOTE


@pytest.fixture(scope="module")
def running_lab(tmp_path_factory):
    """``regionproxy lab`` in a subprocess, with its own temp dir (its control file)."""
    tmp = tmp_path_factory.mktemp("lab")
    env = {**os.environ, "TMPDIR": str(tmp)}
    env.pop(VARIABLE, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "regionproxy", "lab", "--regions", LOCAL, REMOTE, "--for", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Stop"):
                break
        out = "".join(lines)
        endpoints = dict(re.findall(r"^  (\S+-\d)\s+(http://127\.0\.0\.1:\d+)$", out, re.M))
        control = re.search(r"control\s+(http://127\.0\.0\.1:\d+/\S+)", out).group(1)
        yield {"endpoints": endpoints, "control": control, "out": out, "tmp": tmp}
    finally:
        process.terminate()
        process.communicate(timeout=30)


def lab_command(*argv):
    return main(["lab", *argv])


def test_the_lab_prints_and_exports_its_control_address_and_writes_its_file(running_lab):
    assert f"export {VARIABLE}={running_lab['control']}" in running_lab["out"]
    (file,) = running_lab["tmp"].glob("regionproxy-lab-*.control")
    assert file.read_text().strip() == running_lab["control"]
    assert oct(file.stat().st_mode & 0o777) == "0o600"


def test_a_running_lab_takes_an_outage_and_heals_from_another_shell(running_lab, capsys):
    control = running_lab["control"]
    client = boto3.client(
        "dynamodb", region_name=LOCAL, endpoint_url=running_lab["endpoints"][LOCAL],
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(connect_timeout=2, read_timeout=2, retries={"total_max_attempts": 1}),
    )  # fmt: skip
    assert lab_command("fault", LOCAL, "refuse", "--control", control) == 0
    assert json.loads(capsys.readouterr().out) == {"region": LOCAL, "outage": "refuse"}
    with pytest.raises(Exception, match="Could not connect"):
        client.list_tables()
    assert lab_command("status", "--control", control) == 0
    assert json.loads(capsys.readouterr().out) == {LOCAL: "refuse", REMOTE: None}
    assert lab_command("heal", LOCAL, "--control", control) == 0
    assert json.loads(capsys.readouterr().out) == {"region": LOCAL, "outage": None}
    client.list_tables()


def test_the_control_is_found_through_the_variable(running_lab, monkeypatch, capsys):
    monkeypatch.setenv(VARIABLE, running_lab["control"])
    assert lab_command("fault", REMOTE, "latency", "--delay", "0.01") == 0
    assert lab_command("heal") == 0  # every region
    capsys.readouterr()
    assert lab_command("status") == 0
    assert json.loads(capsys.readouterr().out) == {LOCAL: None, REMOTE: None}


def test_a_wrong_region_or_mode_is_refused_with_the_labs_message(running_lab, capsys):
    control = running_lab["control"]
    assert lab_command("fault", "mars-1", "refuse", "--control", control) == 2
    assert "unknown region 'mars-1'" in capsys.readouterr().err
    assert lab_command("fault", LOCAL, "explode", "--control", control) == 2
    assert "explode" in capsys.readouterr().err


def test_a_wrong_token_is_not_found(running_lab):
    url = running_lab["control"].rsplit("/", 1)[0] + "/guessed/regions"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=5)
    assert caught.value.code == 404


def test_a_table_the_user_creates_through_the_endpoints_is_replicated(running_lab):
    def client(region):
        return boto3.client(
            "dynamodb", region_name=region, endpoint_url=running_lab["endpoints"][region],
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip

    local, remote = client(LOCAL), client(REMOTE)
    local.create_table(
        TableName="Notes", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip
    local.put_item(TableName="Notes", Item={"id": {"S": "written-at-once"}})

    def replicated(item_id):
        def found():
            try:
                return "Item" in remote.get_item(TableName="Notes", Key={"id": {"S": item_id}})
            except remote.exceptions.ResourceNotFoundException:
                return False

        return found

    assert wait_for(replicated("written-at-once"), timeout=30, interval=0.1)
    local.put_item(TableName="Notes", Item={"id": {"S": "written-later"}})
    assert wait_for(replicated("written-later"), timeout=30, interval=0.1)


def test_no_running_lab_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    monkeypatch.setattr("regionproxy._cli.lab_control.control_file", lambda: tmp_path / "none.control")
    with pytest.raises(LookupError, match="no running lab found"):
        find_control(None)


class FakeLab:
    regions = (LOCAL,)

    def __init__(self):
        self.faults = []

    def fault(self, region, mode, **params):
        self.faults.append((region, mode, params))

    def heal(self, region=None, mode=None):
        pass

    def outage(self, region):
        return None


def test_the_control_refuses_parameters_a_fault_does_not_take():
    lab = FakeLab()
    with ControlServer(lab) as control:
        request = urllib.request.Request(
            f"{control.url}/regions/{LOCAL}/fault", data=b'{"mode": "latency", "__class__": 1}', method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 400
        request = urllib.request.Request(f"{control.url}/regions/{LOCAL}/fault", data=b"[1]", method="POST")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(request, timeout=5)
    assert lab.faults == []


def test_adoption_copies_earlier_items_and_leaves_a_stream_without_new_images_alone():
    from regionproxy.testing import LocalRegions

    spec = {
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    with LocalRegions([LOCAL, REMOTE], mode="process") as lab:
        local, remote = lab.client(LOCAL), lab.client(REMOTE)
        local.create_table(TableName="Plain", **spec)
        local.put_item(TableName="Plain", Item={"id": {"S": "before"}})  # no stream yet
        for client in (local, remote):  # a stream whose writes would ship as deletes
            client.create_table(TableName="Keys", StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}, **spec)
        remote.put_item(TableName="Keys", Item={"id": {"S": "kept"}})
        assert lab.adopt_tables() == ["Plain"]
        local.put_item(TableName="Keys", Item={"id": {"S": "kept"}, "more": {"S": "x"}})
        lab.wait_replicated()
        assert remote.get_item(TableName="Plain", Key={"id": {"S": "before"}})["Item"] == {"id": {"S": "before"}}
        assert remote.get_item(TableName="Keys", Key={"id": {"S": "kept"}})["Item"] == {"id": {"S": "kept"}}
        assert lab.adopt_tables() == []
