"""Deterministic fact gathering: what the records say about a question, before any text is retrieved or
generated. The question is read for alarm codes, a time of day, a date or period, record ids and a
device (rack 3), and for what is asked (why the battery stopped, what an alarm means, has it happened
before, why a plan was rejected, savings, what happened). Each fact is an ``Evidence`` item with the
id an answer cites it by and the text it may quote."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from energizeos.knowledge.catalogue import PRIORITY_NAMES, Catalogue
from energizeos.knowledge.corpus import CODE_RE
from energizeos.records.models import AlarmEvent, Approval, DecisionRecord, Event, PlanRecord
from energizeos_msgs.msg import Alarm, ArbiterDecision, DispatchPlan

WINDOW_BEFORE_S = 600  # "why at 14:02": what fired in the ten minutes before
WINDOW_AFTER_S = 60  # a time asked to the minute covers that whole minute
OUTCOMES = {ArbiterDecision.OUTCOME_GRANTED: "granted", ArbiterDecision.OUTCOME_CLIPPED: "clipped",
            ArbiterDecision.OUTCOME_REFUSED: "refused"}
EVENTS = {Alarm.EVENT_RAISE: "raised", Alarm.EVENT_CLEAR: "cleared", Alarm.EVENT_ACKNOWLEDGE: "acknowledged",
          Alarm.EVENT_SHELVE: "shelved", Alarm.EVENT_UNSHELVE: "unshelved"}
# plain words that name an alarm family when the question gives no code
WORD_CODES = [(re.compile(r"overheat|over-?temp|too hot|too warm|thermal"),
               ("BMS_RACK_OVERTEMP", "BMS_RACK_TEMP_HIGH")),
              (re.compile(r"\btrip|lockout|\b86\b|breaker"), ("RELAY_TRIP", "RELAY_86_LOCKOUT")),
              (re.compile(r"export"), ("EMS_EXPORT_LIMIT_EXCEEDED", "EMS_EXPORT_SUSTAINED")),
              (re.compile(r"polarity|reversed ct|\bct\b"), ("METER_CT_POLARITY_REVERSED",)),
              (re.compile(r"plan.*reject|reject.*plan"), ("EMS_PLAN_REJECTED",))]


@dataclass(frozen=True)
class Evidence:
    cite: str  # "alarm 1752621874000000", "decision 17526…", "plan 1752…", "event 12", "report monthly 2025-07"
    text: str  # the facts, as the answer may quote them


@dataclass
class Question:
    text: str
    codes: list[str]
    at: datetime | None  # a time of day asked about (site-local, on ``day``)
    day: date | None
    month: str | None  # "YYYY-MM" for "last month" / "July"
    rack: int | None
    ids: dict[str, int]
    intent: str


@dataclass
class Facts:
    question: Question
    found: bool = False
    fired: list[Evidence] = field(default_factory=list)  # alarms (roots first)
    why: list[Evidence] = field(default_factory=list)  # decisions, interlock changes, approvals, plans
    figures: list[Evidence] = field(default_factory=list)  # report figures
    history: list[Evidence] = field(default_factory=list)  # earlier occurrences
    codes: list[str] = field(default_factory=list)  # catalogue codes involved (for retrieval and "what to do")
    priority: int | None = None  # the most critical priority involved

    @property
    def evidence(self) -> list[Evidence]:
        return [*self.fired, *self.why, *self.figures, *self.history]


def parse(text: str, catalogue: Catalogue, now: datetime, tz: ZoneInfo) -> Question:
    low = text.lower()
    known = catalogue.by_code
    codes = [c for c in dict.fromkeys(CODE_RE.findall(text)) if c in known]
    unknown_codes = [c for c in CODE_RE.findall(text) if c not in known]
    local_now = now.astimezone(tz)
    day = None
    if "yesterday" in low:
        day = local_now.date() - timedelta(days=1)
    elif "today" in low or "this morning" in low or "tonight" in low:
        day = local_now.date()
    m = re.search(r"\b(20\d\d)-(\d\d)-(\d\d)\b", text)
    if m:
        day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    month = None
    if "last month" in low:
        first = local_now.date().replace(day=1)
        month = (first - timedelta(days=1)).strftime("%Y-%m")
    elif "this month" in low:
        month = local_now.strftime("%Y-%m")
    at = None
    t = re.search(r"\b([01]?\d|2[0-3]):([0-5]\d)\b", text)
    if t:
        on = day or local_now.date()
        at = datetime.combine(on, time(int(t.group(1)), int(t.group(2))), tzinfo=tz)
    rack = re.search(r"\brack\s*#?(\d+)", low)
    ids = {kind: int(n) for kind, n in re.findall(r"\b(alarm|decision|plan|event)\s+#?(\d{1,20})\b", low)}
    if not codes:
        for pattern, family in WORD_CODES:
            if pattern.search(low):
                codes = list(family)
                break
    intent = _intent(low, codes, at, unknown_codes, ids)
    return Question(text, codes, at, day, month, int(rack.group(1)) if rack else None, ids, intent)


def _intent(low: str, codes: list[str], at: datetime | None, unknown_codes: list[str],
            ids: dict[str, int] | None = None) -> str:
    if ids:
        return "record"  # "explain alarm 1752…": the record itself (the UI's Explain button asks this way)
    if unknown_codes and not codes:
        return "unknown-code"
    if re.search(r"\bsav(e|ed|ing|ings)\b|\bbill\b|demand charge|cost", low):
        return "savings"
    if re.search(r"plan", low) and re.search(r"reject|refus|why was|not approved", low):
        return "plan-rejected"
    if re.search(r"\bbefore\b|previous|again|how often|how many times|history|last time", low):
        return "history"
    if at is not None and re.search(r"why|stop|refus|not discharg|did the battery|what happened", low):
        return "why-at"
    if codes and re.search(r"mean|what is|what's|what should|what do i do|explain|respond", low):
        return "meaning"
    if codes:
        return "occurrences"
    if at is not None:
        return "why-at"
    return "general"


class FactFinder:
    """Reads the records for a parsed question. ``now`` and the site time zone are injected."""

    def __init__(self, engine: Engine, catalogue: Catalogue, tz: str, report_settings=None) -> None:
        from energizeos.reports.figures import ReportSettings

        self.engine, self.catalogue, self.tz = engine, catalogue, ZoneInfo(tz)
        self.report_settings = report_settings or ReportSettings(timezone=tz)

    def local(self, value: datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return value.astimezone(self.tz).strftime(fmt)

    def gather(self, q: Question, now: datetime) -> Facts:
        facts = Facts(q, codes=list(q.codes))
        handler = {"record": self._record, "why-at": self._why_at, "meaning": self._meaning, "history": self._history,
                   "occurrences": self._history, "plan-rejected": self._plan_rejected,
                   "savings": self._savings}.get(q.intent)
        if handler is not None:
            with Session(self.engine) as session:
                handler(session, q, facts, now)
        if "export" in q.text.lower():  # the meter record counts every export, alarmed or not
            self._export_figures(q, facts, now)
        facts.found = bool(facts.evidence) or (q.intent == "meaning" and bool(q.codes))
        return facts

    # --- alarms -------------------------------------------------------------------------------------
    def alarm_evidence(self, session: Session, raise_row: AlarmEvent) -> Evidence:
        ack = session.exec(select(AlarmEvent).where(
            AlarmEvent.alarm_id == raise_row.alarm_id, AlarmEvent.event == Alarm.EVENT_ACKNOWLEDGE,
            AlarmEvent.time >= raise_row.time).order_by(col(AlarmEvent.time))).first()
        clear = session.exec(select(AlarmEvent).where(
            AlarmEvent.alarm_id == raise_row.alarm_id, AlarmEvent.event == Alarm.EVENT_CLEAR,
            AlarmEvent.time >= raise_row.time).order_by(col(AlarmEvent.time))).first()
        parts = [f"{raise_row.code} raised at {self.local(raise_row.time)} by {raise_row.source}, priority "
                 f"{PRIORITY_NAMES.get(raise_row.priority, raise_row.priority)}: {raise_row.message}"]
        if raise_row.cause_alarm_id:
            cause = session.exec(select(AlarmEvent).where(AlarmEvent.alarm_id == raise_row.cause_alarm_id,
                                                          AlarmEvent.event == Alarm.EVENT_RAISE)).first()
            if cause is not None:
                parts.append(f"caused by {cause.code} [alarm {cause.alarm_id}]")
        if clear is not None:
            parts.append(f"cleared at {self.local(clear.time)}")
        if ack is not None:
            parts.append(f"acknowledged by {ack.user} at {self.local(ack.time)}")
        return Evidence(f"alarm {raise_row.alarm_id}", "; ".join(parts))

    def _raises(self, session: Session, codes: list[str] | None = None, begin: datetime | None = None,
                end: datetime | None = None) -> list[AlarmEvent]:
        stmt = select(AlarmEvent).where(AlarmEvent.event == Alarm.EVENT_RAISE)
        if codes:
            stmt = stmt.where(col(AlarmEvent.code).in_(codes))
        if begin is not None:
            stmt = stmt.where(AlarmEvent.time >= begin)
        if end is not None:
            stmt = stmt.where(AlarmEvent.time < end)
        return list(session.exec(stmt.order_by(col(AlarmEvent.time))).all())

    def _add_alarms(self, session: Session, facts: Facts, rows: list[AlarmEvent]) -> None:
        """Roots first, the most critical first: the first code is what the answer is about."""
        roots = sorted(rows, key=lambda r: (bool(r.cause_alarm_id), r.priority, r.time))
        for row in roots:
            facts.fired.append(self.alarm_evidence(session, row))
            facts.codes.append(row.code)
            facts.priority = min(facts.priority or 9, row.priority)
        facts.codes = list(dict.fromkeys(facts.codes))

    # --- intents --------------------------------------------------------------------------------------
    def _why_at(self, session: Session, q: Question, facts: Facts, now: datetime) -> None:
        assert q.at is not None
        begin, end = q.at - timedelta(seconds=WINDOW_BEFORE_S), q.at + timedelta(seconds=WINDOW_AFTER_S)
        facts.codes = []  # "why": the root cause in the records leads, not the words of the question
        self._add_alarms(session, facts, self._raises(session, None, begin, end))
        facts.codes = list(dict.fromkeys([*facts.codes, *q.codes]))
        interlocks = session.exec(select(Event).where(Event.kind == "interlock", Event.time >= begin,
                                                      Event.time < end).order_by(col(Event.time))).all()
        for ev in interlocks:
            facts.why.append(Evidence(f"event {ev.id}", f"interlock change at {self.local(ev.time)}: {ev.message}"))
        decisions = session.exec(select(DecisionRecord).where(
            DecisionRecord.time >= begin, DecisionRecord.time < end,
            DecisionRecord.outcome != ArbiterDecision.OUTCOME_GRANTED).order_by(col(DecisionRecord.time))).all()
        refused = [d for d in decisions if d.outcome == ArbiterDecision.OUTCOME_REFUSED]
        seen: set[str] = set()
        for d in refused or decisions:  # the first decision of each distinct reason: the moment it changed
            if d.reason_codes in seen:
                continue
            seen.add(d.reason_codes)
            reasons = "; ".join(json.loads(d.reason_texts_json))
            facts.why.append(Evidence(f"decision {d.decision_id}", (
                f"arbiter decision at {self.local(d.time)}: {OUTCOMES.get(d.outcome, d.outcome)} "
                f"{d.requested_kw:.1f} kW requested, {d.granted_kw:.1f} kW granted; reasons {d.reason_codes}: "
                f"{reasons}")))

    def _record(self, session: Session, q: Question, facts: Facts, now: datetime) -> None:
        """A record named by its id: an alarm (with its cause chain), an arbiter decision or a plan."""
        if "alarm" in q.ids:
            raised = session.exec(select(AlarmEvent).where(AlarmEvent.alarm_id == q.ids["alarm"],
                                                           AlarmEvent.event == Alarm.EVENT_RAISE)
                                  .order_by(col(AlarmEvent.time))).all()
            facts.codes = []
            self._add_alarms(session, facts, list(raised))
        if "decision" in q.ids:
            d = session.exec(select(DecisionRecord).where(DecisionRecord.decision_id == q.ids["decision"])).first()
            if d is not None:
                facts.why.append(Evidence(f"decision {d.decision_id}", (
                    f"arbiter decision at {self.local(d.time)}: {OUTCOMES.get(d.outcome, d.outcome)} "
                    f"{d.requested_kw:.1f} kW requested, {d.granted_kw:.1f} kW granted; reasons {d.reason_codes}: "
                    f"{'; '.join(json.loads(d.reason_texts_json))}")))
        if "plan" in q.ids:
            plan = session.get(PlanRecord, q.ids["plan"])
            if plan is not None and plan.status == DispatchPlan.STATUS_WEEK_PLAN:
                facts.why.append(Evidence(f"plan {plan.plan_id}", (
                    f"plan {plan.plan_id} is a week plan from {self.local(plan.start, '%Y-%m-%d %H:%M')}: it sets "
                    "where the day plans end and what a kWh short costs; it is never followed, so it is neither "
                    "gated nor approved (the day plans it guides are, and their notes name it)")))
            elif plan is not None:
                decisions = session.exec(select(Approval).where(Approval.subject == f"plan:{plan.plan_id}")
                                         .order_by(col(Approval.time))).all()
                said = "; ".join(f"{'approved' if a.approved else 'rejected'} by {a.user} at {self.local(a.time)}"
                                 f"{': ' + a.comment if a.comment else ''}" for a in decisions) or "not decided"
                facts.why.append(Evidence(f"plan {plan.plan_id}", (
                    f"plan {plan.plan_id} for {self.local(plan.start, '%Y-%m-%d %H:%M')}: {said}; safety-gate "
                    f"findings: {'; '.join(json.loads(plan.gate_findings_json)) or 'none'}")))

    def _meaning(self, session: Session, q: Question, facts: Facts, now: datetime) -> None:
        for code in q.codes[:1]:
            rows = self._raises(session, [code])
            if rows:
                facts.history.append(self.alarm_evidence(session, rows[-1]))
            facts.priority = self.catalogue.by_code[code].priority

    def _history(self, session: Session, q: Question, facts: Facts, now: datetime) -> None:
        rows = self._raises(session, q.codes)
        if q.rack is not None:  # "rack 3": the source or the message names it
            rows = [r for r in rows if re.search(rf"rack\s*#?{q.rack}\b", f"{r.source} {r.message}".lower())]
        if q.day is not None:
            lo = datetime.combine(q.day, time(0), tzinfo=self.tz)
            rows = [r for r in rows if lo <= r.time < lo + timedelta(days=1)]
        for code in dict.fromkeys(r.code for r in rows):
            mine = [r for r in rows if r.code == code]
            facts.history.append(Evidence(f"alarm {mine[-1].alarm_id}", (
                f"{len(mine)} occurrence(s) of {code} in the records, first at {self.local(mine[0].time)}, "
                f"last at {self.local(mine[-1].time)}")))
        if rows:
            self._add_alarms(session, facts, rows[-5:])

    def _plan_rejected(self, session: Session, q: Question, facts: Facts, now: datetime) -> None:
        stmt = select(Approval).where(Approval.approved.is_(False)).order_by(col(Approval.time).desc())  # type: ignore[union-attr]
        for approval in session.exec(stmt).all()[:3]:
            plan_id = int(approval.subject.split(":", 1)[1]) if approval.subject.startswith("plan:") else None
            plan = session.get(PlanRecord, plan_id) if plan_id else None
            if plan is not None and q.day is not None and self.local(plan.start, "%Y-%m-%d") not in (
                    q.day.isoformat(), (q.day + timedelta(days=1)).isoformat()):
                continue
            who = "the safety gate" if approval.user.startswith("policy:") else f"{approval.user} ({approval.role})"
            text = f"plan {plan_id} rejected by {who} at {self.local(approval.time)}: {approval.comment}"
            if plan is not None:
                findings = json.loads(plan.gate_findings_json)
                text += (f"; the plan was for {self.local(plan.start, '%Y-%m-%d %H:%M')} and its safety-gate "
                         f"findings were: {'; '.join(findings) or 'none'}")
            facts.why.append(Evidence(f"plan {plan_id}", text))
            facts.codes.append("EMS_PLAN_REJECTED")
            break
        facts.codes = list(dict.fromkeys(facts.codes))

    def _export_figures(self, q: Question, facts: Facts, now: datetime) -> None:
        from energizeos.reports.build import build_report

        label = (q.at.date() if q.at else q.day or now.astimezone(self.tz).date()).isoformat()
        doc = build_report(self.engine, "daily", label, self.report_settings, now)
        if not doc.has_data:
            return
        f = doc.figures
        facts.figures.append(Evidence(f"report daily {label}", (
            f"export-limit events on {label} in the POI meter record: {f['export_events']}, largest "
            f"{f['export_largest_kw']:.1f} kW, longest {f['export_longest_s']:.1f} s, "
            f"{f['export_event_kwh']:.3f} kWh exported during them")))

    def _savings(self, session: Session, q: Question, facts: Facts, now: datetime) -> None:
        from energizeos.reports.build import build_report

        if q.month:
            kind, label = "monthly", q.month
        else:
            kind, label = "daily", (q.day or now.astimezone(self.tz).date()).isoformat()
        doc = build_report(self.engine, kind, label, self.report_settings, now)
        if not doc.has_data:
            return
        f = doc.figures
        wanted = ["savings", "energy_savings", "max_demand_savings", "on_peak_demand_savings", "bill_without_bess",
                  "bill_with_bess", "peak_kw_without", "peak_kw_with"]
        text = ", ".join(f"{name} {f[name]:.2f}" for name in wanted if isinstance(f.get(name), float))
        facts.figures.append(Evidence(f"report {kind} {label}", f"{kind} report {label}: {text} "
                                      f"(dollars; peaks in kW; rates illustrative)"))
