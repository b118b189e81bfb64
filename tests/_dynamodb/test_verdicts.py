"""Error classification: every botocore error and DynamoDB code that matters.

The rule (see :mod:`regionproxy._dynamodb.verdicts`): only errors known to be raised
before a request leaves the process are "not sent"; anything else is a
fault of the region, and a write that met it may have been applied.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import uuid
import zlib

import boto3
import botocore.session
import pytest
import urllib3.exceptions
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import (
    ChecksumError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    EndpointResolutionError,
    HTTPClientError,
    InvalidConfigError,
    InvalidProxiesConfigError,
    MetadataRetrievalError,
    MissingParametersError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ProxyConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
    SSOTokenLoadError,
    TokenRetrievalError,
    UnknownParameterError,
    UnknownServiceError,
    UnknownSignatureVersionError,
)
from botocore.parsers import ResponseParserError

from regionproxy._dynamodb.verdicts import CREDENTIAL_CODES, classify
from regionproxy.errors import RegionUnavailable

URL = "http://127.0.0.1:1"
KEY = {"pk": {"S": "a"}}


def client_error(code, status):
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(
    ("error", "fault", "maybe_applied"),
    [
        pytest.param(EndpointConnectionError(endpoint_url=URL), True, False, id="refused"),
        pytest.param(ConnectTimeoutError(endpoint_url=URL), True, False, id="connect-timeout"),
        pytest.param(ReadTimeoutError(endpoint_url=URL), True, True, id="read-timeout"),
        pytest.param(ConnectionClosedError(endpoint_url=URL), True, True, id="connection-closed"),
        pytest.param(RegionUnavailable("r", "open"), True, False, id="breaker-open"),
        pytest.param(client_error("InternalServerError", 500), True, True, id="500"),
        pytest.param(client_error("500", 500), True, True, id="500-not-json"),
        pytest.param(client_error("ServiceUnavailable", 503), True, False, id="503"),
        pytest.param(client_error("ThrottlingException", 400), True, False, id="throttling"),
        pytest.param(client_error("ProvisionedThroughputExceededException", 400), True, False, id="provisioned"),
        pytest.param(client_error("RequestLimitExceeded", 400), True, False, id="request-limit"),
        pytest.param(client_error("ConditionalCheckFailedException", 400), False, True, id="conditional-check"),
        pytest.param(client_error("ValidationException", 400), False, True, id="validation"),
        pytest.param(client_error("ResourceNotFoundException", 400), False, True, id="no-table"),
        pytest.param(client_error("TransactionCanceledException", 400), False, True, id="transaction-cancelled"),
        pytest.param(client_error("AccessDeniedException", 400), False, True, id="access-denied"),
    ],
)
def test_classify(error, fault, maybe_applied):
    verdict = classify(error)
    assert verdict.fault is fault
    assert verdict.sent
    if fault:
        assert verdict.maybe_applied is maybe_applied


def test_throttling_can_be_the_callers_to_handle():
    assert classify(client_error("ThrottlingException", 400), throttling_is_fault=False).fault is False


def test_classification_ignores_error_factory_classes():
    one = boto3.session.Session(region_name="eu-west-3").client("dynamodb")
    two = boto3.session.Session(region_name="eu-west-3").client("dynamodb")
    response = {"Error": {"Code": "ConditionalCheckFailedException"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    first = one.exceptions.ConditionalCheckFailedException(response, "PutItem")
    second = two.exceptions.ConditionalCheckFailedException(response, "PutItem")
    assert type(first) is not type(second)
    assert classify(first) == classify(second)


# -- errors known to be raised before a request leaves the process


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ParamValidationError(report="bad"), id="param-validation"),
        pytest.param(UnknownParameterError(name="x", operation="GetItem", choices="Key"), id="unknown-parameter"),
        pytest.param(MissingParametersError(object_name="GetItem", missing="Key"), id="missing-parameters"),
        pytest.param(NoCredentialsError(), id="no-credentials"),
        pytest.param(PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), id="partial-credentials"),
        pytest.param(CredentialRetrievalError(provider="sts", error_msg="denied"), id="credential-retrieval"),
        pytest.param(MetadataRetrievalError(error_msg="no metadata"), id="instance-metadata"),
        pytest.param(TokenRetrievalError(provider="sso", error_msg="expired"), id="token-retrieval"),
        pytest.param(SSOTokenLoadError(error_msg="no token"), id="sso-token"),
        pytest.param(UnknownSignatureVersionError(signature_version="v9"), id="signature-version"),
        pytest.param(NoRegionError(), id="no-region"),
        pytest.param(EndpointResolutionError(msg="no endpoint"), id="endpoint-resolution"),
        pytest.param(UnknownServiceError(service_name="dynamo", known_service_names="dynamodb"), id="unknown-service"),
        pytest.param(ProfileNotFound(profile="prod"), id="profile-not-found"),
        pytest.param(InvalidConfigError(error_msg="bad config"), id="invalid-config"),
        pytest.param(
            HTTPClientError(error=InvalidProxiesConfigError(error="bad proxy ca bundle")), id="proxy-setting-in-the-send"
        ),
        pytest.param(TypeError("bad argument"), id="type-error"),
        pytest.param(ValueError("bad value"), id="value-error"),
    ],
)
def test_errors_known_to_be_raised_before_sending_are_not_sent_and_not_faults(error):
    verdict = classify(error)
    assert (verdict.sent, verdict.fault, verdict.maybe_applied) == (False, False, False)


def _client():
    """A client like the session's (legacy retries, one attempt)."""
    return boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s").client(
        "dynamodb",
        region_name="eu-west-3",
        endpoint_url=URL,
        config=Config(retries={"mode": "legacy", "total_max_attempts": 1}),
    )


