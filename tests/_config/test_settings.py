"""Settings and REGIONPROXY_* variables: wrong values fail at construction,
as a ConfigError naming the setting or variable."""

from __future__ import annotations

import math

import boto3
import botocore.session
import pytest
from botocore.config import Config

import regionproxy as rp
from regionproxy._config.environment import ENVIRONMENT, settings_from_env, unknown_variables
from regionproxy._config.settings import (
    BreakerPolicy,
    CachePolicy,
    HedgePolicy,
    Settings,
    Timeouts,
    check_session_arguments,
    endpoint_problem,
)

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
    assert settings.hedge == HedgePolicy(delay="p95", budget=0.05)


def test_every_variable_is_read():
    """The README's table and ENVIRONMENT agree with what the test above sets."""
    assert set(ENVIRONMENT) == {
        "REGIONS", "ENDPOINTS", "WRITE_MODE", "PRIMARY_REGION", "WRITE_FAILOVER", "BREAKER_FAIL_MAX",
        "BREAKER_RESET_TIMEOUT", "BREAKER_SUCCESS_THRESHOLD", "CONNECT_TIMEOUT", "READ_TIMEOUT", "ATTEMPTS",
        "CACHE_MAXSIZE", "CACHE_TTL", "STICKY_SECONDS", "THROTTLING_IS_FAULT", "KEY_SCHEMAS", "MAX_POOL_CONNECTIONS",
        "HEDGE_DELAY", "HEDGE_BUDGET", "CACHE_NEGATIVE_TTL", "CACHE_TABLES",
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
    ({**REGIONS, "REGIONPROXY_PRIMARY_REGION": "mars-1", "REGIONPROXY_WRITE_MODE": "primary"}, "REGIONPROXY_PRIMARY_REGION", "primary"),
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


def _settings(**kwargs):
    return Settings(**{"regions": TWO, **kwargs})


SETTINGS_CASES = [
    ({"regions": "eu-west-3"}, "regions", "regions-as-string"),
    ({"regions": {"eu-west-3", "us-east-1"}}, "regions", "regions-as-set-has-no-order"),
    ({"regions": None}, "regions", "regions-none"),
    ({"regions": []}, "regions", "no-regions"),
    ({"regions": ["eu-west-3", "eu-west-3"]}, "regions", "duplicate-regions"),
    ({"regions": ["eu west 3"]}, "regions", "region-with-spaces"),
    ({"regions": ["eu-west-3\n"]}, "regions", "region-with-newline"),
    ({"regions": ["local"]}, "regions", "not-an-aws-region"),
    ({"regions": [b"eu-west-3"]}, "regions", "region-bytes"),
    ({"endpoints": None}, "endpoints", "endpoints-none"),
    ({"endpoints": [("eu-west-3", "http://a")]}, "endpoints", "endpoints-as-list"),
    ({"endpoints": {"ap-south-1": "http://x"}}, "endpoints", "endpoint-for-unknown-region"),
    ({"endpoints": {"eu-west-3": "127.0.0.1:1"}}, "endpoints", "endpoint-not-a-url"),
    ({"endpoints": {"eu-west-3": "http://h:99999"}}, "endpoints", "endpoint-port"),
    ({"endpoints": {"eu-west-3": b"http://h"}}, "endpoints", "endpoint-bytes"),
    ({"write_mode": "all"}, "write_mode", "write-mode"),
    ({"write_mode": None}, "write_mode", "write-mode-none"),
    ({"write_mode": ["local"]}, "write_mode", "write-mode-list"),
    ({"write_mode": "primary", "primary_region": "ap-south-1"}, "primary_region", "primary-not-a-region"),
    ({"write_mode": "primary", "primary_region": 0}, "primary_region", "primary-number"),
    ({"primary_region": "us-east-1"}, "primary_region", "primary-in-local-mode"),
    ({"write_failover": "false"}, "write_failover", "failover-string-false"),
    ({"write_failover": 1}, "write_failover", "failover-int"),
    ({"throttling_is_fault": "no"}, "throttling_is_fault", "throttling-string"),
    ({"throttling_is_fault": None}, "throttling_is_fault", "throttling-none"),
    ({"breaker": None}, "breaker", "breaker-none"),
    ({"breaker": {"fail_max": 3}}, "breaker", "breaker-dict"),
    ({"timeouts": 1.0}, "timeouts", "timeouts-number"),
    ({"cache": True}, "cache", "cache-true"),
    ({"cache": {"ttl": 5}}, "cache", "cache-dict"),
    ({"hedge": 0.05}, "hedge", "hedge-number"),
    ({"sticky_seconds": -1}, "sticky_seconds", "sticky-negative"),
    ({"sticky_seconds": math.nan}, "sticky_seconds", "sticky-nan"),
    ({"sticky_seconds": 10**400}, "sticky_seconds", "sticky-huge-int"),
    ({"sticky_seconds": "5"}, "sticky_seconds", "sticky-string"),
    ({"key_schemas": None}, "key_schemas", "schemas-none"),
    ({"key_schemas": {"Blog": "PK"}}, "key_schemas", "schema-a-string-not-a-tuple"),
    ({"key_schemas": {"Blog": ()}}, "key_schemas", "schema-no-keys"),
    ({"key_schemas": {"Blog": ("PK", "SK", "X")}}, "key_schemas", "schema-three-keys"),
    ({"key_schemas": {"Blog": ("PK", "PK")}}, "key_schemas", "schema-same-key"),
    ({"key_schemas": {"Blog": ("",)}}, "key_schemas", "schema-empty-key"),
    ({"key_schemas": {"Blog": ("x" * 256,)}}, "key_schemas", "schema-long-key"),
    ({"key_schemas": {"": ("PK",)}}, "key_schemas", "schema-empty-table"),
    ({"key_schemas": {"Blog ": ("PK",)}}, "key_schemas", "schema-table-with-space"),
    ({"key_schemas": {1: ("PK",)}}, "key_schemas", "schema-table-number"),
    ({"client_config": {"max_pool_connections": 5}}, "client_config", "client-config-dict"),
    ({"client_config": Config(read_timeout=30)}, "client_config", "client-config-sets-timeouts"),
    ({"client_config": Config(retries={"max_attempts": 9})}, "client_config", "client-config-sets-retries"),
    ({"client_config": Config(region_name="us-east-1")}, "client_config", "client-config-sets-region"),
    ({"client_config": Config(max_pool_connections="10")}, "client_config", "client-config-pool-string"),
]


@pytest.mark.parametrize(("kwargs", "setting"), [pytest.param(kw, s, id=id_) for kw, s, id_ in SETTINGS_CASES])
def test_bad_setting_is_a_config_error_naming_it(kwargs, setting):
    with pytest.raises(rp.ConfigError) as caught:
        _settings(**kwargs)
    assert caught.value.setting == setting


def test_every_setting_has_a_bad_case():
    assert {setting for _, setting, _ in SETTINGS_CASES} == set(Settings.__dataclass_fields__)


def test_settings_without_regions_is_a_config_error():
    with pytest.raises(rp.ConfigError) as caught:
        Settings()
    assert caught.value.setting == "regions"


def test_good_settings_are_kept_and_copied():
    regions, endpoints, schemas = ["eu-west-3", "us-east-1"], {"us-east-1": "https://dynamodb.us-east-1.amazonaws.com"}, {}
    schemas["Blog"] = ["PK", "SK"]
    settings = Settings(
        regions=regions,
        endpoints=endpoints,
        write_mode="primary",
        primary_region="us-east-1",
        write_failover=True,
        cache=CachePolicy(maxsize=1, ttl=86_400),
        sticky_seconds=3600,
        key_schemas=schemas,
        client_config=Config(max_pool_connections=1000, user_agent_extra="x"),
    )
    regions.append("ap-south-1")
    endpoints.clear()
    schemas.clear()
    assert settings.regions == TWO
    assert settings.endpoints == {"us-east-1": "https://dynamodb.us-east-1.amazonaws.com"}
    assert settings.key_schemas == {"Blog": ("PK", "SK")}
    assert settings.primary == "us-east-1"


def test_every_region_botocore_knows_is_accepted():
    session = botocore.session.get_session()
    regions = [r for p in session.get_available_partitions() for r in session.get_available_regions("dynamodb", p)]
    assert len(regions) > 20
    for region in regions:
        assert Settings(regions=[region]).regions == (region,)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:4501", id="loopback"),
        pytest.param("https://dynamodb.eu-west-3.amazonaws.com", id="aws"),
        pytest.param("http://[::1]:8000", id="ipv6"),
        pytest.param("http://localhost:8000/", id="slash"),
        pytest.param("http://proxy.internal/dynamodb", id="path"),
    ],
)
def test_good_endpoint_urls(url):
    assert endpoint_problem(url) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        pytest.param("127.0.0.1:4501", "http://", id="no-scheme"),
        pytest.param("ftp://host", "http://", id="scheme"),
        pytest.param("http:/host", "http://", id="one-slash"),
        pytest.param("http://", "no host", id="no-host"),
        pytest.param("http://host:", "port", id="empty-port"),
        pytest.param("http://host:0", "port", id="port-zero"),
        pytest.param("http://host:65536", "port", id="port-too-big"),
        pytest.param("http://host:+80", "port", id="port-sign"),
        pytest.param("http://host:80:90", "host", id="two-ports"),
        pytest.param("http://user:pw@host", "credentials", id="userinfo"),
        pytest.param("http://host/?x=1", "query", id="query"),
        pytest.param("http://host#x", "fragment", id="fragment"),
        pytest.param("http://ho st", "spaces", id="space"),
        pytest.param("http://host\n", "spaces", id="newline"),
        pytest.param("http://h\u00f6st", "ASCII", id="non-ascii"),
        pytest.param("http://-host", "host", id="label-dash"),
        pytest.param("http://under_score", "host", id="underscore"),
        pytest.param("http://999.1.1.1", "IPv4", id="bad-ipv4"),
        pytest.param("http://[::1", "URL", id="unclosed-ipv6"),
        pytest.param("http://[::g]", "IPv", id="bad-ipv6"),
    ],
)
def test_bad_endpoint_urls(url, problem):
    assert problem in (endpoint_problem(url) or "")


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


