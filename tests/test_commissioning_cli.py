"""``energizeos commission list|show|run`` from the command line, against the in-process simulated site."""

from __future__ import annotations

import json
import os
import subprocess

from sqlmodel import Session, select

from energizeos.records import audit
from energizeos.records.db import make_engine
from energizeos.records.models import CommissioningRun
from tests.conftest import ENERGIZEOS, REPO


def cli(*args: str, home, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([ENERGIZEOS, *args], capture_output=True, text=True, input=stdin, cwd=REPO,
                          env={**os.environ, "ENERGIZEOS_HOME": str(home)}, timeout=300)


def test_list_and_show():
    listed = json.loads(cli("commission", "list", "--json", home="/tmp/unused-home").stdout)
    assert [p["id"] for p in listed][:3] == ["settings", "communications", "ct-pt"]
    shown = cli("commission", "show", "trip-lockout", home="/tmp/unused-home")
    assert shown.returncode == 0 and "first_dispatch_after_close_s" in shown.stdout and "es_delay_s" in shown.stdout
    missing = cli("commission", "show", "nope", home="/tmp/unused-home")
    assert missing.returncode == 2 and "unknown procedure 'nope'" in missing.stderr


def test_run_needs_an_authorised_operator_and_prints_every_step_as_json(tmp_path):
    db = f"sqlite:///{tmp_path / 'records.db'}"
    home = tmp_path / "home"
    refused = cli("commission", "run", "settings", "--operator", "erin", "--db", db, home=home)
    assert refused.returncode == 2 and "operator: unknown user 'erin'" in refused.stderr
    assert cli("users", "add", "vic", "--role", "viewer", "--db", db, home=home).returncode == 0
    viewer = cli("commission", "run", "settings", "--operator", "vic", "--db", db, home=home)
    assert viewer.returncode == 2 and "role 'viewer' may not run commissioning" in viewer.stderr
    assert cli("users", "add", "erin", "--role", "engineer", "--db", db, home=home).returncode == 0
    assert cli("users", "add", "wanda", "--role", "epc", "--organisation", "EPC Co", "--db", db,
               home=home).returncode == 0
    witness_refused = cli("commission", "run", "settings", "--operator", "erin", "--witness", "vic", "--db", db,
                          home=home)
    assert witness_refused.returncode == 2 and "witness: role 'viewer'" in witness_refused.stderr

    ran = cli("commission", "run", "settings", "ct-pt", "--operator", "erin", "--witness", "wanda", "--json",
              "--db", db, home=home)
    assert ran.returncode == 0, ran.stderr[-2000:]
    out = json.loads(ran.stdout)
    assert out["status"] == "passed" and out["witness"] == "wanda"
    assert [(s["procedure"], s["step"]) for s in out["steps"]][:4] == [
        ("settings", "relay"), ("settings", "pcs"), ("settings", "meter"), ("ct-pt", "ratios")]
    for step in out["steps"]:
        assert step["status"] == "pass" and step["measured"] and step["acceptance"]
    assert 0.8 <= next(s for s in out["steps"] if s["step"] == "charge-step")["measured"]["ratio"] <= 1.2
    with Session(make_engine(db)) as session:
        run = session.get(CommissioningRun, out["run_id"])
        assert run is not None and run.witness_organisation == "EPC Co" and run.procedure == "settings,ct-pt"
        assert audit.verify(session).ok
        assert len(session.exec(select(audit.AuditEntry).where(
            audit.AuditEntry.kind == "commissioning_step")).all()) == len(out["steps"])
    assert cli("evidence", "check", "--db", db, home=home).returncode == 0
