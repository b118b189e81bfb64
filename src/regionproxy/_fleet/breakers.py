"""One verdict per region for the whole fleet: breakers and evacuations.

:class:`SharedBreakers` joins every :class:`~regionproxy._regions.breaker.RegionBreaker`
of a session to the fleet (it is the breakers' :class:`~regionproxy._regions.breaker.Sharing`):

- **Failures are counted fleet-wide**: each fault adds to one counter per
  region in Redis, so ``fail_max`` means that many faults in the fleet; the
  process whose fault reaches it opens its breaker, and the opening reaches
  every process. A success clears the count only in a process that had
  faults itself (the success path of the others never touches Redis), and
  the count expires ``failure_memory`` after its last fault: scattered
  faults an hour apart are no streak.
- **Openings and closings reach every process** as a message on the bus,
  and are kept in Redis (``breaker:{region}``) in the same atomic step, for
  processes that start later or missed the message. A process applies an
  opening it hears (timed from the later of the openings it knows, so the
  reset timeouts run out together), and a closing, unless it holds the
  region evacuated.
- **One half-open trial per region per fleet**: a reservation
  (``trial:{region}``, ``SET NX PX``) whose expiry is the longest a call
  can take, so a holder that dies does not block the fleet; the trial's
  verdict, an opening or a closing, goes to every process like any other.
- **Evacuations are the fleet's**: :meth:`SharedBreakers.evacuate` and
  :meth:`~SharedBreakers.restore` keep ``evacuated:{region}`` (until
  restored, across restarts of every worker) and who did it, when
  (``action:{region}``), and tell every process.

What a process decided while Redis was away (an evacuation, a restore) is
sent again once it is back; an evacuation that Redis lost (a restart
without persistence: the fleet's ``epoch`` key is gone or new) is asserted
again by every process that holds it. Otherwise what Redis keeps wins when
a process (re)connects, except that a closing it missed does not close a
breaker this process opened on its own evidence: its next trial decides.

Changes applied from the fleet are announced as every change is (metrics,
the status page), and are not sent back to the fleet: the thread that
applies them marks itself, and the listener that sends local changes
skips what that thread announces.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from regionproxy._fleet.link import FleetLink, FleetMessage
from regionproxy._forks import reset_after_fork
from regionproxy._regions.breaker import CLOSED, EVACUATED, OPEN, RegionBreaker
from regionproxy.events import BreakerChanged, Event, Hooks

log = logging.getLogger("regionproxy")

BREAKER, EVACUATION, TRIAL_TOPIC = "breaker", "evacuation", "trial"
EVACUATE, RESTORE = "evacuate", "restore"

# KEYS[1]: the counter. ARGV[1]: its expiry (ms). The count after this fault.
_COUNT_FAILURE = """
local count = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return count
"""
# KEYS[1]: the reservation. ARGV: the holder, the expiry (ms).
# 0: reserved for the holder; else the milliseconds another holds it.
_RESERVE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local left = redis.call('PTTL', KEYS[1])
if left < 1 then return 1 end
return left
"""
# KEYS[1]: the reservation. ARGV[1]: its holder. Given back only by its holder.
_GIVE_BACK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def action_record(action: str, by: str, at: float, member: str) -> dict[str, Any]:
    """An evacuate or restore: what, who (``by``: a person, an address, a
    tool), when (wall clock), from which process (``member``)."""
    return {"action": action, "by": by, "at": at, "member": member}


def send_action(link: FleetLink, region: str, record: dict[str, Any]) -> bool:
    """Keep an evacuate or restore of ``region`` in Redis and tell every
    process, in one atomic step; True if Redis took it. The command line
    uses it too, with a link of its own."""
    text = json.dumps(record)
    if record["action"] == EVACUATE:
        keep = {f"evacuated:{region}": text, f"action:{region}": text}
        forget: tuple[str, ...] = ()
    else:
        closed = json.dumps({"state": CLOSED, "at": record["at"], "member": record["member"]})
        keep = {f"action:{region}": text, f"breaker:{region}": closed}
        forget = (f"evacuated:{region}", f"failures:{region}")
    # The latest word stands: an older action sent late (replayed after a
    # gap, two operators at once) changes nothing.
    return link.publish(
        EVACUATION, {"region": region, **record}, keep=keep, forget=forget, unless_newer=(f"action:{region}", record["at"])
    )


