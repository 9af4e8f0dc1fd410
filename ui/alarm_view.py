"""Open alarms from the records, for the app: worst first, times in the site's time zone."""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from energizeos.records.models import AlarmRecord

PRIORITY = {1: "1 critical", 2: "2 high", 3: "3 medium", 4: "4 low"}
STATE = {1: "ACTIVE, unacknowledged", 2: "active, acknowledged", 3: "cleared, unacknowledged", 4: "shelved"}


def site_zone() -> ZoneInfo:
    return ZoneInfo(os.environ.get("ENERGIZEOS_SITE_TZ", "America/Los_Angeles"))


def open_alarms(engine: Engine, zone: ZoneInfo | None = None) -> list[dict]:
    """Every alarm not back to normal, as table rows."""
    zone = zone or site_zone()
    with Session(engine) as session:
        rows = session.exec(select(AlarmRecord).where(AlarmRecord.state != 0)
                            .order_by(AlarmRecord.priority, AlarmRecord.raised_at.desc())).all()  # type: ignore[union-attr]
    return [{"priority": PRIORITY.get(r.priority, str(r.priority)), "code": r.code, "source": r.source,
             "state": STATE.get(r.state, str(r.state)),
             "raised (site time)": r.raised_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z"),
             "message": r.message, "root cause": r.cause_alarm_id or "", "alarm id": r.alarm_id} for r in rows]
