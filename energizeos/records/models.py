"""The record tables (SQLModel). One schema for SQLite and PostgreSQL; Alembic migrates it.

Times are timezone-aware UTC (``UTCDateTime``); the UI shows them in the site's time zone.
Rows the historian writes carry a natural ``key`` (unique) so a replayed batch is ignored row by
row instead of duplicated. The audit chain (``audit.py``) is the tamper-evident layer on top.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel

from energizeos.records.types import UTCDateTime


def _time(**kwargs) -> datetime:
    return Field(sa_type=UTCDateTime, **kwargs)


class Telemetry(SQLModel, table=True):
    """One measured value: ``point`` is "<topic>/<field>", e.g. "/site/poi/meter/p_kw"."""

    __tablename__ = "telemetry"
    __table_args__ = (Index("ix_telemetry_time", "time"),)
    point: str = Field(primary_key=True)
    time: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    value: float | None  # None where the device gave no number (stale): a gap stays a gap
    quality: int = 0  # 0 good, 1 invalid, 2 stale (the message QUALITY_* constants)


class Event(SQLModel, table=True):
    """Anything that happened: a node log of note, a mode change, a fault injected in the simulation."""

    __tablename__ = "events"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    time: datetime = _time(index=True)
    source: str = Field(index=True)
    kind: str = Field(index=True)
    message: str = Field(sa_column=Column(Text, nullable=False))
    data_json: str = "{}"


class AlarmRecord(SQLModel, table=True):
    """The current state of one alarm occurrence (raise ... clear and acknowledged)."""

    __tablename__ = "alarms"
    alarm_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    code: str = Field(index=True)
    source: str
    priority: int = Field(index=True)
    state: int  # Alarm.STATE_*
    message: str = Field(sa_column=Column(Text, nullable=False))
    evidence_json: str = "{}"
    cause_alarm_id: int | None = Field(default=None, sa_type=BigInteger, index=True)
    raised_at: datetime = _time(index=True)
    cleared_at: datetime | None = _time(default=None)
    acked_at: datetime | None = _time(default=None)
    acked_by: str = ""
    shelved_until: datetime | None = _time(default=None)


class AlarmEvent(SQLModel, table=True):
    """Every lifecycle transition, append-only: raise, clear, acknowledge, shelve, unshelve."""

    __tablename__ = "alarm_events"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    alarm_id: int = Field(sa_type=BigInteger, index=True)
    time: datetime = _time(index=True)
    code: str = Field(index=True)
    source: str
    priority: int
    event: int  # Alarm.EVENT_*
    state: int  # Alarm.STATE_* after the event
    message: str = Field(sa_column=Column(Text, nullable=False))
    evidence_json: str = "{}"
    cause_alarm_id: int | None = Field(default=None, sa_type=BigInteger)
    user: str = ""


class CommandRecord(SQLModel, table=True):
    """A command that left the safety arbiter: PCS set-points and breaker operations."""

    __tablename__ = "commands"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    time: datetime = _time(index=True)
    target: str  # "pcs" or "breaker"
    source: str
    decision_id: int = Field(sa_type=BigInteger, index=True)
    enable: bool = False
    p_kw: float = 0.0
    q_kvar: float = 0.0
    action: str = ""  # breaker: open / close / reset
    requested_by: str = ""


class DecisionRecord(SQLModel, table=True):
    """Every safety-arbiter decision, granted, clipped or refused, with its reasons."""

    __tablename__ = "decisions"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    time: datetime = _time(index=True)
    decision_id: int = Field(sa_type=BigInteger, index=True)
    request_id: int = Field(default=0, sa_type=BigInteger)
    request_source: str = ""
    kind: int  # ArbiterDecision.KIND_*
    outcome: int = Field(index=True)  # ArbiterDecision.OUTCOME_*
    requested_kw: float
    granted_kw: float
    reason_codes: str = ""  # comma-separated codes, same order as the texts
    reason_texts_json: str = "[]"


class PlanRecord(SQLModel, table=True):
    __tablename__ = "plans"
    plan_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    site: str
    created_at: datetime = _time()
    start: datetime = _time(index=True)
    interval_s: int
    status: int  # DispatchPlan.STATUS_*
    body_json: str = Field(sa_column=Column(Text, nullable=False))  # p_kw, soc_pct, forecast, thresholds
    gate_findings_json: str = "[]"


class Approval(SQLModel, table=True):
    """An approval or rejection of a plan (or anything else that needs one), by a user or a policy."""

    __tablename__ = "approvals"
    id: int | None = Field(default=None, primary_key=True)
    time: datetime = _time(index=True)
    subject: str = Field(index=True)  # e.g. "plan:1795670233"
    approved: bool
    user: str
    role: str
    comment: str = ""


class ReportRecord(SQLModel, table=True):
    __tablename__ = "reports"
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # daily / monthly
    period_start: datetime = _time(index=True)
    period_end: datetime = _time()
    generated_at: datetime = _time()
    format: str
    path: str
    sha256: str


class CommissioningRun(SQLModel, table=True):
    __tablename__ = "commissioning_runs"
    id: int | None = Field(default=None, primary_key=True)
    procedure: str = Field(index=True)
    site: str
    started_at: datetime = _time()
    finished_at: datetime | None = _time(default=None)
    status: str = "running"  # running / passed / failed / aborted
    operator: str = ""
    witness: str = ""
    witness_organisation: str = ""
    witnessed_at: datetime | None = _time(default=None)


class CommissioningStep(SQLModel, table=True):
    __tablename__ = "commissioning_steps"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="commissioning_runs.id", index=True)
    number: int
    name: str
    started_at: datetime = _time()
    finished_at: datetime | None = _time(default=None)
    verdict: str = ""  # pass / fail / skipped
    measured_json: str = "{}"
    acceptance: str = ""


class EvidenceItem(SQLModel, table=True):
    """A file kept as evidence: its SHA-256, who added it, when, and what it relates to."""

    __tablename__ = "evidence"
    id: int | None = Field(default=None, primary_key=True)
    recorded_at: datetime = _time(index=True)
    kind: str = Field(index=True)  # protection-settings, test-result, approval, witness-signoff, ...
    filename: str
    sha256: str = Field(index=True)
    size_bytes: int = Field(sa_type=BigInteger)
    stored_path: str  # content-addressed copy under $ENERGIZEOS_HOME/evidence
    added_by: str
    relates_to: str = ""
    note: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    audit_seq: int | None = None


class Role(SQLModel, table=True):
    __tablename__ = "roles"
    name: str = Field(primary_key=True)
    description: str


class User(SQLModel, table=True):
    __tablename__ = "users"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True)
    display_name: str = ""
    organisation: str = ""
    role: str = Field(foreign_key="roles.name")
    password_hash: str
    created_at: datetime = _time()
    disabled: bool = False
    failed_logins: int = 0
    locked_until: datetime | None = _time(default=None)


ROLES = {
    "viewer": "read-only (e.g. the utility)",
    "owner": "site owner: reads everything",
    "epc": "EPC contractor: reads everything, witnesses commissioning",
    "integrator": "BESS integrator: reads everything",
    "operator": "acknowledges and shelves alarms, approves plans",
    "engineer": "changes settings, runs commissioning",
    "admin": "manages users",
}


class UserSession(SQLModel, table=True):
    """A logged-in session. Only the SHA-256 of its token is stored: a copy of the database opens no session."""

    __tablename__ = "user_sessions"
    id: int | None = Field(default=None, primary_key=True)
    token_sha256: str = Field(unique=True)
    username: str = Field(index=True)
    created_at: datetime = _time()
    last_seen_at: datetime = _time()
    expires_at: datetime = _time()  # absolute limit; the idle limit counts from last_seen_at
    ended_at: datetime | None = _time(default=None)
    end_reason: str = ""  # logout / idle / expired / disabled / password-changed


# --- Fleet: what the remote aggregator (``energizeos remote serve``) collects from edge sites --------


class FleetSite(SQLModel, table=True):
    """One edge site as the aggregator knows it. ``have_seq`` is the last record stored for the
    site's current outbox (``epoch``): every record up to it is stored, none after it."""

    __tablename__ = "fleet_sites"
    site_id: str = Field(primary_key=True)
    name: str = ""
    epoch: str = ""  # the edge outbox's id: a reinstalled edge starts a new sequence
    have_seq: int = Field(default=0, sa_type=BigInteger)
    head_seq: int = Field(default=0, sa_type=BigInteger)  # the newest record the edge says it holds
    first_seen: datetime = _time()
    last_seen: datetime = _time()  # last status or batch heard from the site
    last_record_time: datetime | None = _time(default=None)  # source time of the newest stored record


