"""Plan: tomorrow's proposed plan(s) and the plan in force today, from the records. For the plan picked:
planned against measured battery and POI power and SOC (interval means of the recorded telemetry), the
safety gate's findings, who approved or rejected it, and the operator's approve / reject, which goes to
the planner through the server-side action (it checks the user's role again on every click).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from energizeos.access.permissions import PERMISSIONS
from energizeos.planning.history import point_means
from energizeos.records.db import error_line
from energizeos.records.models import Approval, PlanRecord
from energizeos.ui import context
from energizeos_msgs.msg import DispatchPlan

BESS_KW, POI_KW, SOC_PCT = "/bess/pcs/status/p_kw", "/site/poi/meter/p_kw", "/bess/bms/status/soc_pct"
STATUS = {DispatchPlan.STATUS_PROPOSED: "proposed", DispatchPlan.STATUS_APPROVED: "approved",
          DispatchPlan.STATUS_REJECTED: "rejected", DispatchPlan.STATUS_ACTIVE: "active",
          DispatchPlan.STATUS_SUPERSEDED: "superseded", DispatchPlan.STATUS_WEEK_PLAN: "week plan"}
FOLLOWED = (DispatchPlan.STATUS_APPROVED, DispatchPlan.STATUS_ACTIVE, DispatchPlan.STATUS_SUPERSEDED)
DECIDERS = ", ".join(sorted(PERMISSIONS["decide_plan"]))
RESULT = "plan_result"  # the last decision's answer, shown after the rerun the click caused
PLOTLY_CONFIG = {"displaylogo": False}


@dataclass(frozen=True)
class PlanView:
    """A stored plan with its JSON read: arrays per interval, the gate's lines, its decisions."""

    record: PlanRecord
    body: dict
    findings: list[str]
    approvals: list[Approval]

    @property
    def plan_id(self) -> int:
        return self.record.plan_id

    @property
    def start(self) -> datetime:
        return self.record.start.astimezone(UTC)

    @property
    def n(self) -> int:
        return len(self.body.get("p_kw", []))

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.record.interval_s * self.n)

    @property
    def status(self) -> str:
        return STATUS.get(self.record.status, f"status {self.record.status}")

    @property
    def is_week_plan(self) -> bool:
        return self.record.status == DispatchPlan.STATUS_WEEK_PLAN

    @property
    def gate_passed(self) -> bool:
        return bool(self.findings) and not any(f.startswith("FAIL") for f in self.findings)

    @property
    def approved_at(self) -> datetime | None:
        times = [a.time for a in self.approvals if a.approved]
        return min(times) if times else None

    def series(self, name: str) -> np.ndarray:
        return np.asarray(self.body.get(name, []), dtype=float)

    def edges(self) -> list[datetime]:
        return [self.start + timedelta(seconds=self.record.interval_s * k) for k in range(self.n + 1)]


# --- reading the records --------------------------------------------------------------------------------
def _json(text: str, default: object) -> object:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default  # a damaged row is shown as empty, not as a crash


def load_plans(engine: Engine, begin: datetime, end: datetime) -> list[PlanView]:
    """Plans with any interval in [begin, end), each with its approvals, earliest start first."""
    with Session(engine) as session:
        records = list(session.exec(select(PlanRecord).where(
            PlanRecord.start >= begin - timedelta(days=2), PlanRecord.start < end)
            .order_by(PlanRecord.start, PlanRecord.plan_id)).all())  # type: ignore[arg-type]
        subjects = [f"plan:{r.plan_id}" for r in records]
        decided = list(session.exec(select(Approval).where(Approval.subject.in_(subjects))  # type: ignore[attr-defined]
                                    .order_by(Approval.time)).all()) if subjects else []
    by_plan: dict[str, list[Approval]] = {}
    for a in decided:
        by_plan.setdefault(a.subject, []).append(a)
    views = [PlanView(r, _dict(_json(r.body_json, {})), _lines(_json(r.gate_findings_json, [])),
                      by_plan.get(f"plan:{r.plan_id}", [])) for r in records]
    return [v for v in views if v.end > begin]


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _number(body: dict, name: str) -> float:
    value = body.get(name)
    return float(value) if isinstance(value, int | float) else float("nan")


