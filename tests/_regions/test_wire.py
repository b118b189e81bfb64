import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ChecksumError, ClientError, EndpointConnectionError
from botocore.parsers import ResponseParserError

from regionproxy._dynamodb.verdicts import classify
from regionproxy._regions.wire import JsonRequest, WireSender, raw_error
from tests.support import closed_port_url


class Region:
    """A stand-in region on loopback: records each request, answers ``answer``."""

    def __init__(self):
        self.seen: list[tuple[dict, bytes]] = []
        self.answer = (200, {}, b"{}")
        region = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                region.seen.append((dict(self.headers.items()), body))
                status, headers, payload = region.answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def region():
    region = Region()
    yield region
    region.close()


def _sender(url: str) -> WireSender:
    return WireSender("eu-west-3", url, Config(connect_timeout=1, read_timeout=2), Credentials("SIDECAR", "sidecar-secret"))


BODY = b'{ "TableName" :"T","Key":{"pk":{"B":"AAE="}}}'  # spacing of the client's own


def test_the_clients_body_goes_out_as_it_came_signed_with_the_sidecars_own_key_for_the_region(region):
    request = JsonRequest(json.loads(BODY), BODY)
    _sender(region.url).send("GetItem", request)
    (headers, body), = region.seen
    assert body == BODY
    assert headers["X-Amz-Target"] == "DynamoDB_20120810.GetItem"
    assert "Credential=SIDECAR/" in headers["Authorization"] and "/eu-west-3/dynamodb/aws4_request" in headers["Authorization"]


def test_a_request_the_session_derives_stays_json_and_is_sent_as_its_own_json(region):
    request = JsonRequest(json.loads(BODY), BODY)
    derived = type(request)({**request, "ConsistentRead": False})  # as the cache derives a BatchGetItem
    assert type(derived) is JsonRequest and derived.body is None
    _sender(region.url).send("GetItem", derived)
    assert json.loads(region.seen[0][1]) == {**json.loads(BODY), "ConsistentRead": False}  # binary still base64 once


def test_the_answer_is_parsed_and_its_bytes_kept_for_the_very_object_returned(region):
    payload = b'{"Item": {"pk": {"B": "AAE="}}}'
    region.answer = (200, {"x-amz-crc32": str(zlib.crc32(payload)), "x-amzn-RequestId": "R"}, payload)
    request = JsonRequest(json.loads(BODY), BODY)
    answer = _sender(region.url).send("GetItem", request)
    assert answer["Item"] == {"pk": {"B": "AAE="}} and answer["ResponseMetadata"]["RequestId"] == "R"
    assert request.raw(answer).body == payload
    assert request.raw(dict(answer)) is None  # a copy is not the region's bytes


def test_an_answer_not_parsed_is_metadata_only_with_its_bytes_kept(region):
    region.answer = (200, {}, b'{"Items": []}')
    request = JsonRequest({}, b"{}", parse=False)
    answer = _sender(region.url).send("Scan", request)
    assert list(answer) == ["ResponseMetadata"] and request.raw(answer).body == b'{"Items": []}'


def test_an_error_answer_is_botocores_client_error_with_the_answer_as_it_came(region):
    payload = b'{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"no"}'
    region.answer = (400, {"x-amzn-ErrorType": "ConditionalCheckFailedException"}, payload)
    with pytest.raises(ClientError) as raised:
        _sender(region.url).send("PutItem", JsonRequest({}, b"{}"))
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert raw_error(raised.value).body == payload and raw_error(raised.value).status == 400
    assert not classify(raised.value).fault


def test_a_server_error_is_a_fault_of_the_region(region):
    region.answer = (500, {}, b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"x"}')
    with pytest.raises(ClientError) as raised:
        _sender(region.url).send("PutItem", JsonRequest({}, b"{}"))
    verdict = classify(raised.value)
    assert verdict.fault and verdict.maybe_applied


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        pytest.param((200, {}, b"<html>proxy error</html>"), ResponseParserError, id="not-json"),
        pytest.param((200, {}, b"[]"), ResponseParserError, id="not-an-object"),
        pytest.param((200, {"x-amz-crc32": "1"}, b"{}"), ChecksumError, id="crc32-mismatch"),
        pytest.param((502, {}, b"<html>bad gateway</html>"), ClientError, id="html-error"),  # botocore reads it as "502"
    ],
)
def test_a_corrupt_answer_is_a_fault_that_may_have_been_applied_never_not_sent(region, answer, kind):
    # A ValueError would read as "raised before sending": a write would then
    # be reported as not applied, and failed over.
    region.answer = answer
    with pytest.raises(kind) as raised:
        _sender(region.url).send("PutItem", JsonRequest({}, b"{}"))
    verdict = classify(raised.value)
    assert verdict.sent and verdict.fault and verdict.maybe_applied


