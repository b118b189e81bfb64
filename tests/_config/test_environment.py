"""REGIONPROXY_* variables: every one is read into its setting, typed values
from a framework's settings are taken as they are, and a wrong value fails as
a ConfigError naming the variable."""

from __future__ import annotations

import pytest
from botocore.config import Config

import regionproxy as rp
from regionproxy._config.environment import ENVIRONMENT, settings_from_env, unknown_variables
from regionproxy._config.policies import BreakerPolicy, CachePolicy, HedgePolicy, Timeouts
from regionproxy._config.settings import Settings

REGIONS = {"REGIONPROXY_REGIONS": "eu-west-3,us-east-1"}
TWO = ("eu-west-3", "us-east-1")


def test_from_env_builds_every_setting():
    settings = settings_from_env(
        {
            "REGIONPROXY_REGIONS": " eu-west-3 , us-east-1 ",
            "REGIONPROXY_ENDPOINTS": "eu-west-3=http://127.0.0.1:1, us-east-1 = http://[::1]:2",
            "REGIONPROXY_WRITE_MODE": "primary",
            "REGIONPROXY_PRIMARY_REGION": "us-east-1",
            "REGIONPROXY_WRITE_FAILOVER": "true",
            "REGIONPROXY_BREAKER_FAIL_MAX": "5",
            "REGIONPROXY_BREAKER_RESET_TIMEOUT": "2.5",
            "REGIONPROXY_BREAKER_SUCCESS_THRESHOLD": "2",
            "REGIONPROXY_CONNECT_TIMEOUT": "0.2",
            "REGIONPROXY_READ_TIMEOUT": "0.7",
            "REGIONPROXY_ATTEMPTS": "1",
            "REGIONPROXY_CACHE_MAXSIZE": "100",
            "REGIONPROXY_CACHE_TTL": "3",
            "REGIONPROXY_STICKY_SECONDS": "0",
            "REGIONPROXY_THROTTLING_IS_FAULT": "OFF",
            "REGIONPROXY_KEY_SCHEMAS": "Blog=PK:SK, Users = id",
            "REGIONPROXY_MAX_POOL_CONNECTIONS": "50",
            "REGIONPROXY_HEDGE_DELAY": "p95",
            "REGIONPROXY_HEDGE_BUDGET": "0.05",
            "REGIONPROXY_FLEET_URL": " rediss://:pw@redis.internal:6380/2 ",
            "REGIONPROXY_FLEET_NAME": "blog-eu",
            "REGIONPROXY_FLEET_TIMEOUT": "0.1",
            "REGIONPROXY_HEDGE_MIN_PER_SECOND": "5",
            "REGIONPROXY_STRONG_TABLES": "Orders, Carts",
            "REGIONPROXY_LATENCY_WINDOW": "0.02",
            "REGIONPROXY_CONSISTENT_READ_FAILOVER": "refuse",
        }
    )
    assert settings.regions == TWO
    assert settings.endpoints == {"eu-west-3": "http://127.0.0.1:1", "us-east-1": "http://[::1]:2"}
    assert (settings.write_mode, settings.primary, settings.write_failover) == ("primary", "us-east-1", True)
    assert settings.breaker == BreakerPolicy(fail_max=5, reset_timeout=2.5, success_threshold=2)
    assert settings.timeouts == Timeouts(connect=0.2, read=0.7, attempts=1)
    assert settings.cache == CachePolicy(maxsize=100, ttl=3.0)
    assert (settings.sticky_seconds, settings.throttling_is_fault) == (0.0, False)
    assert settings.key_schemas == {"Blog": ("PK", "SK"), "Users": ("id",)}
    assert settings.client_config.max_pool_connections == 50
    assert (settings.fleet, settings.fleet_name, settings.fleet_timeout) == ("rediss://:pw@redis.internal:6380/2", "blog-eu", 0.1)
    assert settings.hedge == HedgePolicy(delay="p95", budget=0.05, min_per_second=5.0)
    assert settings.consistency == {"Orders": "strong", "Carts": "strong"}
    assert settings.consistent_read_failover == "refuse"
    assert settings.latency_window == 0.02


