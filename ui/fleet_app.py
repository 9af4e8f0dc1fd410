"""EnergizeOS fleet app (Streamlit): every site the aggregator collects, read from the fleet database.

``python -m energizeos.ui.serve --app fleet --db-url URL`` starts it. Nothing is shown before login;
the accounts live in the fleet database (``energizeos users ... --db URL``). The pages only read: the
app has no graph link and no action that could reach a site.
"""

from __future__ import annotations

import streamlit as st

from energizeos.ui import context
from energizeos.ui.login import login_form

st.set_page_config(page_title="EnergizeOS fleet", layout="wide", menu_items={})

via = context.fleet_actions()
who = context.principal(touch=True, via=via)  # a full rerun is a user action: it restarts the idle clock
if who is None:
    login_form("Fleet", via)
    st.stop()
st.session_state[context.WHO] = who

page = st.navigation({"Fleet": [st.Page("views/fleet_overview.py", title="Sites", default=True),
                                st.Page("views/fleet_site.py", title="Site")]})
with st.sidebar:
    st.caption(f"Fleet · signed in as **{who.username}** ({who.role})")
    if st.button("Log out", key="logout"):
        via.logout(context.token())
        st.session_state.pop(context.TOKEN, None)
        st.session_state["login_notice"] = "logged out"
        st.rerun()
page.run()
