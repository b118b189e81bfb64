"""One circuit breaker per region, on pybreaker's state machine.

pybreaker's ``CircuitBreaker.call`` holds the breaker's lock for the whole
wrapped call, so one slow region would serialise every thread that uses it.
Its ``calling()`` context manager runs the body outside the lock, but then
every concurrent call in half-open passes as a trial and the transitions
race. So :class:`RegionBreaker` keeps pybreaker's states, storage (memory,
or Redis to share state across gunicorn workers) and listeners, takes the
lock only for the bookkeeping around a call, and admits exactly one trial
at a time in half-open: the other callers go to the next region.

A fleet (:mod:`regionproxy._fleet`) shares a breaker through the
:class:`Sharing` it hands to :meth:`RegionBreaker.share`, which the
breaker asks only off its common path and never with its lock held: a
fault adds to the fleet's failure count (and opens the breaker when the
*fleet* has seen ``fail_max``), a success after faults clears it, and an
open breaker whose reset timeout has passed reserves the fleet's one trial
before it goes half-open (another process holds it: no trial here, and no
asking again until that reservation runs out). What other processes
decided arrives through :meth:`RegionBreaker.apply_open`,
:meth:`~RegionBreaker.apply_closed`, :meth:`~RegionBreaker.evacuate` and
:meth:`~RegionBreaker.restore`. A call that finds the breaker closed, and
succeeds, never asks the fleet.

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
from typing import Any, Protocol

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


class Sharing(Protocol):
    """What a breaker asks of the fleet it belongs to. Each may do I/O (a
    bounded one): the breaker calls them without its lock held."""

    def count_failure(self, region: str) -> int | None:
        """Add a fault to the fleet's count; the count after it, or None
        when the fleet cannot count now (each process counts its own)."""
        ...

    def clear_failures(self, region: str) -> None:
        """The region answered after faults: the fleet's count starts over."""
        ...

    def reserve_trial(self, region: str) -> float:
        """Reserve the fleet's one half-open trial: 0 if this process has
        it (or the fleet cannot say: then each process tries its own), else
        the seconds for which another process holds it."""
        ...

    def end_trial(self, region: str) -> None:
        """The trial this process reserved is over (verdict or none)."""
        ...


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
        self._sharing: Sharing | None = None
        self._trial_shared = False  # the trial out was reserved through the fleet
        self._trial_elsewhere_until = 0.0  # another process holds the fleet's trial until then
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

    @property
    def opened_at(self) -> float | None:
        """When it last opened (wall-clock seconds), or None if it never did."""
        opened = self._storage.opened_at
        return opened.timestamp() if opened is not None else None

    def share(self, sharing: Sharing | None) -> None:
        """Count faults and reserve trials with a fleet from now on (None: alone)."""
        self._sharing = sharing

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
        sharing = self._sharing
        try:
            with self._lock:
                if self._evacuated:
                    return None
                state = self._cb.current_state
                if state == CLOSED:
                    return NORMAL
                if state == OPEN:
                    now = self._clock()
                    if now < self._opened_at() + self.policy.reset_timeout:
                        return None
                    if sharing is None:
                        return self._start_trial()
                    if self._trial_out or now < self._trial_elsewhere_until:
                        return None
                    # The fleet's reservation is I/O: asked below, without the lock.
                    self._trial_out = True
                elif self._trial_out:
                    return None
                else:
                    return self._start_trial()
        finally:
            self._announce()
        return self._reserve_trial(sharing)

    def _start_trial(self) -> str:
        """Go half-open and hand out the trial (called with the lock held)."""
        if self._cb.current_state == OPEN:
            self._cb.half_open()
        self._trial_out = True
        return TRIAL

    def _reserve_trial(self, sharing: Sharing) -> str | None:
        """Reserve the fleet's trial. ``_trial_out`` is set meanwhile, so
        this process's other threads do not ask too."""
        try:
            held_elsewhere = sharing.reserve_trial(self.region)
        except BaseException:
            with self._lock:
                self._trial_out = False
            raise
        give_back = False
        try:
            with self._lock:
                if held_elsewhere > 0:
                    # Another process tries the region; its verdict will reach us.
                    self._trial_out = False
                    self._trial_elsewhere_until = self._clock() + held_elsewhere
                    return None
                due = self._cb.current_state == OPEN and self._clock() >= self._opened_at() + self.policy.reset_timeout
                if self._evacuated or not due:
                    # Closed, evacuated or opened again while we asked: no trial.
                    self._trial_out = False
                    give_back = True
                else:
                    self._trial_shared = True
                    return self._start_trial()
        finally:
            self._announce()
        if give_back:
            sharing.end_trial(self.region)
        return None

    def succeeded(self, ticket: str) -> None:
        if ticket == NORMAL and self._storage.counter == 0 and self._storage.state == CLOSED:
            return  # nothing to reset: skip the lock on the hot path
        try:
            with self._lock:
                had_failures = self._storage.counter > 0
                self._storage.reset_counter()
                shared_trial = self._end_trial(ticket)
                if ticket == TRIAL and self._cb.current_state == HALF_OPEN:
                    self._storage.increment_success_counter()
                    if self._storage.success_counter >= self.policy.success_threshold:
                        self._cb.close()
        finally:
            self._announce()
        self._tell_fleet(shared_trial, clear=had_failures)

    def failed(self, ticket: str) -> None:
        sharing = self._sharing
        fleet_count = None
        if sharing is not None and ticket == NORMAL and self._storage.state == CLOSED and not self._evacuated:
            fleet_count = sharing.count_failure(self.region)  # I/O: before the lock
        try:
            with self._lock:
                self._storage.increment_counter()
                shared_trial = self._end_trial(ticket)
                state = self._cb.current_state
                count = max(self._storage.counter, fleet_count or 0)
                # Only the trial's verdict ends half-open: a NORMAL call that
                # fails now was admitted before the breaker opened (half-open
                # admits nothing but the trial), and its late fault says
                # nothing about the region since then.
                if (state == HALF_OPEN and ticket == TRIAL) or (state == CLOSED and count >= self.policy.fail_max):
                    self._open()
        finally:
            self._announce()
        self._tell_fleet(shared_trial)

    def released(self, ticket: str) -> None:
        """The admitted call ended without a verdict on the region."""
        if ticket == TRIAL:
            with self._lock:
                shared_trial = self._end_trial(ticket)
            self._tell_fleet(shared_trial)

    def _end_trial(self, ticket: str) -> bool:
        """Forget this process's trial (lock held); whether the fleet's
        reservation must be given back."""
        if ticket != TRIAL:
            return False
        self._trial_out = False
        shared, self._trial_shared = self._trial_shared, False
        return shared

    def _tell_fleet(self, shared_trial: bool, *, clear: bool = False) -> None:
        """The fleet's part of a verdict, after the lock is released."""
        sharing = self._sharing
        if sharing is None:
            return
        if shared_trial:
            sharing.end_trial(self.region)
        if clear:
            sharing.clear_failures(self.region)

    def apply_open(self, opened_at: float) -> None:
        """Another process of the fleet opened the breaker at ``opened_at``
        (wall clock): open here too, timed from the later of the two
        openings, so the fleet's reset timeouts run out together. A time
        ahead of this process's clock (a server whose clock runs ahead)
        counts as now: no process can keep a region out longer than
        ``reset_timeout`` from when this one heard of it."""
        try:
            with self._lock:
                if self._evacuated:
                    return
                mine = self._opened_at() if self._cb.current_state == OPEN else 0.0
                if self._cb.current_state != OPEN:
                    self._cb.open()
                self._storage.opened_at = datetime.fromtimestamp(max(min(opened_at, self._clock()), mine), UTC)
                self._trial_elsewhere_until = 0.0
        finally:
            self._announce()

    def apply_closed(self) -> None:
        """A trial elsewhere in the fleet closed the breaker: close here too."""
        try:
            with self._lock:
                if self._evacuated:
                    return
                self._storage.reset_counter()
                self._trial_elsewhere_until = 0.0
                if self._cb.current_state != CLOSED:
                    self._cb.close()
        finally:
            self._announce()

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
                self._trial_elsewhere_until = 0.0
                self._storage.reset_counter()
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
        self._trial_shared = False  # the fleet's reservation expires by itself
