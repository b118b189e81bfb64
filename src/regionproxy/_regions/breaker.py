"""One circuit breaker per region, on pybreaker's state machine.

pybreaker's ``CircuitBreaker.call`` holds the breaker's lock for the whole
wrapped call, so one slow region would serialise every thread that uses it.
Its ``calling()`` context manager runs the body outside the lock, but then
every concurrent call in half-open passes as a trial and the transitions
race. So :class:`RegionBreaker` keeps pybreaker's states, storage (memory,
or Redis to share state across gunicorn workers) and listeners, takes the
lock only for the bookkeeping around a call, and admits exactly one trial
at a time in half-open: the other callers go to the next region.

State changes are announced as :class:`~regionproxy.events.BreakerChanged`
events after every lock is released, by the thread that made the change:
a listener may call back into the breaker or the session (evacuate a
region, make a DynamoDB call) without deadlocking. The price: two changes
can reach a listener newest first, so each carries a sequence number taken
while the lock is held.

This is the only module that imports pybreaker.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pybreaker

from regionproxy._config.policies import BreakerPolicy
from regionproxy._forks import reset_after_fork
from regionproxy.events import BreakerChanged, Hooks

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN
EVACUATED = "evacuated"

# What admit() hands out: a normal call, or the one half-open trial.
NORMAL, TRIAL = "normal", "trial"

# BreakerChanged.seq, drawn under the breaker's lock. One sequence for the
# process, not one per breaker: a listener shared by two sessions then never
# mistakes one breaker's new change for an old one of the other's.
_CHANGE_NUMBERS = itertools.count(1)


class _Relay(pybreaker.CircuitBreakerListener):
    """Collects pybreaker's state_change callbacks for the breaker to announce.

    pybreaker calls listeners inside its own RLock (and RegionBreaker calls
    pybreaker inside its lock), so the relay never emits: it hands the
    change to ``collect``, and the breaker emits once the locks are released.
    """

    def __init__(self, collect: Callable[[str, str], None]) -> None:
        self._collect = collect

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        self._collect(old_state.name if old_state is not None else CLOSED, new_state.name)


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
        self._hooks = hooks
        self._clock = clock
        self._cb = pybreaker.CircuitBreaker(
            fail_max=policy.fail_max,
            reset_timeout=policy.reset_timeout,
            success_threshold=policy.success_threshold,
            state_storage=storage,
            listeners=[_Relay(self._collect)],
            name=region,
        )
        self._storage = self._cb._state_storage  # pybreaker exposes it only privately
        self._lock = threading.Lock()
        self._trial_out = False
        self._evacuated = False
        # Changes made by each thread and not yet announced, oldest first.
        # Per thread, so the thread that made a change announces it, and a
        # listener never runs on a thread that was only passing by.
        self._unannounced = threading.local()
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"RegionBreaker({self.region!r}, state={self.state!r}, failures={self._storage.counter})"

    @property
    def state(self) -> str:
        """``closed``, ``open``, ``half-open``, or ``evacuated`` (forced open)."""
        # current_state reads the storage; pybreaker's own ``state`` property
        # would notify listeners (under its lock) when shared storage changed.
        return EVACUATED if self._evacuated else self._cb.current_state

    @property
    def failures(self) -> int:
        return self._storage.counter

    def admit(self) -> str | None:
        """Let a call through (``NORMAL`` or ``TRIAL``) or keep it out (None).

        Every admitted call must end in :meth:`succeeded`, :meth:`failed`
        or :meth:`released`.
        """
        # Common path without the lock: a closed breaker admits everyone and
        # reading the state is a single attribute load (the storage's, which
        # pybreaker's current_state reads: one call less on every call).
        state = self._storage.state
        if state == CLOSED and not self._evacuated:
            return NORMAL
        try:
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
        finally:
            self._announce()

    def succeeded(self, ticket: str) -> None:
        if ticket == NORMAL and self._storage.counter == 0 and self._storage.state == CLOSED:
            return  # nothing to reset: skip the lock on the hot path
        try:
            with self._lock:
                self._storage.reset_counter()
                if ticket == TRIAL:
                    self._trial_out = False
                    if self._cb.current_state == HALF_OPEN:
                        self._storage.increment_success_counter()
                        if self._storage.success_counter >= self.policy.success_threshold:
                            self._cb.close()
        finally:
            self._announce()

    def failed(self, ticket: str) -> None:
        try:
            with self._lock:
                self._storage.increment_counter()
                if ticket == TRIAL:
                    self._trial_out = False
                state = self._cb.current_state
                if state == HALF_OPEN or (state == CLOSED and self._storage.counter >= self.policy.fail_max):
                    self._open()
        finally:
            self._announce()

    def released(self, ticket: str) -> None:
        """The admitted call ended without a verdict on the region."""
        if ticket == TRIAL:
            with self._lock:
                self._trial_out = False

    def evacuate(self) -> None:
        """Force the breaker open until :meth:`restore`: no trial calls.

        Announced as a change to ``evacuated``, whatever state it was in.
        """
        try:
            with self._lock:
                if self._evacuated:
                    return
                old = self._cb.current_state
                # Set first: the relay drops pybreaker's own change to open,
                # which callers never see (they see "evacuated").
                self._evacuated = True
                if old != OPEN:
                    self._open()
                self._remember(old, EVACUATED)
        finally:
            self._announce()

    def restore(self) -> None:
        """End an evacuation (or any open state): close the breaker now."""
        try:
            with self._lock:
                was_evacuated = self._evacuated
                self._trial_out = False
                self._cb.close()  # relayed as open -> closed unless still evacuated
                self._evacuated = False
                if was_evacuated:
                    self._remember(EVACUATED, CLOSED)
        finally:
            self._announce()

    def _open(self) -> None:
        self._cb.open()
        # pybreaker stamps opened_at with datetime.now(); use the injected
        # clock instead, so a fake clock drives the reset timeout.
        self._storage.opened_at = datetime.fromtimestamp(self._clock(), UTC)

    def _opened_at(self) -> float:
        opened = self._storage.opened_at
        return opened.timestamp() if opened is not None else 0.0

    # -- announcing changes ------------------------------------------------------

    def _collect(self, old: str, new: str) -> None:
        """pybreaker changed state (called with its lock, and usually ours, held)."""
        if self._evacuated:
            return  # the visible state stays "evacuated"; evacuate/restore announce
        self._remember(old, new)

    def _remember(self, old: str, new: str) -> None:
        """Queue a change for this thread to announce; called with our lock held,
        so numbers follow the order of the changes themselves."""
        if old != new:
            self._pending().append(BreakerChanged(self.region, old, new, self._clock(), next(_CHANGE_NUMBERS)))

    def _pending(self) -> collections.deque[BreakerChanged]:
        local = self._unannounced
        try:
            return local.events
        except AttributeError:
            local.events = collections.deque()
            return local.events

    def _announce(self) -> None:
        """Emit this thread's collected changes, oldest first; no lock held.

        popleft, not a swap of the whole queue: a listener that changes the
        breaker again announces from inside this loop, and its change must
        still come after the ones collected before it.
        """
        pending = self._pending()
        while pending:
            self._hooks.emit(pending.popleft())

    # -- fork safety -------------------------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child: locks and the trial belonged to the parent's threads.

        A lock held by another thread at the fork stays held forever in the
        child, and a trial handed to such a thread never ends, so the region
        would never be tried again in this worker.
        """
        self._lock = threading.Lock()
        self._cb._lock = threading.RLock()  # pybreaker's, taken by open/close/half_open
        self._trial_out = False
