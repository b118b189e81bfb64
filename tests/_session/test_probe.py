"""What other parts ask of the session: a probe through a region's breaker
(``probe``), a region's breaker state, the hedge delay. No DynamoDB: each
probe raises what a region would have made botocore raise."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ParamValidationError

import regionproxy as rp
from regionproxy.events import CallFinished
from tests.support import LOCAL, REMOTE, FakeClock, closed_port_url


def _session(**kwargs: Any) -> tuple[rp.RegionSession, list[CallFinished], FakeClock]:
    events: list[CallFinished] = []
    clock = FakeClock(now=1_000.0)
    session = rp.RegionSession(
        [LOCAL, REMOTE],
        endpoints=dict.fromkeys((LOCAL, REMOTE), closed_port_url()),
        breaker=rp.BreakerPolicy(fail_max=1, reset_timeout=10),
        listeners=[lambda event: events.append(event) if isinstance(event, CallFinished) else None],
        clock=clock,
        **kwargs,
    )
    return session, events, clock


def _raises(error: BaseException) -> Any:
    def send(replica: Any) -> None:
        raise error

    return send


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "ListTables")


@pytest.mark.parametrize(
    ("send", "breaker", "outcome", "label"),
    [
        pytest.param(lambda replica: None, "closed", "ok", None, id="answered"),
        pytest.param(_raises(EndpointConnectionError(endpoint_url="x")), "open", "fault", "connection_refused", id="refused"),
        pytest.param(_raises(_client_error("InternalServerError", 500)), "open", "fault", None, id="5xx-is-the-regions"),
        pytest.param(
            _raises(_client_error("UnrecognizedClientException", 400)),
            "closed",
            "caller_error",
            "UnrecognizedClientException",
            id="answered-with-an-error",
        ),
    ],
)
def test_a_probe_gives_its_regions_breaker_the_verdict_and_is_announced(send, breaker, outcome, label):
    session, events, _ = _session()
    answer = session.probe(LOCAL, send)
    assert answer is not None
    assert session.breaker_state(LOCAL) == breaker
    assert [(event.region, event.operation, event.outcome) for event in events] == [(LOCAL, "Probe", outcome)]
    if label is not None:
        assert events[0].error == label
    assert (answer.error is None) == (outcome == "ok")
    session.close()


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(NoCredentialsError(), id="no-credentials"),
        pytest.param(ParamValidationError(report="bad"), id="parameter-validation"),
    ],
)
def test_a_probe_that_never_left_releases_a_half_open_trial_without_a_verdict(error):
    session, events, clock = _session()
    session.probe(LOCAL, _raises(EndpointConnectionError(endpoint_url="x")))  # opens it (fail_max=1)
    assert session.probe(LOCAL, lambda replica: None) is None, "open: kept out"
    clock.now += 11  # due a trial
    answer = session.probe(LOCAL, _raises(error))
    assert answer is not None and answer.verdict is not None and not answer.verdict.sent
    assert session.breaker_state(LOCAL) == "half-open"
    assert [event.outcome for event in events] == ["fault"], "not sent: not announced"
    assert session.probe(LOCAL, lambda replica: None) is not None, "the trial was released: the next probe is one"
    assert session.breaker_state(LOCAL) == "closed"
    session.close()


def test_a_probe_of_an_evacuated_region_is_kept_out():
    session, events, _ = _session()
    session.evacuate(LOCAL)
    assert session.probe(LOCAL, lambda replica: pytest.fail("sent")) is None
    assert session.breaker_state(LOCAL) == "evacuated"
    session.restore(LOCAL)
    assert session.breaker_state(LOCAL) == "closed"
    session.close()


def test_asking_about_a_region_the_session_does_not_have_is_a_config_error():
    session, _, _ = _session()
    with pytest.raises(rp.ConfigError):
        session.breaker_state("ap-south-1")
    with pytest.raises(rp.ConfigError):
        session.probe("ap-south-1", lambda replica: None)
    session.close()


def test_the_hedge_delay_is_the_policys_or_none_without_hedging():
    plain, _, _ = _session()
    hedged, _, _ = _session(hedge=rp.HedgePolicy(delay=0.07))
    assert plain.hedge_delay(LOCAL) is None
    assert hedged.hedge_delay(LOCAL) == 0.07
    plain.close()
    hedged.close()
