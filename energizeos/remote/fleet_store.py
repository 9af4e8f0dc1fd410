"""The aggregator's writes: a site's accepted records, in one transaction per batch.

Each record goes to ``fleet_records`` as sent; telemetry rows also go to ``fleet_telemetry``,
alarm transitions update ``fleet_alarms`` (the latest state per alarm) and a forwarded report file is
listed in ``fleet_report_files`` (its bytes stay in the record), so the fleet view reads small
tables. The site's ``have_seq`` moves in the same transaction: after a crash the stored records and
the point to resume from always agree. ``store_many`` writes several messages in one
transaction (the aggregator's writer does when messages queue up: one commit each capped it at
~130 batches/s on a durable PostgreSQL, bench/bench_fleet.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from energizeos.records.models import FleetAlarm, FleetRecord, FleetReportFile, FleetSite, FleetTelemetry
from energizeos.records.types import utc_from_ns
from energizeos.records.writer import insert_ignoring_duplicates
from energizeos.remote.protocol import MAX_TIME_NS, Record


@dataclass
class SiteCursor:
    site_id: str
    epoch: str
    have: int


def load_cursors(engine: Engine) -> dict[str, SiteCursor]:
    with Session(engine) as session:
        return {s.site_id: SiteCursor(s.site_id, s.epoch, s.have_seq) for s in session.exec(select(FleetSite))}


SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _telemetry_row_ok(row: Any) -> bool:
    return (isinstance(row, dict) and isinstance(row.get("point"), str) and bool(row["point"])
            and _int(row.get("time_ns"), 0, MAX_TIME_NS) and _int(row.get("quality", 0), 0, 255)
            and (row.get("value") is None or (isinstance(row["value"], int | float)
                                             and not isinstance(row["value"], bool))))


def _alarm_ok(ev: Any) -> bool:
    return (isinstance(ev, dict) and _int(ev.get("time_ns"), 0, MAX_TIME_NS) and _int(ev.get("alarm_id"), 0, 2**63 - 1)
            and all(isinstance(ev.get(k), str) for k in ("code", "source", "message"))
            and _int(ev.get("priority"), 0, 255) and _int(ev.get("state"), 0, 255))


def _report_file_row(site: str, epoch: str, record: Record) -> dict[str, Any] | None:
    """The record's row for ``fleet_report_files``, or None when the body is malformed: a name or hash
    missing, or bytes that do not decode to ``size`` bytes with that SHA-256. The file is decoded once
    here; a file the fleet lists has been checked, and is checked again when served."""
    body = record.body
    if not (all(isinstance(body.get(k), str) and body[k] for k in ("report", "period", "format", "name"))
            and isinstance(body.get("sha256"), str) and SHA256_HEX.fullmatch(body["sha256"])
            and _int(body.get("size"), 0, 2**63 - 1) and isinstance(body.get("data_b64"), str)):
        return None
    try:
        data = base64.b64decode(body["data_b64"], validate=True)
    except (binascii.Error, ValueError):  # not base64, or not ASCII
        return None
    if len(data) != body["size"] or hashlib.sha256(data).hexdigest() != body["sha256"]:
        return None
    return {"site_id": site, "epoch": epoch, "seq": record.seq, "report": body["report"], "period": body["period"],
            "format": body["format"], "name": body["name"], "sha256": body["sha256"], "size": body["size"],
            "time": utc_from_ns(record.time_ns)}


def _telemetry_rows(site: str, record: Record) -> tuple[list[dict[str, Any]], int]:
    """The record's rows for ``fleet_telemetry`` and how many were malformed (those stay only in ``fleet_records``)."""
    rows = record.body.get("rows")
    rows = rows if isinstance(rows, list) else [rows]
    good = [row for row in rows if _telemetry_row_ok(row)]
    return [{"site_id": site, "point": row["point"], "time": utc_from_ns(row["time_ns"]),
             "value": row.get("value"), "quality": row.get("quality", 0)} for row in good], len(rows) - len(good)


def _apply_alarm(session: Session, site: str, ev: dict[str, Any]) -> None:
    when = utc_from_ns(int(ev["time_ns"]))
    alarm = session.get(FleetAlarm, (site, int(ev["alarm_id"])))
    if alarm is None:
        session.add(FleetAlarm(site_id=site, alarm_id=int(ev["alarm_id"]), code=ev["code"], device=ev["source"],
                               priority=int(ev["priority"]), state=int(ev["state"]), message=ev["message"],
                               raised=when, changed=when))
    elif when >= alarm.changed:
        alarm.state, alarm.changed, alarm.priority = int(ev["state"]), when, int(ev["priority"])
        alarm.message = ev["message"] or alarm.message


