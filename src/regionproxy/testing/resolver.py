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
only affects this process. A Python subprocess (gunicorn workers) gets the
names through the environment the lab gives it
(:meth:`~regionproxy.testing.LocalRegions.resolver_environment`:
``LOCALREGIONS_HOSTS`` and ``LOCALREGIONS_UNRESOLVABLE``, a file
listing the names that do not resolve now, read at each lookup) and calls
:func:`install_from_env` at import; other clients (the AWS CLI, Node) must
be given the lab's address endpoints.
"""

from __future__ import annotations

import functools
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


# Not REGIONPROXY_*: the Flask and Django integrations refuse names they do not know there.
HOSTS_VARIABLE, UNRESOLVABLE_VARIABLE = "LOCALREGIONS_HOSTS", "LOCALREGIONS_UNRESOLVABLE"


def _listed(path: str, name: str) -> bool:
    try:
        with open(path, encoding="utf-8") as listing:
            return name in listing.read().split()
    except OSError:
        return False


def install_from_env(environ: Any = None) -> int:
    """In a subprocess of a lab's test: resolve the names the lab passed
    (``name=address,...``), failing those its state file lists. Returns how
    many names were registered (0: not under a lab, nothing changed)."""
    import os

    environ = os.environ if environ is None else environ
    hosts, path = environ.get(HOSTS_VARIABLE, ""), environ.get(UNRESOLVABLE_VARIABLE, "")
    count = 0
    for pair in filter(None, hosts.split(",")):
        name, _, address = pair.partition("=")
        register(name, address, functools.partial(_listed, path, name.lower()) if path else (lambda: False))
        count += 1
    return count


def unregister(name: str) -> None:
    with _lock:
        _names.pop(name.lower(), None)
