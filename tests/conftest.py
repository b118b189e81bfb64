"""Shared fixtures, built on the helpers in ``tests/support.py``. The
``local_regions`` fixture comes from regionproxy's own pytest plugin (entry
point ``pytest11``), as users get it.

No test times the work it checks, hypothesis's included: its per-example
deadline and its too-slow health check time the code and the machine, and a
loaded machine (pytest-xdist's other workers, CI's neighbours) makes one
example take seconds. Both are off for every test, by the profile loaded
here before any test module builds its ``settings``."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from regionproxy.testing import LocalRegions
from tests.support import KEY_SCHEMA, LOCAL, REMOTE, TABLE, FakeClock

# Tests talk only to the lab on loopback: fake credentials, so that nothing
# can reach (or sign for) a real AWS account.
for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", LOCAL),
):
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)

settings.register_profile("regionproxy", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("regionproxy")


@pytest.fixture
def lab(local_regions):
    """The default two-region lab with one empty table, ``Items`` (``TABLE``;
    pk, sk). The lab is shared between tests and reset around each one (see
    ``local_regions``), so every test gets a fresh ``Items`` and no faults."""
    local_regions.create_table(TableName=TABLE, **KEY_SCHEMA)
    return local_regions


@pytest.fixture
def tls_lab():
    """A lab with https endpoints of its own (started while the shared one
    is idle, stopped after: in-process moto state is global)."""
    with LocalRegions([LOCAL, REMOTE], tls=True, replicate=False) as lab:
        lab.create_table(TableName=TABLE, **KEY_SCHEMA)
        yield lab


@pytest.fixture
def clock():
    """A fake clock for ``clock=`` and ``monotonic=`` arguments; it moves
    only when the test moves it (``clock.now += 10``)."""
    return FakeClock()