def test_every_variable_is_read():
    """docs/reference/configuration.md's table and ENVIRONMENT agree with what the test above sets."""
    assert set(ENVIRONMENT) == {
        "REGIONS", "ENDPOINTS", "WRITE_MODE", "PRIMARY_REGION", "WRITE_FAILOVER", "BREAKER_FAIL_MAX",
        "BREAKER_RESET_TIMEOUT", "BREAKER_SUCCESS_THRESHOLD", "CONNECT_TIMEOUT", "READ_TIMEOUT", "ATTEMPTS",
        "CACHE_MAXSIZE", "CACHE_TTL", "STICKY_SECONDS", "THROTTLING_IS_FAULT", "KEY_SCHEMAS", "MAX_POOL_CONNECTIONS",
        "HEDGE_DELAY", "HEDGE_BUDGET", "CACHE_NEGATIVE_TTL", "CACHE_TABLES", "FLEET_URL", "FLEET_NAME", "FLEET_TIMEOUT",
        "HEDGE_MIN_PER_SECOND",
        "STRONG_TABLES", "CONSISTENT_READ_FAILOVER", "LATENCY_WINDOW",
    }  # fmt: skip


def test_framework_settings_give_typed_values():
    settings = settings_from_env(
        {
            "REGIONPROXY_REGIONS": ["eu-west-3", "us-east-1"],
            "REGIONPROXY_ENDPOINTS": {"eu-west-3": "http://127.0.0.1:1"},
            "REGIONPROXY_ATTEMPTS": 1,
            "REGIONPROXY_CACHE_TTL": 2.0,
            "REGIONPROXY_WRITE_FAILOVER": False,
            "REGIONPROXY_KEY_SCHEMAS": {"Blog": ["PK", "SK"]},
            "REGIONPROXY_MAX_POOL_CONNECTIONS": 20,
        }
    )
    assert settings.regions == TWO and settings.timeouts.attempts == 1 and settings.cache.ttl == 2.0
    assert settings.key_schemas == {"Blog": ("PK", "SK")}
    assert settings.client_config.max_pool_connections == 20


def test_blank_endpoints_and_key_schemas_mean_none():
    settings = settings_from_env({**REGIONS, "REGIONPROXY_ENDPOINTS": "", "REGIONPROXY_KEY_SCHEMAS": "  "})
    assert settings.endpoints == {} and settings.key_schemas == {}


def test_an_override_replaces_the_variables_of_its_field():
    settings = settings_from_env(
        {**REGIONS, "REGIONPROXY_READ_TIMEOUT": "not even a number"}, timeouts=Timeouts(read=3), regions=["us-east-1"]
    )
    assert settings.timeouts == Timeouts(read=3) and settings.regions == ("us-east-1",)


def test_client_config_override_is_merged_over_the_pool_size():
    given = Config(max_pool_connections=5, user_agent_extra="blog")
    settings = settings_from_env({**REGIONS, "REGIONPROXY_MAX_POOL_CONNECTIONS": "50"}, client_config=given)
    assert (settings.client_config.max_pool_connections, settings.client_config.user_agent_extra) == (5, "blog")
    settings = settings_from_env({**REGIONS, "REGIONPROXY_MAX_POOL_CONNECTIONS": "50"}, client_config=Config(proxies={}))
    assert settings.client_config.max_pool_connections == 50


def test_unknown_override_is_a_config_error_naming_it():
    with pytest.raises(rp.ConfigError) as caught:
        settings_from_env(REGIONS, regoins=["eu-west-3"])
    assert caught.value.setting == "regoins"


def test_a_bad_override_is_named_as_itself():
    with pytest.raises(rp.ConfigError) as caught:
        settings_from_env(REGIONS, sticky_seconds=-1)
    assert caught.value.setting == "sticky_seconds"


