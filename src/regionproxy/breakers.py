"""One circuit breaker per region, on pybreaker's state machine.

pybreaker's ``CircuitBreaker.call`` holds the breaker's lock for the whole
wrapped call, so one slow region would serialise every thread that uses it.
Its ``calling()`` context manager runs the body outside the lock, but then
every concurrent call in half-open passes as a trial and the transitions
race. So :class:`RegionBreaker` keeps pybreaker's states, storage (memory,
or Redis to share state across gunicorn workers) and listeners, takes the
lock only for the bookkeeping around a call, and admits exactly one trial
at a time in half-open: the other callers go to the next region.

This is the only module that imports pybreaker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pybreaker

from regionproxy.config import BreakerPolicy
from regionproxy.events import BreakerChanged, Hooks

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN
EVACUATED = "evacuated"

# What admit() hands out: a normal call, or the one half-open trial.
NORMAL, TRIAL = "normal", "trial"


class _Relay(pybreaker.CircuitBreakerListener):
    """Turns pybreaker's state_change callbacks into BreakerChanged events."""

    def __init__(self, region: str, hooks: Hooks, clock: Callable[[], float]) -> None:
        self._region, self._hooks, self._clock = region, hooks, clock

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        old = old_state.name if old_state is not None else CLOSED
        if old != new_state.name:
            self._hooks.emit(BreakerChanged(self._region, old, new_state.name, self._clock()))


class RegionBreaker:
    """The breaker of one region.

    :param region: the region it guards.
    :param policy: ``fail_max``, ``reset_timeout``, ``success_threshold``.
    :param hooks: where state changes are announced.
    :param clock: wall-clock seconds (shared storage compares times across
        processes, so not a monotonic clock); tests pass a fake one.
    :param storage: a pybreaker storage; memory by default, or
        ``pybreaker.CircuitRedisStorage`` to share state across workers.
    """

    def __init__(
        self,
        region: str,
        policy: BreakerPolicy,
        hooks: Hooks,
        *,
        clock: Callable[[], float] = time.time,
        storage: pybreaker.CircuitBreakerStorage | None = None,
    ) -> None:
        self.region = region
        self.policy = policy
        self._clock = clock
        self._cb = pybreaker.CircuitBreaker(
            fail_max=policy.fail_max,
            reset_timeout=policy.reset_timeout,
            success_threshold=policy.success_threshold,
            state_storage=storage,
            listeners=[_Relay(region, hooks, clock)],
            name=region,
        )
        self._storage = self._cb._state_storage  # pybreaker exposes it only privately
        self._lock = threading.Lock()
        self._trial_out = False
        self._evacuated = False

    def __repr__(self) -> str:
        return f"RegionBreaker({self.region!r}, state={self.state!r}, failures={self._storage.counter})"

    @property
    def state(self) -> str:
        """``closed``, ``open``, ``half-open``, or ``evacuated`` (forced open)."""
        return EVACUATED if self._evacuated else self._cb.current_state

    @property
    def failures(self) -> int:
        return self._storage.counter

    def admit(self) -> str | None:
        """Let a call through (``NORMAL`` or ``TRIAL``) or keep it out (None).

        Every admitted call must end in :meth:`succeeded` or :meth:`failed`.
        """
        # Common path without the lock: a closed breaker admits everyone and
        # reading the state is a single attribute load.
        state = self._cb.current_state
        if state == CLOSED and not self._evacuated:
            return NORMAL
        with self._lock:
            if self._evacuated:
                return None
            state = self._cb.current_state
            if state == CLOSED:
                return NORMAL
            if state == OPEN:
                if self._clock() < self._opened_at() + self.policy.reset_timeout:
                    return None
                self._cb.half_open()
            if self._trial_out:
                return None
            self._trial_out = True
            return TRIAL

    def succeeded(self, ticket: str) -> None:
        if ticket == NORMAL and self._storage.counter == 0 and self._cb.current_state == CLOSED:
            return  # nothing to reset: skip the lock on the hot path
        with self._lock:
            self._storage.reset_counter()
            if ticket == TRIAL:
                self._trial_out = False
                if self._cb.current_state == HALF_OPEN:
                    self._storage.increment_success_counter()
                    if self._storage.success_counter >= self.policy.success_threshold:
                        self._cb.close()

    def failed(self, ticket: str) -> None:
        with self._lock:
            self._storage.increment_counter()
            if ticket == TRIAL:
                self._trial_out = False
            state = self._cb.current_state
            if state == HALF_OPEN or (state == CLOSED and self._storage.counter >= self.policy.fail_max):
                self._open()

    def released(self, ticket: str) -> None:
        """The admitted call ended without a verdict on the region."""
        if ticket == TRIAL:
            with self._lock:
                self._trial_out = False

    def evacuate(self) -> None:
        """Force the breaker open until :meth:`restore`: no trial calls."""
        with self._lock:
            self._evacuated = True
            if self._cb.current_state != OPEN:
                self._open()

    def restore(self) -> None:
        """End an evacuation (or any open state): close the breaker now."""
        with self._lock:
            self._evacuated = False
            self._trial_out = False
            self._cb.close()

    def _open(self) -> None:
        self._cb.open()
        # pybreaker stamps opened_at with datetime.now(); use the injected
        # clock instead, so a fake clock drives the reset timeout.
        self._storage.opened_at = datetime.fromtimestamp(self._clock(), UTC)

    def _opened_at(self) -> float:
        opened = self._storage.opened_at
        return opened.timestamp() if opened is not None else 0.0