def _lines(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def in_force(plans: list[PlanView], now: datetime) -> PlanView | None:
    """The plan the dispatcher follows now: of the approved plans covering now, the one approved last
    (a re-plan approved at 10:15 replaces the morning's plan from then on)."""
    covering = [p for p in plans if p.record.status in FOLLOWED and p.approved_at is not None
                and p.approved_at <= now and p.start <= now < p.end]
    return max(covering, key=lambda p: (p.approved_at, p.plan_id), default=None)


def measured(engine: Engine, plan: PlanView, now: datetime) -> dict[str, np.ndarray]:
    """Interval means of the recorded points over the plan's intervals that have ended (NaN: no data)."""
    end = min(plan.end, now)
    if end <= plan.start:
        return {}
    found = {p: point_means(engine, p, plan.start, end, plan.record.interval_s) for p in (BESS_KW, POI_KW, SOC_PCT)}
    return {p: np.pad(v, (0, plan.n - len(v)), constant_values=np.nan) for p, v in found.items()}


# --- formatting --------------------------------------------------------------------------------------------
def local(t: datetime | None, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    return "" if t is None else t.astimezone(context.zone()).strftime(fmt)


def naive_local(times: list[datetime]) -> list[datetime]:
    """Site wall-clock times without the zone: plotly.js cannot read a UTC offset."""
    zone = context.zone()
    return [t.astimezone(zone).replace(tzinfo=None) for t in times]


def day_of(plan: PlanView, today: date) -> str:
    d = plan.start.astimezone(context.zone()).date()
    return "today" if d == today else "tomorrow" if d == today + timedelta(days=1) else d.isoformat()


def plan_rows(plans: list[PlanView], active: PlanView | None, today: date) -> list[dict]:
    return [{"plan": str(p.plan_id), "day": day_of(p, today), "from (site time)": local(p.start, "%m-%d %H:%M"),
             "to": local(p.end, "%m-%d %H:%M"), "intervals": p.n, "status": p.status,
             "safety gate": "not gated" if p.is_week_plan else "pass" if p.gate_passed else "FAIL",
             "in force now": p is active,
             "decided by": ", ".join(f"{a.user} ({'approved' if a.approved else 'rejected'})" for a in p.approvals)}
            for p in plans]


def label(plan: PlanView, active: PlanView | None, today: date) -> str:
    now_note = " · in force now" if plan is active else ""
    return (f"{plan.plan_id} · {day_of(plan, today)} {local(plan.start, '%H:%M')}-{local(plan.end, '%H:%M')} · "
            f"{plan.status}{now_note}")


# --- charts ------------------------------------------------------------------------------------------------
def _steps(edges: list[datetime], values: np.ndarray) -> tuple[list[datetime], list[float]]:
    """A value per interval as a staircase: the last value held to the end of the last interval."""
    ys = [float(v) for v in values]
    return naive_local(edges), [*ys, ys[-1]] if ys else []


def power_figure(plan: PlanView, actual: dict[str, np.ndarray]) -> go.Figure:
    edges = plan.edges()
    fig = go.Figure()
    lines = (("Planned BESS (+ discharge)", plan.series("p_kw"), "#CC79A7", "solid"),
             ("Planned POI (+ import)", plan.series("grid_kw"), "#0072B2", "solid"),
             ("Forecast load", plan.series("load_forecast_kw"), "#3d3d3d", "dot"),
             ("Peak threshold", plan.series("peak_threshold_kw"), "#D55E00", "dash"))
    for name, values, color, dash in lines:
        if len(values) == plan.n and plan.n:
            x, y = _steps(edges, values)
            fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines", line={"color": color, "dash": dash,
                                                                                "shape": "hv"}))
    for name, point, color in (("Measured BESS (interval mean)", BESS_KW, "#CC79A7"),
                               ("Measured POI (interval mean)", POI_KW, "#0072B2")):
        if point in actual:
            x, y = _steps(edges, actual[point])
            fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines", connectgaps=False,
                                     line={"color": color, "width": 4, "shape": "hv"}, opacity=0.45))
    fig.update_layout(title="Planned and measured power", yaxis_title="kW",
                      xaxis_title=f"site time ({context.site_config().timezone})", legend={"orientation": "h"},
                      hovermode="x unified")
    return fig


