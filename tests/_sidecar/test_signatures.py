import pytest

from regionproxy._sidecar.signatures import SKEW_SECONDS, ClientKeys, SignatureRefused, verify
from regionproxy.errors import ConfigError
from tests._sidecar.conftest import NOW, environ, signed_headers

KEYS = ClientKeys({"app": "s3cret", "cli": "other"})
BODY = b'{"TableName": "T", "Key": {"pk": {"S": "a"}}}'


def _clock(seconds: float = 0.0):
    return lambda: NOW.timestamp() + seconds


def test_a_request_signed_with_a_client_key_names_its_key():
    assert verify(environ(BODY, signed_headers(BODY)), BODY, KEYS, _clock()) == "app"


@pytest.mark.parametrize("skew", [-SKEW_SECONDS, SKEW_SECONDS], ids=["5-min-behind", "5-min-ahead"])
def test_a_date_up_to_5_minutes_off_is_accepted(skew):
    assert verify(environ(BODY, signed_headers(BODY)), BODY, KEYS, _clock(skew)) == "app"


@pytest.mark.parametrize(
    ("headers", "clock", "code", "message"),
    [
        pytest.param(signed_headers(BODY, secret="wrong"), _clock(), "InvalidSignatureException", "does not match", id="wrong-secret"),
        pytest.param(signed_headers(BODY, key_id="nobody"), _clock(), "UnrecognizedClientException", "invalid", id="unknown-key"),
        pytest.param(signed_headers(BODY), _clock(SKEW_SECONDS + 1), "InvalidSignatureException", "Signature expired", id="old"),
        pytest.param(signed_headers(BODY), _clock(-SKEW_SECONDS - 1), "InvalidSignatureException", "not yet current", id="future"),
        pytest.param(signed_headers(BODY, service="s3"), _clock(), "InvalidSignatureException", "dynamodb", id="other-service"),
        pytest.param(signed_headers(BODY, operation=None), _clock(), "InvalidSignatureException", "x-amz-target", id="target-unsigned"),
        pytest.param(
            {k: v for k, v in signed_headers(BODY).items() if k != "Authorization"},
            _clock(),
            "MissingAuthenticationTokenException",
            "missing",
            id="unsigned",
        ),
        pytest.param(
            {**signed_headers(BODY), "Authorization": "Bearer xyz"}, _clock(), "InvalidSignatureException", "SigV4", id="not-sigv4"
        ),
        pytest.param(
            {**signed_headers(BODY), "X-Amz-Date": "yesterday"}, _clock(), "InvalidSignatureException", "X-Amz-Date", id="bad-date"
        ),
    ],
)
def test_a_request_not_signed_with_a_client_key_is_refused_with_dynamodbs_error(headers, clock, code, message):
    with pytest.raises(SignatureRefused) as refused:
        verify(environ(BODY, headers), BODY, KEYS, clock)
    assert refused.value.code == code
    assert message in refused.value.message


def test_a_body_changed_after_signing_is_refused():
    changed = BODY.replace(b'"a"', b'"b"')
    with pytest.raises(SignatureRefused, match="does not match"):
        verify(environ(changed, signed_headers(BODY)), changed, KEYS, _clock())


def test_the_region_of_the_scope_is_the_clients_own():
    headers = signed_headers(BODY, region="eu-west-3")
    assert verify(environ(BODY, headers), BODY, KEYS, _clock()) == "app"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("app:s3cret", {"app": "s3cret"}, id="one"),
        pytest.param("a:x, b:y", {"a": "x", "b": "y"}, id="comma-separated"),
        pytest.param("# keys\na:x\n\nb:y:z\n", {"a": "x", "b": "y:z"}, id="lines-comments-colon-in-secret"),
    ],
)
def test_client_keys_are_read_from_id_secret_pairs(text, expected):
    keys = ClientKeys.parse(text)
    assert {key_id: keys.secret(key_id) for key_id in expected} == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("app", id="no-secret"),
        pytest.param("app:", id="empty-secret"),
        pytest.param(":x", id="empty-id"),
        pytest.param("a:x,a:y", id="twice"),
        pytest.param("a b:x", id="space-in-id"),
        pytest.param("a:x,", id="trailing-comma"),
    ],
)
def test_malformed_client_keys_are_a_config_error(text):
    with pytest.raises(ConfigError):
        ClientKeys.parse(text)


def test_client_keys_never_show_their_secrets():
    assert "s3cret" not in repr(KEYS) and "app" in repr(KEYS)


def test_client_keys_come_from_the_environment_and_a_keys_file(tmp_path):
    path = tmp_path / "keys"
    path.write_text("file:one\n")
    keys = ClientKeys.load({"REGIONPROXY_SERVE_KEYS": "env:two"}, str(path))
    assert (keys.secret("env"), keys.secret("file")) == ("two", "one")
    with pytest.raises(ConfigError, match="keys-file"):
        ClientKeys.load({}, str(tmp_path / "missing"))


def test_no_keys_is_empty():
    assert not ClientKeys.load({}) and not ClientKeys.parse("")




@pytest.mark.parametrize(
    "extra",
    [{}, {"X-Custom": "  spaced   out\tvalue "}, {"amz-sdk-request": "attempt=1; max=3", "User-Agent": "aws-sdk-js/3"}],
    ids=["plain", "spaces", "sdk-headers"],
)
def test_the_short_path_for_post_to_root_checks_what_botocores_signer_checks(extra):
    """The signature checked for ``POST /`` (``root_signature``) equals
    botocore's ``SigV4Auth`` over the same request, and a request to any
    other path goes through botocore's signer itself."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from regionproxy._regions.wire import root_signature

    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem", "Host": "127.0.0.1:8000", **extra}
    request = AWSRequest(method="POST", url="http://127.0.0.1:8000/", data=BODY, headers=headers)
    request.context["timestamp"] = NOW.strftime("%Y%m%dT%H%M%SZ")
    auth = SigV4Auth(Credentials("app", "s3cret"), "dynamodb", "us-east-1")
    auth._modify_request_before_signing(request)
    botocores = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    signed = {name.lower(): value for name, value in request.headers.items() if name.lower() not in ("user-agent",)}
    import hashlib

    ours = root_signature("s3cret", "us-east-1", "dynamodb", signed["x-amz-date"], "POST", signed, hashlib.sha256(BODY).hexdigest())
    assert ours == botocores
    signed_for_sdk = signed_headers(BODY)
    assert verify(environ(BODY, signed_for_sdk), BODY, KEYS, _clock()) == "app"


def test_a_request_to_another_path_is_checked_by_botocores_signer_itself():
    request = environ(BODY, signed_headers(BODY))
    request["PATH_INFO"] = "/other"  # signed for "/": the signature no longer matches
    with pytest.raises(SignatureRefused, match="does not match"):
        verify(request, BODY, KEYS, _clock())
