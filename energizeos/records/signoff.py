"""Witness sign-off of a finished commissioning run.

A user holding the ``witness`` permission (epc, engineer, admin) signs a run that has finished. The
witness's name, organisation and time go on the run's row, and an audit entry (kind
``witness-signoff``, subject ``run:<id>``) records them with the SHA-256 of the run and all its steps
as recorded (``run_sha256``) and the SHA-256 of every evidence file related to the run. A step edited
afterwards no longer hashes to what the witness signed, so the evidence package built from it fails
``energizeos evidence verify``.

Row and audit entry are written in one transaction; the row is claimed by a conditional UPDATE (only
an unsigned, finished run matches), so of two witnesses signing at once exactly one succeeds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from energizeos.access.permissions import PERMISSIONS, allowed
from energizeos.records import audit
from energizeos.records.models import CommissioningRun, CommissioningStep, EvidenceItem, User
from energizeos.records.types import ns_from_utc

KIND = "witness-signoff"
FINISHED = ("passed", "failed", "aborted")  # a run in any other status is not the witness's to sign yet
# The fields of ``run_record``: the package check rebuilds the record from run.json with these names.
RUN_FIELDS = ("id", "procedure", "site", "status", "operator", "started_at", "finished_at")
STEP_FIELDS = ("id", "number", "name", "verdict", "acceptance", "measured_json", "started_at", "finished_at")


class SignoffError(ValueError):
    """A sign-off that cannot be made; the message names the reason."""


@dataclass(frozen=True)
class Signoff:
    run_id: int
    witness: str
    organisation: str
    witnessed_at: datetime
    run_sha256: str
    audit_seq: int
    entry_hash: str


def subject(run_id: int) -> str:
    return f"run:{run_id}"


def iso(value: datetime | None) -> str | None:
    """UTC ISO 8601 with microseconds: one spelling for a time, whatever the backend returned."""
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def run_record(run: CommissioningRun, steps: list[CommissioningStep]) -> dict[str, Any]:
    """What the witness signs: the run and its steps as recorded, without the sign-off's own fields
    (witness, organisation, time), which are written with the signature. ``measured_json`` is kept as
    the stored text so the hash does not depend on how a float prints."""
    return {
        "run": {"id": run.id, "procedure": run.procedure, "site": run.site, "status": run.status,
                "operator": run.operator, "started_at": iso(run.started_at), "finished_at": iso(run.finished_at)},
        "steps": [{"id": s.id, "number": s.number, "name": s.name, "verdict": s.verdict,
                   "acceptance": s.acceptance, "measured_json": s.measured_json,
                   "started_at": iso(s.started_at), "finished_at": iso(s.finished_at)}
                  for s in sorted(steps, key=lambda s: (s.number, s.id or 0))],
    }


def record_sha256(record: dict[str, Any]) -> str:
    """SHA-256 of the record's canonical JSON (sorted keys, no spaces, UTF-8): the same on any machine."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def part_hashes(record: dict[str, Any]) -> dict[str, Any]:
    """A hash of the run's own fields and one per step (by step id), so a check can name what changed."""
    return {"run": record_sha256(record["run"]),
            "steps": {str(step["id"]): [step["number"], step["name"], record_sha256(step)] for step in record["steps"]}}


def load_run(session: Session, run_id: int) -> tuple[CommissioningRun, list[CommissioningStep]]:
    run = session.get(CommissioningRun, run_id)
    if run is None:
        raise SignoffError(f"no commissioning run {run_id}")
    steps = list(session.exec(select(CommissioningStep).where(CommissioningStep.run_id == run_id)
                              .order_by(CommissioningStep.number, CommissioningStep.id)).all())
    return run, steps


def evidence_of(session: Session, run_id: int) -> list[EvidenceItem]:
    return list(session.exec(select(EvidenceItem).where(EvidenceItem.relates_to == subject(run_id))
                             .order_by(EvidenceItem.id)).all())