ENV_CASES = [
    ({**REGIONS, "REGIONPROXY_FLEET_URL": "redis:/h"}, "REGIONPROXY_FLEET_URL", "fleet-url"),
    ({**REGIONS, "REGIONPROXY_FLEET_URL": ""}, "REGIONPROXY_FLEET_URL", "fleet-url-empty"),
    ({**REGIONS, "REGIONPROXY_FLEET_URL": "redis://h", "REGIONPROXY_FLEET_NAME": "a b"}, "REGIONPROXY_FLEET_NAME", "fleet-name"),
    ({**REGIONS, "REGIONPROXY_FLEET_TIMEOUT": "fast"}, "REGIONPROXY_FLEET_TIMEOUT", "fleet-timeout"),
    ({}, "REGIONPROXY_REGIONS", "regions-missing"),
    ({"REGIONPROXY_REGIONS": ""}, "REGIONPROXY_REGIONS", "regions-empty"),
    ({"REGIONPROXY_REGIONS": " "}, "REGIONPROXY_REGIONS", "regions-blank"),
    ({"REGIONPROXY_REGIONS": "eu-west-3,,us-east-1"}, "REGIONPROXY_REGIONS", "regions-empty-entry"),
    ({"REGIONPROXY_REGIONS": "eu-west-3,"}, "REGIONPROXY_REGIONS", "regions-trailing-comma"),
    ({"REGIONPROXY_REGIONS": "eu west 3"}, "REGIONPROXY_REGIONS", "region-with-spaces"),
    ({"REGIONPROXY_REGIONS": "EU-WEST-3"}, "REGIONPROXY_REGIONS", "region-upper-case"),
    ({"REGIONPROXY_REGIONS": "eu-west-3,eu-west-3"}, "REGIONPROXY_REGIONS", "regions-twice"),
    ({"REGIONPROXY_REGIONS": 5}, "REGIONPROXY_REGIONS", "regions-typed-number"),
    ({**REGIONS, "REGIONPROXY_ENDPOINTS": "eu-west-3"}, "REGIONPROXY_ENDPOINTS", "endpoint-pairs"),
    ({**REGIONS, "REGIONPROXY_ENDPOINTS": "eu-west-3=http://a,,"}, "REGIONPROXY_ENDPOINTS", "endpoint-empty-entry"),
    ({**REGIONS, "REGIONPROXY_ENDPOINTS": "eu-west-3=http://a,eu-west-3=http://b"}, "REGIONPROXY_ENDPOINTS", "twice"),
    ({**REGIONS, "REGIONPROXY_ENDPOINTS": "eu-west-3=127.0.0.1:1"}, "REGIONPROXY_ENDPOINTS", "endpoint-no-scheme"),
    ({**REGIONS, "REGIONPROXY_ENDPOINTS": "ap-south-1=http://a"}, "REGIONPROXY_ENDPOINTS", "endpoint-unknown-region"),
    ({**REGIONS, "REGIONPROXY_ENDPOINTS": {"eu-west-3": 4501}}, "REGIONPROXY_ENDPOINTS", "endpoint-typed-number"),
    ({**REGIONS, "REGIONPROXY_WRITE_MODE": "everywhere"}, "REGIONPROXY_WRITE_MODE", "write-mode"),
    ({**REGIONS, "REGIONPROXY_WRITE_MODE": ""}, "REGIONPROXY_WRITE_MODE", "write-mode-empty"),
    (
        {**REGIONS, "REGIONPROXY_PRIMARY_REGION": "mars-1", "REGIONPROXY_WRITE_MODE": "primary"},
        "REGIONPROXY_PRIMARY_REGION",
        "primary",
    ),
    ({**REGIONS, "REGIONPROXY_PRIMARY_REGION": "us-east-1"}, "REGIONPROXY_PRIMARY_REGION", "primary-in-local-mode"),
    ({**REGIONS, "REGIONPROXY_WRITE_FAILOVER": "maybe"}, "REGIONPROXY_WRITE_FAILOVER", "boolean"),
    ({**REGIONS, "REGIONPROXY_WRITE_FAILOVER": "tru"}, "REGIONPROXY_WRITE_FAILOVER", "boolean-typo"),
    ({**REGIONS, "REGIONPROXY_WRITE_FAILOVER": "false"[:0]}, "REGIONPROXY_WRITE_FAILOVER", "boolean-empty"),
    ({**REGIONS, "REGIONPROXY_WRITE_FAILOVER": "false "}, None, "boolean-with-space-is-fine"),
    ({**REGIONS, "REGIONPROXY_WRITE_FAILOVER": 0}, "REGIONPROXY_WRITE_FAILOVER", "boolean-typed-int"),
    ({**REGIONS, "REGIONPROXY_BREAKER_FAIL_MAX": "three"}, "REGIONPROXY_BREAKER_FAIL_MAX", "nan"),
    ({**REGIONS, "REGIONPROXY_BREAKER_FAIL_MAX": "0"}, "REGIONPROXY_BREAKER_FAIL_MAX", "zero"),
    ({**REGIONS, "REGIONPROXY_BREAKER_FAIL_MAX": "3.0"}, "REGIONPROXY_BREAKER_FAIL_MAX", "fractional"),
    ({**REGIONS, "REGIONPROXY_BREAKER_FAIL_MAX": "1_000"}, "REGIONPROXY_BREAKER_FAIL_MAX", "underscores"),
    ({**REGIONS, "REGIONPROXY_BREAKER_FAIL_MAX": "\u0665"}, "REGIONPROXY_BREAKER_FAIL_MAX", "non-ascii-digit"),
    ({**REGIONS, "REGIONPROXY_BREAKER_RESET_TIMEOUT": "nan"}, "REGIONPROXY_BREAKER_RESET_TIMEOUT", "reset-nan"),
    ({**REGIONS, "REGIONPROXY_BREAKER_RESET_TIMEOUT": "1e999"}, "REGIONPROXY_BREAKER_RESET_TIMEOUT", "reset-overflow"),
    ({**REGIONS, "REGIONPROXY_BREAKER_SUCCESS_THRESHOLD": "1001"}, "REGIONPROXY_BREAKER_SUCCESS_THRESHOLD", "threshold"),
    ({**REGIONS, "REGIONPROXY_CONNECT_TIMEOUT": "inf"}, "REGIONPROXY_CONNECT_TIMEOUT", "connect-inf"),
    ({**REGIONS, "REGIONPROXY_READ_TIMEOUT": "-1"}, "REGIONPROXY_READ_TIMEOUT", "negative-timeout"),
    ({**REGIONS, "REGIONPROXY_READ_TIMEOUT": "1e10"}, "REGIONPROXY_READ_TIMEOUT", "timeout-overflows-sockets"),
    ({**REGIONS, "REGIONPROXY_ATTEMPTS": "11"}, "REGIONPROXY_ATTEMPTS", "attempts"),
    ({**REGIONS, "REGIONPROXY_ATTEMPTS": 2.0}, "REGIONPROXY_ATTEMPTS", "attempts-typed-float"),
    ({**REGIONS, "REGIONPROXY_CACHE_MAXSIZE": "-5"}, "REGIONPROXY_CACHE_MAXSIZE", "cache-size"),
    ({**REGIONS, "REGIONPROXY_CACHE_TTL": "0"}, "REGIONPROXY_CACHE_TTL", "cache-ttl"),
    ({**REGIONS, "REGIONPROXY_STICKY_SECONDS": "3601"}, "REGIONPROXY_STICKY_SECONDS", "sticky"),
    ({**REGIONS, "REGIONPROXY_THROTTLING_IS_FAULT": "nope"}, "REGIONPROXY_THROTTLING_IS_FAULT", "throttling"),
    ({**REGIONS, "REGIONPROXY_KEY_SCHEMAS": "Blog"}, "REGIONPROXY_KEY_SCHEMAS", "schema-pairs"),
    ({**REGIONS, "REGIONPROXY_KEY_SCHEMAS": "Blog=PK:SK:X"}, "REGIONPROXY_KEY_SCHEMAS", "schema-three-keys"),
    ({**REGIONS, "REGIONPROXY_KEY_SCHEMAS": "Blog=PK:"}, "REGIONPROXY_KEY_SCHEMAS", "schema-empty-range"),
    ({**REGIONS, "REGIONPROXY_KEY_SCHEMAS": "Blog=PK:PK"}, "REGIONPROXY_KEY_SCHEMAS", "schema-same-key"),
    ({**REGIONS, "REGIONPROXY_KEY_SCHEMAS": "B g=PK"}, "REGIONPROXY_KEY_SCHEMAS", "schema-table-name"),
    ({**REGIONS, "REGIONPROXY_MAX_POOL_CONNECTIONS": "0"}, "REGIONPROXY_MAX_POOL_CONNECTIONS", "pool-zero"),
    ({**REGIONS, "REGIONPROXY_MAX_POOL_CONNECTIONS": "many"}, "REGIONPROXY_MAX_POOL_CONNECTIONS", "pool-text"),
    ({**REGIONS, "REGIONPROXY_MAX_POOL_CONNECTIONS": True}, "REGIONPROXY_MAX_POOL_CONNECTIONS", "pool-typed-bool"),
    ({**REGIONS, "REGIONPROXY_HEDGE_DELAY": "soon"}, "REGIONPROXY_HEDGE_DELAY", "hedge-delay-word"),
    ({**REGIONS, "REGIONPROXY_CACHE_NEGATIVE_TTL": "-1"}, "REGIONPROXY_CACHE_NEGATIVE_TTL", "cache-negative-ttl"),
    ({**REGIONS, "REGIONPROXY_CACHE_TABLES": "a,,b"}, "REGIONPROXY_CACHE_TABLES", "cache-tables"),
    ({**REGIONS, "REGIONPROXY_HEDGE_DELAY": "0"}, "REGIONPROXY_HEDGE_DELAY", "hedge-delay-zero"),
    ({**REGIONS, "REGIONPROXY_HEDGE_BUDGET": "2"}, "REGIONPROXY_HEDGE_BUDGET", "hedge-budget-over-one"),
    ({**REGIONS, "REGIONPROXY_HEDGE_MIN_PER_SECOND": "-1"}, "REGIONPROXY_HEDGE_MIN_PER_SECOND", "hedge-floor-negative"),
    ({**REGIONS, "REGIONPROXY_LATENCY_WINDOW": "-1"}, "REGIONPROXY_LATENCY_WINDOW", "latency-window-negative"),
    ({**REGIONS, "REGIONPROXY_STRONG_TABLES": "Orders,,Carts"}, "REGIONPROXY_STRONG_TABLES", "strong-tables-empty-name"),
    ({**REGIONS, "REGIONPROXY_CONSISTENT_READ_FAILOVER": "never"}, "REGIONPROXY_CONSISTENT_READ_FAILOVER", "consistent-read-failover-unknown"),
]


