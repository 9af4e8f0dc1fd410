"""Witness sign-off of a commissioning run: an authenticated user holding the ``witness`` permission
(EPC, engineer, admin) who did not run it, on a run that passed. The sign-off names the witness, the
organisation and the time, carries the SHA-256 of the run's recorded steps, and goes on the audit chain
with an approval row in one transaction."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from energizeos.access.permissions import PERMISSIONS, Principal
from energizeos.records import audit
from energizeos.records.models import Approval, CommissioningRun, CommissioningStep, User
from energizeos.records.types import utc_from_ns


class SignOffError(ValueError):
    """Why a sign-off was refused."""


def steps_digest(steps: list[CommissioningStep]) -> str:
    """SHA-256 of the run's recorded steps (number, name, verdict and body), canonical JSON."""
    body = [{"number": s.number, "name": s.name, "verdict": s.verdict, "body": json.loads(s.measured_json)}
            for s in sorted(steps, key=lambda s: s.number)]
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def sign_off(engine: Engine, run_id: int, witness: Principal, statement: str, now_ns: int) -> dict[str, Any]:
    """Record the sign-off; returns its payload (as on the audit chain). SignOffError says why not."""
    with Session(engine) as session:
        run = session.get(CommissioningRun, run_id)
        user = session.exec(select(User).where(User.username == witness.username)).first()
        steps = list(session.exec(select(CommissioningStep).where(CommissioningStep.run_id == run_id)).all())
    if run is None:
        raise SignOffError(f"no commissioning run {run_id}")
    if user is None or user.disabled or user.role not in PERMISSIONS["witness"]:  # the role as stored now
        raise SignOffError(f"{witness.username} may not witness: that needs one of "
                           f"{', '.join(sorted(PERMISSIONS['witness']))}")
    if run.status != "passed":
        raise SignOffError(f"run {run_id} {run.status}: only a passed run is signed off (fix and rerun)")
    if run.witnessed_at is not None:
        raise SignOffError(f"run {run_id} was already signed off by {run.witness} at {run.witnessed_at.isoformat()}")
    if witness.username == run.operator:
        raise SignOffError(f"{witness.username} ran this commissioning: a witness must be someone else")
    if run.witness and run.witness != witness.username:
        raise SignOffError(f"run {run_id} names {run.witness} as its witness, not {witness.username}")
    when = utc_from_ns(now_ns)
    payload = {"run_id": run_id, "witness": user.username, "name": user.display_name,
               "organisation": user.organisation, "role": user.role, "statement": statement,
               "witnessed_at": when.isoformat(), "steps": len(steps), "steps_sha256": steps_digest(steps)}

    def record(session: Session) -> None:
        live = session.get(CommissioningRun, run_id)
        assert live is not None
        live.witness, live.witness_organisation, live.witnessed_at = user.username, user.organisation, when
        session.add(live)
        session.add(Approval(time=when, subject=f"commissioning_run:{run_id}", approved=True, user=user.username,
                             role=user.role, comment=statement))

    audit.append_committed(engine, "witness_signoff", user.username, f"commissioning_run:{run_id}", payload, now_ns,
                           changes=record)
    return payload


def witnessed_line(run: CommissioningRun) -> str:
    if run.witnessed_at is None:
        return "not signed off"
    when: datetime = run.witnessed_at
    return f"signed off by {run.witness} ({run.witness_organisation or 'no organisation'}) at {when.isoformat()}"
