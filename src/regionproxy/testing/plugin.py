"""pytest plugin: the ``local_regions`` and ``redis`` fixtures.

Loaded in every pytest run where regionproxy is installed, so it imports
nothing heavy at module level; the lab (and moto) load when a test asks.

Starting a lab costs about a second, resetting one a few milliseconds, so
the fixture keeps one started lab for the whole test session and resets it
around each test (:meth:`~regionproxy.testing.LocalRegions.reset`).
Under pytest-xdist each worker process has its own: moto's state is per
process, and every lab port is one the kernel chose, so labs of parallel
workers never meet.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from regionproxy.testing.lab import LocalRegions
    from regionproxy.testing.redis_server import RedisServer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "regionproxy_regions",
        "regions the local_regions fixture starts, first is local",
        type="args",
        default=["eu-west-3", "us-east-1"],
    )


class SharedLab:
    """At most one started lab at a time, handed from test to test.

    In-process labs share moto's module-global backends, so two live at once
    would see each other's tables; asking for other regions stops the lab
    held before starting the new one.
    """

    def __init__(self) -> None:
        self._lab: LocalRegions | None = None

    def get(self, regions: Sequence[str]) -> LocalRegions:
        """The held lab if it has ``regions`` (reset when the last test
        released it); else a new one."""
        from regionproxy.testing.lab import LocalRegions

        if self._lab is not None and self._lab.regions == list(regions):
            return self._lab
        self.close()
        self._lab = LocalRegions(regions).start()
        return self._lab

    def release(self, lab: LocalRegions) -> None:
        """A test is done with ``lab``: reset it now (its faults, sessions,
        tables and ports), so nothing of the test runs on into the next one
        and another in-process lab may run meanwhile. A lab that cannot
        reset is stopped, and the next test gets a new one."""
        try:
            lab.reset()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        lab, self._lab = self._lab, None
        if lab is not None:
            lab.stop()


@pytest.fixture(scope="session")
def local_regions_shared() -> Iterator[SharedLab]:
    """The session's :class:`SharedLab`, behind ``local_regions``; stopped
    when the test session ends."""
    shared = SharedLab()
    yield shared
    shared.close()


@pytest.fixture
def local_regions(request: pytest.FixtureRequest, local_regions_shared: SharedLab) -> Iterator[LocalRegions]:
    """A started :class:`~regionproxy.testing.LocalRegions` with the regions
    of the ``regionproxy_regions`` ini option, as a fresh lab looks: no
    tables, no faults, replication running without lag, ``requests()``
    empty. Shared between tests (fixture ``local_regions_shared``, session
    scope) and reset after each one, so a test must not stop it; the
    sessions it made with ``lab.session()`` are closed after the test, and
    its endpoints (new ports after each reset) are valid for one test only.

    Override the regions for one test with
    ``@pytest.mark.parametrize("local_regions", [["a", "b", "c"]], indirect=True)``.

    In-process moto state is global: in a test that uses this fixture, do
    not start another in-process ``LocalRegions`` or ``moto.mock_aws``; a
    test that needs its own lab (another ``lag``, process mode) starts one
    without this fixture, and may do so in-process: the shared lab is idle
    and empty between tests, and a lab empties moto when it stops.
    """
    regions = getattr(request, "param", None) or request.config.getini("regionproxy_regions")
    lab = local_regions_shared.get(regions)
    yield lab
    local_regions_shared.release(lab)


@pytest.fixture
def redis(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A started :class:`~regionproxy.testing.RedisServer` of its own for
    this test: the system's ``redis-server`` on a free loopback port, no
    persistence, stopped (and its directory removed) after the test. The
    test may pause, kill and restart it (same port, same URL).

    Options for one test: ``@pytest.mark.parametrize("redis",
    [{"password": "s3cret", "persist": True}], indirect=True)``.
    """
    from regionproxy.testing.redis_server import RedisServer

    options = getattr(request, "param", None) or {}
    server = RedisServer(**options).start()
    try:
        yield server
    finally:
        server.stop()