def _answered_with(crc32_header, body=b"{}"):
    """A client whose requests never leave the process: a ``before-send``
    handler (botocore's own hook for that) answers each with ``body``."""

    class Raw:
        def stream(self, **_):
            yield body

    client = _client()
    client.meta.events.register(
        "before-send",
        lambda request, **_: AWSResponse(request.url, 200, {"x-amz-crc32": crc32_header}, Raw()),
    )
    return client


def test_type_error_of_the_arguments_is_not_sent():
    with pytest.raises(TypeError) as caught:
        _client().get_item("positional")
    assert classify(caught.value).sent is False


@pytest.mark.parametrize(
    ("crc32_header", "body"),
    [
        # A header botocore cannot even parse: int("garbage") in its CRC32 check.
        pytest.param("garbage", b"{}", id="checksum-header-not-a-number"),
        # A body the parser cannot decode: UnicodeDecodeError, a ValueError.
        pytest.param(str(zlib.crc32(b"\xff\xfe{")), b"\xff\xfe{", id="body-not-utf8"),
    ],
)
def test_value_error_raised_while_reading_the_answer_is_a_fault_maybe_applied(crc32_header, body):
    with pytest.raises(ValueError) as caught:
        _answered_with(crc32_header, body).put_item(TableName="t", Item=KEY)
    verdict = classify(caught.value)
    assert (verdict.sent, verdict.fault, verdict.maybe_applied) == (True, True, True)


def test_checksum_error_is_a_fault_maybe_applied_and_retried_in_region():
    with pytest.raises(ChecksumError) as caught:
        _answered_with("12345").put_item(TableName="t", Item=KEY)
    verdict = classify(caught.value)
    assert (verdict.fault, verdict.maybe_applied, verdict.retry_here, verdict.poison_suspect) == (True, True, True, False)
    assert verdict.reason == "checksum"


