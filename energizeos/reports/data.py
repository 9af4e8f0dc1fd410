"""Reading one report period out of the records: the telemetry points the figures need, the interlock
events, alarm transitions and the plans in force. Nothing here computes a figure."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import and_, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from energizeos.records import audit
from energizeos.records.models import AlarmEvent, Approval, Event, PlanRecord, Telemetry
from energizeos.reports.series import Held
from energizeos_msgs.msg import Alarm, DispatchPlan

POI_KW = "/site/poi/meter/p_kw"
POI_IMPORT_REGISTER = "/site/poi/meter/energy_delivered_kwh"
POI_EXPORT_REGISTER = "/site/poi/meter/energy_received_kwh"
BESS_KW = "/bess/pcs/status/p_kw"
SOC_PCT = "/bess/bms/status/soc_pct"
THRESHOLD_KW = "/ems/dispatch/request/peak_threshold_kw"
SAMPLED_POINTS = (POI_KW, BESS_KW, SOC_PCT, THRESHOLD_KW)  # a daily report integrates and draws these
MONTHLY_POINTS = (POI_KW, BESS_KW)  # a month of 1-second data: only what is integrated is read in full
SUMMARISED_POINTS = (SOC_PCT, POI_IMPORT_REGISTER, POI_EXPORT_REGISTER)
FOLLOWED_PLAN = (DispatchPlan.STATUS_APPROVED, DispatchPlan.STATUS_ACTIVE, DispatchPlan.STATUS_SUPERSEDED)


@dataclass(frozen=True)
class InterlockChange:
    t_s: float
    dispatch_permitted: bool
    failed: tuple[str, ...]  # permissives not ok


@dataclass(frozen=True)
class AlarmRaise:
    alarm_id: int
    code: str
    source: str
    priority: int
    raised_s: float
    acked_s: float | None  # first acknowledgement, whenever it came
    acked_by: str


@dataclass(frozen=True)
class FollowedPlan:
    plan_id: int
    approved_s: float  # when it was approved: it governs intervals from then on until a later plan
    start_s: float
    interval_s: int
    p_kw: tuple[float, ...]


@dataclass
class PeriodData:
    begin_s: float
    end_s: float
    series: dict[str, Held]  # every sample, for the points a figure integrates or draws
    summaries: dict[str, PointSummary] = field(default_factory=dict)
    interlocks: list[InterlockChange] = field(default_factory=list)  # the one in force at begin first
    alarms: list[AlarmRaise] = field(default_factory=list)
    plans: list[FollowedPlan] = field(default_factory=list)
    audit_seq: int = 0
    audit_hash: str = audit.GENESIS


def _sql_time(engine: Engine, value: datetime) -> datetime | str:
    """A bound time as the raw driver needs it: SQLite compares the stored UTC text."""
    if engine.dialect.name == "sqlite":
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def read_point(engine: Engine, point: str, begin: datetime, end: datetime, max_hold_s: float) -> Held:
    """The samples of one point from ``max_hold_s`` before ``begin`` (a sample there still holds into
    the period) to ``end``; a null value or a quality other than good becomes NaN (a gap).

    Millions of rows for a month of 1-second data: the query goes through the raw driver straight
    into an array, and the database computes the epoch seconds. SQLite stores UTC text
    "YYYY-MM-DD HH:MM:SS.ffffff": whole seconds from strftime plus the fraction from the text, exact to
    the microsecond. strftime reads only the whole seconds: it rounds a fraction to the millisecond, so
    12.9996 would read as 13 and come after a sample at 13.2."""
    if engine.dialect.name == "sqlite":
        sql = ("SELECT CAST(strftime('%s', substr(time, 1, 19)) AS REAL) + CAST(substr(time, 20) AS REAL), "
               "CASE WHEN quality = 0 THEN value END FROM telemetry WHERE point = ? AND time >= ? AND time < ? "
               "ORDER BY time")
    else:
        sql = ("SELECT extract(epoch FROM time)::float8, CASE WHEN quality = 0 THEN value END "
               "FROM telemetry WHERE point = %s AND time >= %s AND time < %s ORDER BY time")
    params = (point, _sql_time(engine, begin - timedelta(seconds=max_hold_s)), _sql_time(engine, end))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(sql, params)
        data = np.array(cursor.fetchall(), dtype=float).reshape(-1, 2)  # NULL (no value, bad quality): NaN
        cursor.close()
    finally:
        raw.close()
    return Held(data[:, 0], data[:, 1], max_hold_s)


@dataclass(frozen=True)
class PointSummary:
    """What a report needs of a slow-moving point without reading every sample (SOC, energy registers)."""

    start: float | None  # the good reading in force at the start (or the first one in the period)
    end: float | None  # the last good reading in the period
    minimum: float | None
    maximum: float | None


def read_summary(engine: Engine, point: str, begin: datetime, end: datetime, max_hold_s: float) -> PointSummary:
    good = and_(Telemetry.point == point, Telemetry.quality == 0, Telemetry.value.is_not(None))  # type: ignore[union-attr]
    inside = and_(good, Telemetry.time >= begin, Telemetry.time < end)
    with engine.connect() as conn:
        held = conn.execute(select(Telemetry.value, Telemetry.quality).where(
            Telemetry.point == point, Telemetry.time <= begin, Telemetry.time >= begin - timedelta(seconds=max_hold_s))
            .order_by(Telemetry.time.desc()).limit(1)).first()  # type: ignore[union-attr]
        first = held[0] if held is not None and held[1] == 0 and held[0] is not None else conn.execute(
            select(Telemetry.value).where(inside).order_by(Telemetry.time).limit(1)).scalar()
        last = conn.execute(select(Telemetry.value).where(inside)
                            .order_by(Telemetry.time.desc()).limit(1)).scalar()  # type: ignore[union-attr]
        low, high = conn.execute(select(func.min(Telemetry.value), func.max(Telemetry.value)).where(inside)).one()
    if first is not None:
        low = first if low is None else min(low, first)
        high = first if high is None else max(high, first)
    return PointSummary(first, last, low, high)


def read_interlocks(session: Session, begin: datetime, end: datetime) -> list[InterlockChange]:
    before = session.exec(select(Event).where(Event.kind == "interlock", Event.time < begin)
                          .order_by(Event.time.desc()).limit(1)).all()  # type: ignore[union-attr]
    during = session.exec(select(Event).where(Event.kind == "interlock", Event.time >= begin, Event.time < end)
                          .order_by(Event.time)).all()
    out = []
    for row in [*[r[0] for r in before], *[r[0] for r in during]]:
        data = json.loads(row.data_json)
        failed = tuple(sorted(n for n, p in data.get("permissives", {}).items() if not p.get("ok")))
        out.append(InterlockChange(row.time.timestamp(), bool(data.get("dispatch_permitted")), failed))
    return out


def read_alarms(session: Session, begin: datetime, end: datetime) -> list[AlarmRaise]:
    raises = [r[0] for r in session.exec(select(AlarmEvent).where(
        AlarmEvent.event == Alarm.EVENT_RAISE, AlarmEvent.time >= begin, AlarmEvent.time < end)
        .order_by(AlarmEvent.time)).all()]
    ids = sorted({r.alarm_id for r in raises})
    acks: dict[int, list[AlarmEvent]] = {}
    for i in range(0, len(ids), 500):  # bound the IN list
        for (ack,) in session.exec(select(AlarmEvent).where(
                AlarmEvent.event == Alarm.EVENT_ACKNOWLEDGE, AlarmEvent.alarm_id.in_(ids[i:i + 500]))  # type: ignore[attr-defined]
                .order_by(AlarmEvent.time)).all():
            acks.setdefault(ack.alarm_id, []).append(ack)
    out = []
    for r in raises:  # an alarm re-raised before anyone acknowledged it keeps its id: take the first ack after
        ack = next((a for a in acks.get(r.alarm_id, []) if a.time >= r.time), None)
        out.append(AlarmRaise(r.alarm_id, r.code, r.source, r.priority, r.time.timestamp(),
                              ack.time.timestamp() if ack else None, ack.user if ack else ""))
    return out


def read_plans(session: Session, begin: datetime, end: datetime) -> list[FollowedPlan]:
    """Plans that were approved (whatever became of them later) and cover part of the period."""
    plans = [r[0] for r in session.exec(select(PlanRecord).where(
        PlanRecord.status.in_(FOLLOWED_PLAN), PlanRecord.start < end,  # type: ignore[attr-defined]
        PlanRecord.start >= begin - timedelta(days=2))).all()]
    subjects = {f"plan:{p.plan_id}": p for p in plans}
    approved: dict[int, float] = {}
    if subjects:
        for (approval,) in session.exec(select(Approval).where(
                Approval.approved.is_(True), Approval.subject.in_(list(subjects)))).all():  # type: ignore[attr-defined,union-attr]
            plan_id = subjects[approval.subject].plan_id
            approved[plan_id] = min(approved.get(plan_id, np.inf), approval.time.timestamp())
    out = []
    for plan in plans:
        p_kw = tuple(float(v) for v in json.loads(plan.body_json).get("p_kw", []))
        if plan.plan_id not in approved or plan.start.timestamp() + plan.interval_s * len(p_kw) <= begin.timestamp():
            continue
        out.append(FollowedPlan(plan.plan_id, approved[plan.plan_id], plan.start.timestamp(), plan.interval_s, p_kw))
    return sorted(out, key=lambda p: (p.approved_s, p.plan_id))


def read_period(engine: Engine, begin: datetime, end: datetime, max_hold_s: float,
                points: tuple[str, ...] = SAMPLED_POINTS) -> PeriodData:
    """The period's records; ``points`` are read sample by sample (the rest is summarised)."""
    with Session(engine) as session:
        head = audit.head(session)  # first: the figures cover at least what this head seals
        data = PeriodData(begin.timestamp(), end.timestamp(), {},
                          interlocks=read_interlocks(session, begin, end), alarms=read_alarms(session, begin, end),
                          plans=read_plans(session, begin, end),
                          audit_seq=head.seq if head else 0, audit_hash=head.entry_hash if head else audit.GENESIS)
    data.series = {p: read_point(engine, p, begin, end, max_hold_s) for p in points}
    data.summaries = {p: read_summary(engine, p, begin, end, max_hold_s) for p in SUMMARISED_POINTS}
    return data
