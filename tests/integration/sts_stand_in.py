"""A loopback stand-in for AWS STS, and role credentials fetched from it.

:class:`StandInSTS` answers ``AssumeRole`` (query protocol, XML) on a free
loopback port, as a test tells it to: with credentials, with an error, or
only after a delay (past a client's read timeout). :func:`role_session`
gives a boto3 session the credentials an application running under an IAM
role has: botocore's own ``AssumeRoleCredentialFetcher`` behind
``DeferredRefreshableCredentials``, so they are fetched and refreshed while
requests are signed. The stand-in's credentials expire in five minutes,
inside botocore's mandatory refresh window: every signature refreshes them,
so each DynamoDB call asks STS first, as a real application does near
expiry, and a test can make STS fail at any moment.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    Credentials,
    DeferredRefreshableCredentials,
)

ROLE = "arn:aws:iam::123456789012:role/app"
# Inside botocore's mandatory refresh window (10 minutes) and its fetcher's
# expiry window (15 minutes): never reused, always fetched again.
LIFETIME = 300
# The STS client's connect and read timeouts: generous, so that a healthy
# answer on a loaded machine is never late; a delayed one costs this much.
ANSWER_TIMEOUT = 2.0

_CREDENTIALS = (
    '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>'
    "<AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>secret</SecretAccessKey><SessionToken>token</SessionToken>"
    "<Expiration>{}</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/app/x</Arn>"
    "<AssumedRoleId>AROAEXAMPLE:x</AssumedRoleId></AssumedRoleUser></AssumeRoleResult>"
    "<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>"
)
_ERROR = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>{}</Code>'
    "<Message>from the stand-in</Message></Error><RequestId>1</RequestId></ErrorResponse>"
)


class StandInSTS:
    """STS on loopback. ``answer(status, code)`` sets what AssumeRole gets
    (200: credentials; else the error ``code``); ``delay(seconds)`` holds
    every answer back; ``calls`` counts requests."""

    def __init__(self) -> None:
        self.status, self.code, self.calls = 200, "", 0
        self._released = threading.Event()
        self._released.set()
        self._hold = 0.0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stand_in.calls += 1
                if not stand_in._released.is_set():
                    stand_in._released.wait(stand_in._hold)  # bounded; stop() releases it at once
                status = stand_in.status
                if status == 200:
                    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + LIFETIME))
                    body = _CREDENTIALS.format(expiry).encode()
                else:
                    body = _ERROR.format(stand_in.code).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client timed out and left

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="sts-stand-in", daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"

    def answer(self, status: int = 200, code: str = "") -> None:
        self.status, self.code = status, code

    def delay(self, seconds: float) -> None:
        """Hold every answer ``seconds`` (0: answer at once)."""
        self._hold = seconds
        if seconds:
            self._released.clear()
        else:
            self._released.set()

    def stop(self) -> None:
        self.delay(0)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _RoleProvider(CredentialProvider):
    METHOD = "assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


def role_session(sts: StandInSTS) -> boto3.session.Session:
    """A boto3 session whose credentials are an IAM role's, assumed through
    ``sts`` (first before any environment keys)."""
    core = botocore.session.Session()
    config = Config(connect_timeout=ANSWER_TIMEOUT, read_timeout=ANSWER_TIMEOUT, retries={"total_max_attempts": 1})

    def create_client(service: str, **kwargs: object) -> object:
        return core.create_client(service, region_name="us-east-1", endpoint_url=sts.endpoint, config=config, **kwargs)

    fetcher = AssumeRoleCredentialFetcher(create_client, Credentials("testing", "testing"), ROLE)
    role = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")
    core.get_component("credential_provider").insert_before("env", _RoleProvider(role))
    return boto3.session.Session(botocore_session=core)