class FleetRecord(SQLModel, table=True):
    """Every record a site forwarded, exactly once, in its edge order (site, epoch, seq)."""

    __tablename__ = "fleet_records"
    __table_args__ = (Index("ix_fleet_records_site_time", "site_id", "time"),)
    site_id: str = Field(primary_key=True)
    epoch: str = Field(primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    kind: str = Field(index=True)  # telemetry, alarm_events, events, decisions, commands
    time: datetime = _time()  # source time (the message stamp at the edge)
    received: datetime = _time()  # when the aggregator stored it
    body: str = Field(sa_column=Column(Text, nullable=False))  # JSON, as the edge sent it


class FleetTelemetry(SQLModel, table=True):
    """Telemetry points of every site, for the fleet view's figures and charts."""

    __tablename__ = "fleet_telemetry"
    site_id: str = Field(primary_key=True)
    point: str = Field(primary_key=True)
    time: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    value: float | None
    quality: int = 0


class FleetAlarm(SQLModel, table=True):
    """The latest state of every alarm of every site (one row per alarm, updated by its transitions)."""

    __tablename__ = "fleet_alarms"
    site_id: str = Field(primary_key=True)
    alarm_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    code: str = Field(index=True)
    device: str = ""
    priority: int = Field(index=True)
    state: int = Field(index=True)  # Alarm.STATE_* after the latest transition (0: back to normal)
    message: str = Field(sa_column=Column(Text, nullable=False))
    raised: datetime = _time()
    changed: datetime = _time()


class FleetReportFile(SQLModel, table=True):
    """A report file a site forwarded (a "report_files" record): which report, format and SHA-256. The
    bytes stay in that record's body in ``fleet_records`` (same site, epoch, seq), stored once; the
    fleet view lists files from this small table and reads a body only for a download."""

    __tablename__ = "fleet_report_files"
    __table_args__ = (Index("ix_fleet_report_files_site_time", "site_id", "time"),)
    site_id: str = Field(primary_key=True)
    epoch: str = Field(primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    report: str  # daily / monthly
    period: str  # "2026-11-25", "2026-10"
    format: str  # pdf / html / csv
    name: str  # the file's name at the site, e.g. "daily-2026-11-25.pdf"
    sha256: str  # of the file's bytes, checked when stored and again when served
    size: int = Field(sa_type=BigInteger)
    time: datetime = _time()  # the report's announcement time at the edge (the record's time)
