"""The Commissioning, Evidence & audit and Users & settings pages, driven through the app as each role sees
them, and the server-side refusal that holds whatever a page shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from energizeos.access import accounts
from energizeos.records import evidence
from energizeos.records.audit import AuditEntry
from energizeos.records.models import CommissioningRun, CommissioningStep, User
from energizeos.ui.actions import SiteActions
from tests.ui_app import log_in, password_of, texts

REPO = Path(__file__).resolve().parents[1]
PAGES = ("views/commissioning.py", "views/audit.py", "views/settings.py")


def column(at: AppTest, name: str) -> list:
    """Every value of column ``name`` over the page's tables."""
    values: list = []
    for frame in at.dataframe:
        if name in frame.value.columns:
            values += list(frame.value[name])
    return values


def pairs(at: AppTest, key: str, value: str) -> dict:
    """{row[key]: row[value]} over the tables that have both columns."""
    found: dict = {}
    for frame in at.dataframe:
        if key in frame.value.columns and value in frame.value.columns:
            found |= dict(zip(frame.value[key], frame.value[value], strict=True))
    return found


def widget_keys(at: AppTest) -> set[str]:
    keys = set()
    for kind in ("button", "text_input", "selectbox"):
        keys |= {w.key for w in at.get(kind) if w.key}
    return keys


def test_each_page_renders_for_a_viewer(app_db: Engine) -> None:
    at = log_in("viewer")
    for page, title in zip(PAGES, ("Commissioning", "Evidence & audit", "Users & settings"), strict=True):
        at.switch_page(page).run()
        assert not at.exception, f"{page}: {at.exception}"
        assert [t.value for t in at.title] == [title]


