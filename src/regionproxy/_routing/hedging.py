"""Hedged reads: ask the next region too when the preferred one is slow.

A blackholed region costs every read that meets it a full read timeout
until its breaker opens, and a brownout (slow, not down) never opens it at
all. Hedging bounds both at the hedge delay: when the preferred region has
not answered a read after ``delay``, the same read goes to the next
admitted region, and the first success wins. The loser is not awaited; its
outcome still reaches its region's breaker, since each side is an ordinary
attempt loop. A budget caps hedges at a fraction of recent reads, so a
region-wide slowdown cannot double the load on the other regions. When
hedges keep winning against a region (a brownout: slow, not down, so no
breaker opens), reads try it last for a while (:meth:`Hedger.order`): the
budget would otherwise run out and every read would pay the slowness. When
that while is over the region is on probation: the first hedge that wins
against it demotes it again, so a brownout that lasts costs one slow read
per ``demote_for``, not ``demote_after``. A demotion ends early once the
region's latest probe (or trial read) is back within ``latency_window`` of
the regions that replaced it (:mod:`regionproxy._routing.nearest`): a
brownout that heals gives its region back within one probe interval, not
at the end of ``demote_for``.

A hedge is sent only while it can help: not when the preferred side has
already moved on to the next region (its region refused, failed fast, or
has an open breaker: the hedge would repeat that side's request), and not
to a region demoted as slow. Once one side has answered, the other tries no
further region. A hedge whose preferred side then fails was not an extra
request (it was the read's only answer): the budget gets it back, so an
outage spends the budget only on reads that were really sent twice. Until
its preferred side ends, a hedge is provisional (see
:mod:`regionproxy._routing.hedge_budget`): a blackhole, whose hedges are
all given back once the preferred sides time out, does not spend the budget
while they wait; and a floor of hedges per second is always allowed, so a
quiet site hedges every read that meets a blackhole, not just the first
two or three. Every hedge taken ends settled (spent) or refunded. Such a
region is down, not slow, and its demotion (if any) is lifted: its breaker
judges it, and lets it back as soon as it answers again.

DynamoDB's own error (a caller error: ``AccessDeniedException`` from an IAM
policy scoped to the local table, ``ValidationException`` for an index the
replica lacks, ...) from the hedge side is the read's answer only once the
preferred side has failed too: it speaks for the hedge's regions, not for
the preferred one, which may still answer. While the preferred side runs,
the read waits for it, and it tries no region after its own (the hedge has
had those regions' answer): it is given its own region's retries, and if
they fail, the hedge's error is the answer, as it would have been had the
read failed over. DynamoDB's own error from the preferred side is the
answer when it comes, as a success is (unless the hedge has answered first).

Writes are never hedged: sending one twice is what the rest of the session
works to avoid. Nor are strongly consistent reads and reads that follow a
write (read-your-writes), nor does a demotion reorder them: each must be
answered by the region that has what it must see (the session decides,
from :attr:`~regionproxy._dynamodb.calls.Call.strongly_consistent` and its sticky
writes, and runs those reads unhedged over the plain plan).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from regionproxy._config.policies import HedgePolicy
from regionproxy._dynamodb.calls import Call
from regionproxy._forks import reset_after_fork
from regionproxy._routing.hedge_budget import HedgeBudget, RecentLatency
from regionproxy._routing.nearest import LatencyEstimates, within_window
from regionproxy.errors import AllRegionsFailed, RegionProxyError
from regionproxy.events import Hedged, Hooks, RegionDemoted

__all__ = ["Attempt", "Hedger", "Side"]


class Side:
    """One side of a hedged read, as its attempt loop tells it: the region
    it is at (None until it starts) and whether the read has been answered
    by the other side (the loop then tries no further region).

    :param hedge: this is the hedge, whose plan leaves out the preferred
        region: what its regions alone answer (a 5xx, no replica of the
        table) is their trouble, not the read's answer.

    ``rest_answered`` is set on the preferred side when the hedge got
    DynamoDB's own error from the regions after its first: the side then
    tries only the region it started with (its retries included).
    """

    __slots__ = ("region", "abandoned", "hedge", "rest_answered")

    def __init__(self, *, hedge: bool = False) -> None:
        self.region: str | None = None
        self.abandoned = False
        self.hedge = hedge
        self.rest_answered = False


# The attempt loop over a plan: (call, plan, side or None) -> (response, region).
Attempt = Callable[[Call, tuple[str, ...], "Side | None"], tuple[dict[str, Any], str]]
# Each hedged read holds one thread (two while hedged) for at most one call;
# threads start only when needed, so this is a ceiling, not a cost.
_POOL = 256


class Hedger:
    """Runs reads with a hedge.

    :param policy: the :class:`~regionproxy._config.settings.HedgePolicy`.
    :param hooks: where ``Hedged`` events go; the latency listener is added there.
    :param longest_call: seconds one attempt loop can take at most: the bound
        on every wait here.
    :param estimates: each region's latency estimate (see
        :mod:`regionproxy._routing.nearest`): a demoted region whose latest
        probe or trial read is back within ``latency_window`` of the regions
        that replaced it is lifted early, on probation. None: demotions
        last ``demote_for``.
    """

    def __init__(
        self,
        policy: HedgePolicy,
        hooks: Hooks,
        *,
        longest_call: float,
        estimates: LatencyEstimates | None = None,
        latency_window: float = 0.015,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.budget = HedgeBudget(
            policy.budget, policy.window, min_per_second=policy.min_per_second, hold=longest_call + 1.0, clock=clock
        )
        self._clock = clock
        self._wall_clock = wall_clock
        # Hedges won in a row against each region; the regions demoted
        # (region -> monotonic time until which reads try it last); and those
        # whose demotion ended, until they answer a read in time. Plain dict
        # and set updates: a lost race miscounts one hedge, harmlessly.
        self._won_in_a_row: dict[str, int] = {}
        self._demoted: dict[str, float] = {}
        self._probation: set[str] = set()
        self.latency = RecentLatency()
        self._estimates = estimates
        self._latency_window = latency_window
        self._demoted_after: dict[str, int] = {}  # region -> samples of it counted when it was demoted
        self._hooks = hooks
        self._longest_call = longest_call
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pid = -1
        hooks.add(self.latency)
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"Hedger({self.policy!r})"

    def _after_fork(self) -> None:
        # The parent's pool threads do not exist here: a new pool on first use.
        self._lock = threading.Lock()
        self._pool, self._pid = None, -1

    def delay(self, region: str) -> float:
        """Seconds to wait for ``region`` before hedging."""
        if self.policy.delay != "p95":
            return float(self.policy.delay)
        observed = self.latency.p95(region)
        if observed is None:
            return self.policy.ceiling
        return min(self.policy.ceiling, max(self.policy.floor, observed))

    def order(self, plan: tuple[str, ...]) -> tuple[str, ...]:
        """``plan`` with demoted (slow) regions moved to the end. When a
        region's demotion is over, the one read that finds it so tries it
        first (a trial); the rest keep it last until that read has shown
        whether it is still slow."""
        if not self._demoted:
            return plan  # the common path: nothing is slow
        demoted = self._slow_for_this_read(plan)
        slow = [region for region in plan if region in demoted]
        if not slow:
            return plan
        return (*(region for region in plan if region not in demoted), *slow)

    def run(self, call: Call, plan: tuple[str, ...], attempt: Attempt) -> tuple[dict[str, Any], str]:
        """``attempt(call, plan, side)``, hedged after the delay with
        ``attempt(call, plan[1:], side)``; the first success wins. Every read
        comes here, hedged or not: each counts toward the budget."""
        self.budget.read()
        if len(plan) < 2 or self._is_demoted(plan[1]):
            return attempt(call, plan, None)  # nowhere a hedge could help
        pool = self._executor()
        delay = self.delay(plan[0])
        # Each side runs in the caller's context (a copy each: one context
        # cannot be entered by two threads), so what a request keeps in
        # context variables (its Server-Timing, say) sees both sides' calls.
        first = Side()
        primary = pool.submit(contextvars.copy_context().run, attempt, call, plan, first)
        try:
            result = primary.result(timeout=delay)
        except concurrent.futures.TimeoutError:
            pass
        else:
            if result[1] == plan[0]:
                self._answered(plan[0])  # not when its side had moved on and the next region answered
            return result
        if first.region not in (None, plan[0]):
            # The preferred side has moved on to the next region (its own
            # refused, failed fast or is open): a hedge would repeat it.
            return self._answer(call, plan, primary)
        receipt = self.budget.take()
        if receipt is None:
            self._hooks.emit(Hedged(call.operation, plan[0], plan[1], "refused", delay))
            return self._answer(call, plan, primary)
        second = Side(hedge=True)
        hedge = pool.submit(contextvars.copy_context().run, attempt, call, plan[1:], second)
        return self._first_success(call, plan, delay, receipt, (primary, first), (hedge, second))

    def close(self) -> None:
        with self._lock:
            pool, self._pool, self._pid = self._pool, None, -1
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _first_success(
        self,
        call: Call,
        plan: tuple[str, ...],
        delay: float,
        receipt: object,
        primary: tuple[concurrent.futures.Future[Any], Side],
        hedge: tuple[concurrent.futures.Future[Any], Side],
    ) -> tuple[dict[str, Any], str]:
        sides = dict((primary, hedge))
        pending = set(sides)
        deadline = time.monotonic() + self._longest_call + 1.0
        held = False  # the hedge ended with DynamoDB's own error while the preferred side ran
        while pending:
            done, pending = concurrent.futures.wait(
                pending, timeout=max(0.0, deadline - time.monotonic()), return_when=concurrent.futures.FIRST_COMPLETED
            )
            if not done:
                break  # both loops are bounded by their timeouts: only a stuck pool gets here
            for future in [future for future in sides if future in done]:  # the preferred side first
                error = future.exception()
                if isinstance(error, RegionProxyError):
                    if future is not primary[0] or not held:
                        continue  # this side failed: the other may still answer
                    future = hedge[0]  # the preferred side failed too: the hedge's error is the answer
                elif error is not None and future is hedge[0] and not primary[0].done():
                    # DynamoDB's own error, but from the hedge's regions: the
                    # preferred region, still at work, may answer yet. Its
                    # side tries no region the hedge has heard from.
                    held = True
                    primary[1].rest_answered = True
                    continue
                # A success, or DynamoDB's own answer (a caller error): the answer.
                won = future is hedge[0]
                for side in sides.values():
                    side.abandoned = True  # the other side tries no further region
                self._hooks.emit(Hedged(call.operation, plan[0], plan[1], "won" if won else "lost", delay))
                if not won:
                    self.budget.settle(receipt)  # the preferred side answered: the hedge was an extra request
                    if error is None and not held and future.result()[1] == plan[0]:
                        self._answered(plan[0])  # it answered first itself, not the region its side moved on to
                elif primary[0].done():
                    # It failed before the hedge answered, or while the
                    # hedge's error waited for it (an answer of its own would
                    # have been taken first): down, not slow.
                    self._preferred_side_ended(plan[0], receipt, primary[0])
                else:
                    # The win is counted before the callback is added: the
                    # side can end at any moment (the callback then runs in
                    # its thread, or here if it already has), and lifting
                    # the region must come after the win it undoes.
                    self._judge(plan[0])
                    primary[0].add_done_callback(lambda done: self._preferred_side_ended(plan[0], receipt, done))
                return future.result()
        self._hooks.emit(Hedged(call.operation, plan[0], plan[1], "failed", delay))
        if primary[0].done() and isinstance(primary[0].exception(), RegionProxyError):
            self.budget.refund(receipt)  # the preferred side failed: the hedge was no extra request
        else:
            self.budget.settle(receipt)
        return self._answer(call, plan, primary[0])  # the preferred side's error covers every region

    def _preferred_side_ended(self, region: str, receipt: object, primary: concurrent.futures.Future[Any]) -> None:
        """The side that lost to a hedge has ended. If it failed, the hedge
        was the read's only answer, not an extra request: the budget gets it
        back. And ``region`` is down, not slow: that is its breaker's to
        judge, which lets it back as soon as it answers again; a demotion
        would keep reads away for ``demote_for`` after it heals."""
        if isinstance(primary.exception(), RegionProxyError):
            self.budget.refund(receipt)
            self._won_in_a_row.pop(region, None)
            self._probation.discard(region)
            self._demoted.pop(region, None)
        else:
            self.budget.settle(receipt)  # it answered (or met DynamoDB's own error): the hedge was extra

    def _answer(
        self, call: Call, plan: tuple[str, ...], primary: concurrent.futures.Future[Any]
    ) -> tuple[dict[str, Any], str]:
        """The preferred side's answer or error, waited for at most the
        longest a call can take. Only a pool so overloaded that the call
        never started gets past that: a region error, never a bare timeout."""
        try:
            return primary.result(timeout=self._longest_call + 1.0)
        except concurrent.futures.TimeoutError:
            raise AllRegionsFailed(
                call.operation, {plan[0]: TimeoutError("no answer within the longest a call can take (hedging pool busy)")}
            ) from None

    def _judge(self, region: str) -> None:
        """Count a hedge won against ``region``; demote it after enough in a
        row, or at once when it is on probation."""
        count = self._won_in_a_row[region] = self._won_in_a_row.get(region, 0) + 1
        if not self.policy.demote_after:
            return
        if count >= self.policy.demote_after or region in self._probation:
            self._won_in_a_row.pop(region, None)
            self._probation.discard(region)
            if self._estimates is not None:
                self._demoted_after[region] = self._estimates.samples(region)
            self._demoted[region] = self._clock() + self.policy.demote_for
            self._hooks.emit(RegionDemoted(region, self.policy.demote_for, self._wall_clock()))

    def _answered(self, region: str) -> None:
        """``region`` answered a read before its hedge did: not slow now (a
        trial of a demoted region that passed lifts the demotion)."""
        self._won_in_a_row.pop(region, None)
        self._probation.discard(region)
        self._demoted.pop(region, None)

    def _is_demoted(self, region: str) -> bool:
        return region in self._demoted  # a region due a trial is still slow to hedge to

    def _slow_for_this_read(self, plan: tuple[str, ...]) -> dict[str, float]:
        """The demoted regions this read keeps last, as one snapshot. A
        region whose demotion is over is handed to this read as a trial
        (on probation: one hedge won against it demotes it again, an answer
        in time ends it), and stays demoted for every other read meanwhile;
        a trial that decides nothing (the read never waited on it) ends
        with the renewed demotion, and the next read tries again."""
        # Other threads demote (a hedge won) and lift (a side failed) while
        # this reads: iterating ``_demoted`` itself could fail the read with
        # "dictionary changed size during iteration", and reading it twice
        # could drop a region from a plan or list it twice. dict.copy is one
        # C call over str keys: no other thread runs during it.
        demoted = self._demoted.copy()
        now = self._clock()
        for region, until in list(demoted.items()):
            if until > now and self._back_within_window(region, plan):
                with self._lock:  # lifted early: back within the window (issue 20)
                    if self._demoted.get(region) != until:
                        continue
                    del self._demoted[region]
                    self._probation.add(region)  # one hedge won against it demotes it again
                del demoted[region]
                continue
            if until > now or region not in plan:
                continue
            with self._lock:  # one trial per expiry, whatever the threads
                if self._demoted.get(region) != until:
                    continue  # another read took the trial, or it was lifted
                if region == plan[0]:
                    self._demoted[region] = now + self.policy.demote_for  # the others wait for this read
                else:
                    # This read does not prefer it, so cannot try it: lifted,
                    # or it would stay out of reach of hedges for good.
                    del self._demoted[region]
                self._probation.add(region)
            del demoted[region]
        return demoted

    def _back_within_window(self, region: str, plan: tuple[str, ...]) -> bool:
        """Whether the latest probe or read of demoted ``region`` is back
        within the latency window of the plan's other regions."""
        if self._estimates is None or region not in plan:
            return False
        if self._estimates.samples(region) <= self._demoted_after.get(region, 0):
            return False  # no probe or read of it has answered since it was demoted
        return within_window(region, (other for other in plan if other != region), self._estimates, self._latency_window)

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=_POOL, thread_name_prefix="regionproxy-hedge")
                    self._pid = os.getpid()
        assert self._pool is not None
        return self._pool
