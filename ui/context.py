"""What every page shares, kept across Streamlit reruns: the site config, the records, the graph link,
the server-side actions, and who is logged in.

The site config comes from ``ENERGIZEOS_SITE_CONFIG`` (set by the launch file), default
``config/sim_site.yaml``; a broken file stops the app with an error naming what is wrong.

The fleet app (``fleet_app.py``) has no site config and no graph: its database (with its own accounts)
and settings come from the ``ENERGIZEOS_FLEET_*`` variables that ``serve.py --app fleet`` sets.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy.engine import Engine

from energizeos.access.permissions import PermissionDenied, Principal, allowed
from energizeos.records.db import init_db, make_engine
from energizeos.site_config import AccessPolicy, SiteConfig, load_site_config
from energizeos.ui.actions import SiteActions
from energizeos.ui.graph_view import GraphView, open_graph_view

if TYPE_CHECKING:
    from energizeos.ui.fleet_view import FleetSettings

REPO = Path(__file__).resolve().parents[1]
TOKEN = "session_token"
WHO = "principal"  # who is signed in, as read at the start of this run


@st.cache_resource
def site_config() -> SiteConfig:
    path = Path(os.environ.get("ENERGIZEOS_SITE_CONFIG") or "config/sim_site.yaml")
    if not path.is_absolute() and not path.exists():
        path = REPO / path
    return load_site_config(path)


def zone() -> ZoneInfo:
    return ZoneInfo(site_config().timezone)


@st.cache_resource
def records() -> Engine:
    engine = make_engine(site_config().records.db_url or None)
    init_db(engine)
    return engine


@st.cache_resource
def graph() -> GraphView:
    return open_graph_view()


@st.cache_resource
def actions() -> SiteActions:
    return SiteActions(records(), graph(), site_config().access)


def principal(touch: bool = False, via: SiteActions | None = None) -> Principal | None:
    """The logged-in user as the database has them now, or None (and the reason shown) when the session
    has ended. ``touch``: this rerun is a user action (restarts the idle clock). ``via``: whose accounts
    (default the site's; the fleet app passes ``fleet_actions()``)."""
    token = st.session_state.get(TOKEN, "")
    if not token:
        return None
    try:
        return (via or actions()).who(token, touch=touch)
    except PermissionDenied as exc:
        st.session_state.pop(TOKEN, None)
        st.session_state["login_notice"] = str(exc)
        return None


def current() -> Principal:
    """The signed-in user for this run (app.py checked the session before running the page)."""
    return st.session_state[WHO]


def token() -> str:
    return st.session_state.get(TOKEN, "")


def can(who: Principal, permission: str) -> bool:
    """For showing or greying out controls only; the action itself checks again on the server."""
    return allowed(who.role, permission)


def code_span(text: str) -> str:
    """``text`` as a Markdown code span, shown exactly as written: a value from an address someone shared must
    not become a link or formatting where Streamlit renders Markdown (its text may hold backticks too; a blank
    line would end the span, so runs of white space read as one space)."""
    text = " ".join(text.split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def show_result(result) -> None:
    (st.success if result.ok else st.error)(result.message)


# --- the fleet app (imported here only when used: the site app does not need energizeos.remote) ----------
@st.cache_resource
def fleet_settings() -> FleetSettings:
    from energizeos.ui.fleet_view import FleetSettings

    return FleetSettings.from_env(os.environ)


@st.cache_resource
def fleet_db() -> Engine:
    from energizeos.ui.fleet_view import FLEET_DB_URL

    engine = make_engine(os.environ.get(FLEET_DB_URL) or None)  # unset: $ENERGIZEOS_DB_URL, as the aggregator
    init_db(engine)
    return engine


@st.cache_resource
def fleet_actions() -> SiteActions:
    """Login, logout and the session check against the fleet database's accounts. The fleet app has
    no graph: nothing it does can reach a site."""
    return SiteActions(fleet_db(), None, AccessPolicy())


def now() -> datetime:
    """The fleet pages' clock (one place, so the tests can hold it still)."""
    return datetime.now(UTC)