def _check_witness(session: Session, username: str) -> User:
    user = session.exec(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise SignoffError(f"unknown user {username!r}: a witness signs with an account of their own")
    if user.disabled:
        raise SignoffError(f"user {user.username} is disabled and cannot sign off a run")
    if not allowed(user.role, "witness"):
        holders = ", ".join(sorted(PERMISSIONS["witness"]))
        raise SignoffError(f"{user.username} (role {user.role}) may not witness a commissioning run: that needs "
                           f"one of {holders}")
    return user


def _check_run(run: CommissioningRun, username: str) -> None:
    # ``witness`` alone (no time) is the witness named when the run was started: only they may sign it
    if run.witnessed_at is not None:
        when = f" at {iso(run.witnessed_at)}" if run.witnessed_at else ""
        org = f" ({run.witness_organisation})" if run.witness_organisation else ""
        raise SignoffError(f"run {run.id} is already signed off by {run.witness or '(no name)'}{org}{when}; "
                           "a run is signed once")
    if run.witness and run.witness != username:
        raise SignoffError(f"run {run.id} was run with {run.witness} named as its witness: only they sign it")
    if run.status == "running":
        raise SignoffError(f"run {run.id} is still running: a witness signs a finished run")
    if run.status not in FINISHED or run.finished_at is None:
        raise SignoffError(f"run {run.id} has status {run.status!r} and "
                           f"{'no finish time' if run.finished_at is None else 'is not finished'}: a witness signs "
                           f"a run that finished ({', '.join(FINISHED)})")


def sign_off(engine: Engine, run_id: int, username: str, via: str = "console",
             now: datetime | None = None) -> Signoff:
    """Sign run ``run_id`` as witness ``username``; SignoffError naming the reason when refused.
    ``via``: where the signature was given ("console" or "app"), kept in the audit entry."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    made: dict[str, Any] = {}
    payload: dict[str, Any] = {}

    def sign(session: Session) -> None:
        user = _check_witness(session, username)
        run, _ = load_run(session, run_id)
        _check_run(run, user.username)  # the reason, when there is one
        if run.operator and run.operator == user.username:
            raise SignoffError(f"{user.username} ran run {run_id} as its operator: the witness must be someone else")
        name = user.display_name.strip() or user.username
        # Check and write in one statement: two witnesses signing at once both pass the check above, but
        # only one UPDATE still finds the run unsigned (the other waits for the row, then matches nothing).
        claimed = session.execute(
            update(CommissioningRun)
            .where(col(CommissioningRun.id) == run_id, col(CommissioningRun.witness).in_(("", user.username)),
                   col(CommissioningRun.witnessed_at).is_(None), col(CommissioningRun.status).in_(FINISHED),
                   col(CommissioningRun.finished_at).is_not(None))
            .values(witness=name, witness_organisation=user.organisation, witnessed_at=when)
            .execution_options(synchronize_session=False))
        session.expire_all()
        run, steps = load_run(session, run_id)  # as held now, under the write lock: what is signed
        if claimed.rowcount != 1:
            _check_run(run, user.username)
            raise SignoffError(f"run {run_id} changed while it was being signed: try again")
        record = run_record(run, steps)
        digest = record_sha256(record)
        payload.clear()  # a retried transaction starts again
        payload.update({
            "run_id": run_id, "run_sha256": digest, "procedure": run.procedure, "status": run.status,
            "steps": len(steps), "witness": name, "organisation": user.organisation, "username": user.username,
            "role": user.role, "witnessed_at": iso(when), "via": via, "parts": part_hashes(record),
            "evidence": [{"id": e.id, "filename": e.filename, "sha256": e.sha256}
                         for e in evidence_of(session, run_id)],
        })
        made.update(name=name, organisation=user.organisation, digest=digest, actor=user.username)

    # The payload is built inside the transaction; append_committed serialises it after ``sign`` runs.
    seq = audit.append_committed(engine, KIND, username.strip().lower() or "(empty)", subject(run_id),
                                 payload, ns_from_utc(when), sign)
    with Session(engine) as session:
        entry = session.get(audit.AuditEntry, seq)
    return Signoff(run_id, made["name"], made["organisation"], when, made["digest"], seq,
                   entry.entry_hash if entry else "")
