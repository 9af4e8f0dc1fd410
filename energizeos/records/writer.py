"""Batched, idempotent writes of the historian's rows, each batch sealed on the audit chain.

A ``Batch`` is plain JSON-able data (times as integer nanoseconds), so the same object goes to the
database or, when the database is away, to the disk spool and later back. Every row has a natural
key; inserts skip keys that exist, so replaying a batch whose commit was in doubt adds nothing.
Commands, decisions, alarm transitions and events (setting changes among them) are sealed: one
audit entry per batch lists their keys and the SHA-256 of their content, so ``audit verify`` also
catches an edited or deleted row.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from energizeos.records import audit
from energizeos.records.models import AlarmEvent, AlarmRecord, CommandRecord, DecisionRecord, Event, Telemetry
from energizeos.records.types import ns_from_utc, utc_from_ns
from energizeos_msgs.msg import Alarm

TABLES: dict[str, Table] = {m.__tablename__: m.__table__ for m in  # type: ignore[misc]
                            (Telemetry, Event, AlarmEvent, CommandRecord, DecisionRecord)}
SEALED = ("commands", "decisions", "alarm_events", "events")  # on the audit chain, row by row


@dataclass
class Batch:
    batch_id: str  # unique per writer and batch, e.g. "historian-3f2a:000042"
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, table: str, row: dict[str, Any]) -> None:
        if table not in TABLES:
            raise ValueError(f"unknown record table {table!r}")
        self.rows.setdefault(table, []).append(row)

    @property
    def count(self) -> int:
        return sum(len(r) for r in self.rows.values())

    def to_json(self) -> str:
        return json.dumps({"batch_id": self.batch_id, "rows": self.rows}, separators=(",", ":"), allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> Batch:
        data = json.loads(text)
        unknown = set(data["rows"]) - set(TABLES)
        if unknown:
            raise ValueError(f"batch {data.get('batch_id')}: unknown tables {sorted(unknown)}")
        return cls(data["batch_id"], data["rows"])


def _db_row(table: str, row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["time"] = utc_from_ns(out.pop("time_ns"))
    return out


def _canonical(table: Table, row: dict[str, Any]) -> list[Any]:
    """The sealed content of a row, identical whether it comes from a batch or back from either database."""
    values: list[Any] = []
    for column in table.columns:
        if column.name == "id":
            continue
        if column.name == "time":
            when = row.get("time")
            values.append(ns_from_utc(when) // 1000 if isinstance(when, datetime) else int(row["time_ns"]) // 1000)
            continue
        value, kind = row.get(column.name), column.type.python_type
        if value is not None and kind is bool:
            value = int(bool(value))
        elif value is not None and kind is float:
            value = repr(float(value))
        values.append(value)
    return values


def row_digest(table_name: str, row: dict[str, Any]) -> str:
    """SHA-256 of one row's content (first 16 hex digits: what the seal keeps per row)."""
    canonical = json.dumps(_canonical(TABLES[table_name], row), separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def insert_ignoring_duplicates(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - the two supported backends are above
        raise RuntimeError(f"unsupported database {dialect}")
    session.execute(stmt, rows)


def _apply_alarm_event(session: Session, ev: dict[str, Any]) -> None:
    """Keep the ``alarms`` table (current state per occurrence) in step with the transitions."""
    when = utc_from_ns(ev["time_ns"])
    record = session.get(AlarmRecord, ev["alarm_id"])
    if record is None:
        record = AlarmRecord(alarm_id=ev["alarm_id"], code=ev["code"], source=ev["source"], priority=ev["priority"],
                             state=ev["state"], message=ev["message"], evidence_json=ev["evidence_json"],
                             cause_alarm_id=ev.get("cause_alarm_id") or None, raised_at=when)
    record.state = ev["state"]
    if ev["event"] == Alarm.EVENT_RAISE:  # raised again before it was acknowledged: the latest cause counts
        record.cause_alarm_id = ev.get("cause_alarm_id") or None
        record.message, record.evidence_json, record.cleared_at = ev["message"], ev["evidence_json"], None
    elif ev["event"] == Alarm.EVENT_CLEAR:
        record.cleared_at = when
    elif ev["event"] == Alarm.EVENT_ACKNOWLEDGE:
        record.acked_at, record.acked_by = when, ev.get("user", "")
    elif ev["event"] == Alarm.EVENT_SHELVE:
        until_ns = json.loads(ev["evidence_json"] or "{}").get("shelved_until_ns")
        record.shelved_until = utc_from_ns(until_ns) if until_ns else None
    elif ev["event"] == Alarm.EVENT_UNSHELVE:
        record.shelved_until = None
    session.add(record)


class RecordWriter:
    """Writes batches in one transaction each; safe to call again with a batch already written."""

    def __init__(self, engine: Engine, actor: str = "historian") -> None:
        self.engine = engine
        self.actor = actor

    def write(self, batch: Batch, attempts: int = 5) -> None:
        for attempt in range(attempts):
            try:
                self._write_once(batch)
                return
            except IntegrityError:  # another writer took the audit chain's next entry: go again
                if attempt == attempts - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))

    def _write_once(self, batch: Batch) -> None:
        with Session(self.engine) as session:
            for name, rows in batch.rows.items():
                if rows:
                    insert_ignoring_duplicates(session, TABLES[name], [_db_row(name, r) for r in rows])
            for ev in batch.rows.get("alarm_events", []):
                _apply_alarm_event(session, ev)
            sealed = {name: {"rows": {r["key"]: row_digest(name, r) for r in batch.rows[name]}}
                      for name in SEALED if batch.rows.get(name)}
            subject = f"batch:{batch.batch_id}"
            already = session.execute(select(audit.AuditEntry.seq).where(audit.AuditEntry.subject == subject)).first()
            if sealed and already is None:
                audit.append(session, "records", self.actor, subject, {"tables": sealed}, time.time_ns())
            session.commit()


@dataclass(frozen=True)
class SealProblem:
    audit_seq: int
    table: str
    reason: str


def verify_sealed_rows(session: Session) -> SealProblem | None:
    """Recompute every sealed row from what is in the database now; the first mismatch, or None."""
    entries = session.execute(select(audit.AuditEntry).where(audit.AuditEntry.kind == "records")
                              .order_by(audit.AuditEntry.seq)).scalars().all()
    for entry in entries:
        for name, seal in json.loads(entry.payload_json)["tables"].items():
            table, sealed = TABLES[name], seal["rows"]
            found = {r["key"]: r for r in
                     (dict(m._mapping) for m in session.execute(select(table).where(table.c.key.in_(list(sealed)))))}
            for key, digest in sealed.items():
                if key not in found:
                    return SealProblem(entry.seq, name, f"{name} row {key} (sealed by audit entry {entry.seq}) "
                                                        "is missing: deleted")
                if row_digest(name, found[key]) != digest:
                    return SealProblem(entry.seq, name, f"{name} row {key} (sealed by audit entry {entry.seq}) "
                                                        "was edited: its content no longer matches the seal")
    return None
