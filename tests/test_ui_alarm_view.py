"""The app's open-alarm table: worst first, site time, nothing that is back to normal."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from energizeos.records.db import init_db, make_engine
from energizeos.records.models import AlarmRecord
from energizeos.ui.alarm_view import open_alarms


def test_open_alarms_are_sorted_by_priority_and_shown_in_site_time(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    init_db(engine)
    t = datetime(2026, 7, 15, 21, 2, tzinfo=UTC)  # 14:02 PDT
    with Session(engine) as session:
        for alarm_id, code, priority, state, cause in ((1, "EMS_DISPATCH_REFUSED", 2, 1, 2),
                                                       (2, "BMS_RACK_OVERTEMP", 1, 2, None),
                                                       (3, "PCS_COMMS_LOSS", 2, 0, None)):
            session.add(AlarmRecord(alarm_id=alarm_id, code=code, source="x", priority=priority, state=state,
                                    message=code.lower(), cause_alarm_id=cause, raised_at=t))
        session.commit()
    rows = open_alarms(engine, ZoneInfo("America/Los_Angeles"))
    assert [r["code"] for r in rows] == ["BMS_RACK_OVERTEMP", "EMS_DISPATCH_REFUSED"]  # the normal one is gone
    assert rows[0]["raised (site time)"] == "2026-07-15 14:02:00 PDT"
    assert rows[1]["root cause"] == 2 and rows[1]["state"] == "ACTIVE, unacknowledged"
