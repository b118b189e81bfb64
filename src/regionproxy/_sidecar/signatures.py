"""Who may call the sidecar: SigV4 signatures checked against local client keys.

The sidecar holds the AWS credentials; its clients hold keys of its own
(``REGIONPROXY_SERVE_KEYS=id:secret,id:secret``, or a keys file). Every
DynamoDB request is checked before anything else is done with it (no
JSON parsed, nothing forwarded): the expected signature is computed by
botocore's own SigV4 signer (``botocore.auth.SigV4Auth``) over the request
as it arrived (method, path, query, the headers the client says it
signed, and the SHA-256 of the body read, never a hash the client
states), with the client's secret and the region its scope names, and
compared in constant time. The answers are DynamoDB's:

- no ``Authorization`` header: ``MissingAuthenticationTokenException``;
- a key id the sidecar does not know: ``UnrecognizedClientException``;
- a malformed header, a scope for another service, a signature that
  does not match (wrong secret, tampered headers, a body changed after
  it was signed, an ``x-amz-content-sha256`` that is not the body's),
  ``host``, ``x-amz-date`` or ``x-amz-target`` left unsigned (an unsigned
  target would let the operation be swapped in transit):
  ``InvalidSignatureException``;
- a date more than 5 minutes from the sidecar's clock:
  ``InvalidSignatureException`` "Signature expired" (or "not yet current").
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.credentials import Credentials

from regionproxy._regions.wire import HeaderMap, LightRequest, SigV4, root_signature
from regionproxy.errors import ConfigError

SKEW_SECONDS = 300
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*SignedHeaders=(?P<signed>[^,\s]+)"
    r"\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*"
)
_KEY_ID = re.compile(r"[A-Za-z0-9_.+=@-]{1,128}")
_DATE = "%Y%m%dT%H%M%SZ"
_AMZ_DATE = re.compile(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z", re.ASCII)
_REQUIRED = ("host", "x-amz-date", "x-amz-target")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


class SignatureRefused(Exception):
    """A request the sidecar will not serve: DynamoDB's error code and message (HTTP 400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ClientKeys:
    """The client keys the sidecar accepts: key id -> secret.

    :param keys: ``{"id": "secret"}``.
    """

    def __init__(self, keys: Mapping[str, str]) -> None:
        for key_id, secret in keys.items():
            if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
                raise ConfigError(f"client key id {key_id!r}: letters, digits and _.+=@- only", setting="serve_keys")
            if not isinstance(secret, str) or not secret or any(c.isspace() for c in secret):
                raise ConfigError(f"client key {key_id!r}: the secret is empty or has spaces", setting="serve_keys")
        self._keys = dict(keys)

    def __repr__(self) -> str:
        return f"ClientKeys({sorted(self._keys)!r})"  # ids only: never the secrets

    def __bool__(self) -> bool:
        return bool(self._keys)

    def secret(self, key_id: str) -> str | None:
        return self._keys.get(key_id)

    @classmethod
    def parse(cls, text: str, setting: str = "serve_keys") -> ClientKeys:
        """``id:secret`` pairs separated by commas or new lines (``#`` starts a comment line)."""
        keys: dict[str, str] = {}
        for raw_line in text.splitlines():
            line = raw_line.strip()
            if not line or line.startswith("#"):
                continue
            for entry in line.split(","):
                key_id, colon, secret = entry.strip().partition(":")
                if not colon or not key_id or not secret:
                    raise ConfigError(f"{setting}: expected id:secret, got an entry without both", setting=setting)
                if key_id in keys:
                    raise ConfigError(f"{setting}: key id {key_id!r} given twice", setting=setting)
                keys[key_id] = secret
        return cls(keys)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, keys_file: str | None = None) -> ClientKeys:
        """From ``REGIONPROXY_SERVE_KEYS`` and/or a keys file (one ``id:secret`` a line)."""
        environ = os.environ if environ is None else environ
        text = environ.get("REGIONPROXY_SERVE_KEYS", "")
        if keys_file is not None:
            try:
                with open(keys_file, encoding="utf-8") as handle:
                    text = text + "\n" + handle.read()
            except OSError as error:
                raise ConfigError(f"--keys-file {keys_file!r}: {error.strerror}", setting="keys_file") from error
        return cls.parse(text)