@pytest.mark.parametrize(("environ", "variable"), [pytest.param(env, var, id=id_) for env, var, id_ in ENV_CASES])
def test_bad_variable_is_a_config_error_naming_it(environ, variable):
    if variable is None:
        assert isinstance(settings_from_env(environ), Settings)
        return
    with pytest.raises(rp.ConfigError) as caught:
        settings_from_env(environ)
    assert caught.value.setting == variable
    assert variable in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_every_variable_has_a_bad_case():
    named = {variable for _, variable, _ in ENV_CASES if variable}
    assert named == {"REGIONPROXY_" + name for name in ENVIRONMENT}


def test_endpoint_credentials_are_not_echoed():
    with pytest.raises(rp.ConfigError) as caught:
        settings_from_env({**REGIONS, "REGIONPROXY_ENDPOINTS": "eu-west-3=http://me:hunter2@127.0.0.1:1"})
    assert caught.value.setting == "REGIONPROXY_ENDPOINTS"
    assert "hunter2" not in str(caught.value) and "credentials" in str(caught.value)


def test_unknown_variables_lists_the_typos():
    environ = {**REGIONS, "REGIONPROXY_READ_TIMOUT": "1", "REGIONPROXY_READINESS": "any", "PATH": "/bin"}
    assert unknown_variables(environ) == ["REGIONPROXY_READ_TIMOUT"]
    assert unknown_variables(environ, {"REGIONPROXY_READ_TIMOUT"}) == []


