"""Plans and their approvals in the records: every proposed plan is stored with its gate findings,
and every approval or rejection — by a user with the right role or by the configured policy — is
stored and appended to the audit chain with the plan's content hash."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from energizeos.records import audit
from energizeos.records.models import Approval, PlanRecord
from energizeos.records.types import utc_from_ns

STATUS_PROPOSED, STATUS_APPROVED, STATUS_REJECTED, STATUS_ACTIVE, STATUS_SUPERSEDED, STATUS_WEEK_PLAN = range(6)


def plan_body_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Decision:
    """An approval or rejection: by a user with the right role, or by the configured policy."""

    approved: bool
    user: str
    role: str
    comment: str


def save_plan(engine: Engine, plan_id: int, site: str, start: datetime, interval_s: int, body: dict,
              findings: list[str], now_ns: int | None = None, decision: Decision | None = None) -> None:
    """Store a proposed plan (its arrays as JSON) and put its hash on the audit chain; with ``decision``
    (a policy's, made at once) the approval or rejection goes in the same transaction, so a plan is
    never stored without the decision the policy made on it (and a re-plan costs one commit, not two)."""
    now_ns = now_ns if now_ns is not None else time.time_ns()
    body_sha256 = plan_body_hash(body)
    with Session(engine) as session:
        plan = PlanRecord(plan_id=plan_id, site=site, created_at=utc_from_ns(now_ns), start=start,
                          interval_s=interval_s, status=STATUS_PROPOSED, body_json=json.dumps(body),
                          gate_findings_json=json.dumps(findings))
        session.add(plan)
        audit.append(session, "plan", "planner", f"plan:{plan_id}",
                     {"sha256": body_sha256, "start": start.isoformat(), "gate": findings}, now_ns)
        if decision is not None:
            _add_decision(session, plan, body_sha256, decision, now_ns)
        session.commit()


def save_week_plan(engine: Engine, plan_id: int, site: str, start: datetime, interval_s: int, body: dict,
                   now_ns: int | None = None) -> None:
    """Store a week plan and put its hash on the audit chain. It is never followed, so it is neither gated
    nor approved; the day plans it guides are, and their notes name it by id."""
    now_ns = now_ns if now_ns is not None else time.time_ns()
    with Session(engine) as session:
        session.add(PlanRecord(plan_id=plan_id, site=site, created_at=utc_from_ns(now_ns), start=start,
                               interval_s=interval_s, status=STATUS_WEEK_PLAN, body_json=json.dumps(body)))
        audit.append(session, "plan", "planner", f"plan:{plan_id}",
                     {"sha256": plan_body_hash(body), "start": start.isoformat(), "week_plan": True}, now_ns)
        session.commit()


def record_decision(engine: Engine, plan_id: int, approved: bool, user: str, role: str, comment: str,
                    now_ns: int | None = None) -> Approval:
    """Store an approval or rejection of a stored plan and append it to the audit chain (with the plan's hash)."""
    now_ns = now_ns if now_ns is not None else time.time_ns()
    with Session(engine) as session:
        plan = session.get(PlanRecord, plan_id)
        if plan is None:
            raise ValueError(f"plan {plan_id} is not in the records")
        if plan.status == STATUS_WEEK_PLAN:
            raise ValueError(f"plan {plan_id} is a week plan: it is never followed, so there is nothing to decide")
        approval = _add_decision(session, plan, plan_body_hash(json.loads(plan.body_json)),
                                 Decision(approved, user, role, comment), now_ns)
        session.commit()
        session.refresh(approval)
        return approval


def _add_decision(session: Session, plan: PlanRecord, plan_sha256: str, decision: Decision, now_ns: int) -> Approval:
    approval = Approval(time=utc_from_ns(now_ns), subject=f"plan:{plan.plan_id}", approved=decision.approved,
                        user=decision.user, role=decision.role, comment=decision.comment)
    plan.status = STATUS_APPROVED if decision.approved else STATUS_REJECTED
    session.add(approval)
    session.add(plan)
    audit.append(session, "approval", decision.user, f"plan:{plan.plan_id}",
                 {"approved": decision.approved, "role": decision.role, "comment": decision.comment,
                  "plan_sha256": plan_sha256}, now_ns)
    return approval


def set_status(engine: Engine, plan_id: int, status: int) -> None:
    with Session(engine) as session:
        plan = session.get(PlanRecord, plan_id)
        if plan is not None:
            plan.status = status
            session.add(plan)
            session.commit()
