"""regionproxy: keep a WSGI app serving when a DynamoDB region fails."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from regionproxy._config.settings import BreakerPolicy, CachePolicy, HedgePolicy, Timeouts
from regionproxy.errors import (
    AllRegionsFailed,
    AmbiguousWriteError,
    ConfigError,
    RegionProxyError,
    RegionUnavailable,
    ReplicaMissingError,
)

if TYPE_CHECKING:
    from regionproxy._session.session import RegionSession
    from regionproxy._web.middleware import RegionProxyMiddleware

# Imported on first use, so that `import regionproxy` (which pytest does for
# the plugin in every run) does not import boto3.
_LAZY = {"RegionProxyMiddleware": "regionproxy._web.middleware", "RegionSession": "regionproxy._session.session"}


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
    "BreakerPolicy",
    "CachePolicy",
    "ConfigError",
    "HedgePolicy",
    "RegionProxyError",
    "RegionProxyMiddleware",
    "RegionSession",
    "RegionUnavailable",
    "ReplicaMissingError",
    "Timeouts",
    "__version__",
]
