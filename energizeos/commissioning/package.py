"""Evidence package of a commissioning run: one zip that another machine can check without the database.

    manifest.json   format, run, who made it, the audit head, and every other file with its SHA-256
    run.json        the run, every step as recorded (measured values, criteria, verdict), the sign-off
    audit.json      the run's audit-chain entries (start, steps, evidence, sign-off, finish), hashes included
    report.pdf      the run as a report
    files/...       the evidence files of the run (approved settings, read-backs)

``verify`` recomputes every file's hash against the manifest, every audit entry's hash from its content,
and checks that run.json's steps and the evidence files are the ones on the audit entries.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from energizeos.records import audit
from energizeos.records.models import CommissioningRun, CommissioningStep, EvidenceItem

FORMAT = "energizeos-evidence-package/1"
FIXED_TIME = (2000, 1, 1, 0, 0, 0)  # zip member times: the bytes depend on the content only


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, indent=1, default=str).encode()


def _entry(e: audit.AuditEntry) -> dict[str, Any]:
    return {"seq": e.seq, "recorded_ns": e.recorded_ns, "kind": e.kind, "actor": e.actor, "subject": e.subject,
            "payload_json": e.payload_json, "prev_hash": e.prev_hash, "entry_hash": e.entry_hash}


def collect(engine: Engine, run_id: int) -> tuple[dict[str, Any], list[dict[str, Any]], list[EvidenceItem]]:
    """run.json's content, the run's audit entries and its evidence items, from the records."""
    with Session(engine) as session:
        run = session.get(CommissioningRun, run_id)
        if run is None:
            raise ValueError(f"no commissioning run {run_id}")
        steps = session.exec(select(CommissioningStep).where(CommissioningStep.run_id == run_id)
                             .order_by(CommissioningStep.number)).all()
        items = list(session.exec(select(EvidenceItem).where(EvidenceItem.relates_to == f"run:{run_id}")
                                  .order_by(EvidenceItem.id)).all())
        subjects = [f"evidence:{i.id}" for i in items]
        entries = session.exec(select(audit.AuditEntry).where(
            audit.AuditEntry.subject.like(f"commissioning_run:{run_id}%")  # type: ignore[attr-defined]
            | audit.AuditEntry.subject.in_(subjects)).order_by(audit.AuditEntry.seq)).all()  # type: ignore[attr-defined]
        signoff = next((json.loads(e.payload_json) for e in entries if e.kind == "witness_signoff"), None)
        body = {"run": {"id": run.id, "procedures": run.procedure.split(","), "site": run.site,
                        "started_at": run.started_at, "finished_at": run.finished_at, "status": run.status,
                        "operator": run.operator, "witness": run.witness,
                        "witness_organisation": run.witness_organisation, "witnessed_at": run.witnessed_at},
                "steps": [{"number": s.number, "name": s.name, "verdict": s.verdict, "acceptance": s.acceptance,
                           "body": json.loads(s.measured_json)} for s in steps],
                "signoff": signoff}
        return body, [_entry(e) for e in entries], items


def build(engine: Engine, run_id: int, out: Path, created_by: str, created_at: str,
          render_report: Callable[[dict[str, Any], str], bytes]) -> dict:
    """Write the package to ``out``; returns the manifest (its SHA-256 is the package's fingerprint).
    ``render_report(run_body, audit_head_text)`` gives the PDF."""
    body, entries, items = collect(engine, run_id)
    with Session(engine) as session:
        head = audit.head(session)
    report_pdf = render_report(body, f"seq {head.seq} · {head.entry_hash}" if head else "empty chain")
    files: dict[str, bytes] = {"run.json": _canonical(body), "audit.json": _canonical(entries),
                               "report.pdf": report_pdf}
    for item in items:
        data = Path(item.stored_path).read_bytes()
        if _sha(data) != item.sha256:
            raise ValueError(f"evidence {item.id} ({item.filename}): the stored copy no longer matches its SHA-256")
        files[f"files/{item.id}_{item.filename}"] = data
    manifest = {"format": FORMAT, "run_id": run_id, "created_by": created_by, "created_at": created_at,
                "audit_head": {"seq": head.seq if head else 0, "hash": head.entry_hash if head else audit.GENESIS},
                "files": {name: {"sha256": _sha(data), "size": len(data)} for name, data in sorted(files.items())}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in [("manifest.json", _canonical(manifest)), *sorted(files.items())]:
            archive.writestr(zipfile.ZipInfo(name, FIXED_TIME), data)
    Path(out).write_bytes(buffer.getvalue())
    return manifest


def verify(path: Path) -> list[str]:
    """Every problem found, first the files, then the audit entries, then their agreement ([] = intact)."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        return [f"{path}: not a readable zip file ({exc})"]
    with archive:
        names = set(archive.namelist())
        if "manifest.json" not in names:
            return ["manifest.json is missing"]
        try:
            manifest = json.loads(archive.read("manifest.json"))
            listed = manifest["files"]
        except (ValueError, KeyError, TypeError) as exc:
            return [f"manifest.json is not a package manifest ({exc})"]
        if manifest.get("format") != FORMAT:
            return [f"manifest.json: format {manifest.get('format')!r}, expected {FORMAT}"]
        problems = [f"{name}: in the package but not in the manifest" for name in sorted(names - set(listed)
                                                                                        - {"manifest.json"})]
        data: dict[str, bytes] = {}
        for name, meta in sorted(listed.items()):
            if name not in names:
                problems.append(f"{name}: listed in the manifest but missing")
                continue
            data[name] = archive.read(name)
            if _sha(data[name]) != meta.get("sha256") or len(data[name]) != meta.get("size"):
                problems.append(f"{name}: SHA-256 differs from the manifest (altered)")
    if problems or not {"run.json", "audit.json"} <= set(data):
        return problems or ["run.json or audit.json is missing"]
    return _agreement(json.loads(data["run.json"]), json.loads(data["audit.json"]), data)


def _agreement(body: dict[str, Any], entries: list[dict[str, Any]], data: dict[str, bytes]) -> list[str]:
    problems = []
    for e in entries:
        digest = audit.entry_digest(e["seq"], e["recorded_ns"], e["kind"], e["actor"], e["subject"], e["payload_json"],
                                    e["prev_hash"])
        if digest != e["entry_hash"]:
            problems.append(f"audit entry {e['seq']}: its content no longer matches its hash (edited)")
    recorded = [(e["kind"], e["subject"], json.loads(e["payload_json"])) for e in entries]
    run_id = body["run"]["id"]
    for step in body["steps"]:
        found = [p for _k, s, p in recorded if s == f"commissioning_run:{run_id}/step:{step['number']}"]
        if not found:
            problems.append(f"run.json step {step['number']}: no audit entry")
        elif {k: v for k, v in found[0].items() if k != "run_id"} != step["body"] or \
                step["verdict"] != found[0].get("status"):
            problems.append(f"run.json step {step['number']} ({step['name']}): differs from its audit entry")
    numbers = [step["number"] for step in body["steps"]]
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"run.json steps are numbered {numbers}: a step was removed or added")
    finish = [p for kind, s, p in recorded if kind == "commissioning_run" and p.get("event") == "finish"]
    counts = {k: sum(1 for step in body["steps"] if step["verdict"] == k) for k in ("pass", "fail", "skipped")}
    if finish and finish[-1].get("counts") != counts:
        problems.append(f"run.json has {counts} steps but the run's finish entry recorded {finish[-1].get('counts')}")
    hashes = {p.get("sha256") for kind, _s, p in recorded if kind == "evidence"}
    for name, content in data.items():
        if name.startswith("files/") and _sha(content) not in hashes:
            problems.append(f"{name}: no evidence entry on the audit chain has its SHA-256")
    signoff = body.get("signoff")
    if signoff is not None and signoff not in [p for kind, _s, p in recorded if kind == "witness_signoff"]:
        problems.append("run.json sign-off: differs from the witness's audit entry")
    return problems
