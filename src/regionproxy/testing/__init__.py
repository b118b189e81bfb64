"""A local multi-region lab for failover drills: moto servers, faults, replication.

Needs the ``testing`` extra (``pip install regionproxy[testing]``).
"""

from regionproxy.testing.fault_modes import Fault
from regionproxy.testing.fault_proxy import FaultProxy, ProxiedConnection, ProxiedRequest
from regionproxy.testing.lab import LocalRegions, serving, wait_for
from regionproxy.testing.redis_server import RedisServer

__all__ = ["Fault", "FaultProxy", "LocalRegions", "ProxiedConnection", "ProxiedRequest", "RedisServer", "serving", "wait_for"]