# -- anything else is a fault of the region, maybe applied


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(RuntimeError("?"), id="runtime-error"),
        pytest.param(KeyError("Item"), id="key-error"),
        pytest.param(ResponseParserError("not json"), id="response-parser"),
        pytest.param(ConnectionResetError(104, "reset"), id="os-error-never-wrapped"),
    ],
)
def test_unknown_error_is_a_fault_maybe_applied_judged_like_a_5xx(error):
    verdict = classify(error)
    assert (verdict.sent, verdict.fault, verdict.maybe_applied, verdict.poison_suspect) == (True, True, True, True)
    assert verdict.retry_here is False  # boto3 does not retry what it does not know


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(HTTPClientError(error="?"), "http_client_error", id="http-client-error"),
        pytest.param(ResponseStreamingError(error="?"), "http_client_error", id="response-streaming"),
        pytest.param(SSLError(endpoint_url=URL, error="bad record mac"), "tls_error", id="tls-after-handshake"),
    ],
)
def test_transport_error_once_connected_is_a_fault_maybe_applied(error, reason):
    verdict = classify(error)
    assert (verdict.fault, verdict.maybe_applied, verdict.reason) == (True, True, reason)


def test_unreachable_proxy_is_a_fault_not_applied():
    verdict = classify(ProxyConnectionError(proxy_url="http://proxy:3128", error="refused"))
    assert (verdict.fault, verdict.maybe_applied) == (True, False)


# -- a TLS handshake failure happened before the request was written


PEERS = {
    "not-tls": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    "closes": b"",
    "silent": None,
}


def _handshake_error(peer: str) -> BaseException:
    """What ``ssl`` raises in ``do_handshake`` against a peer that answers
    the ClientHello in plain HTTP, closes, or says nothing (a socket pair:
    no network; only the silent peer's handshake is timed)."""
    ours, theirs = socket.socketpair()
    try:
        sends = PEERS[peer]
        if sends is not None:
            theirs.sendall(sends)
            theirs.shutdown(socket.SHUT_WR)
        ours.settimeout(0.05 if sends is None else 5)
        try:
            ssl.create_default_context().wrap_socket(ours, server_hostname="127.0.0.1")
        except OSError as error:  # ssl.SSLError, TimeoutError
            return error
        raise AssertionError("the handshake succeeded")
    finally:
        ours.close()
        theirs.close()


def _wrapped(cause: BaseException, wrap, botocore_class) -> BaseException:
    """``cause`` wrapped the way urllib3 and botocore wrap it, each wrapper
    raised while handling the one below: the chain the classifier meets."""
    try:
        try:
            raise cause
        except BaseException as low:
            raise wrap(low)  # noqa: B904 - urllib3 raises it so
    except BaseException as middle:
        try:
            raise botocore_class(endpoint_url=URL, error=middle)  # noqa: B904 - botocore raises it so
        except BaseException as error:
            return error


@pytest.mark.parametrize(
    ("peer", "wrap", "botocore_class"),
    [
        pytest.param("not-tls", urllib3.exceptions.SSLError, SSLError, id="ssl-error-not-tls"),
        pytest.param("closes", urllib3.exceptions.SSLError, SSLError, id="ssl-error-closed"),
        pytest.param(
            "closes",
            lambda e: urllib3.exceptions.ProtocolError("Connection aborted.", e),
            ConnectionClosedError,
            id="connection-closed-during-handshake",
        ),
        pytest.param(
            "silent",
            lambda e: urllib3.exceptions.ReadTimeoutError(None, URL, "Read timed out."),
            ReadTimeoutError,
            id="read-timeout-during-handshake",
        ),
    ],
)
def test_tls_handshake_failure_is_a_fault_not_applied_whatever_botocore_calls_it(peer, wrap, botocore_class):
    error = _wrapped(_handshake_error(peer), wrap, botocore_class)
    assert isinstance(error, botocore_class)
    verdict = classify(error)
    assert (verdict.fault, verdict.maybe_applied, verdict.retry_here, verdict.reason) == (True, False, False, "tls_handshake")


