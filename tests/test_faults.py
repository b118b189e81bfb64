"""Error classification: every botocore error and DynamoDB code that matters."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)

from regionproxy.errors import RegionUnavailable
from regionproxy.faults import classify

URL = "http://127.0.0.1:1"


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
        pytest.param(ParamValidationError(report="bad"), False, True, id="param-validation"),
        pytest.param(TypeError("bad argument"), False, True, id="type-error"),
    ],
)
def test_classify(error, fault, maybe_applied):
    verdict = classify(error)
    assert verdict.fault is fault
    if fault:
        assert verdict.maybe_applied is maybe_applied


def test_throttling_can_be_the_callers_to_handle():
    assert classify(client_error("ThrottlingException", 400), throttling_is_fault=False).fault is False


def test_classification_ignores_error_factory_classes():
    import boto3

    one = boto3.session.Session(region_name="eu-west-3").client("dynamodb")
    two = boto3.session.Session(region_name="eu-west-3").client("dynamodb")
    response = {"Error": {"Code": "ConditionalCheckFailedException"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    first = one.exceptions.ConditionalCheckFailedException(response, "PutItem")
    second = two.exceptions.ConditionalCheckFailedException(response, "PutItem")
    assert type(first) is not type(second)
    assert classify(first) == classify(second)
