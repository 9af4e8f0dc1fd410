"""Alarms: the open ones (acknowledge, shelve, unshelve, explain) and the history with filters.

Acknowledge and shelve go through ``SiteActions`` (role-checked on the server, audited) to the alarm
manager, which checks the role again and records the event with the user's name.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from energizeos.records.db import error_line
from energizeos.ui import context
from energizeos.ui.alarm_view import PRIORITY, alarm_history, alarm_sources, open_alarms
from energizeos.ui.citations import show_answer

who = context.current()
engine = context.records()
zone = context.zone()
st.title("Alarms")


@st.fragment(run_every=5.0)
def open_table() -> list[dict]:
    st.subheader("Open alarms")
    try:
        rows = open_alarms(engine, zone)
    except SQLAlchemyError as exc:  # the page stays up while the records are away
        st.warning(f"Records not readable yet: {error_line(exc)}")
        return []
    if not rows:
        st.success("No open alarms")
    else:
        st.dataframe(rows, hide_index=True, width="stretch")
    # The action panel below is built by the whole page's run: when a timed refresh finds other
    # alarms than it was built with, run the page again so an alarm in the table can be acted on.
    shown = [(r["alarm id"], r["state"]) for r in rows]
    if st.session_state.pop("alarms_page_run", False):
        st.session_state["alarm_panel_rows"] = shown
    elif shown != st.session_state.get("alarm_panel_rows"):
        st.rerun()
    return rows


def acted(result) -> None:
    context.show_result(result)
    if result.ok:  # the alarm manager has it; the list shows it once the historian has recorded it
        st.caption("The list above refreshes within 5 s.")


def act_on(rows: list[dict]) -> None:
    """The action panel for one chosen alarm."""
    if not rows:
        return
    labels = {r["alarm id"]: f"{r['alarm id']} · {r['code']} · {r['state']}" for r in rows}
    alarm_id = st.selectbox("Alarm", list(labels), format_func=labels.get, key="alarm_choice")
    chosen = next(r for r in rows if r["alarm id"] == alarm_id)
    may_ack = context.can(who, "acknowledge_alarm")
    if not may_ack:  # the buttons stay: the server refuses and says why (and the attempt is audited)
        st.caption(f"Your role ({who.role}) reads alarms; acknowledging and shelving need an operator, "
                   "engineer or admin.")
    comment = st.text_input("Comment (required to shelve)", key="alarm_comment")
    cols = st.columns(4)
    if cols[0].button("Acknowledge", key="ack"):
        acted(context.actions().acknowledge(context.token(), alarm_id, comment))
    hours = cols[1].number_input("Shelve for (hours)", min_value=0.25, max_value=8.0, value=1.0, step=0.25,
                                 key="shelve_hours")
    if chosen["state"] == "shelved":
        if cols[2].button("Unshelve", key="unshelve"):
            acted(context.actions().unshelve(context.token(), alarm_id))
    elif cols[2].button("Shelve", key="shelve"):
        acted(context.actions().shelve(context.token(), alarm_id, hours, comment))
    if cols[3].button("Explain", key="explain"):
        result = context.actions().ask(context.token(), f"Explain alarm {alarm_id}")
        if result.ok:
            show_answer(result.message, result.data)
        else:
            st.error(result.message)


def history() -> None:
    st.subheader("History")
    today = datetime.now(zone).date()
    cols = st.columns(3)
    days = cols[0].date_input("Days (site time)", (today - timedelta(days=7), today), key="hist_days")
    start, end = (days if isinstance(days, tuple) and len(days) == 2 else (today, today))
    try:
        sources = cols[1].multiselect("Device", alarm_sources(engine), key="hist_sources")
    except SQLAlchemyError as exc:
        st.warning(f"Records not readable yet: {error_line(exc)}")
        return
    priorities = cols[2].multiselect("Priority", list(PRIORITY), format_func=PRIORITY.get, key="hist_priorities")
    since = datetime.combine(start, time(0), zone)
    until = datetime.combine(end + timedelta(days=1), time(0), zone)
    rows = alarm_history(engine, zone, since, until, sources, priorities)
    st.caption(f"{len(rows)} event(s) from {start} to {end}" + (" (newest 2000 shown)" if len(rows) >= 2000 else ""))
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")


st.session_state["alarms_page_run"] = True  # open_table() tells a page run from its own timed runs
act_on(open_table())
history()