def test_refused_certificate_is_a_handshake_failure():
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get local issuer certificate")
    verdict = classify(SSLError(endpoint_url=URL, error=urllib3.exceptions.SSLError(cause)))
    assert (verdict.maybe_applied, verdict.reason) == (False, "tls_handshake")


def test_tls_error_on_an_open_connection_may_have_been_applied():
    # The same SSLError class, raised by a read after the handshake.
    def read_after_handshake():
        raise ssl.SSLError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC]")

    try:
        read_after_handshake()
    except ssl.SSLError as cause:
        error = _wrapped(cause, urllib3.exceptions.SSLError, SSLError)
    verdict = classify(error)
    assert (verdict.maybe_applied, verdict.reason, verdict.retry_here) == (True, "tls_error", True)


# -- the answers that say this process cannot sign requests


@pytest.mark.parametrize(
    "code",
    [
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "ExpiredToken",
        "MissingAuthenticationToken",
        "IncompleteSignature",
        "InvalidClientTokenId",
    ],
)
def test_each_credential_rejection_code_is_known_and_the_callers(code):
    assert code in CREDENTIAL_CODES
    verdict = classify(client_error(code, 400 if code != "MissingAuthenticationToken" else 403))
    assert (verdict.fault, verdict.sent) == (False, True)


# -- where an error was raised decides, not its class (review 1, defects 1 and 2)
#
# Real botocore clients, so that each error carries the traceback botocore
# gives it. Nothing leaves the machine: requests are answered in-process by
# ``before-send`` handlers, or meet a closed or silent loopback port.


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_):
        yield self.body


def _answer(status: int, body: bytes, headers=None):
    """A ``before-send`` handler answering every request in-process."""
    return lambda request, **_: AWSResponse(request.url, status, headers or {}, _Raw(body))


STS_ERROR = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    "<Code>{}</Code><Message>m</Message></Error><RequestId>1</RequestId></ErrorResponse>"
)


class _RoleProvider(CredentialProvider):
    METHOD = "assume-role"

    def __init__(self, credentials):
        super().__init__()
        self.credentials = credentials

    def load(self):
        return self.credentials


def _client_with_role(sts_endpoint: str, sts_answer=None):
    """A DynamoDB client like the session's whose role credentials are
    fetched from STS (botocore's own AssumeRole fetcher) while it signs its
    first request; STS at ``sts_endpoint``, or answered by ``sts_answer``.
    Returns the client and the list of DynamoDB requests that reached its
    send (each answered ``{}``)."""
    core = botocore.session.Session()

    def create_sts_client(service, **kwargs):
        config = Config(connect_timeout=1, read_timeout=1, retries={"mode": "legacy", "total_max_attempts": 1})
        client = core.create_client(service, region_name="eu-west-3", endpoint_url=sts_endpoint, config=config, **kwargs)
        if sts_answer is not None:
            client.meta.events.register("before-send", sts_answer)
        return client

    fetcher = AssumeRoleCredentialFetcher(create_sts_client, Credentials("k", "s"), "arn:aws:iam::123456789012:role/app")
    role = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")
    core.get_component("credential_provider").insert_before("env", _RoleProvider(role))
    client = boto3.session.Session(botocore_session=core).client(
        "dynamodb", region_name="eu-west-3", endpoint_url=URL, config=Config(retries={"mode": "legacy", "total_max_attempts": 1})
    )
    sent = []
    answer = _answer(200, b"{}", {"x-amz-crc32": str(zlib.crc32(b"{}"))})
    client.meta.events.register("before-send", lambda request, **kwargs: sent.append(request) or answer(request))
    return client, sent