class SharedBreakers:
    """The breakers of one session, shared with the fleet through ``link``.

    :param link: the process's :class:`FleetLink`.
    :param breakers: region -> its breaker.
    :param hooks: the session's hooks: local breaker changes are heard there.
    :param trial_seconds: how long a trial reservation lasts (the longest a
        call to one region can take, and a margin).
    :param failure_memory: seconds a fleet failure count lasts after its
        last fault.
    :param clock: wall-clock seconds (times sent to other processes).
    """

    def __init__(
        self,
        link: FleetLink,
        breakers: Mapping[str, RegionBreaker],
        hooks: Hooks,
        *,
        trial_seconds: float,
        failure_memory: float = 60.0,
        clock: Callable[[], float],
    ) -> None:
        self._link = link
        self._breakers = dict(breakers)
        self._trial_ms = max(int(trial_seconds * 1000), 1)
        self._failure_ms = max(int(failure_memory * 1000), 1)
        self._clock = clock
        self._applying = threading.local()  # set on a thread applying the fleet's changes
        self._lock = threading.Lock()
        # Evacuations and restores this process could not send yet: region -> record.
        self._unsent: dict[str, dict[str, Any]] = {}
        # The last evacuate/restore of each region the fleet knows of: who, when.
        self.actions: dict[str, dict[str, Any]] = {}
        # Who holds each region's trial, as last heard: region -> (member, until).
        self.trials: dict[str, tuple[str, float]] = {}
        self._epoch: str | None = None
        for breaker in self._breakers.values():
            breaker.share(self)
        hooks.add(self._on_event)
        link.subscribe(BREAKER, self._heard_breaker)
        link.subscribe(EVACUATION, self._heard_evacuation)
        link.subscribe(TRIAL_TOPIC, self._heard_trial)
        link.on_connect(self.sync)
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"SharedBreakers({sorted(self._breakers)!r}, fleet={self._link.name!r})"

    # -- Sharing: what the breakers ask ------------------------------------------

    def count_failure(self, region: str) -> int | None:
        count = self._link.script(_COUNT_FAILURE, [f"failures:{region}"], [self._failure_ms])
        return int(count) if count is not None else None

    def clear_failures(self, region: str) -> None:
        self._link.delete(f"failures:{region}")

    def reserve_trial(self, region: str) -> float:
        # Without an answer (default 0), each process tries for itself until the fleet is back.
        left = self._link.script(_RESERVE, [f"trial:{region}"], [self._link.member, self._trial_ms], default=0)
        if not left:
            self._link.publish(TRIAL_TOPIC, {"region": region, "until": self._clock() + self._trial_ms / 1000})
            return 0.0
        return int(left) / 1000

    def end_trial(self, region: str) -> None:
        self._link.script(_GIVE_BACK, [f"trial:{region}"], [self._link.member])

    # -- evacuations ---------------------------------------------------------------

    def evacuate(self, region: str, by: str) -> bool:
        """Evacuate ``region`` here and in every process of the fleet; True
        if the fleet has it now, False if it is sent when Redis is back."""
        return self._act(action_record(EVACUATE, by, self._clock(), self._link.member), region)

    def restore(self, region: str, by: str) -> bool:
        """Restore ``region`` here and in every process; as :meth:`evacuate`."""
        return self._act(action_record(RESTORE, by, self._clock(), self._link.member), region)

    def _act(self, record: dict[str, Any], region: str) -> bool:
        breaker = self._breakers[region]
        with self._lock:
            # Noted as unsent before the breaker changes: a catch-up with the
            # fleet running meanwhile must not undo it.
            self.actions[region] = record
            self._unsent[region] = record
        if record["action"] == EVACUATE:
            breaker.evacuate()
        else:
            breaker.restore()
        sent = self._publish_action(region, record)
        if sent:
            with self._lock:
                if self._unsent.get(region) is record:
                    del self._unsent[region]
        return sent

    def _publish_action(self, region: str, record: dict[str, Any]) -> bool:
        return send_action(self._link, region, record)

    # -- local changes, sent to the fleet ---------------------------------------------

    def _on_event(self, event: Event) -> None:
        """Listener: a breaker of this process opened or closed by itself."""
        if type(event) is not BreakerChanged or getattr(self._applying, "on", False):
            return
        breaker = self._breakers.get(event.region)
        if breaker is None or EVACUATED in (event.old, event.new):
            return  # evacuations travel as actions, with who and when
        # The breaker's state now, not the event's: two changes can be
        # announced newest first, and the last one sent must be the latest.
        state = breaker.state
        if state not in (OPEN, CLOSED):
            return
        record = {"state": state, "at": self._clock(), "member": self._link.member}
        if state == OPEN:
            record["opened_at"] = breaker.opened_at or self._clock()
        self._link.publish(
            BREAKER,
            {"region": event.region, **record},
            keep={f"breaker:{event.region}": json.dumps(record)},
            forget=(f"failures:{event.region}",),  # after a verdict, the count starts over
        )

    # -- the fleet's changes, applied here -------------------------------------------

    def _apply(self, function: Callable[[], None]) -> None:
        self._applying.on = True
        try:
            function()
        finally:
            self._applying.on = False

    def _region_of(self, body: dict[str, Any]) -> RegionBreaker | None:
        region = body.get("region")
        return self._breakers.get(region) if isinstance(region, str) else None

    def _heard_breaker(self, message: FleetMessage) -> None:
        breaker = self._region_of(message.body)
        if breaker is None:
            return
        self.trials.pop(breaker.region, None)  # a verdict: whoever held the trial is done
        if message.mine:
            return
        state = message.body.get("state")
        if state == OPEN:
            opened_at = _seconds(message.body.get("opened_at"), message.at)
            self._apply(lambda: breaker.apply_open(opened_at))
        elif state == CLOSED:
            self._apply(breaker.apply_closed)

    def _heard_evacuation(self, message: FleetMessage) -> None:
        body = message.body
        breaker = self._region_of(body)
        if breaker is None or body.get("action") not in (EVACUATE, RESTORE):
            return
        region = breaker.region
        record = action_record(body["action"], str(body.get("by")), _seconds(body.get("at"), message.at), message.sender)
        with self._lock:
            known = self.actions.get(region)
            if known is not None and known["at"] > record["at"]:
                return  # older than a word this process knows
            self.actions[region] = record
            pending = self._unsent.get(region)
            if pending is not None and pending["at"] <= record["at"]:
                del self._unsent[region]  # the fleet has it, or a newer word
        # Applied even when it is this process's own (idempotent): a catch-up
        # that read Redis just before the action landed may have undone it here.
        self._apply(breaker.evacuate if record["action"] == EVACUATE else breaker.restore)

    def _heard_trial(self, message: FleetMessage) -> None:
        breaker = self._region_of(message.body)
        if breaker is not None:
            self.trials[breaker.region] = (message.sender, _seconds(message.body.get("until"), message.at))

    # -- (re)connecting -------------------------------------------------------------

    def sync(self) -> None:
        """Catch up with the fleet: send what this process decided while
        Redis was away, then apply what Redis keeps. Runs each time the
        subscription becomes live (messages may have been missed) and when
        a process first uses the fleet."""
        with self._lock:
            unsent = dict(self._unsent)
        for region, record in unsent.items():
            if self._publish_action(region, record):  # unless a newer word stands
                with self._lock:
                    if self._unsent.get(region) is record:
                        del self._unsent[region]
        regions = sorted(self._breakers)
        keys = ["epoch"]
        for region in regions:
            keys += [f"evacuated:{region}", f"breaker:{region}", f"action:{region}"]
        values = self._link.mget(keys)
        if values is None:
            return  # Redis did not answer: the next connection catches up
        epoch = values[0]
        if epoch is None:
            self._link.set("epoch", uuid.uuid4().hex, nx=True)
            epoch = self._link.get("epoch")
        lost = self._epoch is not None and epoch != self._epoch
        if lost:
            log.warning(
                "regionproxy fleet %s: Redis lost the fleet's state; evacuations held here are sent again", self._link.name
            )
        self._epoch = epoch
        for index, region in enumerate(regions):
            evacuated, breaker_state, action = values[1 + 3 * index : 4 + 3 * index]
            self._catch_up(region, _record(evacuated), _record(breaker_state), _record(action), lost=lost)

    def _catch_up(
        self,
        region: str,
        evacuated: dict[str, Any] | None,
        state: dict[str, Any] | None,
        action: dict[str, Any] | None,
        *,
        lost: bool,
    ) -> None:
        breaker = self._breakers[region]
        with self._lock:
            if region in self._unsent:
                return  # an action of ours is on its way: it is the latest word
            if action is not None:
                known = self.actions.get(region)
                if known is None or _seconds(action.get("at"), 0.0) >= known["at"]:
                    self.actions[region] = action
        if evacuated is not None:
            if breaker.state != EVACUATED:
                self._apply(breaker.evacuate)
            return
        if breaker.state == EVACUATED:
            if lost:
                record = self.actions.get(region) or action_record(EVACUATE, "unknown", self._clock(), self._link.member)
                self._publish_action(region, record)
            else:
                self._apply(breaker.restore)  # restored while we were away
            return
        if state is not None and state.get("state") == OPEN:
            opened_at = _seconds(state.get("opened_at"), self._clock())
            self._apply(lambda: breaker.apply_open(opened_at))

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at the fork

    def status(self) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            actions = {region: dict(record) for region, record in self.actions.items()}
            unsent = sorted(self._unsent)
        trials = {region: {"member": member, "until": until} for region, (member, until) in self.trials.items() if until > now}
        return {"actions": actions, "unsent": unsent, "trials": trials}


def _record(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _seconds(value: Any, default: float) -> float:
    """A time from another process, or ``default`` if it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)
