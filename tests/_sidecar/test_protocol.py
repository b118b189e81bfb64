import json
import zlib

import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from werkzeug.test import Client

from regionproxy._regions.wire import JsonRequest, RawAnswer, region_error
from regionproxy._sidecar.protocol import DynamoDBProtocol
from regionproxy._sidecar.signatures import ClientKeys
from regionproxy.errors import AllRegionsFailed, AmbiguousWriteError
from regionproxy.events import SidecarRequest
from tests._sidecar.conftest import HOST, NOW, signed_headers

BODY = b'{"TableName": "T", "Key": {"pk": {"S": "a"}}}'
KEYS = ClientKeys({"app": "s3cret"})


class StubSession:
    """Records each call; answers with ``answer(operation, request)``."""

    def __init__(self, answer=None):
        self.calls: list[tuple[str, JsonRequest]] = []
        self.answer = answer or (lambda operation, request: {"Item": {"pk": {"S": "a"}}})

    def execute(self, operation, params, values=None):
        self.calls.append((operation, params))
        return self.answer(operation, params)


def _app(session, keys=KEYS, **kwargs):
    events = []
    app = DynamoDBProtocol(session, keys, clock=lambda: NOW.timestamp(), listeners=[events.append], **kwargs)
    return Client(app), events


def _post(client, body=BODY, operation="GetItem", headers=None):
    headers = headers if headers is not None else signed_headers(body, operation)
    return client.post("/", data=body, headers=headers, base_url=f"http://{HOST}")


def test_a_signed_request_runs_through_the_session_with_its_body_as_it_came():
    session = StubSession()
    client, events = _app(session)
    response = _post(client)
    assert response.status_code == 200
    (operation, request), = session.calls
    assert operation == "GetItem" and request == json.loads(BODY) and request.wire_body() == BODY
    assert events == [SidecarRequest("GetItem", "T", 200, events[0].duration)]


def test_a_refused_signature_never_reaches_the_session():
    session = StubSession()
    client, events = _app(session)
    response = _post(client, headers=signed_headers(BODY, secret="wrong"))
    assert response.status_code == 400 and json.loads(response.get_data())["__type"].endswith("#InvalidSignatureException")
    assert session.calls == [] and events[0].status == 400


def test_the_region_answer_is_passed_on_byte_for_byte():
    raw = RawAnswer(200, (("Content-Type", "application/x-amz-json-1.0"), ("x-amz-crc32", "123"), ("Connection", "x")), b'{"Item" : {}}')

    def answer(operation, request):
        parsed = {"Item": {}, "ResponseMetadata": {}}
        request.record(parsed, raw)
        return parsed

    client, _ = _app(StubSession(answer))
    response = _post(client)
    assert response.get_data() == raw.body and response.headers["x-amz-crc32"] == "123"
    assert "x" not in response.headers.get("Connection", "")  # hop-by-hop headers are the sidecar's own


def test_an_answer_the_session_built_is_json_with_its_own_crc32_and_no_metadata():
    def answer(operation, request):  # a cache hit: not the very object a region gave
        return {"Item": {"pk": {"S": "a"}, "b": {"B": "AAE="}}, "ResponseMetadata": {"RequestId": "R1"}}

    client, _ = _app(StubSession(answer))
    response = _post(client)
    body = response.get_data()
    assert json.loads(body) == {"Item": {"pk": {"S": "a"}, "b": {"B": "AAE="}}}
    assert response.headers["x-amz-crc32"] == str(zlib.crc32(body)) and response.headers["x-amzn-RequestId"] == "R1"


def _raise(error):
    def answer(operation, request):
        raise error

    return answer


