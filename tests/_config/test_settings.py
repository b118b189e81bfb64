"""Settings: wrong values fail at construction, as a ConfigError naming the
setting; endpoint URLs; the session's own arguments. REGIONPROXY_* variables
are in ``test_environment.py``, the policies in ``test_policies.py``."""

from __future__ import annotations

import math

import boto3
import botocore.session
import pytest
from botocore.config import Config

import regionproxy as rp
from regionproxy._config.policies import CachePolicy
from regionproxy._config.settings import Settings, check_session_arguments, endpoint_problem

TWO = ("eu-west-3", "us-east-1")


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
    ({"latency_window": -0.001}, "latency_window", "latency-window-negative"),
    ({"latency_window": "15ms"}, "latency_window", "latency-window-text"),
    ({"consistency": None}, "consistency", "consistency-none"),
    ({"consistency": {"Orders": "STRONG"}}, "consistency", "consistency-upper-case"),
    ({"consistency": {"Orders": True}}, "consistency", "consistency-bool"),
    ({"consistency": {"Orders ": "strong"}}, "consistency", "consistency-table-with-space"),
    ({"consistent_read_failover": "fail"}, "consistent_read_failover", "consistent-read-failover-unknown"),
    ({"consistent_read_failover": None}, "consistent_read_failover", "consistent-read-failover-none"),
    ({"client_config": {"max_pool_connections": 5}}, "client_config", "client-config-dict"),
    ({"client_config": Config(read_timeout=30)}, "client_config", "client-config-sets-timeouts"),
    ({"client_config": Config(retries={"max_attempts": 9})}, "client_config", "client-config-sets-retries"),
    ({"client_config": Config(region_name="us-east-1")}, "client_config", "client-config-sets-region"),
    ({"client_config": Config(max_pool_connections="10")}, "client_config", "client-config-pool-string"),
    ({"fleet": "http://127.0.0.1:6379"}, "fleet", "fleet-not-redis"),
    ({"fleet": "redis://:hunter2@"}, "fleet", "fleet-no-host"),
    ({"fleet": "redis://:hunter2@h:6379/zero"}, "fleet", "fleet-database-not-a-number"),
    ({"fleet": "redis://:hunter2@h:99999"}, "fleet", "fleet-port"),
    ({"fleet": b"redis://h"}, "fleet", "fleet-bytes"),
    ({"fleet": ""}, "fleet", "fleet-empty"),
    ({"fleet": "redis://h:6379/0?socket_timeout=30"}, "fleet", "fleet-url-sets-the-timeout"),
    ({"fleet": "redis://h:6379/0?retry_on_timeout=yes"}, "fleet", "fleet-url-sets-retries"),
    ({"fleet_name": "two words"}, "fleet_name", "fleet-name-space"),
    ({"fleet_name": ""}, "fleet_name", "fleet-name-empty"),
    ({"fleet_name": "x" * 101}, "fleet_name", "fleet-name-long"),
    ({"fleet_name": 7}, "fleet_name", "fleet-name-number"),
    ({"fleet_timeout": 0}, "fleet_timeout", "fleet-timeout-zero"),
    ({"fleet_timeout": 30}, "fleet_timeout", "fleet-timeout-long"),
    ({"fleet_timeout": "0.05"}, "fleet_timeout", "fleet-timeout-string"),
]


@pytest.mark.parametrize(("kwargs", "setting"), [pytest.param(kw, s, id=id_) for kw, s, id_ in SETTINGS_CASES])
def test_bad_setting_is_a_config_error_naming_it(kwargs, setting):
    with pytest.raises(rp.ConfigError) as caught:
        _settings(**kwargs)
    assert caught.value.setting == setting


def test_every_setting_has_a_bad_case():
    assert {setting for _, setting, _ in SETTINGS_CASES} == set(Settings.__dataclass_fields__)


def test_a_bad_fleet_url_never_shows_its_password():
    with pytest.raises(rp.ConfigError) as caught:
        _settings(fleet="redis://user:hunter2@h:6379/zero")
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)
    built = _settings(fleet="rediss://user:hunter2@h:6380/1")
    assert "hunter2" not in repr(built)


def test_the_default_fleet_name_keeps_two_apps_apart_and_one_app_together():
    blog = _settings(fleet="redis://h", key_schemas={"Blog": ("PK",)})
    shop = _settings(fleet="redis://h", key_schemas={"Orders": ("id",)})
    blog_elsewhere = _settings(fleet="redis://other", key_schemas={"Blog": ("PK",)}, endpoints={"eu-west-3": "http://e:1"})
    assert blog.fleet_name != shop.fleet_name
    assert blog.fleet_name == blog_elsewhere.fleet_name  # another app server of the same app
    assert blog.fleet_name.startswith("eu-west-3.us-east-1.")
    assert _settings(fleet="redis://h", fleet_name="blog-eu").fleet_name == "blog-eu"
    assert _settings().fleet_name is None


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


def _arguments(**changes):
    return {
        "boto3_session": None,
        "listeners": (),
        "breaker_storage": None,
        "clock": lambda: 0.0,
        "monotonic": lambda: 0,
        **changes,
    }


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


# -- a table configured by its ARN (regionproxy._dynamodb.tables) ----------------------

_ARN = "arn:aws:dynamodb:eu-west-3:123456789012:table/Blog"


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(lambda arn: {"cache": rp.CachePolicy(tables=[arn])}, id="cache-tables"),
        pytest.param(lambda arn: {"key_schemas": {arn: ("pk",)}}, id="key-schemas"),
        pytest.param(lambda arn: {"consistency": {arn: "eventual"}}, id="consistency"),
    ],
)
def test_a_table_configured_by_arn_is_configured_by_its_name(settings):
    session = rp.RegionSession(["eu-west-3", "us-east-1"], **settings(_ARN))
    try:
        configured = settings("Blog")
        for name in configured:
            expected = configured[name]
            got = getattr(session.settings, name)
            if name == "cache":
                assert got.tables == expected.tables
            else:
                assert got == expected
    finally:
        session.close()


def test_an_arn_of_no_table_is_a_config_error():
    with pytest.raises(rp.ConfigError):
        rp.CachePolicy(tables=[_ARN + "/index/byDate"])