def test_settings_show_the_site_config_read_only_without_secrets(app_db: Engine, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = (REPO / "config" / "sim_site.yaml").read_text()
    config = config.replace("site: reference-plant", "site: test-plant-7").replace(
        "timezone: America/Los_Angeles", "timezone: Europe/Berlin")
    config += "\nassistant:\n  llm_base_url: http://svc:hunter2secret@127.0.0.1:8000/v1\n"
    (tmp_path / "site.yaml").write_text(config)
    monkeypatch.setenv("ENERGIZEOS_SITE_CONFIG", str(tmp_path / "site.yaml"))
    at = log_in("viewer", page="views/settings.py")
    assert not at.exception
    shown = texts(at)
    assert "**Site:** test-plant-7" in shown and "**Time zone:** Europe/Berlin" in shown
    settings = pairs(at, "setting", "value")
    assert settings["devices.meter.port"] == "15021"
    assert settings["assistant.llm_api_key_env"] == "ENERGIZEOS_LLM_API_KEY"  # the name, never a key
    assert settings["assistant.llm_base_url"] == "http://svc:***@127.0.0.1:8000/v1"
    assert "hunter2secret" not in json.dumps(settings)
    assert not at.text_input and not at.number_input  # nothing to edit the configuration with
    assert pairs(at, "rule", "value")["lockout lasts"] == "15 min"  # the access policy in force


def test_an_admin_creates_a_user_whose_password_logs_in(app_db: Engine) -> None:
    at = log_in("admin", page="views/settings.py")
    at.text_input(key="new_username").input("jane.witness")
    at.selectbox(key="new_role").select("epc")
    at.text_input(key="new_display_name").input("Jane Witness")
    at.text_input(key="new_organisation").input("Acme EPC")
    at.button(key="create_user_submit").click().run()
    assert not at.exception
    assert [c.value for c in at.code], texts(at)
    password = at.code[0].value
    assert "will not be shown again" in texts(at)
    assert "jane.witness" in column(at, "user name") and "Acme EPC" in column(at, "organisation")
    login = accounts.login(app_db, "jane.witness", password)
    assert login.ok and login.principal is not None and login.principal.role == "epc"
    at.run()  # the next run: the password is gone from the page
    assert password not in [c.value for c in at.code]


def test_an_admin_changes_accounts_through_the_form(app_db: Engine) -> None:
    with Session(app_db) as session:  # lock the viewer as too many wrong passwords would
        viewer = session.exec(select(User).where(User.username == "viewer")).one()
        viewer.failed_logins, viewer.locked_until = 0, datetime.now(UTC) + timedelta(minutes=15)
        session.add(viewer)
        session.commit()
    at = log_in("admin", page="views/settings.py")
    locked = pairs(at, "user name", "locked until (site time)")
    assert locked["viewer"] and not locked["operator"]

    def change(username: str, button: str, role: str | None = None) -> None:
        at.selectbox(key="change_username").select(username)
        if role is not None:
            at.selectbox(key="change_role").select(role)
        at.button(key=f"change_{button}").click().run()
        assert not at.exception

    change("viewer", "unlock")
    assert not pairs(at, "user name", "locked until (site time)")["viewer"]
    assert accounts.login(app_db, "viewer", password_of("viewer")).ok
    change("viewer", "disable")
    assert pairs(at, "user name", "disabled")["viewer"] == "DISABLED"
    assert "disabled" in accounts.login(app_db, "viewer", password_of("viewer")).message
    change("operator", "set_role", "engineer")
    assert pairs(at, "user name", "role")["operator"] == "engineer"
    change("owner", "password")
    new_password = at.code[0].value
    assert not accounts.login(app_db, "owner", password_of("owner")).ok
    assert accounts.login(app_db, "owner", new_password).ok


def test_a_non_admin_sees_no_user_management_and_the_server_refuses(app_db: Engine) -> None:
    at = log_in("operator", page="views/settings.py")
    assert not at.exception
    assert column(at, "user name") == ["operator"]  # their own account line only
    assert not widget_keys(at) & {"new_username", "create_user_submit", "change_username", "change_role",
                                  "change_disable", "change_password"}
    token = accounts.login(app_db, "operator", password_of("operator")).token
    result = SiteActions(app_db, None).create_user(token, "intruder", "admin")
    assert not result.ok and "manage users" in result.message and "password" not in result.data
    assert "intruder" not in [u.username for u in accounts.list_users(app_db)]
    with Session(app_db) as session:
        entries = session.exec(select(AuditEntry).where(AuditEntry.kind == "ui-action",
                                                        AuditEntry.subject == "user:intruder")).all()
    assert [(e.actor, json.loads(e.payload_json)["result"]) for e in entries] == [("operator", "refused")]


def test_the_verify_button_reports_intact_then_broken(app_db: Engine) -> None:
    at = log_in("viewer", page="views/audit.py")
    at.button(key="verify_audit").click().run()
    assert [s.value for s in at.success if "intact" in s.value], texts(at)
    assert not at.error
    with app_db.begin() as conn:  # someone edits an account's creation record behind the app's back
        conn.execute(text("UPDATE audit_chain SET payload_json = :p WHERE seq = 2"),
                     {"p": json.dumps({"change": "created", "organisation": "", "role": "admin"})})
    at.button(key="verify_audit").click().run()
    assert [e.value for e in at.error if "BROKEN" in e.value and "entry 2 was edited" in e.value], texts(at)


def test_an_evidence_item_is_listed_with_its_sha256(app_db: Engine, tmp_path: Path) -> None:
    source = tmp_path / "relay-settings.txt"
    source.write_text("51P1P = 2.40\n")
    item = evidence.add(app_db, source, "protection-settings", "engineer", note="as read back")
    at = log_in("viewer", page="views/audit.py")
    assert not at.exception
    assert column(at, "sha256") == [item.sha256] and column(at, "filename") == ["relay-settings.txt"]
    assert column(at, "audit entry") == [item.audit_seq] and column(at, "stored copy") == ["kept"]
    assert [b.key for b in at.get("download_button")] == [f"evidence_download_{item.id}"]
    assert "evidence" in column(at, "kind")  # the item's entry on the chain, in the latest entries


def test_the_commissioning_page_without_and_with_a_run(app_db: Engine) -> None:
    at = log_in("viewer", page="views/commissioning.py")
    assert "No commissioning run is recorded yet" in texts(at) and "energizeos commission" in texts(at)
    from energizeos.commissioning.model import shipped

    procedures = at.dataframe[-1].value  # the shipped procedures are listed even before any run
    assert list(procedures["procedure id"]) == list(shipped()) and "trip-lockout" in list(procedures["procedure id"])
    assert len(at.dataframe) == 1  # and no run table
    t = datetime(2026, 7, 15, 21, 0, tzinfo=UTC)  # 14:00 PDT
    with Session(app_db) as session:
        run = CommissioningRun(procedure="bess-sat-1", site="reference-plant", started_at=t, status="failed",
                               operator="engineer", witness="Jane Witness", witness_organisation="Acme EPC",
                               witnessed_at=t + timedelta(hours=1), finished_at=t + timedelta(minutes=50))
        session.add(run)
        session.flush()
        session.add(CommissioningStep(run_id=run.id, number=1, name="discharge 250 kW", started_at=t,
                                      verdict="pass", measured_json=json.dumps({"p_kw": 249.8}),
                                      acceptance="250 kW +- 2 %"))
        session.add(CommissioningStep(run_id=run.id, number=2, name="export trip", started_at=t,
                                      verdict="fail", measured_json=json.dumps({"trip_s": 2.6})))
        session.commit()
    at.run()
    assert not at.exception
    assert "No commissioning run" not in texts(at)
    assert column(at, "procedure") == ["bess-sat-1"] and column(at, "status") == ["failed"]
    assert column(at, "witness organisation") == ["Acme EPC"]
    assert column(at, "started (site time)")[0] == "2026-07-15 14:00:00 PDT"
    assert column(at, "verdict") == ["pass", "fail"] and column(at, "measured") == ["p_kw = 249.8", "trip_s = 2.6"]
    assert "Jane Witness (Acme EPC), 2026-07-15 15:00:00 PDT" in texts(at)
