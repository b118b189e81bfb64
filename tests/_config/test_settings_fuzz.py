"""Config fuzz: every value, of any type, for any setting or variable, is
either accepted or a ConfigError naming that setting or variable; never
another exception, never an error blamed on something else."""

from __future__ import annotations

import math
import os
import string

import pytest
from botocore.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regionproxy._config.environment import ENV_PREFIX, ENVIRONMENT, settings_from_env
from regionproxy._config.policies import BreakerPolicy, CachePolicy, HedgePolicy, Timeouts
from regionproxy._config.settings import (
    REGION_NAME,
    WRITE_MODES,
    Settings,
    check_fleet_name,
    check_fleet_url,
    check_session_arguments,
    endpoint_problem,
)
from regionproxy.errors import ConfigError

# CONFIG_FUZZ_EXAMPLES=5000 for a deeper run than the suite's.
FUZZ = settings(
    max_examples=int(os.environ.get("CONFIG_FUZZ_EXAMPLES", "100")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TWO = ("eu-west-3", "us-east-1")
REAL_REGIONS = st.sampled_from(["eu-west-3", "us-east-1", "us-gov-west-1", "us-isob-east-1", "eusc-de-east-1", "cn-north-1"])

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # nan and the infinities included
    st.sampled_from([math.nan, math.inf, -math.inf, -1, -1.0, 0, 0.0, 1e10, 1e-300, 10**400, -(10**400), 2**63]),
    st.text(max_size=20),
    st.binary(max_size=10),
)
WILD = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.tuples(SCALARS),
    st.dictionaries(st.text(max_size=8), SCALARS, max_size=3),
    st.frozensets(st.text(max_size=5), max_size=3),
    st.builds(object),
)

HOSTS = st.one_of(
    st.sampled_from(
        ["127.0.0.1", "localhost", "[::1]", "[::g]", "999.1.1.1", "-x", "a..b", "dynamodb.eu-west-3.amazonaws.com", ""]
    ),
    st.text(max_size=12),
)
PORTS = st.one_of(st.just(""), st.integers(-1, 70_000).map(lambda port: f":{port}"), st.text(max_size=4).map(lambda t: ":" + t))
URLS = st.one_of(
    st.builds(
        lambda scheme, userinfo, host, port, tail: f"{scheme}{userinfo}{host}{port}{tail}",
        st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "http:/", "", "http:///"]),
        st.sampled_from(["", "u:p@", "@"]),
        HOSTS,
        PORTS,
        st.sampled_from(["", "/", "/path", "?q=1", "#f", " ", "\n", "/\u00e9"]),
    ),
    st.text(max_size=30),
    SCALARS,
)
NAMES = st.one_of(st.text(max_size=10), st.text(string.ascii_letters + "_.-:", min_size=1, max_size=12), SCALARS)

NEAR_VALID = {
    "regions": st.one_of(
        st.lists(REAL_REGIONS, max_size=4),
        st.lists(st.one_of(REAL_REGIONS, st.text(max_size=12), SCALARS), max_size=3),
        st.lists(REAL_REGIONS, max_size=3).map(tuple),
        st.lists(REAL_REGIONS, max_size=3).map(set),
    ),
    "endpoints": st.dictionaries(st.one_of(st.sampled_from(TWO), REAL_REGIONS, SCALARS), URLS, max_size=2),
    "write_mode": st.sampled_from(["local", "primary", "Local", " primary", ""]),
    "primary_region": st.one_of(st.sampled_from(TWO), REAL_REGIONS),
    "write_failover": st.booleans(),
    "breaker": st.builds(BreakerPolicy),
    "timeouts": st.builds(Timeouts),
    "cache": st.one_of(st.none(), st.builds(CachePolicy)),
    "hedge": st.one_of(st.none(), st.builds(HedgePolicy)),
    "sticky_seconds": st.one_of(st.floats(-1, 4000), st.integers(-1, 4000)),
    "throttling_is_fault": st.booleans(),
    "key_schemas": st.dictionaries(
        NAMES, st.one_of(st.lists(NAMES, max_size=3), st.lists(NAMES, max_size=3).map(tuple), NAMES), max_size=3
    ),
    "latency_window": st.one_of(st.floats(-1, 100), st.integers(-1, 100)),
    "consistency": st.dictionaries(NAMES, st.one_of(st.sampled_from(["strong", "eventual", "STRONG"]), NAMES), max_size=3),
    "consistent_read_failover": st.one_of(st.sampled_from(["serve", "refuse", "Serve"]), NAMES),
    "client_config": st.one_of(
        st.none(),
        st.builds(Config),
        st.builds(lambda pool: Config(max_pool_connections=pool), SCALARS),
        st.builds(lambda timeout: Config(read_timeout=timeout), SCALARS),
        st.builds(lambda agent: Config(user_agent_extra=agent), st.text(max_size=8)),
    ),
    "fleet": st.one_of(
        st.none(),
        URLS.map(lambda url: str(url).replace("http", "redis", 1)),
        st.builds(lambda db: f"redis://h:6379/{db}", st.one_of(st.integers(-1, 10**6), st.text(max_size=4))),
    ),
    "fleet_name": NAMES,
    "fleet_timeout": st.one_of(st.floats(-1, 10), st.integers(-1, 10)),
}
# What each field needs around it to be valid when the field itself is.
CONTEXT = {
    "regions": {},
    "primary_region": {"regions": TWO, "write_mode": "primary"},
}