@dataclass(frozen=True)
class BatchWrite:
    site: str
    epoch: str
    head: int
    records: tuple[Record, ...]
    name: str = ""


@dataclass(frozen=True)
class StatusWrite:
    site: str
    epoch: str
    head: int
    name: str = ""


def store_many(engine: Engine, writes: list[BatchWrite | StatusWrite], now: datetime) -> int:
    """Batches and statuses, in order, in one transaction; the rows of all batches go in one insert each.

    Every record is kept whole in ``fleet_records``. A malformed telemetry row, alarm transition or
    report file (which a healthy edge never sends) is left out of the derived tables rather than refusing
    the batch — a refused batch would stall its site for ever. Returns how many were left out."""
    with Session(engine) as session:
        # The sites' rows in one query (not one per write), held here: the session keeps them only
        # weakly. Their changes go out together at the commit.
        sites = {row.site_id: row for row in session.exec(
            select(FleetSite).where(col(FleetSite.site_id).in_({w.site for w in writes})))}
        records: list[dict[str, Any]] = []
        telemetry: list[dict[str, Any]] = []
        files: list[dict[str, Any]] = []
        malformed = 0
        for w in writes:
            if w.site not in sites:
                sites[w.site] = FleetSite(site_id=w.site, name=w.name or w.site, epoch=w.epoch, first_seen=now,
                                          last_seen=now)
                session.add(sites[w.site])
            if isinstance(w, StatusWrite):
                row = sites[w.site]
                row.last_seen = now
                if w.epoch == row.epoch:  # a status about another outbox (a reinstalled edge) says nothing here
                    row.head_seq = max(w.head, row.have_seq)
            else:
                malformed += _stage_batch(session, sites[w.site], w, now, records, telemetry, files)
        if records:
            insert_ignoring_duplicates(session, FleetRecord.__table__, records)  # type: ignore[arg-type]
        if telemetry:
            insert_ignoring_duplicates(session, FleetTelemetry.__table__, telemetry)  # type: ignore[arg-type]
        if files:
            insert_ignoring_duplicates(session, FleetReportFile.__table__, files)  # type: ignore[arg-type]
        session.commit()
    return malformed


def store_batch(engine: Engine, site: str, epoch: str, head: int, records: tuple[Record, ...],
                now: datetime, name: str = "") -> None:
    """Write the records and move the site's ``have_seq`` to the last of them, atomically."""
    store_many(engine, [BatchWrite(site, epoch, head, records, name)], now)


def _stage_batch(session: Session, site_row: FleetSite, w: BatchWrite, now: datetime, records: list[dict[str, Any]],
                 telemetry: list[dict[str, Any]], files: list[dict[str, Any]]) -> int:
    """Move the site's row and alarms; add the batch's rows to ``records`` / ``telemetry`` / ``files``.
    Returns the number of malformed telemetry rows, alarm transitions and report files left out of the
    derived tables."""
    malformed = 0
    site, epoch = w.site, w.epoch
    if site_row.epoch != epoch:
        site_row.epoch, site_row.have_seq = epoch, 0  # a new outbox at the edge: a new numbering
    if w.records:
        records += [{"site_id": site, "epoch": epoch, "seq": r.seq, "kind": r.kind, "time": utc_from_ns(r.time_ns),
                     "received": now, "body": json.dumps(r.body, separators=(",", ":"))} for r in w.records]
        for r in w.records:
            if r.kind == "telemetry":
                good, bad = _telemetry_rows(site, r)
                telemetry += good
                malformed += bad
            elif r.kind == "alarm_events":
                if _alarm_ok(r.body):
                    _apply_alarm(session, site, r.body)
                else:
                    malformed += 1
            elif r.kind == "report_files":
                row = _report_file_row(site, epoch, r)
                if row is None:
                    malformed += 1
                else:
                    files.append(row)
        site_row.have_seq = w.records[-1].seq
        newest = utc_from_ns(max(r.time_ns for r in w.records))
        if site_row.last_record_time is None or newest > site_row.last_record_time:
            site_row.last_record_time = newest
    site_row.head_seq = max(w.head, site_row.have_seq)
    site_row.last_seen = now
    return malformed


def note_status(engine: Engine, site: str, epoch: str, head: int, now: datetime, name: str = "") -> None:
    """A status message: the site is alive and holds ``head`` records."""
    store_many(engine, [StatusWrite(site, epoch, head, name)], now)
