"""The errors regionproxy raises: one base, a builtin a caller would catch
where one fits, and the attributes and message that say what happened."""

from __future__ import annotations

import pytest

from regionproxy.errors import (
    AllRegionsFailed,
    AmbiguousWriteError,
    ConfigError,
    RegionProxyError,
    RegionUnavailable,
    ReplicaMissingError,
)
from tests.support import LOCAL, REMOTE

TIMEOUT = TimeoutError("read timeout")


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ConfigError("bad", setting="regions"), id="config"),
        pytest.param(AllRegionsFailed("GetItem", {}), id="all-regions-failed"),
        pytest.param(RegionUnavailable(LOCAL, "open"), id="region-unavailable"),
        pytest.param(ReplicaMissingError(REMOTE, ["t"], LookupError("no table")), id="replica-missing"),
        pytest.param(AmbiguousWriteError(LOCAL, "UpdateItem", TIMEOUT), id="ambiguous-write"),
    ],
)
def test_every_error_is_a_region_proxy_error(error):
    assert isinstance(error, RegionProxyError)


def test_a_config_error_is_a_value_error_naming_the_setting():
    error = ConfigError("regions must be a list", setting="regions")
    assert isinstance(error, ValueError)
    assert (error.setting, str(error)) == ("regions", "regions must be a list")


def test_all_regions_failed_names_each_regions_error_in_the_order_tried():
    errors = {REMOTE: TIMEOUT, LOCAL: RegionUnavailable(LOCAL, "open")}
    error = AllRegionsFailed("GetItem", errors)
    assert (error.operation, list(error.errors)) == ("GetItem", [REMOTE, LOCAL])
    assert str(error) == (
        f"GetItem failed in every region ({REMOTE}: TimeoutError: read timeout; "
        f"{LOCAL}: RegionUnavailable: region {LOCAL} not tried: breaker open)"
    )


def test_all_regions_failed_keeps_its_own_copy_of_the_errors():
    errors = {LOCAL: TIMEOUT}
    error = AllRegionsFailed("GetItem", errors)
    errors.clear()
    assert error.errors == {LOCAL: TIMEOUT}


def test_all_regions_failed_without_regions_says_so():
    assert str(AllRegionsFailed("GetItem", {})) == "GetItem failed in every region (no region configured)"


def test_a_missing_replica_names_region_and_tables_and_is_caused_by_dynamodbs_error():
    cause = LookupError("ResourceNotFoundException")
    error = ReplicaMissingError(REMOTE, ["a", "b"], cause)
    assert (error.region, error.tables, error.error, error.__cause__) == (REMOTE, ["a", "b"], cause, cause)
    assert str(error).startswith(f"no replica of a, b in {REMOTE} ")


def test_an_ambiguous_write_says_where_what_and_why_it_was_not_repeated():
    error = AmbiguousWriteError(LOCAL, "UpdateItem", TIMEOUT)
    assert (error.region, error.operation, error.error) == (LOCAL, "UpdateItem", TIMEOUT)
    assert str(error) == (
        f"UpdateItem outcome unknown in {LOCAL} (TimeoutError: read timeout); "
        "not repeated elsewhere because it is not idempotent"
    )
