"""The login form: the only thing the app shows to someone not logged in."""

from __future__ import annotations

import streamlit as st

from energizeos.ui import context
from energizeos.ui.actions import SiteActions


def login_form(where: str | None = None, via: SiteActions | None = None) -> None:
    """``where``: the name shown (default the site's); ``via``: whose accounts (default the site's)."""
    st.title("EnergizeOS")
    st.caption(f"{where or context.site_config().site} · sign in to continue")
    notice = st.session_state.pop("login_notice", "")
    if notice:
        st.info(notice)
    with st.form("login", clear_on_submit=False):
        username = st.text_input("User name", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Sign in")
    if not submitted:
        return
    result = (via or context.actions()).login(username, password)
    if not result.ok:
        st.error(result.message)
        return
    st.session_state[context.TOKEN] = result.token
    st.rerun()
