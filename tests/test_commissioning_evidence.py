"""Witness sign-off of a commissioning run and its evidence package: made from the records, checked on
another machine without them; any change to the package is named by ``evidence verify``."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlmodel import Session, select

from energizeos.access.accounts import create_user
from energizeos.access.permissions import Principal
from energizeos.commissioning import package, sim_site
from energizeos.commissioning.model import shipped
from energizeos.commissioning.recorder import Recorder
from energizeos.commissioning.report import report_doc
from energizeos.commissioning.signoff import SignOffError, sign_off
from energizeos.records import audit
from energizeos.records.db import init_db, make_engine
from energizeos.records.models import Approval, CommissioningRun
from energizeos.reports.render.pdf import render_pdf
from energizeos.sim.maps.sel import load_map
from energizeos.site_config import load_site_config
from tests.conftest import ENERGIZEOS, REPO

CONFIG = load_site_config(REPO / "config" / "sim_site.yaml")
PASSWORD = "a long enough password"


@pytest.fixture
def engine(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGIZEOS_HOME", str(tmp_path / "home"))
    engine = make_engine(f"sqlite:///{tmp_path / 'records.db'}")
    init_db(engine)
    for name, role, org in (("erin", "engineer", "Integrator Inc"), ("wanda", "epc", "EPC Co"),
                            ("vic", "viewer", "SDG&E"), ("alan", "admin", "Owner")):
        create_user(engine, None, name, role, PASSWORD, name.title(), org)
    yield engine
    engine.dispose()


def commissioning_run(engine, witness: str = "", change_relay: bool = False) -> int:
    site = sim_site.build(CONFIG, [shipped()["settings"]], "erin", Recorder(engine, CONFIG.site, "erin", witness))
    if change_relay:  # a setting that differs from the approved file: the run fails
        relay_map = load_map("sel700g")
        relay_map.encode_into(site.plant.site.relay, {**relay_map.defaults, "uv1_pickup": 0.75})
    while not site.runner.done:
        site.ex.spin_for(10.0)
    assert site.runner.result.run_id is not None
    return site.runner.result.run_id


def test_a_witness_signs_off_a_passed_run_once_and_only_a_witness_may(engine):
    failed = commissioning_run(engine, change_relay=True)
    passed = commissioning_run(engine)
    wanda, now = Principal("wanda", "epc"), time.time_ns()
    refusals = [
        (lambda: sign_off(engine, failed, wanda, "ok", now), f"run {failed} failed: only a passed run is signed off"),
        (lambda: sign_off(engine, passed, Principal("erin", "engineer"), "ok", now),
         "erin ran this commissioning: a witness must be someone else"),
        (lambda: sign_off(engine, passed, Principal("vic", "epc"), "ok", now),  # the stored role counts, not the claim
         "vic may not witness: that needs one of admin, engineer, epc"),
        (lambda: sign_off(engine, 999, wanda, "ok", now), "no commissioning run 999"),
    ]
    for attempt, message in refusals:
        with pytest.raises(SignOffError, match=message):
            attempt()
    payload = sign_off(engine, passed, wanda, "Witnessed on site; results as recorded.", now)
    assert (payload["witness"], payload["organisation"], payload["role"]) == ("wanda", "EPC Co", "epc")
    with Session(engine) as session:
        run = session.get(CommissioningRun, passed)
        assert run.witness == "wanda" and run.witness_organisation == "EPC Co" and run.witnessed_at is not None
        approval = session.exec(select(Approval).where(Approval.subject == f"commissioning_run:{passed}")).one()
        assert approval.approved and approval.user == "wanda" and approval.role == "epc"
        entry = audit.head(session)
        assert entry.kind == "witness_signoff" and json.loads(entry.payload_json) == payload
    with pytest.raises(SignOffError, match=f"run {passed} was already signed off by wanda"):
        sign_off(engine, passed, wanda, "again", now)
    named = commissioning_run(engine, witness="wanda")
    with pytest.raises(SignOffError, match=f"run {named} names wanda as its witness, not alan"):
        sign_off(engine, named, Principal("alan", "admin"), "ok", now)


def build_package(engine, run_id: int, out: Path) -> dict:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    return package.build(engine, run_id, out, "erin", now.isoformat(),
                         lambda body, head: render_pdf(report_doc(body, head, CONFIG.timezone, now)))


def rewrite(src: Path, dst: Path, change) -> None:
    """Copy the zip with ``change(name, data) -> data | None`` applied (None drops the member)."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for name in old.namelist():
            data = change(name, old.read(name))
            if data is not None:
                new.writestr(name, data)