def _arguments(**changes):
    return {"boto3_session": None, "listeners": (), "breaker_storage": None, "clock": lambda: 0.0, "monotonic": lambda: 0, **changes}


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        pytest.param({"boto3_session": "default"}, "boto3_session", id="session-string"),
        pytest.param({"boto3_session": boto3.client}, "boto3_session", id="session-module-function"),
        pytest.param({"listeners": print}, "listeners", id="one-listener-not-in-a-list"),
        pytest.param({"listeners": "print"}, "listeners", id="listeners-string"),
        pytest.param({"listeners": None}, "listeners", id="listeners-none"),
        pytest.param({"listeners": [print, "log"]}, "listeners", id="listener-not-callable"),
        pytest.param({"listeners": {"metrics": print}}, "listeners", id="listeners-dict"),
        pytest.param({"breaker_storage": object()}, "breaker_storage", id="storage-not-a-factory"),
        pytest.param({"clock": 1.0}, "clock", id="clock-called-already"),
        pytest.param({"clock": lambda: "now"}, "clock", id="clock-answers-text"),
        pytest.param({"monotonic": None}, "monotonic", id="monotonic-none"),
        pytest.param({"monotonic": lambda: 1 / 0}, "monotonic", id="monotonic-raises"),
        pytest.param({"sleep": 0.1}, "sleep", id="sleep-not-callable"),
    ],
)
def test_bad_session_argument_is_a_config_error_naming_it(changes, setting):
    with pytest.raises(rp.ConfigError) as caught:
        check_session_arguments(**_arguments(**changes))
    assert caught.value.setting == setting


def test_session_arguments_return_listeners_once_iterated():
    listeners = check_session_arguments(**_arguments(listeners=iter([print]), boto3_session=boto3.session.Session()))
    assert listeners == (print,)


def test_unknown_variables_are_listed_not_refused():
    environ = {**REGIONS, "REGIONPROXY_READ_TIMOUT": "1", "REGIONPROXY_READINESS": "any", "PATH": "/bin"}
    assert unknown_variables(environ, {"READINESS"}) == ["REGIONPROXY_READ_TIMOUT"]
    assert unknown_variables(environ, {"REGIONPROXY_READINESS"}) == ["REGIONPROXY_READ_TIMOUT"]
    assert settings_from_env(environ).regions == TWO