_REGION_ERROR = region_error(
    {"Error": {"Code": "ConditionalCheckFailedException", "Message": "no"}},
    "PutItem",
    RawAnswer(400, (("x-amzn-ErrorType", "ConditionalCheckFailedException"),), b'{"__type":"x#ConditionalCheckFailedException"}'),
)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        pytest.param(AmbiguousWriteError("eu-west-3", "PutItem", TimeoutError()), 400, "AmbiguousWriteException", id="ambiguous-not-retried"),
        pytest.param(AllRegionsFailed("GetItem", {"eu-west-3": TimeoutError()}), 503, "ServiceUnavailable", id="all-failed-retried"),
        pytest.param(_REGION_ERROR, 400, "ConditionalCheckFailedException", id="region-error-as-it-came"),
        pytest.param(
            ClientError({"Error": {"Code": "ValidationException", "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "GetItem"),
            400,
            "ValidationException",
            id="botocore-error-reshaped",
        ),
        pytest.param(NoCredentialsError(), 500, "InternalServerError", id="sidecar-own-failure"),
    ],
)
def test_session_errors_become_dynamodb_shaped_answers(error, status, code):
    client, _ = _app(StubSession(_raise(error)))
    response = _post(client)
    assert response.status_code == status
    assert json.loads(response.get_data())["__type"].rpartition("#")[2] == code


@pytest.mark.parametrize(
    ("body", "headers", "method"),
    [
        pytest.param(b"{", None, "POST", id="malformed-json"),
        pytest.param(b"null", None, "POST", id="json-null"),
        pytest.param(b"\x80", None, "POST", id="not-utf8"),
        pytest.param(b"{}", {"Content-Type": "application/x-amz-json-1.0"}, "POST", id="unsigned"),
        pytest.param(b"", None, "GET", id="get"),
        pytest.param(b"{}", {**signed_headers(b"{}"), "X-Amz-Target": "DynamoDB_20120810."}, "POST", id="target-changed"),
    ],
)
def test_bad_input_is_a_400_and_never_reaches_the_session(body, headers, method):
    session = StubSession()
    client, _ = _app(session)
    headers = headers if headers is not None else signed_headers(body)
    response = client.open("/", method=method, data=body, headers=headers, base_url=f"http://{HOST}")
    assert response.status_code == 400 and "__type" in json.loads(response.get_data())
    assert session.calls == []


def test_a_body_over_the_limit_is_refused_unread_and_the_connection_closed():
    session = StubSession()
    client, _ = _app(session, max_body=10)
    response = _post(client)
    assert response.status_code == 413 and response.headers["Connection"] == "close"
    assert session.calls == []


def test_without_client_keys_signatures_are_not_checked():
    session = StubSession()
    client, _ = _app(session, keys=ClientKeys({}))
    assert _post(client, headers={"X-Amz-Target": "DynamoDB_20120810.GetItem"}).status_code == 200


@pytest.mark.parametrize(
    ("operation", "body", "parsed"),
    [
        ("GetItem", BODY, True),
        ("Query", b'{"TableName": "T"}', True),
        ("BatchGetItem", b'{"RequestItems": {"T": {"Keys": [{"pk": {"S": "a"}}]}}}', True),
        ("PutItem", b'{"TableName": "T", "Item": {"pk": {"S": "a"}}}', False),
        ("Scan", b'{"TableName": "T"}', False),
        ("FrobnicateWidgets", b"{}", False),
    ],
)
def test_only_reads_the_cache_may_keep_have_their_answers_parsed(operation, body, parsed):
    session = StubSession()
    client, _ = _app(session)
    _post(client, body=body, operation=operation)
    assert session.calls[0][0] == operation and session.calls[0][1].parse is parsed


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        pytest.param("Query", b'{"TableName": ["T"]}', id="table-a-list"),
        pytest.param("GetItem", b'{"TableName": "T"}', id="key-missing"),
        pytest.param("GetItem", b'{"TableName": "T", "Key": "pk=a"}', id="key-a-string"),
        pytest.param("Scan", b'{"TableName": "T", "Limit": "ten"}', id="limit-a-string"),
    ],
)
def test_a_request_botocore_would_refuse_to_send_is_a_validation_error_never_reaching_the_session(operation, body):
    session = StubSession()
    client, _ = _app(session)
    response = _post(client, body=body, operation=operation)
    assert response.status_code == 400
    assert json.loads(response.get_data())["__type"].endswith("#ValidationException")
    assert session.calls == []


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        pytest.param("PutItem", b'{"TableName": "T", "Item": {"pk": {"S": 5}, "b": {"B": "AAE="}, "l": {"L": [{"N": "1"}]}}}', id="values-dynamodbs-to-judge"),
        pytest.param("FrobnicateWidgets", b'{"Anything": [1, 2]}', id="unknown-operation-unchecked"),
        pytest.param("RestoreTableToPointInTime", b'{"SourceTableName": "Items", "TargetTableName": "Restored", "RestoreDateTime": 1733486400.5}', id="timestamp-epoch"),
    ],
)
def test_a_request_in_dynamodbs_json_form_passes_the_model_check(operation, body):
    session = StubSession()
    client, _ = _app(session)
    assert _post(client, body=body, operation=operation).status_code == 200
    assert [call[0] for call in session.calls] == [operation]
