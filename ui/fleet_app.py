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

# One site's page is /Site?site=<id> (its url_path, else inferred from the file name): a link to share.
PAGES = {"Fleet": [st.Page("views/fleet_overview.py", title="Sites", default=True),
                   st.Page("views/fleet_site.py", title="Site", url_path="Site")]}

via = context.fleet_actions()
who = context.principal(touch=True, via=via)  # a full rerun is a user action: it restarts the idle clock
if who is None:
    # The page the address names is resolved (hidden, not run) before the login form: the form's reruns then
    # keep it and its ?site=, so a deep link opened signed out lands on that site, not on the default page.
    st.navigation(PAGES, position="hidden")
    login_form("Fleet", via)
    st.stop()
st.session_state[context.WHO] = who

page = st.navigation(PAGES)
with st.sidebar:
    st.caption(f"Fleet · signed in as **{who.username}** ({who.role})")
    if st.button("Log out", key="logout"):
        via.logout(context.token())
        st.session_state.pop(context.TOKEN, None)
        st.session_state["login_notice"] = "logged out"
        st.rerun()
page.run()
