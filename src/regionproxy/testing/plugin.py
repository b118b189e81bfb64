"""pytest plugin: the ``local_regions`` fixture.

Loaded in every pytest run where regionproxy is installed, so it imports
nothing heavy at module level; the lab (and moto) load when a test asks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from regionproxy.testing.lab import LocalRegions


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "regionproxy_regions",
        "regions the local_regions fixture starts, first is local",
        type="args",
        default=["eu-west-3", "us-east-1"],
    )


@pytest.fixture
def local_regions(request: pytest.FixtureRequest) -> Iterator[LocalRegions]:
    """A started :class:`~regionproxy.testing.LocalRegions` with the regions
    of the ``regionproxy_regions`` ini option; stopped after the test.

    Override the regions for one test with
    ``@pytest.mark.parametrize("local_regions", [["a", "b", "c"]], indirect=True)``.
    """
    from regionproxy.testing.lab import LocalRegions

    regions = getattr(request, "param", None) or request.config.getini("regionproxy_regions")
    with LocalRegions(regions) as lab:
        yield lab
