"""Witness sign-off of a commissioning run and its evidence package: signed by the right role only, the
package verifies without the database, and every kind of tampering fails the check by name."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import threading
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from energizeos.access import accounts
from energizeos.records import audit, evidence, package, signoff
from energizeos.records.db import init_db, make_engine
from energizeos.records.models import CommissioningRun, CommissioningStep, User
from energizeos.records.package_check import verify_package
from tests.conftest import ENERGIZEOS
from tests.witness_fixtures import STEPS, make_run

SIGNED_AT = datetime(2026, 7, 16, 9, 30, tzinfo=UTC)
SETTINGS = "SID=POI RELAY\n51P1P=1.20\n81U1P=58.5\n"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ENERGIZEOS_HOME", str(tmp_path / "home"))  # the evidence store
    # Nobody logs in here: Argon2 (a tenth of a second per account, by design) would only slow the tests.
    monkeypatch.setattr(accounts, "hash_password", lambda password: "not-a-hash")
    return tmp_path / "home"


def _users(engine: Engine) -> None:
    accounts.create_user(engine, None, "jane", "epc", "x" * 16, display_name="Jane Witness", organisation="Acme EPC")
    accounts.create_user(engine, None, "vic", "viewer", "x" * 16, display_name="Vic Viewer", organisation="PG&E")
    accounts.create_user(engine, None, "ed", "engineer", "x" * 16)  # no display name: signs as "ed"
    accounts.create_user(engine, None, "old", "epc", "x" * 16)
    accounts.set_disabled(engine, None, "old", True)


def _site(url: str, tmp_path: Path) -> tuple[Engine, int]:
    """Users, a finished run, its approved settings file (and an unrelated one), not yet signed."""
    engine = make_engine(url)
    init_db(engine)
    _users(engine)
    run_id = make_run(engine)
    settings = tmp_path / "SEL-700G approved.txt"
    settings.write_text(SETTINGS)
    evidence.add(engine, settings, "protection-settings", "ed", "as approved", relates_to=f"run:{run_id}")
    other = tmp_path / "drawing.txt"
    other.write_text("single line\n")
    evidence.add(engine, other, "drawing", "ed", relates_to="site")  # not the run's: stays out of the package
    return engine, run_id


@pytest.fixture
def site(home: Path, tmp_path: Path) -> tuple[Engine, int]:
    return _site(f"sqlite:///{tmp_path / 'records.db'}", tmp_path)


@pytest.fixture
def packaged(site: tuple[Engine, int], tmp_path: Path) -> tuple[Engine, int, Path]:
    engine, run_id = site
    signoff.sign_off(engine, run_id, "jane", now=SIGNED_AT)
    out = tmp_path / "run.zip"
    package.build(engine, run_id, out)
    return engine, run_id, out


def signoff_entries(engine: Engine) -> list[audit.AuditEntry]:
    with Session(engine) as session:
        return list(session.exec(select(audit.AuditEntry).where(audit.AuditEntry.kind == signoff.KIND)).all())


def audit_head(engine: Engine) -> audit.AuditEntry:
    with Session(engine) as session:
        head = audit.head(session)
        assert head is not None
        return head


def run_row(engine: Engine, run_id: int) -> CommissioningRun:
    with Session(engine) as session:
        run = session.get(CommissioningRun, run_id)
        assert run is not None
        return run


# --- sign-off ---------------------------------------------------------------------------------------------
def test_a_sign_off_goes_on_the_run_and_the_chain_with_the_run_hash(site: tuple[Engine, int]) -> None:
    engine, run_id = site
    made = signoff.sign_off(engine, run_id, "jane", now=SIGNED_AT)
    run = run_row(engine, run_id)
    assert (run.witness, run.witness_organisation, run.witnessed_at) == ("Jane Witness", "Acme EPC", SIGNED_AT)
    [entry] = signoff_entries(engine)
    assert (entry.seq, entry.entry_hash, entry.actor, entry.subject) == (made.audit_seq, made.entry_hash, "jane",
                                                                         f"run:{run_id}")
    payload = json.loads(entry.payload_json)
    with Session(engine) as session:
        expected = signoff.record_sha256(signoff.run_record(*signoff.load_run(session, run_id)))
    assert payload["run_sha256"] == made.run_sha256 == expected
    assert (payload["witness"], payload["organisation"], payload["role"], payload["steps"]) == (
        "Jane Witness", "Acme EPC", "epc", 3)
    assert payload["witnessed_at"] == "2026-07-16T09:30:00.000000+00:00"
    assert [e["sha256"] for e in payload["evidence"]] == [hashlib.sha256(SETTINGS.encode()).hexdigest()]
    with Session(engine) as session:
        assert audit.verify(session).ok


def test_the_run_hash_covers_every_step_field(site: tuple[Engine, int]) -> None:
    engine, run_id = site
    with Session(engine) as session:
        before = signoff.record_sha256(signoff.run_record(*signoff.load_run(session, run_id)))
    for column, value in (("verdict", "'pass'"), ("measured_json", "'{\"clearing_s\": 1.9}'"),
                          ("acceptance", "'clearing <= 3.0 s'"), ("name", "'x'")):
        with engine.begin() as conn:
            old = conn.execute(text(f"SELECT {column} FROM commissioning_steps WHERE number = 3")).scalar()
            conn.execute(text(f"UPDATE commissioning_steps SET {column} = {value} WHERE number = 3"))
        with Session(engine) as session:
            assert signoff.record_sha256(signoff.run_record(*signoff.load_run(session, run_id))) != before, column
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE commissioning_steps SET {column} = :v WHERE number = 3"), {"v": old})
    with Session(engine) as session:
        assert signoff.record_sha256(signoff.run_record(*signoff.load_run(session, run_id))) == before


def test_an_engineer_without_a_display_name_signs_with_the_user_name(site: tuple[Engine, int]) -> None:
    engine, run_id = site
    assert signoff.sign_off(engine, run_id, "ed").witness == "ed"
    assert run_row(engine, run_id).witness == "ed"


@pytest.mark.parametrize(("who", "run_kind", "reason"), [
    ("vic", "finished", "vic (role viewer) may not witness a commissioning run: that needs one of admin, engineer, "
                        "epc"),
    ("nobody", "finished", "unknown user 'nobody'"),
    ("old", "finished", "user old is disabled"),
    ("jane", "running", "is still running: a witness signs a finished run"),
    ("jane", "missing", "no commissioning run 999"),
])
def test_a_sign_off_is_refused_by_name_and_changes_nothing(site: tuple[Engine, int], who: str, run_kind: str,
                                                           reason: str) -> None:
    engine, _ = site
    run_id = {"finished": make_run(engine), "running": make_run(engine, "running", finished=False),
              "missing": 999}[run_kind]
    with Session(engine) as session:
        head = audit.head(session)
    with pytest.raises(signoff.SignoffError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        signoff.sign_off(engine, run_id, who)
    with Session(engine) as session:
        assert audit.head(session) == head  # nothing on the chain
        run = session.get(CommissioningRun, run_id)
        assert run is None or (run.witness, run.witnessed_at) == ("", None)


def test_a_second_sign_off_is_refused(site: tuple[Engine, int]) -> None:
    engine, run_id = site
    signoff.sign_off(engine, run_id, "jane", now=SIGNED_AT)
    with pytest.raises(signoff.SignoffError, match=r"already signed off by Jane Witness \(Acme EPC\) at 2026-07-16"):
        signoff.sign_off(engine, run_id, "ed")
    assert run_row(engine, run_id).witness == "Jane Witness" and len(signoff_entries(engine)) == 1


def test_of_witnesses_signing_at_once_exactly_one_signs(db_url: str, home: Path, tmp_path: Path) -> None:
    engine, run_id = _site(db_url, tmp_path)
    signers = [f"w{i}" for i in range(6)]
    for name in signers:
        accounts.create_user(engine, None, name, "epc", "x" * 16)
    barrier, outcomes = threading.Barrier(len(signers)), []

    def sign(name: str) -> None:
        mine = make_engine(db_url)  # a connection of its own, as another process would have
        barrier.wait()
        try:
            outcomes.append(signoff.sign_off(mine, run_id, name).witness)
        except signoff.SignoffError as exc:
            outcomes.append(str(exc))
        finally:
            mine.dispose()

    threads = [threading.Thread(target=sign, args=(name,)) for name in signers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o in signers]
    assert len(winners) == 1 and all("is already signed off by" in o for o in outcomes if o not in signers), outcomes
    [entry] = signoff_entries(engine)
    assert run_row(engine, run_id).witness == json.loads(entry.payload_json)["witness"] == winners[0]
    with Session(engine) as session:
        assert audit.verify(session).ok


# --- the package ------------------------------------------------------------------------------------------
def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_the_package_holds_the_run_report_settings_and_chain_and_verifies(packaged: tuple[Engine, int, Path]) -> None:
    engine, _run_id, out = packaged
    files = members(out)
    settings_name = "evidence/1-SEL-700G_approved.txt"
    assert set(files) == {"run.json", "report.pdf", "audit.json", "manifest.json", settings_name}
    assert files[settings_name] == SETTINGS.encode()  # the unrelated drawing is not there
    manifest = json.loads(files["manifest.json"])
    assert {f["path"]: (f["sha256"], f["size"]) for f in manifest["files"]} == {
        name: (hashlib.sha256(data).hexdigest(), len(data)) for name, data in files.items() if name != "manifest.json"}
    [entry] = signoff_entries(engine)
    assert manifest["signoff"] == {"audit_seq": entry.seq, "entry_hash": entry.entry_hash}
    assert manifest["run_sha256"] == json.loads(entry.payload_json)["run_sha256"]
    run_doc = json.loads(files["run.json"])
    assert run_doc["run"]["witness"] == "Jane Witness" and run_doc["run"]["finished_at"] == \
        "2026-07-15T21:50:00.000000+00:00"
    assert [(s["number"], s["verdict"], s["measured"], s["acceptance"]) for s in run_doc["steps"]] == [
        (n, v, m, a) for n, _name, v, m, a in STEPS]
    assert all(s["started_at"].endswith("+00:00") for s in run_doc["steps"])
    chain = json.loads(files["audit.json"])["chain"]
    full = [e for e in chain if "payload_json" in e]
    assert [e["kind"] for e in full] == ["evidence", signoff.KIND]
    assert len(chain) == 3  # the unrelated evidence entry in between, by its hash links only
    report = verify_package(out)
    assert report.ok, report.problems
    assert "witnessed by Jane Witness (Acme EPC)" in "\n".join(report.summary)
    assert verify_package(out, expect_signoff=entry.entry_hash).ok


def test_the_report_pdf_opens_and_shows_the_run(packaged: tuple[Engine, int, Path]) -> None:
    _engine, run_id, out = packaged
    reader = PdfReader(io.BytesIO(members(out)["report.pdf"]))
    shown = " ".join(" ".join(page.extract_text() for page in reader.pages).split())  # table cells wrap
    head = audit_head(packaged[0])
    for expected in (f"run {run_id} · bess-sat-1", "reference-plant", "Witness Jane Witness",
                     "Witness organisation Acme EPC", "Operator engineer", "Status failed",
                     "PCS discharge 250 kW, POI balance pass p_pcs_kw = 249.8",
                     "86 latches on relay trip pass", "export limit clearing time fail export_kw_peak = 131.2; "
                     "clearing_s = 2.6 clearing <= 2.0 s", "2 pass, 1 fail", "SEL-700G approved.txt",
                     f"Audit head seq {head.seq} · {head.entry_hash}"):
        assert expected in shown, expected


def test_a_package_is_refused_for_an_unsigned_run_and_never_overwrites(site: tuple[Engine, int],
                                                                       tmp_path: Path) -> None:
    engine, run_id = site
    out = tmp_path / "p.zip"
    with pytest.raises(package.PackageError, match=f"run {run_id} is not signed off"):
        package.build(engine, run_id, out)
    assert not out.exists()
    with Session(engine) as session:  # a sign-off typed into the row, not made through EnergizeOS
        run = session.get(CommissioningRun, run_id)
        run.witness, run.witnessed_at = "Someone", datetime.now(UTC)
        session.add(run)
        session.commit()
    with pytest.raises(package.PackageError, match="has no witness-signoff entry"):
        package.build(engine, run_id, out)
    other = make_run(engine)
    signoff.sign_off(engine, other, "jane")
    out.write_bytes(b"an earlier package")
    with pytest.raises(package.PackageError, match="exists"):
        package.build(engine, other, out)
    assert out.read_bytes() == b"an earlier package"
    package.build(engine, other, out, replace=True)
    assert verify_package(out).ok


def test_an_altered_stored_settings_file_stops_the_package(packaged: tuple[Engine, int, Path], tmp_path: Path) -> None:
    engine, run_id, _ = packaged
    [item] = evidence.items(engine, relates_to=f"run:{run_id}")
    stored = Path(item.stored_path)
    stored.chmod(0o644)
    stored.write_text("51P1P=9.99\n")
    with pytest.raises(package.PackageError, match=r"evidence 1 \(SEL-700G approved.txt\): stored copy altered"):
        package.build(engine, run_id, tmp_path / "again.zip")
    assert not (tmp_path / "again.zip").exists()


# --- tampering ----------------------------------------------------------------------------------------------
def rewrite(src: Path, dst: Path, edit: Callable[[dict[str, bytes]], None], fix_manifest: bool = False) -> Path:
    """A copy of the package with its members edited; with ``fix_manifest`` the manifest is updated to match,
    as someone covering their tracks would."""
    files = members(src)
    edit(files)
    if fix_manifest:
        manifest = json.loads(files["manifest.json"])
        manifest["files"] = [{"path": n, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                             for n, d in files.items() if n != "manifest.json"]
        files["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return dst


def flip(name: str, at: int = -200) -> Callable[[dict[str, bytes]], None]:
    def edit(files: dict[str, bytes]) -> None:
        data = bytearray(files[name])
        data[at] ^= 0x01
        files[name] = bytes(data)
    return edit


def json_edit(name: str, change: Callable[[dict], None]) -> Callable[[dict[str, bytes]], None]:
    def edit(files: dict[str, bytes]) -> None:
        doc = json.loads(files[name])
        change(doc)
        files[name] = json.dumps(doc).encode()
    return edit


def _signoff_payload(doc: dict) -> None:
    entry = next(e for e in doc["chain"] if e.get("kind") == signoff.KIND)
    entry["payload_json"] = entry["payload_json"].replace("Acme EPC", "Utility Co")


def _verdict(doc: dict) -> None:
    doc["steps"][2]["verdict"] = "pass"


def _measured_shown(doc: dict) -> None:
    doc["steps"][2]["measured"]["clearing_s"] = 1.9


def _drop_link(doc: dict) -> None:
    doc["chain"] = [e for e in doc["chain"] if "payload_json" in e]


def _remove(name: str) -> Callable[[dict[str, bytes]], None]:
    return lambda files: files.pop(name)


SETTINGS_IN_ZIP = "evidence/1-SEL-700G_approved.txt"
TAMPERING = {
    "a byte of run.json": (flip("run.json"), False, ["run.json: changed after packaging"]),
    "a byte of report.pdf": (flip("report.pdf", 5000), False, ["report.pdf: changed after packaging"]),
    "a removed file": (_remove(SETTINGS_IN_ZIP), False,
                       [f"{SETTINGS_IN_ZIP}: listed in the manifest but missing",
                        f"evidence 1 (SEL-700G approved.txt): its file {SETTINGS_IN_ZIP} is not in the package"]),
    "an added file": (lambda files: files.update({"extra.txt": b"hello"}), False,
                      ["extra.txt: in the package but not in the manifest"]),
    "a sign-off payload edited": (json_edit("audit.json", _signoff_payload), False,
                                  ["audit.json: changed after packaging", "was edited (its content no longer matches"]),
    "a sign-off payload edited, manifest fixed": (json_edit("audit.json", _signoff_payload), True,
                                                  ["was edited (its content no longer matches its hash)"]),
    "a verdict edited, manifest fixed": (json_edit("run.json", _verdict), True,
                                         ["run.json is not what the witness signed",
                                          "changed: step 3 (export limit clearing time)"]),
    "a step removed, manifest fixed": (json_edit("run.json", lambda doc: doc["steps"].pop(1)), True,
                                       ["changed: step 2 (86 latches on relay trip) was removed"]),
    "the run's status edited, manifest fixed": (json_edit("run.json", lambda doc: doc["run"].update(status="passed")),
                                                True, ["changed: the run's own fields"]),
    "a measured value shown edited, manifest fixed": (json_edit("run.json", _measured_shown), True,
                                                      ["run.json step 3: the measured values shown differ"]),
    "a link of the chain removed, manifest fixed": (json_edit("audit.json", _drop_link), True,
                                                    ["the entries between are missing"]),
    "settings replaced, manifest fixed": (lambda files: files.update({SETTINGS_IN_ZIP: b"51P1P=9.99\n"}), True,
                                          ["does not match the SHA-256 recorded for it"]),
    "the manifest removed": (_remove("manifest.json"), False, ["manifest.json is missing"]),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_fails_verification_by_name(packaged: tuple[Engine, int, Path], tmp_path: Path, case: str) -> None:
    _engine, _run_id, out = packaged
    edit, fix_manifest, expected = TAMPERING[case]
    report = verify_package(rewrite(out, tmp_path / "tampered.zip", edit, fix_manifest))
    assert not report.ok
    for words in expected:
        assert any(words in p for p in report.problems), (words, report.problems)


def test_an_unchanged_rewrite_still_verifies(packaged: tuple[Engine, int, Path], tmp_path: Path) -> None:
    """The tampering tests' rewrite alone is not what fails them."""
    _engine, _run_id, out = packaged
    assert verify_package(rewrite(out, tmp_path / "same.zip", lambda files: None, True)).ok


