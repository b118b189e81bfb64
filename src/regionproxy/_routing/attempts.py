"""The attempt loop: every attempt of one call, in every region, seen here.

botocore makes one attempt per client call (``total_max_attempts=1``); this
loop makes the rest. That is what lets it keep the promise a failover layer
must keep: no write that may have been applied is sent again, in the same
region or another, unless it is safe to repeat.

For each region of the plan, in order: ask its breaker; try up to
``attempts`` times while the failure is fast and transient (a reset, a 5xx,
throttling); fail over on anything else. Then judge the call as a whole:

- a caller error (4xx) is raised unchanged at once, and closes no breaker
  it should not: only an answer from a region counts as one. A write
  conflict (``ReplicatedWriteConflictException``, an MRSC table's
  concurrent writes from two regions) is one too: never charged, never
  failed over; a write safe to repeat is tried again in the same region
  after a backoff, within ``attempts``, and any other reaches the caller
  unchanged;
- an error known to be raised before a request was sent (parameter
  validation, no credentials: see :mod:`regionproxy._dynamodb.verdicts`) says nothing
  about the region: its trial is released, and it reaches the caller;
- a 5xx answer, or an error the classifier does not know, is charged to
  its region when another region answered the same request. If none
  could, it is not charged then; and if every region failed it that way,
  the request itself is the likely cause (a poison request): the caller
  gets the first region's error as it was (the ``ClientError``, or
  whatever botocore raised). (With a region unreachable as well, the
  caller gets :class:`AllRegionsFailed`, which names every region's
  error.);
- such a failure of a write, in the region writes go to first (the local
  region, or the primary), that no other region judged (a write that is
  not idempotent is never sent to another region; or the others were open
  or unreachable) joins that region's *streak*. Once a region's streak
  holds two different requests (operation and parameters) with no answer
  from the region in between, the region is charged for both, and then
  for each such failure until it answers again (a success or a caller
  error). The same request failing again and again is one request and
  proves nothing; a request that failed that way in two regions is a
  poison request and joins no streak. So a region answering 500 to every
  ``UpdateItem ... ADD`` opens its breaker after ``fail_max`` different
  writes, and later writes, refused before they are sent, fail over.
  Reads join no streak (a read is tried in every admitted region, and the
  health probes, which read, charge a failing read path); nor does any
  region but the first: a bad write the caller keeps sending with new
  values (a fresh timestamp each time) may open the region writes go to
  first, never the one they fail over to. One bad request never opens
  every breaker;
- ``ResourceNotFoundException`` from a region tried after another failed is
  a replica missing there (configuration), reported, not raised as such.
  On the hedge side of a read, the preferred region has not failed: the
  table may be missing everywhere (the caller's typo), so the report waits
  until a region has answered the read (the table exists there); if none
  does, nothing is reported.

A write that fails after an attempt that may have applied it (a fault with
``maybe_applied``: a read timeout, a dropped connection, a 5xx, ... in any
attempt, in any region) may have landed there whatever error the caller
then gets (:class:`AmbiguousWriteError`, :class:`AllRegionsFailed`, a later
region's error): :meth:`AttemptLoop.run` names those regions, in the order
tried, so that read-your-writes and the cache can count the write as one
that may be there (see :mod:`regionproxy._routing.router`).

What it costs: every call of the app's comes through :meth:`AttemptLoop.run`,
so the common path (unhedged, the first region admits the call and answers
at the first attempt) is made inline there, with no per-call object of the
loop's own and its two events delivered together (``Hooks.emit_each``).
Anything else is handed to the general path (:meth:`AttemptLoop._attempt`)
with the attempt already made, which judges it as any attempt's error: one
set of rules, two ways in. Counted with ``sys.setprofile`` and
``valgrind --tool=callgrind`` (steady on a loaded machine, unlike a clock):
a GetItem served at once makes 17 Python calls beyond those of a raw boto3
client configured as the regional clients are (was 29), and 29k more
instructions (was 58k; ``benchmarks/bench_overhead.py --target floor``).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any

from regionproxy._config.policies import Timeouts
from regionproxy._dynamodb.calls import Call
from regionproxy._dynamodb.operations import READ, WRITE
from regionproxy._dynamodb.verdicts import classify, error_code
from regionproxy._forks import reset_after_fork
from regionproxy._regions.breaker import NORMAL
from regionproxy._regions.replica import Replica
from regionproxy._routing.hedging import Hedger, Side
from regionproxy.errors import AllRegionsFailed, AmbiguousWriteError, RegionProxyError, RegionUnavailable, ReplicaMissingError
from regionproxy.events import (
    CALLER_ERROR,
    FAILED,
    FAULT,
    OK,
    CallFinished,
    FailedOver,
    Hooks,
    OperationFinished,
    PoisonRequest,
    ReplicaMissing,
)

_MISSING = "ResourceNotFoundException"
BACKOFF, BACKOFF_CAP = 0.025, 0.25  # seconds


def longest_call(regions: int, timeouts: Timeouts, *, backoff_cap: float = BACKOFF_CAP) -> float:
    """Seconds one call can take at most over ``regions`` regions: every
    attempt in every region meeting its connect and read timeouts, plus
    the backoffs (the bound on every wait for a call: a hedge, a cache load)."""
    return _longest(regions, timeouts.attempts, timeouts, backoff_cap)


def _longest(regions: int, attempts: int, timeouts: Timeouts, backoff_cap: float) -> float:
    return regions * (attempts * (timeouts.connect + timeouts.read) + (attempts - 1) * backoff_cap)


class AttemptLoop:
    """Runs a :class:`~regionproxy._dynamodb.calls.Call` over a plan of regions.

    :param replicas: every region's replica.
    :param hooks: where events go (emitted with no lock held).
    :param attempts: attempts per region, the first included.
    :param throttling_is_fault: throttling fails over (True) or is the caller's.
    :param backoff: seconds; an in-region retry waits a random fraction of
        ``min(backoff_cap, backoff * 2**n)`` (full jitter).
    :param clock: wall-clock seconds for event times.
    :param sleep: how to wait before an in-region retry; tests pass a fake.
    :param rng: ``() -> float`` in [0, 1), for jitter.
    :param hedger: hedges reads (see :mod:`regionproxy._routing.hedging`), or None.
    """

    def __init__(
        self,
        replicas: Mapping[str, Replica],
        hooks: Hooks,
        *,
        attempts: int,
        throttling_is_fault: bool = True,
        backoff: float = BACKOFF,
        backoff_cap: float = BACKOFF_CAP,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        hedger: Hedger | None = None,
    ) -> None:
        self.hedger = hedger
        self.replicas = replicas
        self.hooks = hooks
        self.attempts = attempts
        self.throttling_is_fault = throttling_is_fault
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._streaks = _Streaks()

    def __repr__(self) -> str:
        return f"AttemptLoop(attempts={self.attempts}, backoff={self.backoff}, backoff_cap={self.backoff_cap})"

    def longest_call(self, timeouts: Timeouts) -> float:
        """Seconds one call can take at most (:func:`longest_call`), with
        this loop's regions, attempts and backoff."""
        return _longest(len(self.replicas), self.attempts, timeouts, self.backoff_cap)

    def run(
        self, call: Call, plan: tuple[str, ...], *, hedge: bool = True, maybe_applied: list[str] | None = None
    ) -> tuple[dict[str, Any], str]:
        """The response and the region that gave it; or the error to raise.
        Reads are hedged when the session has a hedge policy, unless
        ``hedge`` is False (a read that must see a write made in ``plan[0]``).

        :param maybe_applied: a list this fills, in the order tried, with the
            regions where a write met a fault that may have applied it; read
            it when the call raises: the write may have landed there.
        """
        # Every call comes through here: the common path (unhedged, the
        # first region admits it and answers at the first attempt) is made
        # inline, with as few Python calls as it can, and emits its events
        # built the quicker way (``CallFinished.build``: the same records).
        # Anything else goes the general way (``_attempt``), which takes over
        # the first attempt where the common path leaves it.
        started = perf_counter()
        tally: _Tally | _Run | None = None  # None: served at once, by the common path
        attempt_started: float | None = None  # the common path's attempt, once made
        try:
            if hedge and self.hedger is not None and call.kind == READ:
                tally = _Tally(maybe_applied)  # both sides' attempts
                result, region = self.hedger.run(call, plan, lambda c, p, side: self._attempt(_Run(c, p, tally, side)))
                # A region answered the read: the table exists. A hedge's
                # missing replicas held until now are missing replicas (not
                # the one that answered: it has the table). Set before the
                # copy is taken: a losing side that holds one later sees it
                # (``_replica_missing``).
                tally.served = region
                for missing, tables in tally.missing.copy().items():  # one C call: the other side may still add
                    if missing != region:
                        self._report_missing(tally, missing, tables)
            else:
                region = plan[0]
                replica = self.replicas[region]
                breaker = replica.breaker
                ticket = breaker.admit()
                if ticket is not None:
                    attempt_started = perf_counter()
                    try:
                        result = (
                            replica.call(call.operation, call.params) if not call.by_arn else self._send_by_arn(replica, call)
                        )
                    except BaseException as error:  # noqa: BLE001 - judged by _try_region, as every attempt's error
                        tally = _Run(call, plan, None, None, maybe_applied)
                        tally.sent = (ticket, error, attempt_started)
                    else:
                        breaker.succeeded(ticket)
                        if region in self._streaks.failing:  # read without the lock (see _Streaks.answered)
                            self._streaks.answered(region)
                # Refused (the general way asks again), or failed: the call's
                # only pass, its own tally. Out of the except block: what it
                # raises is not raised while handling the first error.
                if tally is None and ticket is None:
                    tally = _Run(call, plan, None, None, maybe_applied)
                if tally is not None:
                    result, region = self._attempt(tally)
        except BaseException as error:
            outcome = FAILED if isinstance(error, RegionProxyError) else CALLER_ERROR
            if tally is not None:
                region, attempts = tally.region, tally.attempts
            else:  # the common path's bookkeeping failed
                region, attempts = (plan[0], 1) if attempt_started is not None else (None, 0)
            self.hooks.emit(OperationFinished.build(call.operation, call.kind, outcome, region, perf_counter() - started, attempts))
            raise
        if tally is None:  # served at once: the attempt and the call, announced together
            assert attempt_started is not None
            ended = perf_counter()
            self.hooks.emit_each(
                CallFinished.build(region, call.operation, call.kind, ended - attempt_started, OK, None),
                OperationFinished.build(call.operation, call.kind, OK, region, ended - started, 1),
            )
            return result, region
        # The region that served (with a hedge, not the last one started).
        self.hooks.emit(OperationFinished.build(call.operation, call.kind, OK, region, perf_counter() - started, tally.attempts))
        return result, region

    def _send_by_arn(self, replica: Any, call: Call) -> dict[str, Any]:
        """Send a call that names a table by ARN to ``replica``'s region: each
        ARN of one of the session's regions rewritten to it (a copy), and the
        caller's ARNs back in the answer (:mod:`regionproxy._dynamodb.tables`)."""
        params, renames = call.params_in(replica.region, self.replicas)
        return call.answer_for_caller(replica.call(call.operation, params), renames)

    def _attempt(self, run: _Run) -> tuple[dict[str, Any], str]:
        """Every region of the run's plan in turn, until one serves (or, on
        one side of a hedged read, until the other side has answered)."""
        call, plan, side = run.call, run.plan, run.side
        try:
            for region in plan:
                if side is not None and (side.abandoned or (region != plan[0] and side.rest_answered)):
                    # The other side of the hedge answered (perhaps before this
                    # side even started, in a busy pool): trying a region, even
                    # the first, would only send the read again. Or it has
                    # DynamoDB's own error from the regions after this one.
                    break
                result = self._try_region(run, region)
                if result is not None:
                    if run.server_errors:
                        self._charge_server_errors(run, region)
                    return result, region
            if run.abandoned() or run.rest_answered():
                # The other side answered this very request: the 5xx this side
                # met were its regions'. Nobody awaits this error, or the
                # other side's error is the answer.
                self._charge_server_errors(run, None)
                raise AllRegionsFailed(call.operation, run.errors) from _last(run.errors)
            server_regions = run.server_regions or ()
            if run.server_errors and not run.hedge() and all(region in server_regions for region in run.errors):
                # Every region failed this request with a server error (or an
                # error nobody knows): blame the request, not the regions (none
                # was charged for it).
                first_error = run.server_errors[0][1]
                regions = tuple(dict.fromkeys(region for region, _ in run.server_errors))
                self.hooks.emit(PoisonRequest(call.operation, regions, error_code(first_error), self._clock()))
                raise first_error
            raise AllRegionsFailed(call.operation, run.errors) from _last(run.errors)
        except BaseException:
            if run.server_errors:
                self._withhold_server_errors(run)
            raise

    # -- one region ----------------------------------------------------------------

    def _try_region(self, run: _Run, region: str) -> dict[str, Any] | None:
        """Up to ``attempts`` attempts in ``region``; the first may have been
        made already, and failed (``run.sent``, by :meth:`run`'s common path):
        it is judged here as any attempt is."""
        call, replica, tally = run.call, self.replicas[region], run.tally
        breaker = replica.breaker
        failover = region != run.plan[0]
        if run.side is not None:
            run.side.region = region
        for attempt in range(self.attempts):
            failure: BaseException | None = None
            if run.sent is None:
                ticket = breaker.admit()
                if ticket is None:
                    run.errors.setdefault(region, RegionUnavailable(region, breaker.state))
                    return None
                started = perf_counter()
            else:
                (ticket, failure, started), run.sent = run.sent, None
            tally.attempts += 1
            tally.region = region
            try:
                if failure is not None:
                    # Raised again here, so that the handlers below judge it
                    # as they judge the error of an attempt made here.
                    raise failure
                result = replica.call(call.operation, call.params) if not call.by_arn else self._send_by_arn(replica, call)
            except Exception as error:
                failure = None  # no cycle through this frame (as ``error`` is deleted after the block)
                duration = perf_counter() - started
                verdict = classify(error, throttling_is_fault=self.throttling_is_fault)
                if not verdict.sent:
                    breaker.released(ticket)  # the region said nothing
                    raise
                if not verdict.fault:
                    breaker.succeeded(ticket)  # the region answered
                    self._streaks.answered(region)
                    self._emit_attempt(region, call, duration, CALLER_ERROR, error_code(error))
                    # issue 20 (r20-routing): a write conflict on an MRSC table is
                    # retried here, after a backoff, only when the write is safe to repeat.
                    if verdict.retry_here and call.kind == WRITE and call.repeatable and attempt + 1 < self.attempts:
                        self._sleep(self._rng() * min(self.backoff_cap, self.backoff * 2**attempt))
                        continue
                    if error_code(error) == _MISSING and (run.hedge() or (failover and run.errors)):
                        # Another region has the table (it answered, or the
                        # preferred side of a hedge still may): this region's
                        # replica is missing, not the caller's table.
                        self._replica_missing(run, region, error, failover)
                        return None
                    if failover:
                        self._failed_over(run, region, CALLER_ERROR)
                    raise
                if verdict.poison_suspect:
                    # A 5xx, or an error the classifier does not know: charged
                    # at the end, if another region answers the same request.
                    breaker.released(ticket)
                    if not run.server_errors:
                        run.server_errors = []
                    run.server_errors.append((region, error))
                    if run.server_regions is None:
                        run.server_regions = set()
                    run.server_regions.add(region)
                else:
                    breaker.failed(ticket)
                    if run.server_regions:
                        run.server_regions.discard(region)
                self._emit_attempt(region, call, duration, FAULT, verdict.reason)
                run.errors[region] = error
                if call.kind == WRITE and verdict.maybe_applied and region not in (tally.maybe_applied or ()):
                    if tally.maybe_applied is None:
                        tally.maybe_applied = []
                    tally.maybe_applied.append(region)
                if region == run.plan[0]:
                    run.reason = verdict.reason
                if call.kind == WRITE and verdict.maybe_applied and not call.repeatable:
                    if failover:
                        self._failed_over(run, region, FAULT)
                    raise AmbiguousWriteError(region, call.operation, error) from error
                if verdict.retry_here and attempt + 1 < self.attempts and not run.abandoned():
                    self._sleep(self._rng() * min(self.backoff_cap, self.backoff * 2**attempt))
                    if not run.abandoned():  # the other side may have answered meanwhile
                        continue
                break
            except BaseException:
                failure = None
                breaker.released(ticket)
                raise
            # The common path, inline: one Python call fewer each.
            breaker.succeeded(ticket)
            if region in self._streaks.failing:  # read without the lock (see _Streaks.answered)
                self._streaks.answered(region)
            self.hooks.emit(CallFinished.build(region, call.operation, call.kind, perf_counter() - started, OK, None))
            if failover:
                self._failed_over(run, region, OK)
            return result
        if failover:
            self._failed_over(run, region, FAULT)
        return None

    def _replica_missing(self, run: _Run, region: str, error: BaseException, failover: bool) -> None:
        tables = run.call.tables or ["?"]
        if run.hedge():
            # The preferred region has not failed: the table may be missing
            # everywhere. Reported once a region answers the read (``run``),
            # or now if one has (this side lost, and ends late). Held first,
            # then checked: ``run`` sets ``served`` first, then reads what
            # is held, so one of the two reports it.
            run.tally.missing[region] = tables
            served = run.tally.served
            if served is not None and served != region:
                self._report_missing(run.tally, region, tables)
        elif run.tally is run:
            self._emit_missing(region, tables)  # one pass meets each region once: nothing to deduplicate
        else:
            self._report_missing(run.tally, region, tables)
        run.errors[region] = ReplicaMissingError(region, tables, error)
        if failover:
            self._failed_over(run, region, CALLER_ERROR)

    def _report_missing(self, tally: _Tally, region: str, tables: list[str]) -> None:
        """Emit ``ReplicaMissing`` for ``region``, once per call (both sides
        of a hedge may meet it)."""
        tally.missing.pop(region, None)
        claim = object()
        if tally.reported.setdefault(region, claim) is not claim:
            return  # reported already, by this side or the other
        self._emit_missing(region, tables)

    def _emit_missing(self, region: str, tables: list[str]) -> None:
        for table in tables:
            self.hooks.emit(ReplicaMissing(region, table, self._clock()))

    def _charge_server_errors(self, run: _Run, served_by: str | None) -> None:
        # Another region answered this very request: the 5xx (or the unknown
        # error) was the region's.
        errors, run.server_errors = run.server_errors, ()
        for region, _ in errors:
            if region != served_by:
                self.replicas[region].breaker.failed(NORMAL)

    def _withhold_server_errors(self, run: _Run) -> None:
        """A write failed with no other region's verdict on its 5xx (or
        unknown error) in the region writes go to first: it joins that
        region's streak, which charges the region once it holds two
        different requests."""
        errors, run.server_errors = run.server_errors, ()
        regions = {region for region, _ in errors}
        if run.call.kind != WRITE or regions != {run.plan[0]}:
            return  # a read; none; a poison request (failed in two regions); or not where writes go first
        region = run.plan[0]
        for _ in range(self._streaks.withheld(region, _request_print(run.call))):
            self.replicas[region].breaker.failed(NORMAL)

    # -- events --------------------------------------------------------------------

    def _emit_attempt(self, region: str, call: Call, duration: float, outcome: str, error: str | None) -> None:
        self.hooks.emit(CallFinished(region, call.operation, call.kind, duration, outcome, error))

    def _failed_over(self, run: _Run, region: str, outcome: str) -> None:
        self.hooks.emit(FailedOver(run.call.operation, run.plan[0], region, run.reason, self._clock(), outcome))


