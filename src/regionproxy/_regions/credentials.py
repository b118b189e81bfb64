"""The boto3 session regionproxy builds for itself, and how long fetching
credentials may take through it.

Rule: a credential refresh through a session regionproxy builds is bounded
by the session's :class:`~regionproxy.Timeouts`, never by botocore's
defaults. When credentials come from a provider that calls a service to
get them (an assume-role profile, ``AWS_ROLE_ARN`` with a web identity
token, SSO), botocore makes that service's client (STS, SSO) with
``Session.create_client`` of the same botocore session, and so with the
session's default client config (``set_default_client_config``); without
one, botocore's own: 60 s to connect, 60 s to read, several attempts. A
call whose credentials are due holds botocore's refresh lock for as long as
that takes, and every thread that needs credentials in the mandatory
window (the last 10 minutes) waits on it. In the advisory window (15 to 10
minutes before expiry) botocore keeps the old credentials if a refresh
fails, but the thread that tried still waits for the failure.

So the botocore session behind :func:`owned_session` has a default client
config of ``Timeouts.connect`` / ``Timeouts.read`` and ``Timeouts.attempts``
attempts ("standard" retries, whose quota stops retrying during an
outage): a refresh costs at most ``attempts * (connect + read)`` plus the
backoff between attempts (under a second each at these counts). The
regions' DynamoDB clients set all three themselves
(:func:`~regionproxy._regions.replica.client_config`), so the default
changes nothing for them. One such boto3 session per process and per
``Timeouts`` (sessions with other timeouts get their own, with their own
credentials cache).

What is not bounded here:

- a ``boto3_session`` the caller passes is theirs: regionproxy never
  changes it. Bound it the same way before passing it:
  ``boto3_session._session.set_default_client_config(Config(connect_timeout=...,
  read_timeout=..., retries={"total_max_attempts": 2}))`` (or a credential
  provider of their own with its own timeouts).
- the instance metadata service (IMDS) and the container credentials
  endpoint do not use a client: botocore bounds IMDS by
  ``AWS_METADATA_SERVICE_TIMEOUT`` / ``AWS_METADATA_SERVICE_NUM_ATTEMPTS``
  (1 s and 1 attempt per request by default; a refresh makes up to three
  requests), and the container endpoint by fixed constants (2 s per request,
  3 attempts, 1 s apart: about 8 s at worst).
- a server that answers each read just inside the read timeout (a trickle)
  keeps the connection alive, as it would for any botocore client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
import botocore.session
from botocore.config import Config

if TYPE_CHECKING:
    from regionproxy._config.policies import Timeouts


def credential_client_config(timeouts: Timeouts) -> Config:
    """The default client config of a session regionproxy builds: what the
    clients botocore makes to fetch credentials (STS, SSO) run with."""
    return Config(
        connect_timeout=timeouts.connect,
        read_timeout=timeouts.read,
        retries={"mode": "standard", "total_max_attempts": timeouts.attempts},
    )


def owned_session(timeouts: Timeouts) -> boto3.session.Session:
    """A new boto3 session (credentials from the default chain) whose
    credential refreshes are bounded by ``timeouts``."""
    core = botocore.session.Session()
    core.set_default_client_config(credential_client_config(timeouts))
    return boto3.session.Session(botocore_session=core)
