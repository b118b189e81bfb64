"""regionproxy: keep a WSGI app serving when a DynamoDB region fails."""

from importlib.metadata import PackageNotFoundError, version

from regionproxy.config import BreakerPolicy, CachePolicy, HedgePolicy, Timeouts
from regionproxy.errors import (
    AllRegionsFailed,
    AmbiguousWriteError,
    ConfigError,
    RegionProxyError,
    RegionUnavailable,
)
from regionproxy.session import RegionSession

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
    "RegionSession",
    "RegionUnavailable",
    "Timeouts",
    "__version__",
]
