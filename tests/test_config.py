"""Settings and REGIONPROXY_* variables: wrong values fail at construction."""

from __future__ import annotations

import pytest

import regionproxy as rp
from regionproxy.config import BreakerPolicy, Timeouts


def test_from_env_builds_every_setting():
    session = rp.RegionSession.from_env(
        {
            "REGIONPROXY_REGIONS": "eu-west-3, us-east-1",
            "REGIONPROXY_ENDPOINTS": "eu-west-3=http://127.0.0.1:1",
            "REGIONPROXY_WRITE_MODE": "primary",
            "REGIONPROXY_PRIMARY_REGION": "us-east-1",
            "REGIONPROXY_WRITE_FAILOVER": "true",
            "REGIONPROXY_BREAKER_FAIL_MAX": "5",
            "REGIONPROXY_BREAKER_RESET_TIMEOUT": "2.5",
            "REGIONPROXY_READ_TIMEOUT": "0.7",
            "REGIONPROXY_CACHE_TTL": "3",
        }
    )
    settings = session.settings
    assert settings.regions == ("eu-west-3", "us-east-1")
    assert settings.endpoints == {"eu-west-3": "http://127.0.0.1:1"}
    assert (settings.write_mode, settings.primary, settings.write_failover) == ("primary", "us-east-1", True)
    assert settings.breaker == BreakerPolicy(fail_max=5, reset_timeout=2.5)
    assert settings.timeouts == Timeouts(read=0.7)
    assert settings.cache == rp.CachePolicy(ttl=3.0)


REGIONS = {"REGIONPROXY_REGIONS": "eu-west-3,us-east-1"}


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        pytest.param({}, "REGIONPROXY_REGIONS", id="regions-missing"),
        pytest.param({"REGIONPROXY_REGIONS": ""}, "REGIONPROXY_REGIONS", id="regions-empty"),
        pytest.param({**REGIONS, "REGIONPROXY_BREAKER_FAIL_MAX": "three"}, "REGIONPROXY_BREAKER_FAIL_MAX", id="nan"),
        pytest.param({**REGIONS, "REGIONPROXY_BREAKER_FAIL_MAX": "0"}, "REGIONPROXY_BREAKER_FAIL_MAX", id="zero"),
        pytest.param({**REGIONS, "REGIONPROXY_READ_TIMEOUT": "-1"}, "REGIONPROXY_READ_TIMEOUT", id="negative-timeout"),
        pytest.param({**REGIONS, "REGIONPROXY_WRITE_MODE": "everywhere"}, "REGIONPROXY_WRITE_MODE", id="write-mode"),
        pytest.param({**REGIONS, "REGIONPROXY_WRITE_FAILOVER": "maybe"}, "REGIONPROXY_WRITE_FAILOVER", id="boolean"),
        pytest.param({**REGIONS, "REGIONPROXY_ENDPOINTS": "eu-west-3"}, "REGIONPROXY_ENDPOINTS", id="endpoint-pairs"),
        pytest.param({**REGIONS, "REGIONPROXY_PRIMARY_REGION": "mars-1"}, "REGIONPROXY_PRIMARY_REGION", id="primary"),
    ],
)
def test_bad_variable_is_a_config_error_naming_it(environ, variable):
    with pytest.raises(rp.ConfigError) as caught:
        rp.RegionSession.from_env(environ)
    assert variable in str(caught.value)
    assert caught.value.setting == variable
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"regions": "eu-west-3"}, id="regions-as-string"),
        pytest.param({"regions": []}, id="no-regions"),
        pytest.param({"regions": ["a", "a"]}, id="duplicate-regions"),
        pytest.param({"regions": ["a"], "endpoints": {"b": "http://x"}}, id="endpoint-for-unknown-region"),
        pytest.param({"regions": ["a"], "endpoints": {"a": "127.0.0.1:1"}}, id="endpoint-not-a-url"),
        pytest.param({"regions": ["a"], "write_mode": "all"}, id="write-mode"),
        pytest.param({"regions": ["a"], "hedge": rp.HedgePolicy()}, id="hedge-not-available"),
    ],
)
def test_bad_constructor_argument_is_a_config_error(kwargs):
    with pytest.raises(rp.ConfigError):
        rp.RegionSession(**kwargs)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: BreakerPolicy(fail_max=0), id="fail-max"),
        pytest.param(lambda: BreakerPolicy(reset_timeout=float("nan")), id="nan"),
        pytest.param(lambda: BreakerPolicy(success_threshold=1.5), id="fractional-threshold"),
        pytest.param(lambda: Timeouts(connect=0), id="zero-connect"),
        pytest.param(lambda: Timeouts(attempts=True), id="bool-is-not-a-number"),
        pytest.param(lambda: rp.CachePolicy(maxsize=-1), id="cache-size"),
    ],
)
def test_bad_policy_is_a_config_error(build):
    with pytest.raises(rp.ConfigError):
        build()
