"""EnergizeOS operator app (Streamlit): ``energizeos launch sim_site`` serves it on 127.0.0.1:8501.

Nothing is shown before login. The pages (``ui/views/``) read the records and the live graph; every
action goes through ``energizeos.ui.actions``, which checks the user's role on the server.
"""

from __future__ import annotations

import streamlit as st

from energizeos.ui import context
from energizeos.ui.login import login_form

st.set_page_config(page_title="EnergizeOS", layout="wide", menu_items={})

PAGES = {
    "Site": [st.Page("views/overview.py", title="Overview", default=True),
             st.Page("views/alarms.py", title="Alarms"),
             st.Page("views/assistant.py", title="Assistant")],
    "Performance": [st.Page("views/reports.py", title="Reports"),
                    st.Page("views/plan.py", title="Plan")],
    "Evidence": [st.Page("views/commissioning.py", title="Commissioning"),
                 st.Page("views/audit.py", title="Evidence & audit")],
    "Administration": [st.Page("views/settings.py", title="Users & settings")],
}

who = context.principal(touch=True)  # a full rerun is a user action: it restarts the idle clock
if who is None:
    # The page the address names is resolved (hidden, not run) before the login form: signing in then opens
    # it, so a link to /alarms does not land on the Overview.
    st.navigation(PAGES, position="hidden")
    login_form()
    st.stop()
st.session_state[context.WHO] = who

page = st.navigation(PAGES)
with st.sidebar:
    st.caption(f"{context.site_config().site} · signed in as **{who.username}** ({who.role})")
    if st.button("Log out", key="logout"):
        context.actions().logout(context.token())
        st.session_state.pop(context.TOKEN, None)
        st.session_state["login_notice"] = "logged out"
        st.rerun()
page.run()