def test_a_step_changed_after_sign_off_fails_the_new_package(packaged: tuple[Engine, int, Path],
                                                              tmp_path: Path) -> None:
    engine, run_id, _ = packaged
    with Session(engine) as session:  # "fix" the failed step in the database
        step = session.exec(select(CommissioningStep).where(CommissioningStep.run_id == run_id,
                                                            CommissioningStep.number == 3)).one()
        step.verdict, step.measured_json = "pass", json.dumps({"export_kw_peak": 131.2, "clearing_s": 1.9})
        session.add(step)
        session.commit()
    built = package.build(engine, run_id, tmp_path / "again.zip")
    assert built.warnings and "changed after the sign-off" in built.warnings[0]
    report = verify_package(tmp_path / "again.zip")
    assert not report.ok
    assert [p for p in report.problems if p.startswith("run.json is not what the witness signed")
            and p.endswith("changed: step 3 (export limit clearing time)")], report.problems


def test_a_wrong_expected_sign_off_hash_fails(packaged: tuple[Engine, int, Path]) -> None:
    report = verify_package(packaged[2], expect_signoff="0" * 64)
    assert not report.ok and "not the expected 0000" in report.problems[0]


def test_a_broken_or_missing_zip_is_named(packaged: tuple[Engine, int, Path], tmp_path: Path) -> None:
    out = packaged[2]
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    for path, words in ((truncated, "is not a readable zip archive"), (tmp_path / "none.zip", "no such file")):
        report = verify_package(path)
        assert not report.ok and not report.readable and words in report.problems[0], report.problems
    corrupt = tmp_path / "corrupt.zip"  # a byte of a compressed member changed in place: its CRC fails
    data = bytearray(out.read_bytes())
    with zipfile.ZipFile(out) as zf:
        info = zf.getinfo("report.pdf")
    data[info.header_offset + 30 + len(info.filename.encode()) + 100] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    report = verify_package(corrupt)
    assert not report.ok and any(p.startswith("report.pdf: unreadable in the archive") for p in report.problems), \
        report.problems


