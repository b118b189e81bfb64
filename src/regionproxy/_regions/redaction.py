"""What botocore's wire trace may say about a region's credentials.

Rule: no credential is ever logged, at any level, by this library or by the
libraries it drives for it. botocore's DEBUG records (``botocore.endpoint``:
"Sending http request" with every header; ``botocore.auth``: the canonical
request and its signed headers) carry the ``X-Amz-Security-Token`` of
temporary credentials in clear, so a user who turns on DEBUG logging to
watch a failover would write the session token to their logs. The secret
access key itself never leaves botocore's signer, and endpoint URLs with
credentials in them are refused by the settings (``ConfigError``).

:func:`install` puts one :class:`CredentialRedactor` on each botocore logger
that writes the wire trace (a logger's filters see only its own records, so
each emitting logger gets it); it rewrites a record's message with every
security token, and every ``Authorization`` signature, replaced by
``<redacted>``. It is idempotent and process-wide, installed when
``_regions/replica.py`` is imported; it never drops a record.
"""

from __future__ import annotations

import logging
import re

# The loggers whose records carry request headers or the canonical request.
WIRE_LOGGERS = ("botocore.endpoint", "botocore.auth", "botocore.awsrequest", "botocore.httpsession")

REDACTED = "<redacted>"

_PATTERNS = (
    # header dicts ('X-Amz-Security-Token': b'...'), canonical headers
    # (x-amz-security-token:...), query strings (X-Amz-Security-Token=...)
    re.compile(r"""(?i)(x-amz-security-token['"]?\s*[:=]\s*b?['"]?)[^'"\s,&}>]+"""),
    # the signature of a request: replayable with it for minutes
    re.compile(r"""(?i)(signature\s*[=:]\s*\n?\s*)[0-9a-f]{64}"""),
)


def redact(text: str) -> str:
    """``text`` with every security token and request signature replaced."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class CredentialRedactor(logging.Filter):
    """Rewrites a record's message without its credentials; keeps the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format itself: leave it to logging
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_REDACTOR = CredentialRedactor()


def install() -> None:
    """Put the redactor on botocore's wire-trace loggers (once)."""
    for name in WIRE_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
