"""Who may call the sidecar, and what bad input gets: over loopback, against
the lab. Every refused request gets DynamoDB's error shape (400, never a
500), and the lab's request log shows that none of it reached a region."""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import socket

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.integration.sidecar_lab import FRONTS, KEY_ID, SECRET, Sidecar, running_sidecar
from tests.support import LOCAL, REMOTE, TABLE

TARGET = "DynamoDB_20120810."
SOCKET_TIMEOUT = 1.0  # the sidecar's header and body deadlines (werkzeug: per read) in this module (slow clients)


@pytest.fixture(scope="module", params=FRONTS)
def sidecar(local_regions_shared, request):
    """The sidecar on regionproxy serve's gunicorn worker front, and on --dev's werkzeug."""
    with running_sidecar(local_regions_shared, socket_timeout=SOCKET_TIMEOUT, front=request.param) as running:
        yield running


def _put_body(pk: str) -> bytes:
    return json.dumps({"TableName": TABLE, "Item": {"pk": {"S": pk}, "sk": {"S": "0"}}}).encode()


def _signed(
    sidecar: Sidecar,
    body: bytes,
    operation: str | None = "PutItem",
    *,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    when: datetime.datetime | None = None,
    state_hash: bool = False,
) -> dict[str, str]:
    """Headers of a request signed as an SDK signs it (botocore's SigV4), at
    ``when``; with ``state_hash``, the body's SHA-256 in a signed
    ``X-Amz-Content-Sha256`` header (as S3 clients send it)."""
    headers = {"Content-Type": "application/x-amz-json-1.0"}
    if state_hash:
        headers["X-Amz-Content-Sha256"] = hashlib.sha256(body).hexdigest()
    if operation is not None:
        headers["X-Amz-Target"] = TARGET + operation
    request = AWSRequest(method="POST", url=sidecar.url + "/", data=body, headers=headers)
    auth = SigV4Auth(Credentials(key_id, secret), "dynamodb", "us-east-1")
    request.context["timestamp"] = (when or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%dT%H%M%SZ")
    auth._modify_request_before_signing(request)  # the date header, as add_auth sets it
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    auth._inject_signature_to_request(request, signature)
    return dict(request.headers.items())


def _post(sidecar: Sidecar, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
    host, port = sidecar.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def _puts_forwarded(sidecar: Sidecar) -> int:
    """PutItem requests the lab's regions have seen (the health probes read)."""
    return sum(1 for region in (LOCAL, REMOTE) for request in sidecar.lab.requests(region) if request.operation == "PutItem")


def _stored(sidecar: Sidecar, pk: str) -> bool:
    key = {"pk": {"S": pk}, "sk": {"S": "0"}}
    return any("Item" in sidecar.lab.client(region, direct=True).get_item(TableName=TABLE, Key=key) for region in (LOCAL, REMOTE))


def _changed_body(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    return headers, body.replace(b'"S": "refused', b'"S": "altered')  # same length: only the bytes differ


def _changed_target(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    return {**headers, "X-Amz-Target": TARGET + "DeleteItem"}, body


def _tampered_signature(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    authorization = headers["Authorization"]
    last = "0" if authorization[-1] != "0" else "1"
    return {**headers, "Authorization": authorization[:-1] + last}, body


def _no_signature_part(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    return {**headers, "Authorization": headers["Authorization"].rpartition(", Signature=")[0]}, body


def _no_authorization(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    return {name: value for name, value in headers.items() if name != "Authorization"}, body




def _unchanged(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    return headers, body


@pytest.mark.parametrize(
    ("signing", "change", "code", "message"),
    [
        pytest.param({"secret": "not-the-secret"}, _unchanged, "InvalidSignatureException", "does not match", id="wrong-secret"),
        pytest.param({"key_id": "stranger"}, _unchanged, "UnrecognizedClientException", "security token", id="unknown-key"),
        pytest.param(
            {"when": "10 minutes ago"}, _unchanged, "InvalidSignatureException", "Signature expired", id="date-10-minutes-old"
        ),
        pytest.param(
            {"when": "10 minutes ahead"}, _unchanged, "InvalidSignatureException", "not yet current", id="date-10-minutes-ahead"
        ),
        pytest.param({}, _no_authorization, "MissingAuthenticationTokenException", "missing", id="unsigned"),
        pytest.param({}, _no_signature_part, "InvalidSignatureException", "", id="signature-missing"),
        pytest.param({}, _tampered_signature, "InvalidSignatureException", "does not match", id="signature-tampered"),
        pytest.param({}, _changed_body, "InvalidSignatureException", "does not match", id="signed-body-changed-in-transit"),
        pytest.param({}, _changed_target, "InvalidSignatureException", "does not match", id="signed-target-changed-in-transit"),
        pytest.param(
            {"state_hash": True}, _changed_body, "InvalidSignatureException", "does not match", id="signed-body-hash-body-changed"
        ),
    ],
)
def test_a_request_not_signed_with_a_client_key_is_refused_and_reaches_no_region(sidecar: Sidecar, signing, change, code, message):
    pk = f"refused-{code}-{len(message)}"
    body = _put_body(pk)
    signing = dict(signing)  # the parameter's own dict serves every front
    when = signing.pop("when", None)
    if when is not None:
        minutes = -10 if "ago" in when else 10
        signing["when"] = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)
    headers, sent = change(_signed(sidecar, body, **signing), body)
    before = _puts_forwarded(sidecar)
    status, answer = _post(sidecar, headers, sent)
    assert status == 400
    assert answer["__type"].rpartition("#")[2] == code
    assert message in answer["message"]
    assert _puts_forwarded(sidecar) == before
    assert not _stored(sidecar, pk) and not _stored(sidecar, pk.replace("refused", "altered"))


def test_a_request_signed_with_a_client_key_is_served(sidecar: Sidecar):
    body = _put_body("signed-ok")
    before = _puts_forwarded(sidecar)
    status, answer = _post(sidecar, _signed(sidecar, body), body)
    assert (status, answer) == (200, {})
    assert _puts_forwarded(sidecar) == before + 1 and _stored(sidecar, "signed-ok")


@pytest.mark.parametrize(
    ("body", "target", "code"),
    [
        pytest.param(b"{not json", "PutItem", "SerializationException", id="malformed-json"),
        pytest.param(b"[1, 2]", "PutItem", "SerializationException", id="json-not-an-object"),
        pytest.param(b"\xff\xfe\x00garbage", "PutItem", "SerializationException", id="not-utf8"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "PutItem", "SerializationException", id="nested-100000-deep"),
        pytest.param(b'{"TableName": "Items", "TableName": "Other"}', "PutItem", "SerializationException", id="member-twice"),
        pytest.param(
            b'{"TableName": "Items", "Item": {"pk": {"S": "a"}, "pk": {"S": "b"}, "sk": {"S": "0"}}}',
            "PutItem", "SerializationException", id="member-twice-nested",
        ),
        pytest.param(b"{}", "Put Item; rm -rf", "UnknownOperationException", id="target-not-an-operation-name"),
        pytest.param(b"{}", "", "UnknownOperationException", id="target-empty"),
        # Types the session's readers would choke on (they crashed it, 500, before the model check).
        pytest.param(b'{"TableName": []}', "Query", "ValidationException", id="query-table-a-list"),
        pytest.param(b'{"TableName": 5}', "Scan", "ValidationException", id="scan-table-a-number"),
        pytest.param(b'{"TransactItems": null}', "TransactWriteItems", "ValidationException", id="transact-items-null"),
        pytest.param(
            b'{"TransactItems": [{"Get": {"TableName": {}, "Key": {}}}]}', "TransactGetItems", "ValidationException",
            id="transact-get-table-a-map",
        ),
        pytest.param(b'{"TableName": "Items", "Key": [1]}', "GetItem", "ValidationException", id="key-a-list"),
        # The target must be signed (else it could be swapped in transit): no target, no valid signature.
        pytest.param(b"{}", None, "InvalidSignatureException", id="no-target"),
    ],
)
def test_bad_input_is_a_dynamodb_shaped_400_and_reaches_no_region(sidecar: Sidecar, body: bytes, target: str | None, code: str):
    before = _puts_forwarded(sidecar)
    status, answer = _post(sidecar, _signed(sidecar, body, target), body)
    assert status == 400
    assert answer["__type"].rpartition("#")[2] == code
    assert _puts_forwarded(sidecar) == before


def test_an_operation_the_session_does_not_know_goes_to_the_local_region_only(sidecar: Sidecar):
    body = b"{}"
    remote_before = len(sidecar.lab.requests(REMOTE))
    _post(sidecar, _signed(sidecar, body, "DescribeEndpoints"), body)  # whatever the region answers is passed on
    assert any(request.operation == "DescribeEndpoints" for request in sidecar.lab.requests(LOCAL))
    assert not any(request.operation == "DescribeEndpoints" for request in sidecar.lab.requests(REMOTE)[remote_before:])


def _raw_exchange(sidecar: Sidecar, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection, then read until the sidecar closes it."""
    host, port = sidecar.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(65536):  # ends when the sidecar closes: bounded by its timeouts
            received += chunk
        return received


def test_a_body_over_16_mb_is_refused_unread_and_the_connection_closed(sidecar: Sidecar):
    head = (
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n"
        f"X-Amz-Target: {TARGET}PutItem\r\nContent-Length: {16 * 1024 * 1024 + 1}\r\n\r\n"
    ).encode()
    before = _puts_forwarded(sidecar)
    answer = _raw_exchange(sidecar, head + b"{")  # one byte of the 16 MB announced
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line
    assert b"RequestEntityTooLarge" in rest
    assert _puts_forwarded(sidecar) == before


def test_a_client_that_stops_sending_its_body_is_cut_off_and_the_sidecar_keeps_serving(sidecar: Sidecar):
    body = _put_body("slow")
    headers = _signed(sidecar, body)
    head = "POST / HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head += f"Host: {sidecar.url.removeprefix('http://')}\r\nContent-Length: {len(body)}\r\n\r\n"
    answer = _raw_exchange(sidecar, head.encode() + body[:10])  # then nothing: the client stalls
    assert answer == b"" or b" 400 " in answer.partition(b"\r\n")[0]
    assert not _stored(sidecar, "slow")
    ok = _put_body("after-slow")
    assert _post(sidecar, _signed(sidecar, ok), ok)[0] == 200


def test_a_client_that_stops_sending_its_headers_is_cut_off(sidecar: Sidecar):
    # The exchange ends (the sidecar closes the connection after its read
    # timeout) long before this client's own 30 s timeout would fail the test.
    assert _raw_exchange(sidecar, b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Ta") == b""