def test_an_empty_required_variable_does_not_suggest_unsetting_it():
    with pytest.raises(rp.ConfigError) as caught:
        settings_from_env({"REGIONPROXY_REGIONS": ""})
    assert "unset" not in str(caught.value)
    assert "required" in str(caught.value)


def test_an_empty_variable_with_a_default_suggests_unsetting_it():
    with pytest.raises(rp.ConfigError) as caught:
        settings_from_env({**REGIONS, "REGIONPROXY_CACHE_TTL": " "})
    assert "unset the variable for the default" in str(caught.value)


@pytest.mark.parametrize("text", ["p99", "P50", "fast"])
def test_a_wrong_hedge_delay_word_names_p95(text):
    with pytest.raises(rp.ConfigError) as caught:
        settings_from_env({**REGIONS, "REGIONPROXY_HEDGE_DELAY": text})
    assert caught.value.setting == "REGIONPROXY_HEDGE_DELAY"
    assert "p95" in str(caught.value)


@pytest.mark.parametrize(
    ("typo", "nearest"),
    [
        pytest.param("REGIONPROXY_REGION", "REGIONPROXY_REGIONS", id="region"),
        pytest.param("REGIONPROXY_CACHE_TTLS", "REGIONPROXY_CACHE_TTL", id="cache-ttls"),
        pytest.param("REGIONPROXY_READINES", "REGIONPROXY_READINESS", id="a-middleware-name"),
    ],
)
def test_a_misspelled_variable_fails_naming_the_nearest_known_name(typo, nearest):
    with pytest.raises(rp.ConfigError) as caught:
        rp.RegionSession.from_env({**REGIONS, typo: "5"})
    assert caught.value.setting == typo
    assert f"did you mean {nearest}?" in str(caught.value)


def test_variables_other_parts_read_are_not_typos():
    from regionproxy._web.options import MIDDLEWARE_SETTINGS

    environ = {**REGIONS, "REGIONPROXY_SERVE_KEYS": "a:b", "REGIONPROXY_READINESS": "any", "REGIONPROXY_LAB_CONTROL": "x"}
    assert settings_from_env(environ).regions == TWO
    from regionproxy._config.environment import OTHER_VARIABLES

    assert set(MIDDLEWARE_SETTINGS) <= OTHER_VARIABLES