class _Tally:
    """Attempts of one call, over both sides of a hedge; the region that
    answered last; the regions where a write may have been applied; the
    missing replicas a hedge met (held until a region answers the read),
    those reported, and the region that served the call."""

    __slots__ = ("attempts", "region", "maybe_applied", "missing", "reported", "served")

    def __init__(self, maybe_applied: list[str] | None = None) -> None:
        self.attempts = 0
        self.region: str | None = None
        self.maybe_applied = maybe_applied  # a list once a region is added (the caller's, if it passed one)
        # Updated from both sides' threads: each update is one dict
        # operation on str keys, atomic under the GIL.
        self.missing: dict[str, list[str]] = {}
        self.reported: dict[str, object] = {}
        self.served: str | None = None  # the region that answered the call, once it has


class _Run:
    """What one pass over a plan has met so far. Unhedged, the call's only
    pass: it is its own tally (``attempts``, ``region``, ``maybe_applied``,
    as :class:`_Tally` has them; missing replicas are reported as met)."""

    __slots__ = (
        "call", "plan", "tally", "side", "errors", "server_errors", "server_regions", "reason", "sent",
        "attempts", "region", "maybe_applied",
    )

    def __init__(
        self,
        call: Call,
        plan: tuple[str, ...],
        tally: _Tally | None,
        side: Side | None,
        maybe_applied: list[str] | None = None,
    ) -> None:
        self.call = call
        self.plan = plan
        self.tally: _Tally | _Run = self if tally is None else tally
        self.side = side
        if tally is None:
            self.attempts = 0
            self.region: str | None = None
            self.maybe_applied = maybe_applied  # a list once a region is added (the caller's, if it passed one)
        self.errors: dict[str, BaseException] = {}
        # The 5xx (or unknown) errors met, a list from the first (most calls meet none).
        self.server_errors: list[tuple[str, BaseException]] | tuple[()] = ()
        # The regions whose last answer was a 5xx (made at the first: most
        # calls meet none).
        self.server_regions: set[str] | None = None
        self.reason = "breaker_open"  # why the preferred region did not serve
        # The first region's first attempt, made and failed before this run
        # began (AttemptLoop.run's common path): its ticket, error and start.
        self.sent: tuple[str, BaseException, float] | None = None

    def abandoned(self) -> bool:
        """Whether the other side of a hedged read has answered it."""
        return self.side is not None and self.side.abandoned

    def rest_answered(self) -> bool:
        """Whether the hedge of this read got DynamoDB's own error from the
        regions after this side's first (see :class:`~regionproxy._routing.hedging.Side`)."""
        return self.side is not None and self.side.rest_answered

    def hedge(self) -> bool:
        """Whether this is the hedge of a read: its plan is not the read's
        whole plan, so no judgment of the request itself is made here."""
        return self.side is not None and self.side.hedge


