"""Fleet: every site on one table, worst first — status (online, catching up, offline, never heard),
how far behind its records are, active alarms by priority, and today's figures in the fleet's time
zone. Refreshed every few seconds without a reload. Read-only: nothing here reaches a site.
"""

from __future__ import annotations

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from energizeos.records.db import error_line
from energizeos.remote.fleet_queries import fleet_overview, local_day
from energizeos.ui import context
from energizeos.ui.fleet_view import STATUS, local, summary_row

settings = context.fleet_settings()
engine = context.fleet_db()
zone = settings.zone
st.title("Fleet")


def session_still_valid() -> None:
    """A timer refresh is not a user action: it checks the session without keeping it alive."""
    if context.principal(touch=False, via=context.fleet_actions()) is None:
        st.rerun(scope="app")


@st.fragment(run_every=settings.refresh_s)
def sites() -> None:
    session_still_valid()
    now = context.now()
    try:
        summaries = fleet_overview(engine, now, settings.offline_after_s, zone, settings.sites)
    except SQLAlchemyError as exc:  # the page stays up while the database is away
        st.warning(f"Fleet database not readable: {error_line(exc)}")
        return
    if not summaries:
        st.info("No site has sent anything yet, and none is configured.")
        return
    cols = st.columns(len(STATUS) + 1)
    for col, (status, label) in zip(cols, STATUS.items(), strict=False):
        col.metric(label, sum(s.status == status for s in summaries))
    cols[-1].metric("sites with a critical alarm", sum(s.alarms.get(1, 0) > 0 for s in summaries))
    day = local_day(now, zone)[0].date()
    st.caption(f"Worst first. Today = {day} ({settings.timezone}), up to {local(now, zone, '%H:%M:%S')}; "
               f"offline = nothing heard for {settings.offline_after_s:g} s; alarms: active and shelved; "
               "— = no data (never 0).")
    st.dataframe([summary_row(s) for s in summaries], hide_index=True, width="stretch", key="fleet_table")
    names = {s.site_id: f"{s.name} ({s.site_id})" for s in summaries}
    chosen = st.selectbox("Site", list(names), format_func=names.get, key="fleet_open")
    if chosen:
        st.page_link("views/fleet_site.py", label=f"Open {names[chosen]}", query_params={"site": chosen})


sites()
