"""Plans and their approvals in the records (energizeos.planning.approval), on SQLite and on PostgreSQL:
a policy's decision is stored in the same transaction as the plan it decides on."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from energizeos.planning import approval
from energizeos.records import audit
from energizeos.records.models import Approval, PlanRecord

START = datetime(2025, 7, 1, 7, tzinfo=UTC)
BODY = {"p_kw": [0.0, 250.5, -120.25], "soc_pct": [50.0, 38.1, 44.0], "notes": ["re-plan at 07:00"]}
NOW_NS = 1_751_353_200_000_000_000


def stored(engine) -> tuple[list[PlanRecord], list[Approval], list[audit.AuditEntry]]:
    with Session(engine) as session:
        plans = list(session.exec(select(PlanRecord).order_by(PlanRecord.plan_id)).scalars())
        approvals = list(session.exec(select(Approval).order_by(Approval.id)).scalars())
        chain = list(session.exec(select(audit.AuditEntry).order_by(audit.AuditEntry.seq)).scalars())
        assert audit.verify(session).ok
    return plans, approvals, chain


@pytest.mark.parametrize(("decision", "status"), [
    (approval.Decision(True, "policy:replan", "policy", "re-plan of approved plan 7; passed the safety gate"),
     approval.STATUS_APPROVED),
    (approval.Decision(False, "policy:safety-gate", "policy", "FAIL SOC: interval 2 below the floor"),
     approval.STATUS_REJECTED)])
def test_a_policy_decision_is_stored_with_its_plan_and_chained_right_after_it(migrated_engine, decision, status):
    approval.save_plan(migrated_engine, 8, "site-a", START, 900, BODY, ["PASS export"], NOW_NS, decision)
    plans, approvals, chain = stored(migrated_engine)
    assert [(p.plan_id, p.status) for p in plans] == [(8, status)]
    assert [(a.subject, a.approved, a.user, a.role, a.comment) for a in approvals] == [
        ("plan:8", decision.approved, decision.user, decision.role, decision.comment)]
    assert [(e.kind, e.actor, e.subject) for e in chain] == [("plan", "planner", "plan:8"),
                                                               ("approval", decision.user, "plan:8")]
    planned, decided = (json.loads(e.payload_json) for e in chain)
    assert planned["sha256"] == decided["plan_sha256"] == approval.plan_body_hash(json.loads(plans[0].body_json))


def test_without_a_decision_the_plan_waits_and_a_users_decision_comes_later(migrated_engine):
    approval.save_plan(migrated_engine, 9, "site-a", START, 900, BODY, ["PASS export"], NOW_NS)
    plans, approvals, chain = stored(migrated_engine)
    assert [(p.plan_id, p.status) for p in plans] == [(9, approval.STATUS_PROPOSED)] and approvals == []
    approval.record_decision(migrated_engine, 9, True, "olga", "operator", "looks right", NOW_NS + 1)
    plans, approvals, chain = stored(migrated_engine)
    assert plans[0].status == approval.STATUS_APPROVED
    assert [(e.kind, e.actor) for e in chain] == [("plan", "planner"), ("approval", "olga")]
    assert json.loads(chain[0].payload_json)["sha256"] == json.loads(chain[1].payload_json)["plan_sha256"]


def test_a_plan_that_cannot_be_stored_leaves_no_decision_behind(migrated_engine):
    decision = approval.Decision(True, "policy:auto", "policy", "passed the safety gate")
    approval.save_plan(migrated_engine, 10, "site-a", START, 900, BODY, [], NOW_NS, decision)
    with pytest.raises(IntegrityError):  # the same plan id again: the whole transaction is refused
        approval.save_plan(migrated_engine, 10, "site-a", START, 900, {**BODY, "p_kw": [1.0]}, [], NOW_NS + 1, decision)
    plans, approvals, chain = stored(migrated_engine)
    assert len(plans) == len(approvals) == 1 and len(chain) == 2
    assert json.loads(plans[0].body_json) == BODY


def test_a_week_plan_is_stored_and_chained_but_never_decided_and_the_assistant_says_what_it_is(migrated_engine):
    from zoneinfo import ZoneInfo

    from energizeos.knowledge.catalogue import load_catalogue
    from energizeos.knowledge.facts import FactFinder, parse
    from energizeos_msgs.msg import DispatchPlan

    approval.save_week_plan(migrated_engine, 11, "site-a", START, 900, BODY, NOW_NS)
    plans, approvals, chain = stored(migrated_engine)
    assert approval.STATUS_WEEK_PLAN == DispatchPlan.STATUS_WEEK_PLAN == 5
    assert [(p.plan_id, p.status, p.gate_findings_json) for p in plans] == [(11, approval.STATUS_WEEK_PLAN, "[]")]
    assert approvals == [] and [(e.kind, e.subject) for e in chain] == [("plan", "plan:11")]
    assert json.loads(chain[0].payload_json) == {"sha256": approval.plan_body_hash(BODY), "start": START.isoformat(),
                                                "week_plan": True}
    with pytest.raises(ValueError, match="plan 11 is a week plan: it is never followed, so there is nothing to decide"):
        approval.record_decision(migrated_engine, 11, True, "ops", "operator", "")
    assert stored(migrated_engine)[1] == []  # nothing was decided

    catalogue, tz = load_catalogue(), "America/Los_Angeles"
    now = datetime(2025, 7, 2, tzinfo=UTC)
    question = parse("explain plan 11", catalogue, now, ZoneInfo(tz))
    facts = FactFinder(migrated_engine, catalogue, tz).gather(question, now)
    [evidence] = facts.evidence
    assert evidence.cite == "plan 11" and evidence.text.startswith("plan 11 is a week plan from 2025-07-01 00:00")
    assert "never followed, so it is neither gated nor approved" in evidence.text and "not decided" not in evidence.text
