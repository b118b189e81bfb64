"""Table kinds (issue 20): MRSC or MREC, declared or learned once from
DescribeTable; a failed description remembered; a witness listed as a
session region is a ConfigError once the table says so."""

from __future__ import annotations

import pytest

import regionproxy as rp
from regionproxy._dynamodb.consistency import EVENTUAL, STRONG, TableKinds, kind_of, witnesses_of
from tests.support import LOCAL, REMOTE, FakeClock

MRSC = {"MultiRegionConsistency": "STRONG", "Replicas": [{"RegionName": REMOTE}]}
WITNESSED = {**MRSC, "GlobalTableWitnesses": [{"RegionName": "us-west-2", "WitnessStatus": "ACTIVE"}]}


class Describer:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.asked = []

    def __call__(self, table, prefer):
        self.asked.append((table, prefer))
        answer = self.answers[min(len(self.asked), len(self.answers)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return answer


@pytest.mark.parametrize(
    ("description", "kind"),
    [
        pytest.param(MRSC, STRONG, id="strong"),
        pytest.param({"MultiRegionConsistency": "EVENTUAL"}, EVENTUAL, id="eventual"),
        pytest.param({}, EVENTUAL, id="not-said"),
    ],
)
def test_kind_of_reads_multi_region_consistency(description, kind):
    assert kind_of(description) == kind


def test_witnesses_of_names_the_witness_regions():
    assert witnesses_of(WITNESSED) == {"us-west-2"}
    assert witnesses_of(MRSC) == frozenset()


def test_a_declared_kind_is_known_without_describing():
    describe = Describer(MRSC)
    kinds = TableKinds({"Orders": STRONG}, (LOCAL, REMOTE), describe)
    assert kinds.kind("Orders", LOCAL) == STRONG
    assert describe.asked == []


def test_a_kind_is_learned_once():
    describe = Describer(MRSC)
    kinds = TableKinds({}, (LOCAL, REMOTE), describe)
    assert [kinds.kind("Orders", LOCAL), kinds.kind("Orders", REMOTE)] == [STRONG, STRONG]
    assert describe.asked == [("Orders", LOCAL)]


def test_a_failed_description_is_remembered_then_asked_again():
    clock = FakeClock()
    describe = Describer(rp.AllRegionsFailed("DescribeTable", {LOCAL: TimeoutError()}), MRSC)
    kinds = TableKinds({}, (LOCAL, REMOTE), describe, clock=clock, retry_after=60)
    assert kinds.kind("Orders") is None  # unknown: treated as MREC
    assert kinds.kind("Orders") is None
    assert len(describe.asked) == 1
    clock.now += 61
    assert kinds.kind("Orders") == STRONG


def test_a_witness_listed_as_a_region_is_a_config_error_once_the_table_says_so():
    kinds = TableKinds({}, (LOCAL, "us-west-2"), Describer(WITNESSED))
    kinds.check(["Orders"])  # nothing known yet
    with pytest.raises(rp.ConfigError) as caught:
        kinds.kind("Orders")
    assert caught.value.setting == "regions" and "us-west-2" in str(caught.value)
    assert kinds.misconfigured
    with pytest.raises(rp.ConfigError):
        kinds.check(["Orders"])  # every later call of the table
    kinds.check(["Other"])


def test_a_witness_not_among_the_regions_is_fine():
    kinds = TableKinds({}, (LOCAL, REMOTE), Describer(WITNESSED))
    assert kinds.kind("Orders") == STRONG
    assert not kinds.misconfigured
