"""Policies: breaker, timeouts, cache and hedge values are checked when built;
a wrong one is a ConfigError, and the documented bounds are inclusive."""

from __future__ import annotations

import math

import pytest

import regionproxy as rp
from regionproxy._config.policies import BreakerPolicy, CachePolicy, HedgePolicy, Timeouts
from regionproxy.errors import ConfigError


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: BreakerPolicy(fail_max=0), id="fail-max"),
        pytest.param(lambda: BreakerPolicy(fail_max=1001), id="fail-max-high"),
        pytest.param(lambda: BreakerPolicy(reset_timeout=float("nan")), id="nan"),
        pytest.param(lambda: BreakerPolicy(reset_timeout=0), id="reset-zero"),
        pytest.param(lambda: BreakerPolicy(reset_timeout=86_401), id="reset-over-a-day"),
        pytest.param(lambda: BreakerPolicy(success_threshold=1.5), id="fractional-threshold"),
        pytest.param(lambda: Timeouts(connect=0), id="zero-connect"),
        pytest.param(lambda: Timeouts(read=1e10), id="read-overflows-sockets"),
        pytest.param(lambda: Timeouts(read=300.5), id="read-over-five-minutes"),
        pytest.param(lambda: Timeouts(connect="1"), id="connect-string"),
        pytest.param(lambda: Timeouts(attempts=True), id="bool-is-not-a-number"),
        pytest.param(lambda: Timeouts(attempts=11), id="attempts-high"),
        pytest.param(lambda: CachePolicy(maxsize=-1), id="cache-size"),
        pytest.param(lambda: CachePolicy(maxsize=10_000_001), id="cache-size-high"),
        pytest.param(lambda: CachePolicy(ttl=math.inf), id="cache-ttl-inf"),
        pytest.param(lambda: HedgePolicy(delay=0), id="hedge-delay"),
    ],
)
def test_bad_policy_is_a_config_error(build):
    with pytest.raises(rp.ConfigError):
        build()


def test_policy_bounds_are_inclusive_where_documented():
    assert Timeouts(connect=300, read=300, attempts=10) == Timeouts(300, 300, 10)
    assert BreakerPolicy(fail_max=1000, reset_timeout=86_400, success_threshold=1000).fail_max == 1000
    assert CachePolicy(maxsize=10_000_000, ttl=86_400).maxsize == 10_000_000


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param({"delay": "fast"}, id="delay-word"),
        pytest.param({"delay": 0}, id="delay-zero"),
        pytest.param({"budget": 0}, id="budget-zero"),
        pytest.param({"budget": 1.5}, id="budget-over-one"),
        pytest.param({"floor": 0.5, "ceiling": 0.1}, id="floor-above-ceiling"),
        pytest.param({"window": 0.5}, id="window-short"),
    ],
)
def test_bad_hedge_policy_is_a_config_error(policy):
    with pytest.raises(ConfigError):
        HedgePolicy(**policy)


@pytest.mark.parametrize(
    ("policy", "setting"),
    [
        pytest.param({"negative_ttl": -1}, "negative_ttl", id="negative-ttl-below-zero"),
        pytest.param({"negative_ttl": float("nan")}, "negative_ttl", id="negative-ttl-nan"),
        pytest.param({"negative_ttl": "1"}, "negative_ttl", id="negative-ttl-text"),
        pytest.param({"tables": "Items"}, "tables", id="tables-as-one-string"),
        pytest.param({"tables": []}, "tables", id="tables-empty"),
        pytest.param({"tables": ["no spaces allowed"]}, "tables", id="tables-bad-name"),
        pytest.param({"tables": {"Items": 1}}, "tables", id="tables-dict"),
    ],
)
def test_bad_cache_policy_values_are_config_errors_naming_the_field(policy, setting):
    from regionproxy.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        CachePolicy(**policy)
    assert raised.value.setting == setting


def test_tables_opt_in_and_none_means_every_table():
    assert CachePolicy().caches("Anything")
    policy = CachePolicy(tables=["Blog", "Users"])
    assert policy.caches("Blog") and not policy.caches("Other")


def test_cache_variables_are_read_from_the_environment():
    from regionproxy._config.environment import settings_from_env
    from regionproxy.errors import ConfigError

    env = {"REGIONPROXY_REGIONS": "eu-west-3", "REGIONPROXY_CACHE_NEGATIVE_TTL": "0.5", "REGIONPROXY_CACHE_TABLES": "Blog, Users"}
    assert settings_from_env(env).cache == CachePolicy(negative_ttl=0.5, tables=("Blog", "Users"))
    with pytest.raises(ConfigError) as raised:
        settings_from_env({**env, "REGIONPROXY_CACHE_TABLES": "Blog,,Users"})
    assert raised.value.setting == "REGIONPROXY_CACHE_TABLES"
