"""Real clients nobody here wrote, pointed at the sidecar over loopback,
while the local region fails mid-test (refused, then blackholed): boto3
(client, resource Table, paginators, batch writer, transactions, waiters),
the AWS CLI and the AWS SDK for JavaScript v3. Zero failed reads; every
acknowledged write applied, an ``ADD`` counter exactly once per write."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from boto3.dynamodb.conditions import Key

from tests.integration.sidecar_lab import KEY_ID, SECRET, Sidecar, running_sidecar
from tests.support import LOCAL, REMOTE, TABLE

JS_DIR = Path(__file__).parent / "sidecar_js"


@pytest.fixture(scope="module")
def sidecar(local_regions_shared):
    with running_sidecar(local_regions_shared) as running:
        yield running


@pytest.fixture
def fresh(sidecar: Sidecar):
    sidecar.heal()
    yield sidecar
    sidecar.heal()


def _remote_item(sidecar: Sidecar, pk: str, sk: str) -> dict | None:
    return sidecar.lab.client(REMOTE, direct=True).get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")


def _refuse_then_blackhole(sidecar: Sidecar) -> None:
    """The local region comes back from being refused, then hangs: its
    breaker is closed again so that live traffic meets the blackhole."""
    sidecar.lab.heal(LOCAL)
    sidecar.lab.wait_replicated(timeout=20)
    sidecar.session.restore(LOCAL)
    sidecar.lab.fault(LOCAL, "blackhole")


def test_boto3_client_resource_paginators_batches_transactions_and_waiters_through_a_local_outage(fresh: Sidecar):
    client, table = fresh.client(), fresh.resource().Table(TABLE)
    client.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    adds = 0

    def bump() -> None:
        nonlocal adds
        client.update_item(
            TableName=TABLE, Key={"pk": {"S": "boto3-counter"}, "sk": {"S": "0"}},
            UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}},
        )
        adds += 1

    def write(phase: str) -> None:
        bump()
        with table.batch_writer() as batch:
            for i in range(12):
                batch.put_item(Item={"pk": f"boto3-{phase}", "sk": f"{i:02d}", "n": i, "b": b"\x00\xff" + bytes([i])})
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": f"boto3-{phase}-tx"}, "sk": {"S": side}}}} for side in "ab"
            ]
        )
        bump()

    def read(phase: str, consistent: bool = False) -> None:
        for i in range(12):
            item = table.get_item(Key={"pk": f"boto3-{phase}", "sk": f"{i:02d}"}, ConsistentRead=consistent)["Item"]
            assert item["n"] == Decimal(i) and item["b"].value == b"\x00\xff" + bytes([i])
        pages = client.get_paginator("query").paginate(
            TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": f"boto3-{phase}"}},
            PaginationConfig={"PageSize": 5},
        )
        assert sum(len(page["Items"]) for page in pages) == 12
        assert table.query(KeyConditionExpression=Key("pk").eq(f"boto3-{phase}-tx"))["Count"] == 2
        got = client.transact_get_items(
            TransactItems=[{"Get": {"TableName": TABLE, "Key": {"pk": {"S": f"boto3-{phase}-tx"}, "sk": {"S": "a"}}}}]
        )
        assert got["Responses"][0]["Item"]["sk"] == {"S": "a"}
        scanned = sum(page["Count"] for page in client.get_paginator("scan").paginate(TableName=TABLE, PaginationConfig={"PageSize": 7}))
        assert scanned >= 14

    write("healthy")
    read("healthy")
    fresh.lab.wait_replicated(timeout=20)
    fresh.lab.fault(LOCAL, "refuse")
    read("healthy")
    write("refused")
    read("refused")
    _refuse_then_blackhole(fresh)
    # The first calls after the region hung are reads, and reach it (strongly
    # consistent, of keys no recent write made follow another region): they
    # fail over, and open its breaker. (A write that met the hang first
    # would be AmbiguousWriteException: the ADD is not idempotent.)
    read("healthy", consistent=True)
    read("refused")
    write("blackholed")
    read("blackholed")
    assert fresh.session.breaker_state(LOCAL) == "open"
    assert _remote_item(fresh, "boto3-counter", "0")["n"] == {"N": str(adds)}  # each ADD applied once
    for phase in ("healthy", "refused", "blackholed"):
        for i in range(12):
            assert _remote_item(fresh, f"boto3-{phase}", f"{i:02d}") is not None


def _aws() -> str:
    """The AWS CLI (PyPI's ``awscli``): in ``.venv-awscli`` beside the project (``make awscli``), else on PATH."""
    own = Path(__file__).resolve().parents[2] / ".venv-awscli" / "bin"
    found = shutil.which("aws", path=os.pathsep.join([str(own), os.environ.get("PATH", "")]))
    assert found, "the AWS CLI is missing: make awscli installs it into .venv-awscli"
    return found


def _cli(sidecar: Sidecar, tmp_path: Path, *args: str) -> dict:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_PAGER": "",
    }
    done = subprocess.run(
        [_aws(), "dynamodb", *args, "--endpoint-url", sidecar.url, "--output", "json"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else {}


def test_aws_cli_reads_and_writes_through_a_local_outage(fresh: Sidecar, tmp_path: Path):
    for i in range(3):
        fresh.client().put_item(TableName=TABLE, Item={"pk": {"S": "cli"}, "sk": {"S": str(i)}})
    fresh.lab.wait_replicated(timeout=20)
    fresh.lab.fault(LOCAL, "refuse")
    item = json.dumps({"pk": {"S": "cli"}, "sk": {"S": "3"}, "via": {"S": "aws-cli"}})
    _cli(fresh, tmp_path, "put-item", "--table-name", TABLE, "--item", item)
    # The CLI pages the query itself, two items a request.
    queried = _cli(
        fresh, tmp_path, "query", "--table-name", TABLE, "--key-condition-expression", "pk = :p",
        "--expression-attribute-values", json.dumps({":p": {"S": "cli"}}), "--page-size", "2",
    )
    assert sorted(item["sk"]["S"] for item in queried["Items"]) == ["0", "1", "2", "3"]
    _refuse_then_blackhole(fresh)
    got = _cli(fresh, tmp_path, "get-item", "--table-name", TABLE, "--key", json.dumps({"pk": {"S": "cli"}, "sk": {"S": "3"}}))
    assert got["Item"]["via"] == {"S": "aws-cli"}


@pytest.fixture(scope="module")
def node_modules():
    """``npm ci`` the AWS SDK for JavaScript v3 when it is not installed yet."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "the sidecar's JavaScript test needs Node 18+ and npm (apt-get install nodejs npm)"
    if not (JS_DIR / "node_modules" / "@aws-sdk" / "client-dynamodb").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, timeout=300, capture_output=True)
    return node


def test_aws_sdk_for_javascript_v3_through_a_local_outage(fresh: Sidecar, node_modules: str):
    phases = ["healthy", "refused", "blackholed"]
    child = subprocess.Popen(
        [node_modules, str(JS_DIR / "client.mjs"), fresh.url, KEY_ID, SECRET, TABLE, *phases],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen = []
    try:
        for phase in phases:
            line = child.stdout.readline()
            assert line, child.stderr.read()
            seen.append(json.loads(line))
            if phase == "healthy":
                fresh.lab.wait_replicated(timeout=20)
                fresh.lab.fault(LOCAL, "refuse")
            elif phase == "refused":
                _refuse_then_blackhole(fresh)
            child.stdin.write("go\n")
            child.stdin.flush()
        assert child.wait(timeout=60) == 0, child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    for phase in seen:
        assert phase["failedReads"] == 0 and phase["failedWrites"] == 0, phase["errors"]
        assert phase["reads"] > 0 and phase["writes"] == 8, phase
    assert _remote_item(fresh, "js-counter", "0")["n"] == {"N": "3"}  # one ADD per phase, each applied once
    assert fresh.session.breaker_state(LOCAL) == "open"