class _Streaks:
    """Per region, the 5xx (or unknown) failures withheld since it last
    answered: the first request's print, and whether a different request
    has failed there since (the region is then proven failing)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The regions with a streak, and its first request's print. Changed
        # under the lock; read without it by the attempt loop on every answer
        # (a dict lookup is atomic), which calls answered() only for these.
        self.failing: dict[str, int] = {}
        self._proven: set[str] = set()
        reset_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a parent's thread may have held it

    def answered(self, region: str) -> None:
        """``region`` answered a request: its streak ends."""
        # Every answer comes here: read without the lock while there is no
        # streak (a dict lookup is atomic). A failure withheld concurrently
        # may then outlive this answer: it raced it, and proves no less.
        if region in self.failing:
            with self._lock:
                self.failing.pop(region, None)
                self._proven.discard(region)

    def withheld(self, region: str, request: int) -> int:
        """How many failures to charge ``region`` for, now that ``request``
        failed there with no other region's verdict."""
        with self._lock:
            if region in self._proven:
                return 1
            if self.failing.setdefault(region, request) == request:
                return 0  # the streak's first request, or the same one again
            self._proven.add(region)
            return 2  # the first request's failure, withheld until now, and this one


def _request_print(call: Call) -> int:
    """Tells two requests apart: operation and parameters (wire format)."""
    try:
        text = json.dumps(call.params, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        text = repr(call.params)
    return hash((call.operation, text))


def _last(errors: Mapping[str, BaseException]) -> BaseException | None:
    return next(reversed(errors.values()), None) if errors else None
