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
