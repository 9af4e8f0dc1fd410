"""The alarm engine (pure, clock-injected): catalogue conditions evaluated on live messages, with
on/off delays and hysteresis, the ISA-18.2 lifecycle, shelving, cause linking and chatter control.

Every call takes the time (``now_ns``) and returns the lifecycle transitions it produced; the
``alarm_manager`` node publishes and records them. Nothing here reads a clock or does I/O.

Lifecycle (``Alarm.STATE_*``)::

    NORMAL --raise--> ACTIVE_UNACKED --ack--> ACTIVE_ACKED --clear--> NORMAL
                           |clear                                      ^
                           v                                           |
                     CLEARED_UNACKED --ack-----------------------------+
                           |raise again -> ACTIVE_UNACKED
    any non-NORMAL --shelve(user, duration)--> SHELVED --expiry/unshelve--> the state the condition has then
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from energizeos.knowledge.catalogue import AlarmDefinition, Catalogue, Condition
from energizeos.runtime import Time
from energizeos_msgs.msg import Alarm, ArbiterDecision, Header
from energizeos_msgs.srv import AlarmAction

S = 1_000_000_000
GOOD = 0
NORMAL, ACTIVE_UNACKED, ACTIVE_ACKED, CLEARED_UNACKED, SHELVED = (
    Alarm.STATE_NORMAL, Alarm.STATE_ACTIVE_UNACKED, Alarm.STATE_ACTIVE_ACKED, Alarm.STATE_CLEARED_UNACKED,
    Alarm.STATE_SHELVED)
OUTCOMES = {"refused": ArbiterDecision.OUTCOME_REFUSED, "clipped": ArbiterDecision.OUTCOME_CLIPPED}
CHATTER_CODE = "EMS_ALARM_CHATTER"


@dataclass(frozen=True)
class Transition:
    alarm_id: int
    code: str
    source: str
    priority: int
    event: int  # Alarm.EVENT_*
    state: int  # Alarm.STATE_* after the event
    time_ns: int
    message: str
    evidence: dict[str, Any]
    cause_alarm_id: int = 0
    user: str = ""

    def to_msg(self) -> Alarm:
        return Alarm(header=Header(stamp=Time(self.time_ns).to_msg(), frame_id="alarm_manager"),
                     alarm_id=self.alarm_id, code=self.code, source=self.source, priority=self.priority,
                     event=self.event, state=self.state, message=self.message,
                     evidence_json=json.dumps(self.evidence, sort_keys=True, default=str),
                     cause_alarm_id=self.cause_alarm_id, user=self.user)


@dataclass
class Occurrence:
    """One alarm from its raise until it is back to NORMAL."""

    alarm_id: int
    state: int
    raised_ns: int
    cause_alarm_id: int
    message: str
    evidence: dict[str, Any]
    shelved_until_ns: int = 0
    state_before_shelve: int = 0


@dataclass
class Tracker:
    """The condition of one (alarm code, source) and its occurrence."""

    definition: AlarmDefinition
    source: str
    condition: bool = False  # after hysteresis, before delays
    since_ns: int = 0  # when ``condition`` last changed
    active: bool = False  # after delays: the alarm condition as the operator sees it
    message: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    occurrence: Occurrence | None = None
    raises: deque[int] = field(default_factory=deque)  # recent raise times, for chatter detection
    chattering_since_ns: int = 0


@dataclass(frozen=True)
class Limits:
    chatter_raises: int = 5  # this many raises of one alarm ...
    chatter_window_s: float = 60.0  # ... within this window latch it and raise EMS_ALARM_CHATTER
    max_shelve_s: float = 8 * 3600.0  # a shelved alarm always comes back
    shelve_priority_1: bool = False  # critical alarms cannot be shelved
    cause_window_s: float = 30.0  # a root that cleared this recently still explains a consequence


def _field_value(msg: Any, name: str, op: str | None) -> float | None:
    value = getattr(msg, name)
    if isinstance(value, np.ndarray | list | tuple):
        values = [float(v) for v in value if math.isfinite(float(v))]
        if not values:
            return None
        return min(values) if op in ("<", "<=") else max(values)
    number = float(value)
    return number if math.isfinite(number) else None


def _compare(value: float, op: str, limit: float) -> bool:
    return {">": value > limit, ">=": value >= limit, "<": value < limit, "<=": value <= limit}[op]


def _threshold(cond: Condition, value: float, was_active: bool) -> bool:
    """Raised at ``value op limit``; once raised, clears only past the limit by the deadband."""
    assert cond.op is not None and cond.limit is not None
    if not was_active:
        return _compare(value, cond.op, cond.limit)
    back = cond.limit - cond.deadband if cond.op in (">", ">=") else cond.limit + cond.deadband
    return _compare(value, cond.op, back)


class AlarmEngine:
    def __init__(self, catalogue: Catalogue, now_ns: int, limits: Limits = Limits(), first_id: int = 1,
                 authorize: Callable[[str, str], str | None] | None = None) -> None:
        """``authorize(user, action)`` returns None when allowed, or the reason it is refused."""
        self.catalogue = catalogue
        self.by_code = catalogue.by_code
        self.limits = limits
        self.authorize = authorize or (lambda _user, _action: "no authorisation configured")
        self._next_id = first_id
        self.started_ns = now_ns
        self.trackers: dict[tuple[str, str], Tracker] = {}
        self.last_good_ns: dict[str, int] = {}
        self.by_topic: dict[str, list[AlarmDefinition]] = {}  # conditions evaluated on each message
        self.topics: set[str] = set()  # every topic to subscribe to (stale conditions only need arrivals)
        for d in catalogue.alarms:
            if d.condition.kind != "device_alarm":
                self.topics.add(d.condition.topic)
            if d.condition.kind not in ("device_alarm", "stale"):
                self.by_topic.setdefault(d.condition.topic, []).append(d)

    # --- identity ----------------------------------------------------------------------------
    def _new_id(self, now_ns: int) -> int:
        # time-based (µs) so ids stay unique across restarts of the node, and strictly increasing
        self._next_id = max(self._next_id, now_ns // 1000)
        alarm_id, self._next_id = self._next_id, self._next_id + 1
        return alarm_id

    def _tracker(self, definition: AlarmDefinition, source: str) -> Tracker:
        key = (definition.code, source)
        if key not in self.trackers:
            self.trackers[key] = Tracker(definition, source, since_ns=self.started_ns)
        return self.trackers[key]

    def occurrences(self) -> list[tuple[Tracker, Occurrence]]:
        return [(t, t.occurrence) for t in self.trackers.values() if t.occurrence is not None]

    def find(self, alarm_id: int) -> Tracker | None:
        return next((t for t in self.trackers.values() if t.occurrence and t.occurrence.alarm_id == alarm_id), None)

    def restore(self, code: str, source: str, alarm_id: int, state: int, raised_ns: int, cause_alarm_id: int,
                message: str, evidence: dict[str, Any], shelved_until_ns: int = 0) -> bool:
        """Take back an occurrence that was open when the node last stopped (from the records), so the
        condition seen again continues it instead of opening a second one; a condition that is gone
        clears it through the normal path. False for a code no longer in the catalogue."""
        d = self.by_code.get(code)
        if d is None or state == NORMAL:
            return False
        t = self._tracker(d, source)
        active = state in (ACTIVE_UNACKED, ACTIVE_ACKED, SHELVED)
        t.condition = t.active = active
        t.since_ns, t.message, t.evidence = self.started_ns, message, dict(evidence)
        t.occurrence = Occurrence(alarm_id, state, raised_ns, cause_alarm_id, message, dict(evidence),
                                  shelved_until_ns=shelved_until_ns,
                                  state_before_shelve=ACTIVE_UNACKED if state == SHELVED else 0)
        self._next_id = max(self._next_id, alarm_id + 1)
        return True

    # --- inputs ------------------------------------------------------------------------------
    def on_message(self, topic: str, msg: Any, now_ns: int) -> list[Transition]:
        good = getattr(msg, "quality", GOOD) == GOOD
        if good:
            self.last_good_ns[topic] = now_ns
        out: list[Transition] = []
        for d in self.by_topic.get(topic, []):
            t = self._tracker(d, d.device)
            evaluated = self._evaluate(d.condition, msg, t, good)
            if evaluated is not None:
                self._set_condition(t, evaluated[0], evaluated[1], evaluated[2], now_ns)
            out += self._settle(t, now_ns)
        return out

    def on_device_alarm(self, msg: Alarm, now_ns: int) -> list[Transition]:
        """A node's own raise/clear of a catalogue code (``/ems/device_alarms``)."""
        d = self.by_code.get(msg.code)
        if d is None:  # not in the catalogue: still shown, never dropped, at the priority the node gave
            d = AlarmDefinition(code=msg.code, device="ems", priority=msg.priority or 3, title=msg.code,
                                condition=Condition(kind="device_alarm"), meaning="(not in the alarm catalogue)",
                                causes=["unknown"], consequences="unknown", response=["report to the integrator"],
                                references=["knowledge/alarms.yaml"])
            self.by_code[msg.code] = d
        t = self._tracker(d, msg.source or d.device)
        try:
            evidence = json.loads(msg.evidence_json or "{}")
        except ValueError:
            evidence = {"raw": msg.evidence_json}
        self._set_condition(t, msg.event == Alarm.EVENT_RAISE, msg.message or d.title, evidence, now_ns)
        return self._settle(t, now_ns)

    def tick(self, now_ns: int) -> list[Transition]:
        """Delays, stale topics, shelve expiry and chatter release."""
        out: list[Transition] = []
        for d in self.catalogue.alarms:
            if d.condition.kind == "stale":
                t = self._tracker(d, d.device)
                last = self.last_good_ns.get(d.condition.topic, self.started_ns)
                age = (now_ns - last) / S
                stale = age > (d.condition.max_age_s or 0.0)
                self._set_condition(t, stale, f"{d.title}: no good data on {d.condition.topic} for {age:.1f} s",
                                    {"topic": d.condition.topic, "age_s": round(age, 1),
                                     "max_age_s": d.condition.max_age_s}, now_ns)
        for t in list(self.trackers.values()):
            out += self._settle(t, now_ns)
        return out

    # --- conditions --------------------------------------------------------------------------
    def _evaluate(self, cond: Condition, msg: Any, t: Tracker, good: bool) -> tuple[bool, str, dict] | None:
        """(condition, message, evidence), or None to hold the current state (no usable value)."""
        d = t.definition
        if cond.kind == "decision":
            if getattr(msg, "kind", ArbiterDecision.KIND_DISPATCH) != ArbiterDecision.KIND_DISPATCH:
                return None
            hits = [c for c in msg.reason_codes if c in cond.reason_codes]
            outcome_ok = msg.outcome in {OUTCOMES[o] for o in cond.outcomes}
            texts = [txt for c, txt in zip(msg.reason_codes, msg.reason_texts, strict=False) if c in hits]
            return (bool(hits) and outcome_ok, f"{d.title}: {'; '.join(texts) or ', '.join(hits)}",
                    {"decision_id": int(msg.decision_id), "reason_codes": hits,
                     "requested_kw": float(msg.requested_kw), "granted_kw": float(msg.granted_kw)})
        if cond.kind == "health":
            missing = list(msg.missing_nodes)
            return bool(missing), f"{d.title}: {', '.join(missing)}", {"missing_nodes": missing}
        if not good:
            return None  # a stale or invalid reading neither raises nor clears: the stale alarm covers it
        if cond.kind == "threshold":
            value = _field_value(msg, cond.field, cond.op)
            if value is None:
                return None
            active = _threshold(cond, value, t.condition)
            return (active, f"{d.title}: {cond.field} = {value:g} (alarm {cond.op} {cond.limit:g})",
                    {cond.field: value, "limit": cond.limit, "op": cond.op, "deadband": cond.deadband})
        if cond.kind == "flag":
            value = bool(getattr(msg, cond.field))
            return value == cond.equals, f"{d.title}: {cond.field} = {value}", {cond.field: value}
        if cond.kind == "bit":
            bits = int(getattr(msg, cond.field))
            active = bool((bits >> (cond.bit or 0)) & 1)
            return active, f"{d.title}: {cond.field} bit {cond.bit} set", {cond.field: bits, "bit": cond.bit}
        return None

    def _set_condition(self, t: Tracker, condition: bool, message: str, evidence: dict, now_ns: int) -> None:
        if condition != t.condition:
            t.condition, t.since_ns = condition, now_ns
        if condition:
            t.message, t.evidence = message, evidence

    # --- lifecycle ---------------------------------------------------------------------------
    def _settle(self, t: Tracker, now_ns: int) -> list[Transition]:
        """Apply the delays to the condition, then the lifecycle to the result."""
        cond = t.definition.condition
        held = (now_ns - t.since_ns) / S
        out: list[Transition] = []
        if t.condition and not t.active and held >= cond.on_delay_s:
            t.active = True
            out += self._raise(t, now_ns)
        elif not t.condition and t.active and held >= cond.off_delay_s:
            if t.chattering_since_ns and held < self.limits.chatter_window_s:
                pass  # latched while chattering: cleared only after a quiet window
            else:
                t.active = False
                out += self._clear(t, now_ns)
        occ = t.occurrence
        if occ and occ.state == SHELVED and now_ns >= occ.shelved_until_ns:
            out += self._unshelve(t, now_ns, "")
        return out

    def _emit(self, t: Tracker, occ: Occurrence, event: int, now_ns: int, message: str, user: str = "",
              evidence: dict | None = None) -> Transition:
        d = t.definition
        return Transition(occ.alarm_id, d.code, t.source, d.priority, event, occ.state, now_ns, message,
                          evidence if evidence is not None else occ.evidence, occ.cause_alarm_id, user)

    def _raise(self, t: Tracker, now_ns: int) -> list[Transition]:
        out: list[Transition] = []
        occ = t.occurrence
        if occ is not None and occ.state == SHELVED:
            occ.state_before_shelve = ACTIVE_UNACKED
            return []  # shelved: recorded when it comes back, not announced now
        if occ is not None and occ.state in (ACTIVE_UNACKED, ACTIVE_ACKED):
            return []
        t.raises.append(now_ns)
        window = round(self.limits.chatter_window_s * S)
        while t.raises and now_ns - t.raises[0] > window:
            t.raises.popleft()
        if occ is None:
            occ = Occurrence(self._new_id(now_ns), ACTIVE_UNACKED, now_ns, self._root_cause(t, now_ns), t.message,
                             dict(t.evidence))
            t.occurrence = occ
        else:  # back before it was acknowledged: the same occurrence, unacknowledged again, with today's cause
            occ.state, occ.message, occ.evidence = ACTIVE_UNACKED, t.message, dict(t.evidence)
            occ.cause_alarm_id = self._root_cause(t, now_ns)
        out.append(self._emit(t, occ, Alarm.EVENT_RAISE, now_ns, t.message))
        if len(t.raises) >= self.limits.chatter_raises and not t.chattering_since_ns and \
                t.definition.code != CHATTER_CODE:
            t.chattering_since_ns = now_ns
            out += self._chatter(t, occ, True, now_ns)
        return out

    def _clear(self, t: Tracker, now_ns: int) -> list[Transition]:
        occ = t.occurrence
        out: list[Transition] = []
        if t.chattering_since_ns:
            t.chattering_since_ns = 0
            t.raises.clear()
            out += self._chatter(t, occ, False, now_ns)
        if occ is None:
            return out
        if occ.state == SHELVED:
            occ.state_before_shelve = NORMAL
            return out
        message = f"cleared: {occ.message}"
        if occ.state == ACTIVE_ACKED:
            occ.state = NORMAL
            t.occurrence = None
        else:
            occ.state = CLEARED_UNACKED
        out.append(self._emit(t, occ, Alarm.EVENT_CLEAR, now_ns, message))
        return out

    def _chatter(self, t: Tracker, occ: Occurrence | None, on: bool, now_ns: int) -> list[Transition]:
        d = self.by_code.get(CHATTER_CODE)
        if d is None:
            return []
        ct = self._tracker(d, f"{t.definition.code}@{t.source}")
        count = len(t.raises)
        ct.message = (f"{t.definition.code} raised {count} times within {self.limits.chatter_window_s:g} s: held "
                      f"active until quiet for {self.limits.chatter_window_s:g} s")
        ct.evidence = {"alarm_code": t.definition.code, "alarm_id": occ.alarm_id if occ else 0, "raises": count}
        self._set_condition(ct, on, ct.message, ct.evidence, now_ns)
        ct.active = on
        if on:
            transitions = self._raise(ct, now_ns)
            if ct.occurrence and occ:
                ct.occurrence.cause_alarm_id = occ.alarm_id
                transitions = [_with_cause(x, occ.alarm_id) for x in transitions]
            return transitions
        return self._clear(ct, now_ns)

    def _root_cause(self, t: Tracker, now_ns: int) -> int:
        """The root alarm that explains this one, 0 if it is a root itself.

        Candidates are the definition's ``caused_by`` alarms that are active (or cleared within the
        cause window), each followed to its own root; a cause whose condition holds but is still in
        its on-delay counts through its root, so a consequence with a shorter delay than its cause
        is still linked. The earliest candidate wins."""
        causes = set(t.definition.caused_by)
        if not causes:
            return 0
        window = round(self.limits.cause_window_s * S)
        candidates: list[tuple[int, int]] = []  # (since, root id)
        for other in self.trackers.values():
            if other is t or other.definition.code not in causes:
                continue
            occ = other.occurrence
            if occ is not None and (other.active or now_ns - other.since_ns <= window):
                candidates.append((occ.raised_ns, occ.cause_alarm_id or occ.alarm_id))
            elif occ is None and other.condition:  # a cause on its way: link to its root, if it has one
                root = self._root_cause(other, now_ns)
                if root:
                    candidates.append((other.since_ns, root))
        return min(candidates)[1] if candidates else 0

    # --- operator actions --------------------------------------------------------------------
    def act(self, alarm_id: int, action: int, user: str, comment: str, duration_s: float,
            now_ns: int) -> tuple[bool, str, list[Transition]]:
        """Acknowledge, shelve or unshelve; refused (with the reason) when the user may not, or the alarm
        is not in a state that allows it."""
        name = {Alarm.EVENT_ACKNOWLEDGE: "acknowledge", Alarm.EVENT_SHELVE: "shelve",
                Alarm.EVENT_UNSHELVE: "unshelve"}.get(_action_event(action))
        if name is None:
            return False, f"unknown action {action}", []
        if not user:
            return False, f"{name} needs the name of the user", []
        refusal = self.authorize(user, name)
        if refusal:
            return False, f"{name} refused for {user!r}: {refusal}", []
        t = self.find(alarm_id)
        if t is None or t.occurrence is None:
            return False, f"alarm {alarm_id} is not active (nothing to {name})", []
        occ = t.occurrence
        note = {"comment": comment} if comment else {}
        if name == "acknowledge":
            if occ.state not in (ACTIVE_UNACKED, CLEARED_UNACKED):
                return False, f"alarm {alarm_id} is not unacknowledged (state {occ.state})", []
            if occ.state == ACTIVE_UNACKED:
                occ.state = ACTIVE_ACKED
            else:
                occ.state = NORMAL
                t.occurrence = None
            return True, f"alarm {alarm_id} acknowledged by {user}", [
                self._emit(t, occ, Alarm.EVENT_ACKNOWLEDGE, now_ns, f"acknowledged by {user}", user,
                           {**occ.evidence, **note})]
        if name == "shelve":
            if t.definition.priority == 1 and not self.limits.shelve_priority_1:
                return False, f"alarm {alarm_id} ({t.definition.code}) is critical: critical alarms cannot be " \
                              "shelved", []
            if not 0 < duration_s <= self.limits.max_shelve_s:
                return False, f"shelve duration {duration_s:g} s must be > 0 and <= {self.limits.max_shelve_s:g} s", []
            if occ.state == SHELVED:
                return False, f"alarm {alarm_id} is already shelved", []
            occ.state_before_shelve, occ.state = occ.state, SHELVED
            occ.shelved_until_ns = now_ns + round(duration_s * S)
            return True, f"alarm {alarm_id} shelved by {user} for {duration_s:g} s", [
                self._emit(t, occ, Alarm.EVENT_SHELVE, now_ns, f"shelved by {user} for {duration_s:g} s", user,
                           {**occ.evidence, **note, "shelved_until_ns": occ.shelved_until_ns})]
        if occ.state != SHELVED:
            return False, f"alarm {alarm_id} is not shelved", []
        return True, f"alarm {alarm_id} unshelved by {user}", self._unshelve(t, now_ns, user)

    def _unshelve(self, t: Tracker, now_ns: int, user: str) -> list[Transition]:
        """Back from the shelf in the state the condition has now: an alarm still active is announced again."""
        occ = t.occurrence
        assert occ is not None
        why = f"unshelved by {user}" if user else "shelve expired"
        if t.active:
            occ.state = ACTIVE_UNACKED if occ.state_before_shelve != ACTIVE_ACKED else ACTIVE_ACKED
        else:
            occ.state = NORMAL
            t.occurrence = None
        occ.shelved_until_ns = 0
        return [self._emit(t, occ, Alarm.EVENT_UNSHELVE, now_ns, why, user)]


def _action_event(action: int) -> int | None:
    return {AlarmAction.Request.ACTION_ACKNOWLEDGE: Alarm.EVENT_ACKNOWLEDGE,
            AlarmAction.Request.ACTION_SHELVE: Alarm.EVENT_SHELVE,
            AlarmAction.Request.ACTION_UNSHELVE: Alarm.EVENT_UNSHELVE}.get(action)


def _with_cause(t: Transition, cause: int) -> Transition:
    return replace(t, cause_alarm_id=cause)