@pytest.mark.parametrize(
    ("sts_endpoint", "sts_answer", "raised"),
    [
        pytest.param(URL, _answer(400, STS_ERROR.format("Throttling").encode()), ClientError, id="sts-throttling"),
        pytest.param(URL, _answer(403, STS_ERROR.format("AccessDenied").encode()), ClientError, id="sts-access-denied"),
        pytest.param(URL, _answer(500, STS_ERROR.format("InternalFailure").encode()), ClientError, id="sts-500"),
        pytest.param(URL, None, EndpointConnectionError, id="sts-refused"),
    ],
)
def test_an_error_of_the_credential_refresh_is_not_sent_whatever_its_class(sts_endpoint, sts_answer, raised):
    client, sent = _client_with_role(sts_endpoint, sts_answer)
    with pytest.raises(raised) as caught:
        client.update_item(TableName="t", Key=KEY, UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}})
    assert sent == []  # DynamoDB saw nothing
    verdict = classify(caught.value)
    assert (verdict.sent, verdict.fault, verdict.maybe_applied, verdict.poison_suspect) == (False, False, False, False)
    assert verdict.reason == "credential_refresh"


class _EagerRoleProvider(CredentialProvider):
    """A provider that assumes its role when the client is built."""

    METHOD = "eager-assume-role"

    def __init__(self, fetcher):
        super().__init__()
        self.fetcher = fetcher

    def load(self):
        fetched = self.fetcher.fetch_credentials()
        return Credentials(fetched["access_key"], fetched["secret_key"], fetched["token"])


def test_an_error_of_a_credential_call_made_while_the_client_is_built_is_not_sent():
    core = botocore.session.Session()

    def create_sts_client(service, **kwargs):
        client = core.create_client(service, region_name="eu-west-3", endpoint_url=URL, **kwargs)
        client.meta.events.register("before-send", _answer(400, STS_ERROR.format("Throttling").encode()))
        return client

    fetcher = AssumeRoleCredentialFetcher(create_sts_client, Credentials("k", "s"), "arn:aws:iam::123456789012:role/app")
    core.get_component("credential_provider").insert_before("env", _EagerRoleProvider(fetcher))
    with pytest.raises(ClientError) as caught:
        boto3.session.Session(botocore_session=core).client("dynamodb", region_name="eu-west-3", endpoint_url=URL)
    verdict = classify(caught.value)
    assert (verdict.sent, verdict.fault, verdict.reason) == (False, False, "credential_refresh")


def test_the_regions_own_answer_through_a_real_client_is_judged_by_its_code():
    answers = [
        (500, "InternalServerError", (True, True)),
        (400, "ThrottlingException", (True, False)),
        (400, "ConditionalCheckFailedException", (False, False)),
    ]
    for status, code, (fault, poison_suspect) in answers:
        body = b'{"__type": "com.amazonaws.dynamodb.v20120810#%s", "message": "m"}' % code.encode()
        client = _client()
        client.meta.events.register("before-send", _answer(status, body, {"x-amz-crc32": str(zlib.crc32(body))}))
        with pytest.raises(ClientError) as caught:
            client.get_item(TableName="t", Key=KEY)
        verdict = classify(caught.value)
        assert (verdict.sent, verdict.fault, verdict.poison_suspect) == (True, fault, poison_suspect), code


