"""Driving the Streamlit app in tests (streamlit.testing.v1.AppTest): a records database of its own, users
of every role with known passwords, and a login helper. The ``router`` fixture gives the app's graph
connection a real Zenoh router to join."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from energizeos.access import accounts
from energizeos.records.db import init_db, make_engine
from energizeos.records.models import ROLES

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")
FLEET_APP = str(Path(__file__).resolve().parents[1] / "ui" / "fleet_app.py")
PASSWORD = "correct horse battery"  # every test user's


def password_of(role: str) -> str:
    return f"{PASSWORD} {role}"


@pytest.fixture
def app_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, router: str) -> Engine:
    """A migrated database with one user per role (named after the role), the app pointed at it."""
    url = f"sqlite:///{tmp_path / 'records.db'}"
    monkeypatch.setenv("ENERGIZEOS_DB_URL", url)
    engine = make_engine(url)
    init_db(engine)
    for role in ROLES:
        accounts.create_user(engine, None, role, role, password_of(role), display_name=role.title())
    st.cache_resource.clear()  # the app's engine and actions are per process: start from this database
    yield engine
    st.cache_resource.clear()


def open_app(timeout_s: float = 30.0, app: str = APP) -> AppTest:
    return AppTest.from_file(app, default_timeout=timeout_s).run()


def log_in(role: str, password: str | None = None, page: str | None = None, app: str = APP) -> AppTest:
    """The app (or ``FLEET_APP``) after signing in as the user named ``role`` (optionally on another page,
    e.g. "views/alarms.py")."""
    at = open_app(app=app)
    at.text_input(key="login_user").input(role)
    at.text_input(key="login_password").input(password if password is not None else password_of(role))
    at.button[0].click().run()
    if page is not None:
        at.switch_page(page).run()
    return at


def texts(at: AppTest) -> str:
    """Every piece of text on the page, for asserting what a user reads."""
    parts = []
    for kind in ("markdown", "caption", "success", "error", "warning", "info", "subheader", "title", "header"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)
