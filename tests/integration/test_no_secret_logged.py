"""No secret is ever logged: every log record of every logger, at DEBUG,
captured through a failover drill in the lab and through a fleet drill with
a password-protected redis-server, carries no AWS secret key, no session
token, no Redis password and no URL with credentials in it.

The records are checked as a handler would write them (message, arguments,
exception text and stack), so a secret hidden in an exception's repr or a
formatted header dict is found too. botocore's own DEBUG records (its wire
trace: request headers, canonical request) are included: a user who turns
on DEBUG logging to debug a failover must not leak the session token.
"""

from __future__ import annotations

import contextlib
import logging
import time
import urllib.parse
import uuid

import boto3
import pytest

import regionproxy as rp
from regionproxy.testing.lab import wait_for
from tests.support import LOCAL, REMOTE, TABLE

ACCESS_KEY = "AKIALOGCAPTURETEST01"
SECRET_KEY = "sEcReT/" + uuid.uuid4().hex + "+KeY"
SESSION_TOKEN = "ToKeN" + uuid.uuid4().hex * 4
REDIS_PASSWORD = "rEdIs-" + uuid.uuid4().hex


class _Everything(logging.Handler):
    """Keeps every record, formatted as a handler with a full format would."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.stack_info:
            text += "\n" + record.stack_info
        self.lines.append(text + " " + repr(record.args))


@contextlib.contextmanager
def every_record():
    """Every logger at DEBUG, and a handler on each one that does not
    propagate (so nothing escapes the root handler); levels and handlers
    restored after."""
    handler = _Everything()
    root = logging.getLogger()
    loggers = [root] + [logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    saved = {logger: (logger.level, logger.disabled) for logger in loggers}
    own = [logger for logger in loggers if logger is root or not logger.propagate]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    for logger in own:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in own:
            logger.removeHandler(handler)
        for logger, (level, disabled) in saved.items():
            logger.setLevel(level)
            logger.disabled = disabled


def _secrets(*extra: str) -> list[str]:
    values = [SECRET_KEY, SESSION_TOKEN, *extra]
    return values + [urllib.parse.quote(v, safe="") for v in values]


def _assert_clean(handler: _Everything, secrets: list[str]) -> None:
    assert handler.lines, "no record captured: the capture itself is broken"
    for line in handler.lines:
        for secret in secrets:
            assert secret not in line, f"a secret in a log record: {line[:400]}"


def _credentials() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=SESSION_TOKEN,
        region_name=LOCAL,
    )


def _drill(session, lab) -> None:
    """Writes and reads, then the local region refused, answering 500s and
    blackholed; served from the remote region throughout; then healed."""
    table = session.table(TABLE)
    for n in range(3):
        table.put_item(Item={"pk": f"k{n}", "sk": "s", "v": n})
        assert table.get_item(Key={"pk": f"k{n}", "sk": "s"}, ConsistentRead=True)["Item"]["v"] == n
    for mode, params in (("refuse", {}), ("error", {"status": 500}), ("blackhole", {})):
        lab.fault(LOCAL, mode, **params)
        for n in range(3):
            table.put_item(Item={"pk": f"{mode}{n}", "sk": "s", "v": n})
            table.get_item(Key={"pk": f"k{n}", "sk": "s"})
        lab.heal(LOCAL)
    session.status()


def test_a_failover_drill_logs_no_credential(lab):
    with every_record() as handler:
        session = rp.RegionSession(
            regions=[LOCAL, REMOTE],
            endpoints=lab.endpoints,
            boto3_session=_credentials(),
            timeouts=rp.Timeouts(connect=0.5, read=0.5, attempts=1),
            breaker=rp.BreakerPolicy(fail_max=2, reset_timeout=60.0),
        )
        try:
            _drill(session, lab)
        finally:
            session.close()
    # botocore's wire trace was captured (the test saw the signed requests)
    assert any(line.startswith("botocore") for line in handler.lines)
    _assert_clean(handler, _secrets())


@pytest.mark.parametrize("redis", [{"password": REDIS_PASSWORD}], indirect=True)
def test_a_fleet_drill_logs_no_credential_nor_the_redis_password(lab, redis):
    assert REDIS_PASSWORD in redis.url or urllib.parse.quote(REDIS_PASSWORD) in redis.url
    with every_record() as handler:
        sessions = [
            rp.RegionSession(
                regions=[LOCAL, REMOTE],
                endpoints=lab.endpoints,
                boto3_session=_credentials(),
                timeouts=rp.Timeouts(connect=0.5, read=0.5, attempts=1),
                breaker=rp.BreakerPolicy(fail_max=2, reset_timeout=60.0),
                fleet=redis.url,
                fleet_timeout=0.2,
            )
            for _ in range(2)
        ]
        try:
            one, two = sessions
            _drill(one, lab)
            one.evacuate(LOCAL, by="drill")
            wait_for(lambda: two.status()["regions"][LOCAL].get("evacuated"), timeout=10)
            one.restore(LOCAL, by="drill")
            # Redis goes away and comes back: the link logs its reconnection.
            redis.kill()
            _drill(two, lab)
            redis.restart()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not two.status().get("fleet", {}).get("connected"):
                two.table(TABLE).get_item(Key={"pk": "k0", "sk": "s"})
                time.sleep(0.1)
        finally:
            for session in sessions:
                session.close()
    assert any("regionproxy" in line.split(" ", 1)[0] for line in handler.lines)
    _assert_clean(handler, _secrets(REDIS_PASSWORD, redis.url))
