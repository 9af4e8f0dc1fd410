"""Users & settings: the site configuration (read-only, no secrets), the access policy in force, and
for administrators the user accounts. Every account change goes through the server-side actions, which
check the role again and put the attempt on the audit chain; this page only hides what a role cannot do.
A generated password is shown once, in the run that made it, and kept nowhere."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from energizeos.access import accounts
from energizeos.access.permissions import PERMISSIONS, Principal
from energizeos.records.db import error_line
from energizeos.records.models import ROLES, User
from energizeos.ui import context
from energizeos.ui.actions import ActionResult

URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")  # scheme://user:PASSWORD@host
CHANGES = {"set_role": "Change role", "disable": "Disable", "enable": "Enable", "unlock": "Unlock",
           "password": "Reset password"}  # the account changes: form button key suffix -> label
ONCE = ("Copy this password now and hand it to its user: it is shown this once, is stored only as a hash "
        "and will not be shown again.")


def local(value: datetime | None, zone: ZoneInfo) -> str:
    return "" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


# --- the site configuration ---------------------------------------------------------------------------
def redact(value: Any) -> str:
    """A URL's password is never shown (a PostgreSQL URL may carry one)."""
    return URL_PASSWORD.sub(r"\1***@", value) if isinstance(value, str) else str(value)


def flatten(section: Any, prefix: str = "") -> list[dict[str, str]]:
    if not isinstance(section, dict):
        return [{"setting": prefix, "value": redact(section)}]
    rows: list[dict[str, str]] = []
    for name, value in section.items():
        rows += flatten(value, f"{prefix}.{name}" if prefix else name)
    return rows


def site_configuration() -> None:
    config = context.site_config()
    st.subheader("Site configuration")
    st.markdown(f"**Site:** {config.site}  \n**Time zone:** {config.timezone}")
    st.caption("Read-only here: the configuration is the site config file (ENERGIZEOS_SITE_CONFIG, default "
               "config/sim_site.yaml); change it there and restart the site. Secrets are not part of it: the "
               "LLM key is read from the environment variable named below, and a password in a URL is hidden.")
    for section, values in config.model_dump().items():
        if section in ("site", "timezone"):
            continue
        with st.expander(section, expanded=False):
            if values is None:
                st.caption("not configured")
            else:
                st.dataframe(flatten(values, section), hide_index=True, width="stretch")


def access_policy() -> None:
    st.subheader("Access policy in force")
    policy = context.actions().policy
    st.dataframe([{"rule": "session ends after idle", "value": f"{policy.session_idle_min:g} min"},
                  {"rule": "session ends after login at the latest", "value": f"{policy.session_max_h:g} h"},
                  {"rule": "wrong passwords in a row before lockout", "value": str(policy.lockout_after)},
                  {"rule": "lockout lasts", "value": f"{policy.lockout_min:g} min"},
                  {"rule": "minimum password length", "value": f"{policy.min_password_length} characters"}],
                 hide_index=True, width="stretch")
    # one row per role: what it may do (the same table the server checks)
    st.dataframe([{"role": role, "description": description,
                   **{p.replace("_", " "): "yes" if role in holders else "" for p, holders in PERMISSIONS.items()}}
                  for role, description in ROLES.items()], hide_index=True, width="stretch")


# --- user accounts ------------------------------------------------------------------------------------
def user_row(user: User, zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    locked = user.locked_until is not None and user.locked_until > now  # a past lock no longer applies
    return {"user name": user.username, "display name": user.display_name, "organisation": user.organisation,
            "role": user.role, "disabled": "DISABLED" if user.disabled else "",
            "failed logins": user.failed_logins,
            "locked until (site time)": local(user.locked_until, zone) if locked else ""}


def users_table(users: list[User], zone: ZoneInfo) -> None:
    now = datetime.now(UTC)
    st.dataframe([user_row(u, zone, now) for u in users], hide_index=True, width="stretch")


def show_password(result: ActionResult) -> None:
    context.show_result(result)
    if result.ok and result.data.get("password"):
        st.code(result.data["password"], language=None)
        st.warning(ONCE)


def create_user_form() -> None:
    st.markdown("**Create a user**")
    with st.form("create_user", clear_on_submit=True):
        cols = st.columns(4)
        username = cols[0].text_input("User name", key="new_username",
                                      help="2-32 characters: lower-case letters, digits, '.', '_' or '-'")
        role = cols[1].selectbox("Role", list(ROLES), index=list(ROLES).index("viewer"), key="new_role")
        display_name = cols[2].text_input("Display name", key="new_display_name")
        organisation = cols[3].text_input("Organisation", key="new_organisation")
        submitted = st.form_submit_button("Create user", key="create_user_submit")
    if submitted:
        show_password(context.actions().create_user(context.token(), username, role, display_name, organisation))


def change_user_form(users: list[User]) -> None:
    st.markdown("**Change an account**")
    with st.form("change_user"):
        cols = st.columns(2)
        username = cols[0].selectbox("User", [u.username for u in users], key="change_username")
        # no default role: a slip on "Change role" must not demote anyone to the first role listed
        role = cols[1].selectbox("New role (for Change role)", list(ROLES), index=None, placeholder="choose a role",
                                 key="change_role")
        clicked = [name for col, (name, label) in zip(st.columns(len(CHANGES)), CHANGES.items(), strict=True)
                   if col.form_submit_button(label, key=f"change_{name}")]
    if username is None:
        return
    apply_change(username, role, clicked[0] if clicked else "")


def apply_change(username: str, role: str | None, change: str) -> None:
    actions, token = context.actions(), context.token()
    if change == "set_role":
        if role is None:
            st.error("Choose the new role first")
        else:
            context.show_result(actions.set_role(token, username, role))
    elif change in ("disable", "enable"):
        context.show_result(actions.set_disabled(token, username, change == "disable"))
    elif change == "unlock":
        context.show_result(actions.unlock(token, username))
    elif change == "password":
        show_password(actions.reset_password(token, username))


def user_management(zone: ZoneInfo) -> None:
    st.subheader("Users")
    listing = st.container()  # filled last, so it shows the accounts after this run's change
    create_user_form()
    change_user_form(accounts.list_users(context.records()))
    with listing:
        users_table(accounts.list_users(context.records()), zone)


def own_account(who: Principal, zone: ZoneInfo) -> None:
    st.subheader("Your account")
    users_table([u for u in accounts.list_users(context.records()) if u.username == who.username], zone)
    st.caption("Accounts are managed by an administrator (the manage users permission).")


st.title("Users & settings")
site_configuration()
access_policy()
try:
    _who, _zone = context.current(), context.zone()
    if context.can(_who, "manage_users"):
        user_management(_zone)
    else:
        own_account(_who, _zone)
except SQLAlchemyError as exc:  # the page stays up while the records are away
    st.warning(f"Records not readable yet: {error_line(exc)}")
