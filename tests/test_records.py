"""Schema, migrations and idempotent sealed writes, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import StatementError
from sqlmodel import Session, SQLModel

from energizeos.records import audit
from energizeos.records.migrate import current_revision, downgrade, head_revision, upgrade
from energizeos.records.models import AlarmRecord, Event, Role, Telemetry
from energizeos.records.writer import Batch, RecordWriter, verify_sealed_rows

TABLES = {"telemetry", "events", "alarms", "alarm_events", "commands", "decisions", "plans", "approvals", "reports",
          "commissioning_runs", "commissioning_steps", "evidence", "users", "roles", "audit_chain", "user_sessions",
          "fleet_sites", "fleet_records", "fleet_telemetry", "fleet_alarms", "fleet_report_files"}
T0 = 1_795_600_000_000_000_000  # 2026-11-25 in ns


@pytest.fixture
def engine(migrated_engine):
    return migrated_engine


def test_migrations_create_every_table_and_match_the_models(engine):
    assert set(inspect(engine).get_table_names()) >= TABLES
    assert current_revision(engine) == head_revision() == "0004"
    assert {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("fleet_report_files")} == {
        "ix_fleet_report_files_site_time": ["site_id", "time"]}
    assert inspect(engine).get_pk_constraint("fleet_report_files")["constrained_columns"] == ["site_id", "epoch", "seq"]
    with engine.connect() as conn:  # the migration and the SQLModel classes describe the same schema
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    with Session(engine) as session:
        assert {r.name for r in session.exec(select(Role)).scalars()} == {
            "viewer", "owner", "epc", "integrator", "operator", "engineer", "admin"}


def test_downgrade_and_upgrade_round_trip(engine):
    assert downgrade(engine, "base") == ""
    assert "telemetry" not in inspect(engine).get_table_names()
    assert upgrade(engine, "0003") == "0003"  # a fleet database made before report files were forwarded
    assert "fleet_records" in inspect(engine).get_table_names()
    assert "fleet_report_files" not in inspect(engine).get_table_names()
    assert upgrade(engine) == "0004"
    assert "fleet_report_files" in inspect(engine).get_table_names()
    assert upgrade(engine) == "0004"  # a second run finds nothing to do
    assert downgrade(engine, "0003") == "0003" and "fleet_report_files" not in inspect(engine).get_table_names()
    assert upgrade(engine) == "0004"


def test_times_are_stored_utc_and_read_back_aware(engine):
    pacific = timezone(timedelta(hours=-8))
    local = datetime(2026, 11, 25, 14, 2, 3, 123456, tzinfo=pacific)
    with Session(engine) as session:
        session.add(Event(key="e1", time=local, source="test", kind="note", message="14:02 site time"))
        session.commit()
    with Session(engine) as session:
        back = session.exec(select(Event)).scalars().one()
    assert back.time.tzinfo is not None and back.time.utcoffset() == timedelta(0)
    assert back.time == local and back.time.hour == 22  # 14:02 PST is 22:02 UTC


def test_a_naive_time_is_refused_with_a_clear_error(engine):
    with Session(engine) as session:
        session.add(Event(key="e2", time=datetime(2026, 11, 25, 14, 2), source="t", kind="note", message="?"))
        with pytest.raises(StatementError, match="naive datetime"):
            session.commit()


def _batch(batch_id: str, n_points: int = 30, decisions: int = 3) -> Batch:
    batch = Batch(batch_id)
    for i in range(n_points):
        batch.add("telemetry", {"point": "/site/poi/meter/p_kw", "time_ns": T0 + i * 200_000_000,
                                "value": 400.0 + i, "quality": 0})
    batch.add("telemetry", {"point": "/bess/bms/status/soc_pct", "time_ns": T0, "value": None, "quality": 2})
    for d in range(decisions):
        t = T0 + d * 10**9
        batch.add("decisions", {"key": f"{d}@{t}", "time_ns": t, "decision_id": d, "request_id": 7,
                                "request_source": "dispatcher", "kind": 0, "outcome": 2, "requested_kw": 250.0,
                                "granted_kw": 0.0, "reason_codes": "BMS_NOT_READY",
                                "reason_texts_json": '["BMS permissive is off"]'})
        batch.add("commands", {"key": f"pcs:{d}@{t}", "time_ns": t, "target": "pcs", "source": "safety_arbiter",
                               "decision_id": d, "enable": False, "p_kw": 0.0, "q_kvar": 0.0, "action": "",
                               "requested_by": ""})
    batch.add("alarm_events", {"key": f"11:0@{T0}", "time_ns": T0, "alarm_id": 11, "code": "BMS_RACK_OVERTEMP",
                               "source": "bms_node", "priority": 1, "event": 0, "state": 1,
                               "message": "rack 3 at 58.2 C", "evidence_json": "{}", "cause_alarm_id": None,
                               "user": ""})
    return batch


def _count(engine, table) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table)).scalar_one()


def test_a_replayed_batch_adds_nothing_and_is_sealed_once(engine):
    writer = RecordWriter(engine)
    batch = _batch("h-1:1")
    writer.write(batch)
    writer.write(batch)  # a commit in doubt, written again from the spool
    writer.write(_batch("h-1:1"))
    assert _count(engine, Telemetry) == 31
    assert _count(engine, AlarmRecord) == 1
    with Session(engine) as session:
        assert session.exec(select(Telemetry).where(Telemetry.quality == 2)).scalars().one().value is None
        seals = session.exec(select(audit.AuditEntry).where(audit.AuditEntry.kind == "records")).scalars().all()
        assert len(seals) == 1 and seals[0].subject == "batch:h-1:1"
        assert audit.verify(session).ok and verify_sealed_rows(session) is None


@pytest.mark.parametrize(("table", "tamper", "expected"), [
    ("decisions", "UPDATE decisions SET granted_kw = 250.0 WHERE decision_id = 1", "decisions row 1@"),
    ("decisions", "DELETE FROM decisions WHERE decision_id = 2", "decisions row 2@"),
    ("commands", "UPDATE commands SET p_kw = 99.0 WHERE decision_id = 0", "commands row pcs:0@"),
    ("alarm_events", "UPDATE alarm_events SET priority = 4", "alarm_events row 11:0@"),
])
def test_an_edited_or_deleted_sealed_row_is_named(engine, table, tamper, expected):
    RecordWriter(engine).write(_batch("h-2:1"))
    with engine.begin() as conn:
        conn.execute(text(tamper))
    with Session(engine) as session:
        assert audit.verify(session).ok  # the chain itself is intact...
        problem = verify_sealed_rows(session)  # ...but a row it sealed is not
    assert problem is not None and problem.audit_seq == 1 and expected in problem.reason
    assert ("deleted" if tamper.startswith("DELETE") else "edited") in problem.reason


def test_error_line_names_the_database_error_behind_an_autoflush(tmp_path):
    from sqlalchemy.exc import SQLAlchemyError

    from energizeos.records.db import error_line, init_db, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    init_db(engine)
    with engine.begin() as conn:  # a real refusal by the database (a full disk, say)
        conn.exec_driver_sql("CREATE TRIGGER refuse BEFORE INSERT ON events "
                             "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    with pytest.raises(SQLAlchemyError) as caught, Session(engine) as session:
        when = datetime.fromtimestamp(T0 / 1e9, UTC)
        session.add(Event(key="k", time=when, source="test", kind="note", message="m"))
        session.exec(select(Event)).all()  # the query flushes the insert first
    assert str(caught.value).startswith("(raised as a result of Query-invoked autoflush")  # what SQLAlchemy says first
    assert error_line(caught.value) == "(sqlite3.IntegrityError) disk I/O error"
