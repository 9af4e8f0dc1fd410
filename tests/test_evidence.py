"""Evidence: files kept with their SHA-256, on the audit chain, checked again later (both databases)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from sqlmodel import Session

from energizeos.records import audit
from energizeos.records.db import make_engine
from tests.conftest import ENERGIZEOS


def run(*args: str, home) -> subprocess.CompletedProcess:
    return subprocess.run([ENERGIZEOS, *args], capture_output=True, text=True,
                          env={**os.environ, "ENERGIZEOS_HOME": str(home)})


def test_add_list_and_check_evidence_through_the_cli(db_url, tmp_path):
    settings = tmp_path / "SEL-700G_approved.txt"
    settings.write_text("SID=POI RELAY\n51P1P=1.20\n81U1P=58.5\n")
    added = run("evidence", "add", str(settings), "--kind", "protection-settings", "--note", "as approved",
                "--relates-to", "relay:SEL-700G", "--by", "alice", "--db", db_url, home=tmp_path / "home")
    assert added.returncode == 0, added.stderr
    listed = json.loads(run("evidence", "list", "--json", "--db", db_url, home=tmp_path / "home").stdout)
    assert len(listed) == 1
    item = listed[0]
    assert item["sha256"] == hashlib.sha256(settings.read_bytes()).hexdigest()
    assert (item["kind"], item["added_by"], item["relates_to"], item["note"]) == (
        "protection-settings", "alice", "relay:SEL-700G", "as approved")
    assert item["recorded_at"].endswith("+00:00")
    with Session(make_engine(db_url)) as session:  # on the audit chain, with the same hash
        entry = session.get(audit.AuditEntry, item["audit_seq"])
        assert entry is not None and entry.kind == "evidence" and entry.actor == "alice"
        assert json.loads(entry.payload_json)["sha256"] == item["sha256"]
    assert run("evidence", "check", "--db", db_url, home=tmp_path / "home").returncode == 0

    stored = next((tmp_path / "home" / "evidence").rglob(item["sha256"]))
    stored.chmod(0o644)
    stored.write_text("SID=POI RELAY\n51P1P=9.99\n")  # someone "fixes" the approved settings
    checked = run("evidence", "check", "--db", db_url, home=tmp_path / "home")
    assert checked.returncode == 1 and f"evidence {item['id']} (SEL-700G_approved.txt): stored copy altered" \
        in checked.stdout


def test_bad_evidence_input_is_refused_by_name_and_nothing_is_recorded(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    missing = run("evidence", "add", str(tmp_path / "nope.txt"), "--kind", "test-result", "--db", url,
                  home=tmp_path / "home")
    assert missing.returncode == 2 and "nope.txt: no such file" in missing.stderr
    (tmp_path / "x.csv").write_text("a,b\n")
    bogus = run("evidence", "add", str(tmp_path / "x.csv"), "--kind", "bogus", "--db", url, home=tmp_path / "home")
    assert bogus.returncode == 2 and "unknown evidence kind 'bogus'" in bogus.stderr
    assert json.loads(run("evidence", "list", "--json", "--db", url, home=tmp_path / "home").stdout) == []
    with Session(make_engine(url)) as session:
        assert audit.verify(session).checked == 0


def test_an_altered_stored_copy_is_restored_when_the_file_is_added_again(tmp_path, monkeypatch):
    from energizeos.records import evidence
    from energizeos.records.db import init_db, make_engine

    monkeypatch.setenv("ENERGIZEOS_HOME", str(tmp_path / "home"))
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    init_db(engine)
    source = tmp_path / "settings.txt"
    source.write_text("81U1 58.5 Hz 300 s\n")
    first = evidence.add(engine, source, "protection-settings", "tester")
    stored = Path(first.stored_path)
    stored.chmod(0o644)
    stored.write_text("81U1 57.0 Hz 300 s\n")  # someone edits the kept copy
    assert [p.item_id for p in evidence.check_store(engine)] == [first.id]
    evidence.add(engine, source, "protection-settings", "tester")
    assert stored.read_text() == "81U1 58.5 Hz 300 s\n" and evidence.check_store(engine) == []
    assert not list(stored.parent.glob("*.tmp"))