def _check(build, blamed):
    """``build()`` either succeeds or raises a ConfigError whose ``setting`` is ``blamed``."""
    try:
        return build()
    except ConfigError as error:
        assert error.setting == blamed, f"{error!r} blames {error.setting!r}, not {blamed!r}"
        assert str(error)
        return None


@pytest.mark.parametrize("name", sorted(Settings.__dataclass_fields__))
@FUZZ
@given(data=st.data())
def test_any_value_of_a_setting_is_accepted_or_a_config_error_naming_it(name, data):
    value = data.draw(st.one_of(WILD, NEAR_VALID[name]), label=name)
    kwargs = {**CONTEXT.get(name, {"regions": TWO}), name: value}
    built = _check(lambda: Settings(**kwargs), name)
    if built is not None:
        # Accepted values keep their meaning: built again from what it holds, it is the same.
        again = Settings(**{field: getattr(built, field) for field in Settings.__dataclass_fields__})
        assert again == built
        _holds(built)


def _holds(built):
    """What every accepted Settings promises the session: real types, sane ranges."""
    assert isinstance(built.regions, tuple) and all(REGION_NAME.fullmatch(region) for region in built.regions)
    assert built.primary in built.regions
    assert all(region in built.regions and endpoint_problem(url) is None for region, url in built.endpoints.items())
    assert built.write_mode in WRITE_MODES
    assert type(built.write_failover) is bool and type(built.throttling_is_fault) is bool
    assert isinstance(built.breaker, BreakerPolicy) and isinstance(built.timeouts, Timeouts)
    assert built.cache is None or isinstance(built.cache, CachePolicy)
    assert built.hedge is None or isinstance(built.hedge, HedgePolicy)
    assert type(built.sticky_seconds) in (int, float) and 0 <= built.sticky_seconds <= 3600
    for table, names in built.key_schemas.items():
        assert isinstance(table, str) and isinstance(names, tuple) and len(names) in (1, 2)
        assert all(isinstance(name, str) and name for name in names)
    assert built.client_config is None or isinstance(built.client_config, Config)
    assert built.fleet is None or (check_fleet_url(built.fleet) and check_fleet_name(built.fleet_name))
    assert type(built.fleet_timeout) in (int, float) and 0 < built.fleet_timeout <= 5


POLICY_FIELDS = [
    (policy, field) for policy in (BreakerPolicy, Timeouts, CachePolicy, HedgePolicy) for field in policy.__dataclass_fields__
]
NUMBERS = st.one_of(SCALARS, st.floats(-1, 2e5), st.integers(-5, 2e7))


