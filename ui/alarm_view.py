"""Alarms from the records, for the app: open ones worst first, counts by priority, the history with
filters. Times are shown in the site's time zone."""

from __future__ import annotations

import os
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from energizeos.records.models import AlarmEvent, AlarmRecord

PRIORITY = {1: "1 critical", 2: "2 high", 3: "3 medium", 4: "4 low"}
STATE = {0: "back to normal", 1: "ACTIVE, unacknowledged", 2: "active, acknowledged", 3: "cleared, unacknowledged",
         4: "shelved"}
EVENT = {0: "raised", 1: "cleared", 2: "acknowledged", 3: "shelved", 4: "unshelved"}
ACTIVE_STATES = (1, 2, 4)  # the condition is (or may be) there: shelved ones count until they come back


def site_zone() -> ZoneInfo:
    return ZoneInfo(os.environ.get("ENERGIZEOS_SITE_TZ", "America/Los_Angeles"))


def _local(value: datetime | None, zone: ZoneInfo) -> str:
    return "" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def open_alarms(engine: Engine, zone: ZoneInfo | None = None) -> list[dict]:
    """Every alarm not back to normal, as table rows."""
    zone = zone or site_zone()
    with Session(engine) as session:
        rows = session.exec(select(AlarmRecord).where(AlarmRecord.state != 0)
                            .order_by(AlarmRecord.priority, AlarmRecord.raised_at.desc())).all()  # type: ignore[union-attr]
    return [{"priority": PRIORITY.get(r.priority, str(r.priority)), "code": r.code, "source": r.source,
             "state": STATE.get(r.state, str(r.state)), "raised (site time)": _local(r.raised_at, zone),
             "message": r.message, "root cause": r.cause_alarm_id or "", "acknowledged by": r.acked_by,
             "shelved until": _local(r.shelved_until, zone), "alarm id": r.alarm_id} for r in rows]


def active_counts(engine: Engine) -> dict[int, int]:
    """Active (or shelved) alarms per priority."""
    with Session(engine) as session:
        rows = session.exec(select(AlarmRecord.priority, func.count()).where(
            AlarmRecord.state.in_(ACTIVE_STATES)).group_by(AlarmRecord.priority)).all()  # type: ignore[union-attr]
    return {priority: count for priority, count in rows}


def alarm_history(engine: Engine, zone: ZoneInfo, since: datetime, until: datetime, sources: list[str] | None = None,
                  priorities: list[int] | None = None, limit: int = 2000) -> list[dict]:
    """Lifecycle events in [since, until), newest first, optionally only some devices and priorities."""
    query = select(AlarmEvent).where(AlarmEvent.time >= since, AlarmEvent.time < until)
    if sources:
        query = query.where(AlarmEvent.source.in_(sources))  # type: ignore[attr-defined]
    if priorities:
        query = query.where(AlarmEvent.priority.in_(priorities))  # type: ignore[attr-defined]
    with Session(engine) as session:
        rows = session.exec(query.order_by(AlarmEvent.time.desc(), AlarmEvent.id.desc()).limit(limit)).all()  # type: ignore[union-attr]
    return [{"time (site)": _local(r.time, zone), "event": EVENT.get(r.event, str(r.event)), "code": r.code,
             "source": r.source, "priority": PRIORITY.get(r.priority, str(r.priority)), "user": r.user,
             "message": r.message, "alarm id": r.alarm_id} for r in rows]


def alarm_sources(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(session.exec(select(AlarmEvent.source).distinct()).all())
