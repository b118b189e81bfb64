"""The lab's own host names, and the ``unresolvable`` fault.

Each lab region has a name of its own (``eu-west-3.<lab id>.lab.regionproxy.test``:
the reserved ``.test`` top-level domain, so no real resolver answers it),
resolved by a hook on :func:`socket.getaddrinfo` to the region's loopback
proxy. The hook answers only the names a started lab registered; every other
name goes to the system resolver unchanged, and every connection is a real
socket. When the lab makes a region ``unresolvable`` the hook raises
``socket.gaierror(EAI_NONAME)`` for its name, as a resolver answers a
name whose DNS record is empty (``dynamodb.us-east-1.amazonaws.com``,
October 2025): clients cannot open new connections to the region, while
the region itself (and replication to and from it) is fine.

The hook is installed once per process, the first time a name is
registered, and chains to whatever ``socket.getaddrinfo`` was before it. It
only affects this process: a subprocess (gunicorn, the AWS CLI) must be
given the lab's address endpoints.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

SUFFIX = "lab.regionproxy.test"

_lock = threading.Lock()
# name -> (address, unresolvable?)
_names: dict[str, tuple[str, Callable[[], bool]]] = {}
_real_getaddrinfo: Callable[..., Any] | None = None


def _lookup(host: Any) -> tuple[str, Callable[[], bool]] | None:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str) or not host.endswith((SUFFIX, SUFFIX + ".")):
        return None
    return _names.get(host.rstrip(".").lower())


def _getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    real = _real_getaddrinfo
    assert real is not None
    entry = _lookup(host)
    if entry is None:
        return real(host, port, *args, **kwargs)
    address, unresolvable = entry
    if unresolvable():
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return real(address, port, *args, **kwargs)


def register(name: str, address: str, unresolvable: Callable[[], bool]) -> None:
    """Resolve ``name`` to ``address`` in this process, unless ``unresolvable()``."""
    global _real_getaddrinfo
    with _lock:
        if _real_getaddrinfo is None:
            _real_getaddrinfo = socket.getaddrinfo
            socket.getaddrinfo = _getaddrinfo
        _names[name.lower()] = (address, unresolvable)


def unregister(name: str) -> None:
    with _lock:
        _names.pop(name.lower(), None)
