"""regionproxy: keep a WSGI app serving when a DynamoDB region fails."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from regionproxy._config.policies import BreakerPolicy, CachePolicy, HedgePolicy, Timeouts
from regionproxy.errors import (
    AllRegionsFailed,
    AmbiguousWriteError,
    ConfigError,
    RegionProxyError,
    RegionUnavailable,
    ReplicaMissingError,
)
from regionproxy.events import (
    BreakerChanged,
    CacheBypassed,
    CacheDropped,
    CacheLookup,
    CallFinished,
    ConsistencyDowngraded,
    FailedOver,
    FleetCacheFlushed,
    FleetChanged,
    FleetDropsApplied,
    FleetTraffic,
    Hedged,
    Listener,
    OperationFinished,
    PoisonRequest,
    RegionDemoted,
    ReplicaMissing,
)

if TYPE_CHECKING:
    from regionproxy._boto3.client import RegionClient
    from regionproxy._boto3.resource import RegionResource
    from regionproxy._boto3.table import RegionTable
    from regionproxy._regions.health import HealthMonitor
    from regionproxy._session.session import RegionSession
    from regionproxy._web.metrics import PrometheusListener
    from regionproxy._web.middleware import RegionProxyMiddleware

# Imported on first use, so that `import regionproxy` (which pytest does for
# the plugin in every run) does not import boto3.
_LAZY = {
    "HealthMonitor": "regionproxy._regions.health",
    "PrometheusListener": "regionproxy._web.metrics",
    "RegionClient": "regionproxy._boto3.client",
    "RegionProxyMiddleware": "regionproxy._web.middleware",
    "RegionResource": "regionproxy._boto3.resource",
    "RegionSession": "regionproxy._session.session",
    "RegionTable": "regionproxy._boto3.table",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'regionproxy' has no attribute {name!r}")


try:
    __version__ = version("regionproxy")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "AllRegionsFailed",
    "AmbiguousWriteError",
    "BreakerChanged",
    "BreakerPolicy",
    "CacheBypassed",
    "CacheDropped",
    "CacheLookup",
    "CachePolicy",
    "CallFinished",
    "ConfigError",
    "ConsistencyDowngraded",
    "FailedOver",
    "FleetCacheFlushed",
    "FleetChanged",
    "FleetDropsApplied",
    "FleetTraffic",
    "HealthMonitor",
    "HedgePolicy",
    "Hedged",
    "Listener",
    "OperationFinished",
    "PoisonRequest",
    "PrometheusListener",
    "RegionClient",
    "RegionDemoted",
    "RegionProxyError",
    "RegionProxyMiddleware",
    "RegionResource",
    "RegionSession",
    "RegionTable",
    "RegionUnavailable",
    "ReplicaMissing",
    "ReplicaMissingError",
    "Timeouts",
    "__version__",
]
