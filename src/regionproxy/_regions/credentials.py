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
credentials cache; at most ``replica.MAX_OWNED_SESSIONS``, the least
recently used forgotten).

Bounding one refresh is not enough: botocore holds its refresh lock for the
refresh's I/O, and each thread that waited on it in the mandatory window
tries again when it gets the lock, so the n-th of n threads waited n
refreshes (and in the advisory window every call, twice per call with
DynamoDB's account-id endpoints, tried a refresh of its own). So a refresh
that failed is held (:class:`HeldFailure`): for as long as one refresh may
take (``attempts * (connect + read)``), the next refresh fails at once with
the same error (a copy, with its traceback: the session still sees a
credential provider's error, not the region's) and sends nothing; in the
advisory window botocore then keeps the credentials it has. The hold
covers every refreshable provider, the IMDS and container ones included.
It wraps ``RefreshableCredentials._refresh_using`` (botocore 1.44's
attribute; credentials without it, static keys, are left as they are).

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

import copy
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import RefreshableCredentials

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
    core = _BoundedCore(hold=timeouts.attempts * (timeouts.connect + timeouts.read))
    core.set_default_client_config(credential_client_config(timeouts))
    return boto3.session.Session(botocore_session=core)


class HeldFailure:
    """A credential refresh function that, once it failed, fails at once
    with the same error for ``hold`` seconds rather than call again.

    botocore calls it with its refresh lock held, one thread at a time;
    the state is read and written only there.
    """

    def __init__(self, refresh: Callable[[], Any], hold: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._refresh = refresh
        self._hold = hold
        self._clock = clock
        self._failure: tuple[float, BaseException, TracebackType | None] | None = None

    def __call__(self) -> Any:
        failure = self._failure
        if failure is not None and self._clock() - failure[0] < self._hold:
            raise _copy(failure[1]).with_traceback(failure[2])
        try:
            answer = self._refresh()
        except Exception as error:
            self._failure = (self._clock(), error, error.__traceback__)
            raise
        self._failure = None
        return answer


def _copy(error: BaseException) -> BaseException:
    """A copy to raise in another thread: raising the one object everywhere
    would grow and race on its ``__traceback__``."""
    try:
        return copy.copy(error)
    except Exception:  # noqa: BLE001 - an exception class that cannot be copied: the original, as botocore would
        return error


class _BoundedCore(botocore.session.Session):
    """A botocore session whose refreshable credentials hold a failure."""

    def __init__(self, *, hold: float) -> None:
        super().__init__()
        self._hold = hold

    def get_credentials(self) -> Any:
        fresh = self._credentials is None
        credentials = super().get_credentials()
        if fresh and isinstance(credentials, RefreshableCredentials) and callable(getattr(credentials, "_refresh_using", None)):
            credentials._refresh_using = HeldFailure(credentials._refresh_using, self._hold)
        return credentials