def test_the_package_verifies_and_every_kind_of_tampering_is_named(engine, tmp_path):
    run_id = commissioning_run(engine)
    sign_off(engine, run_id, Principal("wanda", "epc"), "Witnessed.", time.time_ns())
    good = tmp_path / "run.zip"
    manifest = build_package(engine, run_id, good)
    assert package.verify(good) == []
    assert set(manifest["files"]) == {"run.json", "audit.json", "report.pdf", "files/1_sel700g_poi.yaml",
                                      "files/2_sel700g_settings_readback.json", "files/3_pcs_sunspec.yaml"}
    with zipfile.ZipFile(good) as archive:
        body = json.loads(archive.read("run.json"))
        pdf = archive.read("report.pdf")
    assert body["signoff"]["witness"] == "wanda" and [s["verdict"] for s in body["steps"]] == ["pass"] * 3
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Commissioning report" in text and "wanda (EPC Co, epc)" in text and "mismatch_count = 0" in text

    def measured_changed(name, data):  # the relay read-back "passes" after all
        if name != "run.json":
            return data
        doc = json.loads(data)
        doc["steps"][0]["body"]["measured"]["mismatch_count"] = 0.0
        doc["steps"][0]["body"]["measured"]["crc_reported"] = 12345
        return json.dumps(doc, sort_keys=True, indent=1).encode()

    def with_manifest(fn):  # ... and the manifest re-hashed to match
        def change(name, data):
            if name == "manifest.json":
                return None
            return fn(name, data)
        return change

    altered = tmp_path / "altered.zip"
    rewrite(good, altered, measured_changed)
    assert package.verify(altered) == ["run.json: SHA-256 differs from the manifest (altered)"]

    rehashed = tmp_path / "rehashed.zip"
    rewrite(good, rehashed, with_manifest(measured_changed))
    _add_manifest(rehashed)
    problems = package.verify(rehashed)
    assert problems == ["run.json step 1 (settings/relay): differs from its audit entry"]

    forged = tmp_path / "forged.zip"  # the audit entry edited too: its hash no longer fits its content
    edited: dict[str, int] = {}

    def entry_changed(name, data):
        data = measured_changed(name, data) if name == "run.json" else data
        if name == "audit.json":
            entries = json.loads(data)
            for e in entries:
                if e["subject"] == f"commissioning_run:{run_id}/step:1":
                    payload = json.loads(e["payload_json"])
                    payload["measured"]["crc_reported"] = 12345
                    e["payload_json"] = json.dumps(payload, sort_keys=True, separators=(",", ":"))
                    edited["seq"] = e["seq"]
            data = json.dumps(entries, sort_keys=True, indent=1).encode()
        return data

    rewrite(good, forged, with_manifest(entry_changed))
    _add_manifest(forged)
    assert f"audit entry {edited['seq']}: its content no longer matches its hash (edited)" in package.verify(forged)

    dropped = tmp_path / "dropped.zip"  # the last step and its audit entry removed, the manifest re-hashed

    def step_dropped(name, data):
        if name == "run.json":
            doc = json.loads(data)
            doc["steps"] = doc["steps"][:-1]
            return json.dumps(doc, sort_keys=True, indent=1).encode()
        if name == "audit.json":
            entries = [e for e in json.loads(data) if e["subject"] != f"commissioning_run:{run_id}/step:3"]
            return json.dumps(entries, sort_keys=True, indent=1).encode()
        return data

    rewrite(good, dropped, with_manifest(step_dropped))
    _add_manifest(dropped)
    assert package.verify(dropped) == [
        "run.json has {'pass': 2, 'fail': 0, 'skipped': 0} steps but the run's finish entry recorded "
        "{'fail': 0, 'pass': 3, 'skipped': 0}"]

    extra, missing = tmp_path / "extra.zip", tmp_path / "missing.zip"
    rewrite(good, extra, lambda name, data: data)
    with zipfile.ZipFile(extra, "a") as archive:
        archive.writestr("files/9_better_settings.yaml", b"uv1_pickup: 0.75\n")
    assert package.verify(extra) == ["files/9_better_settings.yaml: in the package but not in the manifest"]
    rewrite(good, missing, lambda name, data: None if name == "files/3_pcs_sunspec.yaml" else data)
    assert package.verify(missing) == ["files/3_pcs_sunspec.yaml: listed in the manifest but missing"]


def _add_manifest(path: Path) -> None:
    """What a forger does next: a manifest with the new hashes."""
    with zipfile.ZipFile(path) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    manifest = {"format": package.FORMAT, "run_id": 1, "created_by": "x", "created_at": "x",
                "audit_head": {"seq": 0, "hash": ""},
                "files": {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in files.items()}}
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("manifest.json", json.dumps(manifest))


def test_sign_package_and_verify_from_the_command_line(engine, tmp_path):
    run_id = commissioning_run(engine)
    url = str(engine.url)
    env = {**os.environ, "ENERGIZEOS_HOME": os.environ["ENERGIZEOS_HOME"]}

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([ENERGIZEOS, *args], capture_output=True, text=True, input=stdin, env=env, cwd=REPO,
                              timeout=120)

    wrong = cli("commission", "sign", str(run_id), "--witness", "wanda", "--password-stdin", "--db", url,
                stdin="not the password\n")
    assert wrong.returncode == 2 and "wrong user name or password" in wrong.stderr
    signed = cli("commission", "sign", str(run_id), "--witness", "wanda", "--password-stdin", "--db", url,
                 stdin=PASSWORD + "\n")
    assert signed.returncode == 0 and f"run {run_id} signed off by wanda (EPC Co)" in signed.stdout, signed.stderr
    out = tmp_path / "package.zip"
    made = cli("evidence", "package", "--run", str(run_id), "--out", str(out), "--by", "erin", "--db", url)
    assert made.returncode == 0, made.stderr
    assert cli("evidence", "verify", str(out)).returncode == 0
    with Session(engine) as session:  # the package's fingerprint is on the audit chain
        entry = audit.head(session)
        assert entry.kind == "evidence_package" and json.loads(entry.payload_json)["sha256"] in made.stdout
    rewrite(out, tmp_path / "tampered.zip", lambda name, content: content.replace(b'"pass"', b'"PASS"')
            if name == "run.json" else content)
    bad = cli("evidence", "verify", str(tmp_path / "tampered.zip"), "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["problems"] == [
        "run.json: SHA-256 differs from the manifest (altered)"]
