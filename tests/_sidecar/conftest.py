"""Requests signed as an SDK signs them, as WSGI environs, for the sidecar's unit tests."""

from __future__ import annotations

import datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from werkzeug.test import EnvironBuilder

NOW = datetime.datetime(2026, 12, 6, 12, 0, 0, tzinfo=datetime.UTC)
HOST = "127.0.0.1:8000"


def signed_headers(
    body: bytes,
    operation: str | None = "GetItem",
    *,
    key_id: str = "app",
    secret: str = "s3cret",
    when: datetime.datetime = NOW,
    region: str = "us-east-1",
    service: str = "dynamodb",
) -> dict[str, str]:
    """botocore's SigV4 headers for a DynamoDB request at ``when``."""
    headers = {"Content-Type": "application/x-amz-json-1.0"}
    if operation is not None:
        headers["X-Amz-Target"] = f"DynamoDB_20120810.{operation}"
    request = AWSRequest(method="POST", url=f"http://{HOST}/", data=body, headers=headers)
    auth = SigV4Auth(Credentials(key_id, secret), service, region)
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    auth._modify_request_before_signing(request)
    auth._inject_signature_to_request(request, auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request))
    return dict(request.headers.items())


def environ(body: bytes, headers: dict[str, str], method: str = "POST") -> dict:
    builder = EnvironBuilder(path="/", method=method, data=body, headers=headers, base_url=f"http://{HOST}")
    return builder.get_environ()


@pytest.fixture
def now() -> float:
    return NOW.timestamp()
