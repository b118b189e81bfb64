"""``regionproxy evacuate`` and ``restore``: a whole fleet acted on from a
shell through its Redis (a real redis-server), the app's sessions follow."""

from __future__ import annotations

import pytest

from regionproxy._cli.main import main
from regionproxy._regions.breaker import CLOSED, EVACUATED
from regionproxy.testing import wait_for
from tests.support import FLEET_TIMEOUT, LOCAL, REGIONS, TABLE


@pytest.fixture
def fleet_env(monkeypatch, redis):
    monkeypatch.setenv("REGIONPROXY_REGIONS", ",".join(REGIONS))
    monkeypatch.setenv("REGIONPROXY_FLEET_URL", redis.url)
    monkeypatch.delenv("REGIONPROXY_FLEET_NAME", raising=False)


def test_evacuate_and_restore_from_the_command_line_reach_the_apps_sessions(lab, redis, fleet_env, capsys):
    session = lab.session(fleet=redis.url, fleet_timeout=FLEET_TIMEOUT)  # the name derived the same way from the same settings
    session.table(TABLE).get_item(Key={"pk": "a", "sk": "s"})
    assert main(["evacuate", LOCAL, "--by", "oncall"]) == 0
    assert wait_for(lambda: session.breaker_state(LOCAL) == EVACUATED)
    assert session.status()["fleet"]["actions"][LOCAL]["by"] == "oncall"
    assert "evacuated in fleet" in capsys.readouterr().out
    later = lab.session(fleet=redis.url, fleet_timeout=FLEET_TIMEOUT)
    later.prepare()
    assert later.breaker_state(LOCAL) == EVACUATED  # kept in Redis until restored
    assert main(["restore", LOCAL]) == 0
    assert wait_for(lambda: session.breaker_state(LOCAL) == later.breaker_state(LOCAL) == CLOSED)
    assert session.status()["fleet"]["actions"][LOCAL]["by"].startswith("cli ")


def test_without_a_fleet_the_command_says_what_to_set(monkeypatch, capsys):
    monkeypatch.setenv("REGIONPROXY_REGIONS", ",".join(REGIONS))
    monkeypatch.delenv("REGIONPROXY_FLEET_URL", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["evacuate", LOCAL])
    assert exited.value.code == 2 and "REGIONPROXY_FLEET_URL" in capsys.readouterr().err


def test_an_unknown_region_is_refused(fleet_env, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["evacuate", "ap-south-1"])
    assert exited.value.code == 2 and "ap-south-1" in capsys.readouterr().err


def test_a_redis_that_does_not_answer_fails_the_command_without_showing_the_password(monkeypatch, capsys):
    from tests.support import free_port

    monkeypatch.setenv("REGIONPROXY_REGIONS", ",".join(REGIONS))
    monkeypatch.setenv("REGIONPROXY_FLEET_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert main(["restore", LOCAL]) == 1
    captured = capsys.readouterr()
    assert "***" in captured.err and "hunter2" not in captured.err + captured.out
