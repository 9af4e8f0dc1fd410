"""Commissioning: the recorded runs (procedure, status, operator, witness) and each step's verdict with
the values measured; a witness (role epc, engineer or admin) signs off a finished run here. The sign-off
goes through the server-side action, which checks the user's role again; the procedures and their runner
are ``energizeos commission``."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from energizeos.access.permissions import PERMISSIONS
from energizeos.records.db import error_line
from energizeos.records.models import CommissioningRun, CommissioningStep
from energizeos.records.signoff import FINISHED
from energizeos.ui import context

NO_RUN = ("No commissioning run is recorded yet. The commissioning procedures and their runner "
          "(`energizeos commission`) record each run and its steps; they are listed here, and a finished run "
          "is signed off by its witness on this page.")
WITNESSES = ", ".join(sorted(PERMISSIONS["witness"]))
RESULT = "witness_result"  # the last sign-off's answer, shown after the rerun the click caused


def local(value: datetime | None, zone: ZoneInfo) -> str:
    return "" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def load_runs() -> tuple[list[CommissioningRun], dict[int, list[CommissioningStep]]]:
    """Runs newest first, and their steps in order."""
    with Session(context.records()) as session:
        runs = list(session.exec(select(CommissioningRun).order_by(CommissioningRun.started_at.desc())).all())  # type: ignore[union-attr]
        steps = session.exec(select(CommissioningStep).order_by(CommissioningStep.run_id,
                                                                CommissioningStep.number)).all()
    by_run: dict[int, list[CommissioningStep]] = {}
    for step in steps:
        by_run.setdefault(step.run_id, []).append(step)
    return runs, by_run


def witness_line(run: CommissioningRun, zone: ZoneInfo) -> str:
    if run.witnessed_at is None:
        return f"{run.witness} named, not signed yet" if run.witness else "not witnessed"
    org = f" ({run.witness_organisation})" if run.witness_organisation else ""
    when = f", {local(run.witnessed_at, zone)}" if run.witnessed_at else ""
    return f"{run.witness}{org}{when}"


def measured_text(measured_json: str) -> str:
    """'name = value' pairs; a row that is not a JSON object is shown as stored rather than hidden."""
    try:
        measured = json.loads(measured_json or "{}")
    except ValueError:
        return measured_json
    if not isinstance(measured, dict):
        return str(measured)
    return "; ".join(f"{name} = {value}" for name, value in measured.items())


def runs_table(runs: list[CommissioningRun], by_run: dict[int, list[CommissioningStep]], zone: ZoneInfo) -> None:
    rows = [{"run": r.id, "procedure": r.procedure, "status": r.status, "operator": r.operator,
             "started (site time)": local(r.started_at, zone), "finished (site time)": local(r.finished_at, zone),
             "steps": len(by_run.get(r.id or 0, [])), "witness": r.witness,
             "witness organisation": r.witness_organisation, "witnessed (site time)": local(r.witnessed_at, zone)}
            for r in runs]
    st.dataframe(rows, hide_index=True, width="stretch")


def sign(run_id: int) -> None:
    """Button callback: runs before the page is drawn again, so the page shows the run as signed."""
    st.session_state[RESULT] = context.actions().witness_run(context.token(), run_id)


def signoff_panel(run: CommissioningRun) -> None:
    if run.witnessed_at is not None:
        return  # signed: the witness line says by whom and when
    if run.status not in FINISHED:
        st.caption(f"Run {run.id} is {run.status}: a witness signs it off once it has finished.")
        return
    who = context.current()
    may = context.can(who, "witness")
    if not may:
        st.info(f"You are signed in as {who.username} (role {who.role}): signing off a run needs one of the roles "
                f"{WITNESSES}.")
    confirmed = st.checkbox(f"I witnessed run {run.id} and its results are as recorded here",
                            key=f"witness_confirm_{run.id}", disabled=not may)
    st.button("Sign off as witness", key=f"witness_sign_{run.id}", type="primary", disabled=not may or not confirmed,
              on_click=sign, args=(run.id,))


def run_detail(run: CommissioningRun, steps: list[CommissioningStep], zone: ZoneInfo, expanded: bool) -> None:
    with st.expander(f"Run {run.id}: {run.procedure} ({run.status})", expanded=expanded):
        st.markdown(f"**Site** {run.site} · **operator** {run.operator or 'not recorded'} · "
                    f"**witness** {witness_line(run, zone)}")
        if not steps:
            st.caption("No step recorded for this run.")
            signoff_panel(run)
            return
        failed = sum(1 for s in steps if s.verdict == "fail")
        st.caption(f"{len(steps)} step(s): {sum(1 for s in steps if s.verdict == 'pass')} passed, {failed} failed, "
                   f"{sum(1 for s in steps if s.verdict not in ('pass', 'fail'))} skipped or not finished")
        st.dataframe([{"step": s.number, "name": s.name, "verdict": s.verdict or "not finished",
                       "measured": measured_text(s.measured_json), "acceptance": s.acceptance,
                       "started (site time)": local(s.started_at, zone),
                       "finished (site time)": local(s.finished_at, zone)} for s in steps],
                     hide_index=True, width="stretch")
        signoff_panel(run)


def procedures_table() -> None:
    """The shipped procedures (energizeos/commissioning/procedures/), as `energizeos commission list` shows them."""
    from energizeos.commissioning.model import ProcedureError, shipped

    st.subheader("Procedures")
    try:
        procedures = shipped()
    except ProcedureError as exc:
        st.error(f"The procedures cannot be read: {exc}")
        return
    st.dataframe([{"procedure id": p.id, "title": p.title, "phases": ", ".join(p.phases), "steps": len(p.steps),
                   "purpose": p.purpose} for p in procedures.values()], hide_index=True, width="stretch")
    st.caption("Run them with `energizeos commission run PROCEDURE|--all --operator NAME [--witness NAME]`.")


st.title("Commissioning")
if RESULT in st.session_state:
    context.show_result(st.session_state.pop(RESULT))
try:
    runs, by_run = load_runs()
except SQLAlchemyError as exc:  # the page stays up while the records are away
    st.warning(f"Records not readable yet: {error_line(exc)}")
    st.stop()
if not runs:
    st.info(NO_RUN)
else:
    site_zone = context.zone()
    st.subheader("Runs")
    runs_table(runs, by_run, site_zone)
    st.subheader("Steps")
    for _i, _run in enumerate(runs):
        run_detail(_run, by_run.get(_run.id or 0, []), site_zone, expanded=_i == 0)  # the newest run open
procedures_table()