class _Expected(SigV4):
    """botocore's SigV4 signer over exactly the headers the client signed
    (the request's, all lower-case), and the hash of the body as read."""

    def __init__(self, credentials: Credentials, region: str, body_hash: str) -> None:
        super().__init__(credentials, "dynamodb", region)
        self._body_hash = body_hash

    def headers_to_sign(self, request: Any) -> HeaderMap:
        return HeaderMap(request.headers)

    def payload(self, request: Any) -> str:
        return self._body_hash


def _header(environ: Mapping[str, Any], name: str) -> str | None:
    if name == "content-type":
        return environ.get("CONTENT_TYPE")
    if name == "content-length":
        return environ.get("CONTENT_LENGTH")
    return environ.get("HTTP_" + name.upper().replace("-", "_"))


def verify(environ: Mapping[str, Any], body: bytes, keys: ClientKeys, clock: Callable[[], float] = time.time) -> str:
    """The key id of the client that signed this request; or
    :class:`SignatureRefused` (see the module docstring)."""
    authorization = environ.get("HTTP_AUTHORIZATION")
    if not authorization:
        raise SignatureRefused("MissingAuthenticationTokenException", "Request is missing Authentication Token")
    match = _AUTHORIZATION.fullmatch(authorization.strip())
    if match is None:
        raise SignatureRefused("InvalidSignatureException", "The Authorization header is not a SigV4 signature.")
    parts = match["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureRefused("InvalidSignatureException", "The Credential of the Authorization header is malformed.")
    key_id, scope_date, region, service, _ = parts
    secret = keys.secret(key_id)
    if secret is None:
        raise SignatureRefused("UnrecognizedClientException", "The security token included in the request is invalid.")
    if service != "dynamodb":
        raise SignatureRefused("InvalidSignatureException", "Credential should be scoped to correct service: 'dynamodb'.")
    signed = match["signed"].split(";")
    if any(name not in signed for name in _REQUIRED) or signed != sorted(set(signed)):
        raise SignatureRefused("InvalidSignatureException", "SignedHeaders must list host, x-amz-date and x-amz-target, sorted.")
    amz_date = environ.get("HTTP_X_AMZ_DATE", "")
    stamp = _seconds(amz_date)
    if stamp is None:
        raise SignatureRefused("InvalidSignatureException", "X-Amz-Date is not a date such as 20261206T120000Z.")
    if scope_date != amz_date[:8]:
        raise SignatureRefused("InvalidSignatureException", "The Credential's date is not the X-Amz-Date's.")
    now = clock()
    if stamp < now - SKEW_SECONDS:
        raise SignatureRefused(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {_stamp(now - SKEW_SECONDS)} ({_stamp(now)} - 5 min.)",
        )
    if stamp > now + SKEW_SECONDS:
        raise SignatureRefused(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than {_stamp(now + SKEW_SECONDS)} ({_stamp(now)} + 5 min.)",
        )
    body_hash = hashlib.sha256(body).hexdigest()
    stated = environ.get("HTTP_X_AMZ_CONTENT_SHA256")
    if stated is not None and stated != body_hash:
        raise SignatureRefused("InvalidSignatureException", _MISMATCH)
    headers = {}
    for name in signed:
        value = _header(environ, name)
        if value is None:
            raise SignatureRefused("InvalidSignatureException", f"The signed header {name!r} is missing.")
        headers[name] = value
    query = environ.get("QUERY_STRING", "")
    path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"
    method = environ.get("REQUEST_METHOD", "POST")
    if path == "/" and not query:  # every SDK's DynamoDB request: botocore's signature, fewer steps (wire.root_signature)
        expected = root_signature(secret, region, "dynamodb", amz_date, method, headers, body_hash)
    else:
        url = f"http://{headers['host']}{path}" + (f"?{query}" if query else "")
        request = LightRequest(method, url, headers, body)
        request.context["timestamp"] = amz_date
        auth = _Expected(Credentials(key_id, secret), region, body_hash)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureRefused("InvalidSignatureException", _MISMATCH)
    return key_id


def _seconds(amz_date: str) -> float | None:
    """``20261206T120000Z`` in epoch seconds; None if it is not such a date."""
    match = _AMZ_DATE.fullmatch(amz_date)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime(_DATE)