def soc_figure(plan: PlanView, actual: dict[str, np.ndarray]) -> go.Figure:
    edges = plan.edges()
    planned = [_number(plan.body, "soc_start_pct"), *plan.series("soc_pct")]
    fig = go.Figure(go.Scatter(x=naive_local(edges), y=planned, name="Planned SOC (end of interval)",
                               mode="lines", line={"color": "#009E73"}))
    if SOC_PCT in actual:
        middles = [a + (b - a) / 2 for a, b in pairwise(edges)]
        fig.add_trace(go.Scatter(x=naive_local(middles), y=actual[SOC_PCT], name="Measured SOC (interval mean)",
                                 mode="lines+markers", connectgaps=False, line={"color": "#555555"}))
    fig.update_layout(title="Planned and measured state of charge", yaxis_title="SOC %", yaxis_range=[0, 100],
                      xaxis_title=f"site time ({context.site_config().timezone})", legend={"orientation": "h"})
    return fig


# --- sections ----------------------------------------------------------------------------------------------
def overview(plans: list[PlanView], active: PlanView | None, today: date) -> None:
    tomorrow = [p for p in plans if day_of(p, today) == "tomorrow"]
    proposed = [p for p in tomorrow if p.record.status == DispatchPlan.STATUS_PROPOSED]
    cols = st.columns(2)
    with cols[0]:
        st.subheader(f"Today, {today:%a %Y-%m-%d}")
        if active is None:
            st.info("No approved plan is in force now: the dispatcher runs its configured mode.")
        else:
            st.success(f"Plan {active.plan_id} is in force ({local(active.start, '%H:%M')}-"
                       f"{local(active.end, '%H:%M %Z')}), approved {local(active.approved_at)}.")
    with cols[1]:
        st.subheader(f"Tomorrow, {today + timedelta(days=1):%a %Y-%m-%d}")
        if proposed:
            st.warning(f"{len(proposed)} plan(s) proposed for tomorrow await a decision: "
                       + ", ".join(str(p.plan_id) for p in proposed))
        elif tomorrow:
            st.info("Tomorrow's plan is decided: " + ", ".join(f"{p.plan_id} {p.status}" for p in tomorrow))
        else:
            st.info("No plan for tomorrow yet (the planner makes it at its planning hour, site time).")
    with st.expander(f"All plans for today and tomorrow ({len(plans)})", expanded=len(plans) <= 6):
        st.dataframe(plan_rows(plans, active, today), hide_index=True, key="plan_table")


def pick(plans: list[PlanView], active: PlanView | None, today: date) -> PlanView:
    waiting = [p for p in plans if p.record.status == DispatchPlan.STATUS_PROPOSED and day_of(p, today) == "tomorrow"]
    default = waiting[0] if waiting else active or plans[-1]
    by_id = {p.plan_id: p for p in plans}
    chosen = st.selectbox("Plan", list(by_id), index=list(by_id).index(default.plan_id), key="plan_pick",
                          format_func=lambda i: label(by_id[i], active, today))
    return by_id[chosen]


def details(plan: PlanView, now: datetime) -> None:
    b = plan.body
    st.subheader(f"Plan {plan.plan_id}: {plan.status}")
    solved = "" if plan.is_week_plan else (f" · forecast: {b.get('forecast_method', '?')} · LP "
                                           f"{b.get('lp_status', '?')}, cost \\${_number(b, 'lp_cost'):,.2f}")
    st.caption(f"{plan.record.site} · {local(plan.start)} to {local(plan.end)} · {plan.n} intervals of "
               f"{plan.record.interval_s // 60} min{solved} · start SOC "
               f"{_number(b, 'soc_start_pct'):.1f} % · made {local(plan.record.created_at)}"
               + (f" · re-plan of {b['parent_plan_id']}" if b.get("parent_plan_id") else ""))
    for note in _lines(b.get("notes")):
        st.caption(f"Note: {note}".replace("$", "\\$"))  # a pair of "$" would be read as mathematics
    try:
        actual = measured(context.records(), plan, now)
    except SQLAlchemyError as exc:
        st.warning(f"Measured values not readable: {error_line(exc)}")
        actual = {}
    if not actual:
        st.caption("No measured values yet: the plan's first interval has not ended.")
    st.plotly_chart(power_figure(plan, actual), config=PLOTLY_CONFIG, key="plan_power")
    st.plotly_chart(soc_figure(plan, actual), config=PLOTLY_CONFIG, key="plan_soc")


