"""A simulated site that records: the whole node graph (plant, device nodes, arbiter, dispatcher
following the planner's approved plans, historian, alarm manager) in the deterministic executor,
writing real records — what the report tests and the assistant's evaluation day read back."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlmodel import Session

from energizeos import savings
from energizeos.records.db import init_db, make_engine
from energizeos.records.models import User
from energizeos.runtime import Node, SimExecutor
from energizeos.runtime.logging import node_logs_from
from energizeos.sim.plant import DEFAULT_PROFILE
from energizeos_msgs.msg import Alarm
from energizeos_msgs.srv import AlarmAction

OPERATOR = "olga"
UNACKED = (Alarm.STATE_ACTIVE_UNACKED, Alarm.STATE_CLEARED_UNACKED)


@dataclass
class Run:
    ex: SimExecutor
    plant: object  # the SimPlant node
    probe: Node
    planner: object = None
    alarm_states: dict[int, int] = field(default_factory=dict)  # alarm id -> state after its last event

    def inject(self, fault: str, **params) -> None:
        self.plant.site.inject(fault, **params)

    def clear(self, fault: str, **params) -> None:
        self.plant.site.clear(fault, **params)

    def decide_plan(self, approve: bool, comment: str, user: str = OPERATOR, latest: bool = True) -> str:
        """An operator approving or rejecting the planner's plan that starts last (tomorrow's), or first
        with ``latest=False`` (``approval: manual``)."""
        from energizeos_msgs.srv import PlanApproval

        pick = max if latest else min
        plan_id = pick(self.planner.plans.values(), key=lambda p: (p.start, p.plan_id)).plan_id
        response = self.probe.create_client(PlanApproval, "/ems/plan/approve").call(
            PlanApproval.Request(plan_id=plan_id, approve=approve, user=user, comment=comment))
        return response.message

    def breaker(self, action: int, user: str = OPERATOR, reason: str = "") -> object:
        from energizeos_msgs.srv import BreakerRequest

        return self.probe.create_client(BreakerRequest, "/ems/breaker/request").call(
            BreakerRequest.Request(action=action, requested_by=user, reason=reason))

    def acknowledge_all(self, user: str = OPERATOR) -> int:
        """What an operator does at the console: acknowledge every unacknowledged alarm."""
        client = self.probe.create_client(AlarmAction, "/ems/alarms/action")
        done = 0
        for alarm_id in [a for a, state in self.alarm_states.items() if state in UNACKED]:
            response = client.call(AlarmAction.Request(alarm_id=alarm_id, user=user, comment="seen",
                                                       action=AlarmAction.Request.ACTION_ACKNOWLEDGE))
            done += bool(response.success)
        return done


@dataclass(frozen=True)
class RecordedRun:
    db_url: str
    start: date
    days: int
    step_s: float


@node_logs_from(logging.ERROR)  # the faults injected here are expected; the caller's level comes back after
def record_run(directory: Path, start: date, days: int, step_s: float,
               actions: dict[float, Callable[[Run], object]] | None = None,
               annual_kwh: float = 4_000_000, approval: str = "auto", start_hour: float = 0.0,
               hours: float | None = None, initial_soc_pct: float = 50.0,
               planner_overrides: dict | None = None) -> RecordedRun:
    """Run ``days`` (or ``hours``) from ``start_hour`` site time of ``start``; ``actions`` maps seconds
    after the start to what happens then (a fault injected or cleared, an operator acknowledging alarms);
    ``planner_overrides`` are the site's own planner settings."""
    url = f"sqlite:///{directory}/records.db"
    engine = make_engine(url)
    init_db(engine)
    with Session(engine) as session:
        session.add(User(username=OPERATOR, role="operator", password_hash="(not used here)",
                         created_at=datetime(2025, 1, 1, tzinfo=UTC)))
        session.commit()
    engine.dispose()
    cfg = savings.SavingsConfig(load=DEFAULT_PROFILE, annual_kwh=annual_kwh, start=start, days=days, step_s=step_s,
                                strategy="planned", start_hour=start_hour,
                                initial_soc_pct=initial_soc_pct)
    ex, plant, planner = savings.build_graph(cfg, url, threshold_kw=0.0, record_dir=directory, approval=approval,
                                             planner_overrides=planner_overrides)
    savings.seed_history(planner, plant, cfg)
    run = Run(ex, plant, Node("record_probe", executor=ex), planner)
    run.probe.create_subscription(Alarm, "/ems/alarms",
                                  lambda m: run.alarm_states.__setitem__(int(m.alarm_id), int(m.state)), 1000)
    elapsed = 0.0
    for at, action in sorted((actions or {}).items()):
        ex.spin_for(at - elapsed)
        action(run)
        elapsed = at
    duration_s = hours * 3600.0 if hours is not None else days * 86400.0
    ex.spin_for(duration_s - elapsed + 2 * step_s)  # and a little more: the historian flushes
    ex.shutdown()  # on-shutdown hooks: the historian writes what it still holds
    return RecordedRun(url, start, days, step_s)
