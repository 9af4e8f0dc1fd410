"""The witness sign-off on the Commissioning page: an epc user signs a finished run through the app; a viewer
is refused by the server whatever the page shows, and so is a user whose role changed after the page loaded."""

from __future__ import annotations

import json

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from energizeos.access import accounts
from energizeos.records.audit import AuditEntry
from energizeos.records.models import CommissioningRun
from energizeos.records.signoff import KIND
from energizeos.ui.actions import SiteActions
from tests.ui_app import log_in, password_of, texts
from tests.witness_fixtures import make_run

PAGE = "views/commissioning.py"


def witness_column(at: AppTest) -> list:
    return [v for frame in at.dataframe if "witness" in frame.value.columns for v in frame.value["witness"]]


def button_keys(at: AppTest) -> set[str]:
    return {b.key for b in at.button if b.key}


def entries(engine: Engine, run_id: int) -> list[tuple[str, str, dict]]:
    with Session(engine) as session:
        rows = session.exec(select(AuditEntry).where(AuditEntry.subject == f"run:{run_id}")
                            .order_by(AuditEntry.seq)).all()
    return [(e.kind, e.actor, json.loads(e.payload_json)) for e in rows]


def signed(engine: Engine, run_id: int) -> tuple[str, str, bool]:
    with Session(engine) as session:
        run = session.get(CommissioningRun, run_id)
        assert run is not None
        return run.witness, run.witness_organisation, run.witnessed_at is not None


def test_an_epc_user_signs_a_finished_run_on_the_page(app_db: Engine) -> None:
    run_id = make_run(app_db)
    running = make_run(app_db, "running", finished=False, procedure="bess-fat-2")
    at = log_in("epc", page=PAGE)
    assert not at.exception
    assert f"witness_sign_{run_id}" in button_keys(at) and f"witness_sign_{running}" not in button_keys(at)
    assert f"Run {running} is running: a witness signs it off once it has finished." in texts(at)
    assert at.button(key=f"witness_sign_{run_id}").disabled  # until the witness ticks the statement
    at.checkbox(key=f"witness_confirm_{run_id}").check().run()
    assert not at.button(key=f"witness_sign_{run_id}").disabled
    at.button(key=f"witness_sign_{run_id}").click().run()
    assert not at.exception
    assert [s.value for s in at.success if f"run {run_id} signed off by Epc" in s.value], texts(at)
    assert signed(app_db, run_id) == ("Epc", "", True)
    assert "Epc" in witness_column(at) and f"witness_sign_{run_id}" not in button_keys(at)
    kinds = [(kind, actor, p.get("via") or p.get("result")) for kind, actor, p in entries(app_db, run_id)]
    assert kinds == [(KIND, "epc", "app"), ("ui-action", "epc", "done")]


def test_the_server_refuses_a_viewer_and_a_role_changed_after_the_page_loaded(app_db: Engine) -> None:
    run_id = make_run(app_db)
    at = log_in("viewer", page=PAGE)
    assert "signing off a run needs one of the roles admin, engineer, epc" in texts(at)
    assert at.button(key=f"witness_sign_{run_id}").disabled and at.checkbox(key=f"witness_confirm_{run_id}").disabled
    token = accounts.login(app_db, "viewer", password_of("viewer")).token  # a crafted request with the viewer's session
    result = SiteActions(app_db, None).witness_run(token, run_id)
    # refused by the permission check, before the sign-off (which would refuse too) is attempted
    assert not result.ok and result.message.startswith("refused: viewer (role viewer) may not witness"), result.message
    assert signed(app_db, run_id) == ("", "", False)

    at = log_in("epc", page=PAGE)  # the page offers the sign-off ...
    at.checkbox(key=f"witness_confirm_{run_id}").check().run()
    accounts.set_role(app_db, None, "epc", "viewer")  # ... and the role is taken away before the click
    at.button(key=f"witness_sign_{run_id}").click().run()
    assert [e.value for e in at.error if e.value.startswith("refused: epc (role viewer) may not witness")], texts(at)
    assert signed(app_db, run_id) == ("", "", False)
    assert [(kind, actor, p["result"]) for kind, actor, p in entries(app_db, run_id)] == [
        ("ui-action", "viewer", "refused"), ("ui-action", "epc", "refused")]
