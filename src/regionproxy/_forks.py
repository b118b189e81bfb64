"""Fork safety: reset locks and in-flight state in a forked child.

gunicorn and uwsgi often build the session before they fork workers. A fork
copies only the forking thread: a lock another thread held at that instant
stays held forever in the child, a half-open trial stays out forever, and
a cache load in flight never finishes. Objects that own such state call
:func:`reset_after_fork` once; in every child, right after the fork, their
``_after_fork()`` runs and must replace each lock
with a new one and forget whatever belonged to the parent's threads.

This is a leaf module: no internal imports.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Protocol

log = logging.getLogger("regionproxy")


class ForkAware(Protocol):
    def _after_fork(self) -> None: ...


# A WeakSet: registering never keeps a closed session alive. Guarded by a
# lock for registration; the child reads it without the lock, since the
# parent's lock may be held by a thread that no longer exists there.
_registered: weakref.WeakSet[ForkAware] = weakref.WeakSet()
_lock = threading.Lock()


def reset_after_fork(owner: ForkAware) -> None:
    """Call ``owner._after_fork()`` in every child forked from now on."""
    with _lock:
        _registered.add(owner)


def _in_child() -> None:
    global _lock
    _lock = threading.Lock()
    for owner in list(_registered):
        try:
            owner._after_fork()
        except Exception:  # noqa: BLE001 - one owner must not leave the others locked
            log.exception("regionproxy: resetting %r after fork failed", owner)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
