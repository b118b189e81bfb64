"""A session's membership of its fleet: the link, the shared breakers, the probes.

:class:`Fleet` is what a :class:`~regionproxy.RegionSession` built with
``fleet=`` holds: one :class:`~regionproxy._fleet.link.FleetLink` for the
process, the session's breakers and evacuations shared through it
(:class:`~regionproxy._fleet.breakers.SharedBreakers`) and its health
probes (:class:`~regionproxy._fleet.probes.SharedProbes`). The session
joins the fleet in each process on first use (:meth:`Fleet.join`: the
listener starts, and the fleet's evacuations and open breakers are read
once, so the first call of a new worker already avoids what the fleet
avoids); before that, and whenever Redis is away, each process keeps its
own state, as without a fleet, but for its read cache, which it bypasses
while it cannot hear the fleet's drops (:mod:`regionproxy._fleet.coherence`).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

from regionproxy._config.settings import Settings
from regionproxy._fleet.breakers import SharedBreakers
from regionproxy._fleet.link import FleetLink
from regionproxy._fleet.probes import SharedProbes
from regionproxy._forks import reset_after_fork
from regionproxy._regions.breaker import RegionBreaker
from regionproxy.events import Hooks


class Fleet:
    """One session's part in its fleet.

    :param settings: the session's settings (``fleet``, ``fleet_name``,
        ``fleet_timeout``, the breaker policy).
    :param breakers: region -> the session's breaker of it.
    :param hooks: the session's hooks.
    :param trial_seconds: the longest a call to one region can take: a
        trial reservation lasts that long and a margin.
    :param clock: wall-clock seconds.
    :param link_options: keyword arguments for the :class:`FleetLink`
        (``retry``, ``ping_after``, ``heartbeat``, ...).
    """

    def __init__(
        self,
        settings: Settings,
        breakers: Mapping[str, RegionBreaker],
        hooks: Hooks,
        *,
        trial_seconds: float,
        clock: Callable[[], float],
        link_options: Mapping[str, Any] | None = None,
    ) -> None:
        assert settings.fleet is not None and settings.fleet_name is not None
        self.link = FleetLink(
            settings.fleet,
            settings.fleet_name,
            timeout=settings.fleet_timeout,
            clock=clock,
            listener=hooks.emit,
            **(link_options or {}),
        )
        self.breakers = SharedBreakers(
            self.link,
            breakers,
            hooks,
            trial_seconds=trial_seconds + 1.0,
            # A count older than this is no streak: a region that failed a
            # few times an hour ago has not failed "fail_max times in a row".
            failure_memory=max(60.0, 2 * settings.breaker.reset_timeout),
            clock=clock,
        )
        self.probes = SharedProbes(self.link, breakers)
        self._joined = -1  # the pid that joined
        self._lock = threading.Lock()
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"Fleet({self.link.safe_url!r}, name={self.link.name!r})"

    @property
    def name(self) -> str:
        return self.link.name

    def join(self) -> None:
        """Join in this process (once; cheap after): start the link and catch
        up with the fleet's state, at most one Redis timeout if it is away."""
        if self._joined == os.getpid():
            return
        with self._lock:
            if self._joined == os.getpid():
                return
            self._joined = os.getpid()
        self.link.start()
        self.breakers.sync()

    def evacuate(self, region: str, by: str | None = None) -> bool:
        """Evacuate ``region`` in every process of the fleet, this one at once."""
        self.join()
        return self.breakers.evacuate(region, by or default_actor())

    def restore(self, region: str, by: str | None = None) -> bool:
        self.join()
        return self.breakers.restore(region, by or default_actor())

    def status(self) -> dict[str, Any]:
        link = self.link.status()
        return {
            "enabled": True,
            **link,
            **self.breakers.status(),
            "probes": self.probes.status(),
        }

    def close(self) -> None:
        self.link.close()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


def default_actor() -> str:
    """Who acted, when the caller does not say: this process."""
    return f"{socket.gethostname()}:{os.getpid()}"