def test_a_duplicated_member_is_named(packaged: tuple[Engine, int, Path], tmp_path: Path) -> None:
    dup = tmp_path / "dup.zip"
    dup.write_bytes(packaged[2].read_bytes())
    with pytest.warns(UserWarning), zipfile.ZipFile(dup, "a") as zf:
        zf.writestr("run.json", b"{}")
    report = verify_package(dup)
    assert not report.ok and "run.json appears 2 times in the archive (a second copy was added)" in report.problems


# --- both databases, and the command line -------------------------------------------------------------------
def test_sign_and_package_on_each_database(db_url: str, home: Path, tmp_path: Path) -> None:
    engine, run_id = _site(db_url, tmp_path)
    signoff.sign_off(engine, run_id, "jane")
    package.build(engine, run_id, tmp_path / "p.zip")  # the times read back from either backend hash the same
    report = verify_package(tmp_path / "p.zip")
    assert report.ok, report.problems


def cli(*args: str, home: Path, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([ENERGIZEOS, "evidence", *args], capture_output=True, text=True, input=stdin,
                          env={**os.environ, "ENERGIZEOS_HOME": str(home)})


def test_the_cli_signs_packages_and_verifies_with_exit_codes(site: tuple[Engine, int], home: Path,
                                                            tmp_path: Path) -> None:
    engine, run_id = site
    db = str(engine.url)
    from energizeos.access.passwords import hash_password  # the fixture's users have stand-in hashes: sign in for real

    with Session(engine) as session:
        for account in session.exec(select(User).where(col(User.username).in_(("jane", "vic")))).all():
            account.password_hash = hash_password("x" * 16)
            session.add(account)
        session.commit()
    refused = cli("signoff", "--run", str(run_id), "--user", "vic", "--password-stdin", "--db", db, home=home,
                  stdin="x" * 16 + "\n")
    assert refused.returncode == 2 and "vic (role viewer) may not witness" in refused.stderr
    wrong = cli("signoff", "--run", str(run_id), "--user", "jane", "--password-stdin", "--db", db, home=home,
                stdin="not her password\n")  # someone at the console who is not the witness
    assert wrong.returncode == 2 and "wrong user name or password" in wrong.stderr
    unsigned = cli("package", "--run", str(run_id), "--out", str(tmp_path / "p.zip"), "--db", db, home=home)
    assert unsigned.returncode == 2 and "is not signed off" in unsigned.stderr
    signed = cli("signoff", "--run", str(run_id), "--user", "jane", "--password-stdin", "--db", db, home=home,
                 stdin="x" * 16 + "\n")
    assert signed.returncode == 0 and "signed off by Jane Witness (Acme EPC)" in signed.stdout, signed.stderr
    entry_hash = signoff_entries(engine)[0].entry_hash
    assert entry_hash in signed.stdout
    built = cli("package", "--run", str(run_id), "--out", str(tmp_path / "p.zip"), "--db", db, home=home)
    assert built.returncode == 0, built.stderr
    ok = subprocess.run([ENERGIZEOS, "evidence", "verify", str(tmp_path / "p.zip"), "--expect-signoff", entry_hash],
                        capture_output=True, text=True, cwd=tmp_path, env={k: v for k, v in os.environ.items()
                                                                           if not k.startswith("ENERGIZEOS")})
    assert ok.returncode == 0 and "evidence package OK" in ok.stdout and "witnessed by Jane Witness" in ok.stdout
    assert not (tmp_path / "var").exists()  # no database was opened or created for the check
    rewrite(tmp_path / "p.zip", tmp_path / "bad.zip", flip("report.pdf", 5000))
    bad = cli("verify", str(tmp_path / "bad.zip"), home=home)
    assert bad.returncode == 1 and "report.pdf: changed after packaging" in bad.stdout
    (tmp_path / "junk.zip").write_bytes(b"not a zip at all")
    junk = cli("verify", str(tmp_path / "junk.zip"), home=home)
    assert junk.returncode == 2 and "is not a readable zip archive" in junk.stdout


def test_a_run_with_a_named_witness_is_signed_by_that_witness_only(site: tuple[Engine, int]) -> None:
    engine, run_id = site
    with Session(engine) as session:  # `commission run --witness jane` names her when the run starts
        run = session.get(CommissioningRun, run_id)
        run.witness = "jane"
        session.add(run)
        session.commit()
    accounts.create_user(engine, None, "wes", "engineer", "y" * 16)  # may witness, but was not named
    with pytest.raises(signoff.SignoffError, match=f"run {run_id} was run with jane named as its witness"):
        signoff.sign_off(engine, run_id, "wes")
    signed = signoff.sign_off(engine, run_id, "jane")
    with Session(engine) as session:
        assert session.get(CommissioningRun, run_id).witnessed_at == signed.witnessed_at
    assert signed.witness == "Jane Witness" and len(signed.run_sha256) == 64


def test_the_operator_of_a_run_cannot_witness_it(site: tuple[Engine, int]) -> None:
    engine, run_id = site
    with Session(engine) as session:
        run = session.get(CommissioningRun, run_id)
        run.operator = "ed"  # an engineer: the role may witness, but not their own run
        session.add(run)
        session.commit()
    with pytest.raises(signoff.SignoffError, match=f"ed ran run {run_id} as its operator: the witness must be"):
        signoff.sign_off(engine, run_id, "ed")
    assert signoff.sign_off(engine, run_id, "jane").witness == "Jane Witness"


def test_a_step_with_hundreds_of_measured_values_still_makes_a_report(site: tuple[Engine, int],
                                                                       tmp_path: Path) -> None:
    """A point-to-point step measures every mapped point: the PDF shortens the cell (a table row cannot
    span a page), run.json keeps every value."""
    engine, run_id = site
    measured = {f"pcs.point_{i:03d}": {"value": i * 1.5, "unit": "kW", "ok": True} for i in range(400)}
    with Session(engine) as session:
        step = session.exec(select(CommissioningStep).where(CommissioningStep.run_id == run_id)).first()
        step.measured_json = json.dumps(measured)
        session.add(step)
        session.commit()
    signoff.sign_off(engine, run_id, "jane")
    built = package.build(engine, run_id, tmp_path / "big.zip")
    with zipfile.ZipFile(built.path) as zf:
        pdf_text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(zf.read("report.pdf"))).pages)
        run_doc = json.loads(zf.read("run.json"))
    assert "more value(s) in run.json" in " ".join(pdf_text.split())
    assert any(s.get("measured") == measured for s in run_doc["steps"])