def gate_table(plan: PlanView) -> None:
    st.subheader("Safety gate")
    if plan.is_week_plan:
        st.info("A week plan is never followed, so it is not gated: it sets where the day plans end and what a "
                "kWh short costs. The day plans it guides are gated, and their notes name it.")
        return
    failed = [f for f in plan.findings if f.startswith("FAIL")]
    if not plan.findings:
        st.error("No gate findings are recorded for this plan: it cannot be approved.")
        return
    if failed:
        st.error(f"Failed {len(failed)} of {len(plan.findings)} checks.")
    else:
        st.success(f"Passed all {len(plan.findings)} checks.")
    rows = []
    for line in plan.findings:
        verdict, _, rest = line.partition(" ")
        check, _, detail = rest.partition(": ")
        rows.append({"result": "pass" if verdict == "PASS" else "FAIL", "check": check, "finding": detail})
    st.dataframe(rows, hide_index=True, key="plan_gate")


def approvals_table(plan: PlanView) -> None:
    st.subheader("Approvals")
    if not plan.approvals:
        st.caption("No decision on this plan yet.")
        return
    st.dataframe([{"time (site)": local(a.time, "%Y-%m-%d %H:%M:%S %Z"),
                   "decision": "approved" if a.approved else "rejected", "by": a.user, "role": a.role,
                   "comment": a.comment} for a in plan.approvals], hide_index=True, key="plan_approvals")


def decide(plan_id: int, approve: bool) -> None:
    """Button callback: runs before the page is drawn again, so the page shows the plan as it is after."""
    result = context.actions().decide_plan(context.token(), plan_id, approve, st.session_state.get("plan_comment", ""))
    st.session_state[RESULT] = result
    if result.ok:
        st.session_state["plan_comment"] = ""


def decision_panel(plan: PlanView) -> None:
    who = context.current()
    if plan.record.status != DispatchPlan.STATUS_PROPOSED:
        st.caption(f"This plan is {plan.status}: there is nothing to decide.")
        return
    st.subheader("Decide")
    may = context.can(who, "decide_plan")
    if not may:
        st.info(f"You are signed in as {who.username} (role {who.role}): approving or rejecting a plan needs one "
                f"of the roles {DECIDERS}.")
    st.text_area("Comment (required to reject)", key="plan_comment", disabled=not may)
    cols = st.columns(2)
    cols[0].button("Approve plan", key="plan_approve", type="primary", disabled=not may or not plan.gate_passed,
                   on_click=decide, args=(plan.plan_id, True))
    cols[1].button("Reject plan", key="plan_reject", disabled=not may, on_click=decide, args=(plan.plan_id, False))
    if may and not plan.gate_passed:
        st.caption("A plan that did not pass the safety gate cannot be approved.")


def page() -> None:
    who = context.current()
    st.title("Plan")
    if not context.can(who, "view"):
        st.error(f"{who.username} (role {who.role}) may not view plans.")
        return
    if RESULT in st.session_state:
        context.show_result(st.session_state.pop(RESULT))
    zone = context.zone()
    now = datetime.now(UTC)
    today = now.astimezone(zone).date()
    begin = datetime(today.year, today.month, today.day, tzinfo=zone)
    after = today + timedelta(days=2)
    try:
        plans = load_plans(context.records(), begin, datetime(after.year, after.month, after.day, tzinfo=zone))
    except SQLAlchemyError as exc:
        st.warning(f"Plans not readable: {error_line(exc)}")
        return
    active = in_force(plans, now)
    overview(plans, active, today)
    if not plans:
        return
    plan = pick(plans, active, today)
    details(plan, now)
    gate_table(plan)
    approvals_table(plan)
    decision_panel(plan)


page()