@contextlib.contextmanager
def _listening(answer: bytes | None = None):
    """A loopback port that accepts connections: silently (the kernel's
    backlog completes the TCP handshake), or, with ``answer``, a thread
    that accepts one, sends ``answer`` and closes it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)

    def serve():
        with contextlib.suppress(OSError):
            connection, _ = server.accept()
            with connection:
                connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True) if answer is not None else None
    if thread is not None:
        thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        if thread is not None:
            thread.join(5)


def _sending_client(endpoint=URL, session=None, **config):
    """A client like the session's, with no handler: its requests meet the
    real send (urllib3, http.client) on loopback."""
    session = session or boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s")
    config = Config(connect_timeout=1, read_timeout=1, retries={"mode": "legacy", "total_max_attempts": 1}, **config)
    return session.client("dynamodb", region_name="eu-west-3", endpoint_url=endpoint, config=config)


def _ca_bundle(path):
    core = botocore.session.Session()
    core.set_config_variable("ca_bundle", path)  # what AWS_CA_BUNDLE sets
    return boto3.session.Session(botocore_session=core, aws_access_key_id="k", aws_secret_access_key="s")


MISSING = "/nonexistent/regionproxy-test/bundle.pem"
PREPARATION_ERRORS = [
    pytest.param(
        lambda port: _sending_client(
            session=boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", aws_session_token="token\n")
        ),
        HTTPClientError,
        id="session-token-with-a-newline",
    ),
    pytest.param(lambda port: _sending_client(user_agent_extra="app/1.0\n"), HTTPClientError, id="user-agent-with-a-newline"),
    pytest.param(
        lambda port: _sending_client(proxies={"http": "http://proxy.internal:port"}), HTTPClientError, id="proxy-url-bad-port"
    ),
    pytest.param(
        lambda port: _sending_client(f"https://127.0.0.1:{port}", session=_ca_bundle(MISSING)), SSLError, id="ca-bundle-missing"
    ),
    pytest.param(
        lambda port: _sending_client(f"https://127.0.0.1:{port}", client_cert=MISSING),
        ConnectionClosedError,  # urllib3 wraps the OSError as a dropped connection
        id="client-certificate-missing",
    ),
]


@pytest.mark.parametrize(("client", "raised"), PREPARATION_ERRORS)
def test_a_configuration_error_raised_before_the_request_is_written_is_not_sent(client, raised):
    with _listening() as port, pytest.raises(raised) as caught:
        client(port).update_item(
            TableName="t", Key=KEY, UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}}
        )
    verdict = classify(caught.value)
    assert (verdict.sent, verdict.fault, verdict.maybe_applied, verdict.reason) == (False, False, False, "configuration")


def test_a_refused_connection_through_the_real_send_is_a_fault_not_applied():
    with pytest.raises(EndpointConnectionError) as caught:
        _sending_client().get_item(TableName="t", Key=KEY)
    verdict = classify(caught.value)
    assert (verdict.sent, verdict.fault, verdict.maybe_applied) == (True, True, False)


def test_a_name_that_does_not_resolve_is_a_dns_fault_not_applied_nor_retried_here():
    # The lab's resolver hook answers gaierror for this name (an empty DNS
    # record): urllib3's NameResolutionError, wrapped by botocore as
    # EndpointConnectionError, as a refused connection is.
    from regionproxy.testing import resolver

    name = f"nowhere.{uuid.uuid4().hex[:8]}.{resolver.SUFFIX}"
    resolver.register(name, "127.0.0.1", lambda: True)
    try:
        with pytest.raises(EndpointConnectionError) as caught:
            _sending_client(f"http://{name}:9").update_item(
                TableName="t", Key=KEY, UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}}
            )
    finally:
        resolver.unregister(name)
    verdict = classify(caught.value)
    assert (verdict.sent, verdict.fault, verdict.maybe_applied, verdict.retry_here, verdict.reason) == (
        True,
        True,
        False,
        False,
        "dns",
    )


def test_a_handshake_failing_through_the_real_send_is_a_fault_not_applied():
    # The peer answers the ClientHello in plain HTTP: ssl_wrap_socket is in
    # the chain, but the error comes from the handshake it started.
    with _listening(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as port:
        with pytest.raises(SSLError) as caught:
            _sending_client(f"https://127.0.0.1:{port}").get_item(TableName="t", Key=KEY)
    verdict = classify(caught.value)
    assert (verdict.sent, verdict.fault, verdict.maybe_applied, verdict.reason) == (True, True, False, "tls_handshake")


def test_a_connection_dropped_after_the_request_was_written_may_have_been_applied():
    with _listening(b"") as port:  # reads nothing, closes: the request was written
        with pytest.raises(ConnectionClosedError) as caught:
            _sending_client(f"http://127.0.0.1:{port}").get_item(TableName="t", Key=KEY)
    verdict = classify(caught.value)
    assert (verdict.sent, verdict.fault, verdict.maybe_applied) == (True, True, True)