@pytest.mark.parametrize(("policy", "field"), POLICY_FIELDS, ids=[f"{p.__name__}.{f}" for p, f in POLICY_FIELDS])
@FUZZ
@given(value=st.one_of(WILD, NUMBERS))
def test_any_value_of_a_policy_field_is_accepted_or_a_config_error_naming_it(policy, field, value):
    built = _check(lambda: policy(**{field: value}), field)
    if built is not None:
        held = getattr(built, field)
        if (policy, field) == (CachePolicy, "tables"):
            assert held is None or (isinstance(held, frozenset) and held and all(isinstance(t, str) for t in held))
            return
        if (policy, field) == (HedgePolicy, "delay") and held == "p95":
            return
        assert not isinstance(held, bool) and isinstance(held, (int, float)) and math.isfinite(held)
        # 0 means "off" for these three (keep no "no such item" answer, never
        # demote a slow region, no floor of hedges); everything else is positive
        zero_allowed = (policy, field) in (
            (CachePolicy, "negative_ttl"), (HedgePolicy, "demote_after"), (HedgePolicy, "min_per_second")
        )
        assert held >= 0 if zero_allowed else held > 0


NUMBER_TEXT = st.one_of(
    st.integers(-(10**6), 10**25).map(str),
    st.floats().map(repr),
    st.floats(0, 400).map(lambda x: f"{x:.3f}"),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "1_0", "\u0665", " 3 ", "+2", "0x10", "1e3", ".5", "5.", "", " "]),
)
WORD_TEXT = st.builds(
    lambda word, pad: pad + word + pad,
    st.sampled_from(["true", "FALSE", "yes", "No", "on", "off", "1", "0", "tru", "local", "primary", "2"]),
    st.sampled_from(["", " ", "\t", "\n"]),
)


def _joined(parts, sep=","):
    return parts.map(sep.join)


ENV_TEXT = {
    "REGIONS": _joined(st.lists(st.one_of(REAL_REGIONS, st.sampled_from(["", " ", "eu west 3", "local"])), max_size=4)),
    "ENDPOINTS": _joined(
        st.lists(
            st.builds(lambda region, url: f"{region}={url}", st.one_of(st.sampled_from(TWO), REAL_REGIONS), URLS.map(str)),
            max_size=3,
        )
    ),
    "PRIMARY_REGION": st.one_of(REAL_REGIONS, st.sampled_from(TWO)),
    "KEY_SCHEMAS": _joined(
        st.lists(
            st.builds(lambda table, keys: f"{table}={keys}", NAMES.map(str), _joined(st.lists(NAMES.map(str), max_size=3), ":")),
            max_size=3,
        )
    ),
}
# What each variable needs around it to be valid when the variable itself is.
ENV_CONTEXT = {
    "REGIONS": {},
    "PRIMARY_REGION": {"REGIONPROXY_REGIONS": ",".join(TWO), "REGIONPROXY_WRITE_MODE": "primary"},
}


@pytest.mark.parametrize("suffix", sorted(ENVIRONMENT))
@FUZZ
@given(data=st.data())
def test_any_value_of_a_variable_is_accepted_or_a_config_error_naming_it(suffix, data):
    variable = ENV_PREFIX + suffix
    text = st.one_of(st.text(max_size=40), NUMBER_TEXT, WORD_TEXT, ENV_TEXT.get(suffix, st.nothing()))
    value = data.draw(st.one_of(text, WILD, NEAR_VALID.get(ENVIRONMENT[suffix][0], st.nothing())), label=variable)
    environ = {**ENV_CONTEXT.get(suffix, {"REGIONPROXY_REGIONS": ",".join(TWO)}), variable: value}
    built = _check(lambda: settings_from_env(environ), variable)
    if built is not None:
        _holds(built)


SESSION_VALUES = {
    "boto3_session": st.one_of(WILD, st.none()),
    "listeners": st.one_of(WILD, st.lists(st.one_of(st.just(print), SCALARS), max_size=3)),
    "breaker_storage": st.one_of(WILD, st.just(lambda region: None)),
    "clock": st.one_of(WILD, st.builds(lambda answer: lambda: answer, SCALARS)),
    "monotonic": st.one_of(WILD, st.builds(lambda answer: lambda: answer, SCALARS)),
    "sleep": st.one_of(WILD, st.just(lambda seconds: None)),
}


@pytest.mark.parametrize("name", sorted(SESSION_VALUES))
@FUZZ
@given(data=st.data())
def test_any_session_argument_is_accepted_or_a_config_error_naming_it(name, data):
    arguments = {"boto3_session": None, "listeners": (), "breaker_storage": None, "clock": lambda: 0.0, "monotonic": lambda: 0.0}
    arguments[name] = data.draw(SESSION_VALUES[name], label=name)
    _check(lambda: check_session_arguments(**arguments), name)