def test_a_crc32_of_non_ascii_digits_is_ignored_as_any_non_number_never_a_value_error(region):
    # "\xb2" (superscript two) passes str.isdigit(), int() refuses it: a
    # ValueError after sending would read as "not sent" (failed over, applied twice).
    region.answer = (200, {"x-amz-crc32": "\xb2"}, b"{}")
    assert _sender(region.url).send("PutItem", JsonRequest({}, b"{}"))["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_refused_connection_was_not_applied():
    with pytest.raises(EndpointConnectionError) as raised:
        _sender(closed_port_url()).send("PutItem", JsonRequest({}, b"{}"))
    verdict = classify(raised.value)
    assert verdict.fault and not verdict.maybe_applied


def test_the_light_signer_signs_exactly_as_botocore_signs():
    import datetime
    from unittest import mock

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    from regionproxy._regions.wire import LightRequest, SigV4

    credentials = Credentials("AKID", "secret", "session-token")
    headers = {"X-Amz-Target": "DynamoDB_20120810.GetItem", "Content-Type": "application/x-amz-json-1.0", "User-Agent": "x"}
    when = datetime.datetime(2026, 12, 6, 12, 0, 0)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        theirs = AWSRequest(method="POST", url="http://127.0.0.1:4567/", data=BODY, headers=dict(headers))
        SigV4Auth(credentials, "dynamodb", "eu-west-3").add_auth(theirs)
        ours = LightRequest("POST", "http://127.0.0.1:4567/", dict(headers), BODY)
        SigV4(credentials, "dynamodb", "eu-west-3").add_auth(ours)
    assert ours.headers["Authorization"] == theirs.headers["Authorization"]
    assert ours.headers["X-Amz-Security-Token"] == "session-token"


# -- the signature for POST / is botocore's ---------------------------------------------

_HEADER_SETS = [
    {"X-Amz-Target": "DynamoDB_20120810.GetItem", "Content-Type": "application/x-amz-json-1.0"},
    {"X-Amz-Target": "DynamoDB_20120810.PutItem", "Content-Type": "application/x-amz-json-1.0", "User-Agent": "Boto3/1 md/x"},
    {"x-amz-target": "DynamoDB_20120810.Query", "CONTENT-TYPE": "  application/x-amz-json-1.0  ", "X-Custom": "a   b\tc"},
    {"X-Amz-Target": "DynamoDB_20120810.Scan", "Expect": "100-continue", "X-Amzn-Trace-Id": "Root=1", "Content-Length": "12"},
    {"X-Amz-Target": "DynamoDB_20120810.BatchGetItem", "amz-sdk-invocation-id": "6c0c", "amz-sdk-request": "attempt=1; max=3"},
]


@pytest.mark.parametrize("headers", _HEADER_SETS, ids=[str(i) for i in range(len(_HEADER_SETS))])
@pytest.mark.parametrize("token", [None, "session/token+=="], ids=["keys", "session-token"])
@pytest.mark.parametrize("host", ["127.0.0.1:8000", "dynamodb.eu-west-3.amazonaws.com"])
def test_the_signature_of_a_post_to_root_is_botocores_own(monkeypatch, headers, token, host):
    import datetime

    from botocore import auth as botocore_auth
    from botocore.awsrequest import AWSRequest

    from regionproxy._regions.wire import sign_root

    when = datetime.datetime(2026, 12, 6, 12, 34, 56)
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda: when)
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    body = b'{"TableName": "T"}'
    expected = AWSRequest(method="POST", url=f"https://{host}/", data=body, headers={"Host": host, **headers})
    botocore_auth.SigV4Auth(credentials, "dynamodb", "eu-west-3").add_auth(expected)
    ours = {"Host": host, **headers}
    sign_root(credentials, "eu-west-3", "dynamodb", ours, body, when.strftime("%Y%m%dT%H%M%SZ"))
    assert ours["Authorization"] == expected.headers["Authorization"]
    assert ours.get("X-Amz-Security-Token") == expected.headers.get("X-Amz-Security-Token")


def test_the_pass_through_goes_through_the_proxy_the_regions_client_uses(monkeypatch, region):
    """``HTTP_PROXY`` (botocore reads it for its clients): the sidecar's sends
    go through it too, not around it. The stand-in region plays the proxy:
    it sees the request for the region's URL, in absolute form."""
    import regionproxy as rp
    from tests.support import closed_port_url

    endpoint = closed_port_url()  # reachable only through the proxy
    monkeypatch.setenv("HTTP_PROXY", region.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "SIDECAR")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sidecar-secret")
    region.answer = (200, {}, b'{"Item": {"pk": {"S": "via-proxy"}}}')
    session = rp.RegionSession(["eu-west-3"], endpoints={"eu-west-3": endpoint})
    try:
        answer = session.execute("GetItem", JsonRequest(json.loads(BODY), BODY))
    finally:
        session.close()
    assert answer["Item"] == {"pk": {"S": "via-proxy"}}
    assert region.seen and region.seen[-1][1] == BODY


@pytest.mark.parametrize(
    ("proxies", "sends_through"),
    [
        pytest.param({}, "transport", id="lean-transport"),
        pytest.param({"https": "http://127.0.0.1:9"}, "urllib3", id="urllib3-session"),  # a proxy for another scheme: botocore's session
    ],
)
def test_warming_opens_a_connection_in_the_pool_the_sender_sends_through(proxies, sends_through):
    from tests._regions.test_transport import OK, Stub

    stub = Stub(lambda connection, _: connection.sendall(OK) or True)
    sender = WireSender("eu-west-3", stub.url, Config(connect_timeout=1, read_timeout=2, proxies=proxies), Credentials("SIDECAR", "sidecar-secret"))
    try:
        assert (sender._lean is not None) == (sends_through == "transport")
        assert sender.warm() == "opened"
        assert sender.warm() == "kept"
        sender.send("GetItem", JsonRequest(json.loads(BODY), BODY))
        sender.send("GetItem", JsonRequest(json.loads(BODY), BODY))
        assert stub.connections == 1, "the sends went out on the warmed connection"
    finally:
        sender.close()
        stub.close()


def test_a_sender_through_a_proxy_is_not_warmed():
    from tests._regions.test_transport import OK, Stub

    stub = Stub(lambda connection, _: connection.sendall(OK) or True)
    sender = WireSender(
        "eu-west-3", closed_port_url(), Config(connect_timeout=1, read_timeout=2, proxies={"http": stub.url}), Credentials("SIDECAR", "sidecar-secret")
    )
    try:
        assert sender.warm() == "skipped"  # urllib3 opens the tunnel itself, per request
        assert stub.connections == 0
    finally:
        sender.close()
        stub.close()
