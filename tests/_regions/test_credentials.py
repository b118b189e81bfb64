"""A credential refresh through the boto3 session regionproxy builds is
bounded by the session's Timeouts (regionproxy._regions.credentials): an
assume-role profile whose STS endpoint is a listening socket that never
answers costs a call seconds, not botocore's 60 s per attempt. Credentials
come from a temporary AWS config file; STS is the lab's moto server or the
black hole, both on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

import regionproxy as rp
from regionproxy._regions import replica
from regionproxy._regions.credentials import HeldFailure, owned_session
from tests.support import LOCAL, TABLE, FakeClock

# 1 s per connect and read, two attempts: a refresh against a dead STS costs
# about 2 s plus a backoff, and a call that fails over once pays it twice.
# botocore's defaults would cost minutes. The bound is generous for a loaded machine.
TIMEOUTS = rp.Timeouts(connect=1.0, read=1.0, attempts=2)
WALL_BOUND = 15.0
ITEM_KEY = {"pk": {"S": "a"}, "sk": {"S": "1"}}


class BlackHole:
    """A TCP endpoint that accepts connections and never answers; counts them."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():  # bounded: close() sets it
            with contextlib.suppress(TimeoutError, OSError):
                connection, _ = self._listener.accept()
                self.accepted.append(connection)  # held open, never read, never answered

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture
def assume_role_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Credentials from a profile that assumes a role with static source keys,
    and no others (the suite's AWS_ACCESS_KEY_ID would win over the profile);
    regionproxy's per-process sessions start empty and are dropped after."""
    config = tmp_path / "config"
    config.write_text(
        "[profile source]\n"
        "aws_access_key_id = AKIDSOURCE\n"
        "aws_secret_access_key = source-secret\n"
        "[profile assumer]\n"
        "role_arn = arn:aws:iam::123456789012:role/blog\n"
        "source_profile = source\n"
        "duration_seconds = 900\n"  # STS's shortest: inside botocore's 15 min advisory window at once
    )
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_PROFILE", "assumer")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never the IMDS of the machine running the tests
    monkeypatch.setattr(replica, "_SESSIONS", {})
    return config


def _session(lab) -> rp.RegionSession:
    session = rp.RegionSession(lab.regions, endpoints=lab.endpoints, timeouts=TIMEOUTS)
    lab._sessions.append(session)  # closed when the test ends, as lab.session()'s are
    return session


def test_a_call_whose_credentials_need_sts_fails_within_the_session_timeouts(lab, assume_role_profile, black_hole, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", black_hole.url)
    session = _session(lab)
    started = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017, PT011 - the kind is the session's business; the time is the point
        session.client.get_item(TableName=TABLE, Key=ITEM_KEY)
    elapsed = time.monotonic() - started
    assert black_hole.accepted, "the credentials never went to STS"
    assert elapsed < WALL_BOUND, f"a dead STS held the call {elapsed:.1f} s"


def test_assume_role_credentials_from_sts_work_through_the_session(lab, assume_role_profile, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", lab.direct_endpoints[LOCAL])  # moto serves STS too
    session = _session(lab)
    session.client.put_item(TableName=TABLE, Item={**ITEM_KEY, "v": {"S": "x"}})
    assert session.client.get_item(TableName=TABLE, Key=ITEM_KEY)["Item"]["v"] == {"S": "x"}
    credentials = replica._process_session(TIMEOUTS).get_credentials().get_frozen_credentials()
    assert credentials.access_key != "AKIDSOURCE" and credentials.token  # the role's, from STS


def test_a_refresh_in_the_advisory_window_keeps_the_credentials_within_the_timeouts(
    lab, assume_role_profile, black_hole, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", lab.direct_endpoints[LOCAL])
    session = _session(lab)
    session.client.put_item(TableName=TABLE, Item={**ITEM_KEY, "v": {"S": "x"}})
    # 900 s credentials are due for an advisory refresh at once; STS dies now.
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", black_hole.url)
    started = time.monotonic()
    item = session.client.get_item(TableName=TABLE, Key=ITEM_KEY)["Item"]
    elapsed = time.monotonic() - started
    assert item["v"] == {"S": "x"}  # served with the credentials still valid
    assert black_hole.accepted, "no refresh was tried"
    assert len(black_hole.accepted) <= TIMEOUTS.attempts  # one refresh per call, its failure held
    assert elapsed < WALL_BOUND, f"a dead STS held the call {elapsed:.1f} s"


def test_threads_waiting_on_a_dead_sts_fail_within_one_refresh_not_one_each(lab, assume_role_profile, black_hole, monkeypatch):
    # botocore refreshes under a lock and each waiting thread tries again when
    # it gets it: without the held failure the tenth thread waits ten refreshes.
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", black_hole.url)
    session = _session(lab)
    client = session.client
    assert session.replicas[LOCAL].client is not None  # built before the threads: they meet only the refresh
    waited: list[float] = []

    def call() -> None:
        started = time.monotonic()
        with contextlib.suppress(Exception):
            client.get_item(TableName=TABLE, Key=ITEM_KEY)
        waited.append(time.monotonic() - started)

    threads = [threading.Thread(target=call, daemon=True) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)  # bounded; the old code's last thread took about 20 s here
    assert len(waited) == len(threads), "a call still waits on the refresh"
    assert max(waited) < WALL_BOUND, f"the last thread waited {max(waited):.1f} s"
    # a held failure is still a credential provider's, not the region's
    assert {replica_.breaker.state for replica_ in session.replicas.values()} == {"closed"}


def test_a_held_failure_fails_fast_until_the_hold_ends_and_then_refreshes_again():
    clock = FakeClock()
    answers: list[object] = [OSError("sts down"), {"access_key": "A"}]
    calls = []

    def refresh():
        calls.append(clock.now)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    held = HeldFailure(refresh, hold=2.0, clock=clock)
    with pytest.raises(OSError, match="sts down"):
        held()
    clock.now += 1.9
    with pytest.raises(OSError, match="sts down") as again:
        held()
    assert len(calls) == 1 and again.value.__traceback__ is not None
    clock.now += 0.2
    assert held() == {"access_key": "A"} and len(calls) == 2


def test_credential_clients_of_an_owned_session_take_the_session_timeouts():
    sts = owned_session(TIMEOUTS).client("sts", region_name=LOCAL)
    config = sts.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.0, 1.0)
    assert config.retries["total_max_attempts"] == 2


def test_a_callers_boto3_session_is_left_as_it_is(lab):
    mine = boto3.session.Session()
    session = rp.RegionSession(lab.regions, endpoints=lab.endpoints, timeouts=TIMEOUTS, boto3_session=mine)
    lab._sessions.append(session)
    session.client.get_item(TableName=TABLE, Key=ITEM_KEY)
    assert mine._session.get_default_client_config() is None


def test_the_regions_clients_keep_their_own_timeouts_and_one_attempt(lab, assume_role_profile):
    session = _session(lab)
    config = session.replicas[LOCAL].client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.0, 1.0)
    assert config.retries == {"mode": "legacy", "total_max_attempts": 1}
    assert isinstance(replica._process_session(TIMEOUTS)._session.get_default_client_config(), Config)


def test_sessions_with_ever_new_timeouts_keep_a_bounded_number_of_boto3_sessions(monkeypatch):
    monkeypatch.setattr(replica, "_SESSIONS", {})
    first = replica._process_session(TIMEOUTS)
    with replica._SESSIONS_LOCK:
        for n in range(1, 3 * replica.MAX_OWNED_SESSIONS):
            replica._process_session(rp.Timeouts(connect=1.0, read=1.0 + n / 100, attempts=2))
            assert replica._process_session(TIMEOUTS) is first  # the one in use stays
    assert sum(len(by_timeouts) for by_timeouts in replica._SESSIONS.values()) <= replica.MAX_OWNED_SESSIONS
