"""botocore's wire-trace records lose their security tokens and signatures."""

from __future__ import annotations

import logging

from regionproxy._regions import redaction


def test_header_dicts_canonical_requests_and_query_strings_lose_the_token():
    text = (
        "headers={'X-Amz-Security-Token': b'T0k/en+=', 'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIA/x, "
        "SignedHeaders=host, Signature=" + "ab" * 32 + "'}\nx-amz-security-token:T0k/en+=\n"
        "https://h/?X-Amz-Security-Token=T0k%2Fen&X-Amz-Signature=" + "cd" * 32
    )
    cleaned = redaction.redact(text)
    assert "T0k" not in cleaned and "ab" * 32 not in cleaned and "cd" * 32 not in cleaned
    assert cleaned.count(redaction.REDACTED) == 5


def test_the_filter_rewrites_the_record_and_keeps_it():
    record = logging.LogRecord(
        "botocore.auth", logging.DEBUG, __file__, 1, "CanonicalRequest:\n%s", ("x-amz-security-token:SECRET",), None
    )
    assert redaction.CredentialRedactor().filter(record) is True
    assert record.getMessage() == "CanonicalRequest:\nx-amz-security-token:" + redaction.REDACTED


def test_installed_on_every_wire_logger_once():
    import regionproxy._regions.replica  # noqa: F401  (installs it)

    redaction.install()
    for name in redaction.WIRE_LOGGERS:
        assert logging.getLogger(name).filters.count(redaction._REDACTOR) == 1
