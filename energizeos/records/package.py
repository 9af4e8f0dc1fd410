"""The evidence package of a witnessed commissioning run: one self-contained zip that
``energizeos evidence verify`` (``package_check.py``) checks on any machine, without the database.

Contents:
- ``run.json``: the run, every step (measured values, acceptance, verdict, times in UTC ISO 8601), the
  evidence files related to the run, and ``run_sha256`` recomputed from the records now;
- ``report.pdf``: the same for people;
- ``evidence/<id>-<name>``: every evidence file whose item relates to ``run:<id>`` (e.g. the approved
  protection settings), copied from the evidence store after checking its SHA-256;
- ``audit.json``: the audit-chain entries that concern the run, in full, and between them the hash
  links of the entries in between (sequence, previous hash, hash; no content), so the included entries
  are shown to sit in one unbroken stretch of the chain; and the chain head when packaged;
- ``manifest.json``: every other file with its SHA-256 and size, and the run SHA-256 the witness signed.

Entries "concern" run N when their subject is ``run:N`` or starts with ``run:N/`` (the sign-off, app
actions on the run, the runner's entries), or when they record an evidence item related to ``run:N``.

A run changed after its sign-off is still packaged (with a warning), so the package shows the change;
``verify`` then fails naming it. The zip is written to a temporary file and renamed: a failure leaves
no half-written package, and an existing file is replaced only when asked.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from energizeos.records import audit, signoff
from energizeos.records.models import CommissioningRun, CommissioningStep, EvidenceItem

RUN_FORMAT = "energizeos-commissioning-run/1"
AUDIT_FORMAT = "energizeos-audit-extract/1"
MANIFEST_FORMAT = "energizeos-evidence-package/1"
MANIFEST = "manifest.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class PackageError(ValueError):
    """The package cannot be built; the message names the reason. Nothing is written."""


@dataclass(frozen=True)
class Built:
    path: Path
    run_id: int
    files: list[dict[str, Any]]
    run_sha256: str  # as signed
    signoff_seq: int
    signoff_hash: str
    warnings: list[str] = field(default_factory=list)


def _measured(text: str) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:
        return None  # not JSON: the stored text is in measured_json, as recorded


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archive_name(item: EvidenceItem) -> str:
    """A name inside the zip that cannot leave its folder when extracted (no path, no '..')."""
    name = _UNSAFE.sub("_", Path(item.filename).name).strip("._") or "file"
    return f"evidence/{item.id}-{name[:100]}"


def run_document(run: CommissioningRun, steps: list[CommissioningStep], items: list[EvidenceItem],
                 signed_sha256: str) -> dict[str, Any]:
    record = signoff.run_record(run, steps)
    for step in record["steps"]:
        step["measured"] = _measured(step["measured_json"])  # readable copy; verify checks it matches
    return {
        "format": RUN_FORMAT,
        "run": {**record["run"], "witness": run.witness, "witness_organisation": run.witness_organisation,
                "witnessed_at": signoff.iso(run.witnessed_at)},
        "steps": record["steps"],
        "run_sha256": signoff.record_sha256(signoff.run_record(run, steps)),  # now; the witness signed the next
        "signed_run_sha256": signed_sha256,
        "evidence": [{"id": e.id, "kind": e.kind, "filename": e.filename, "path": archive_name(e),
                      "sha256": e.sha256, "size_bytes": e.size_bytes, "recorded_at": signoff.iso(e.recorded_at),
                      "added_by": e.added_by, "note": e.note, "audit_seq": e.audit_seq} for e in items],
    }


def _entry(e: audit.AuditEntry) -> dict[str, Any]:
    return {"seq": e.seq, "recorded_ns": e.recorded_ns, "kind": e.kind, "actor": e.actor, "subject": e.subject,
            "payload_json": e.payload_json, "prev_hash": e.prev_hash, "entry_hash": e.entry_hash}


def audit_document(session: Session, run_id: int, items: list[EvidenceItem]) -> dict[str, Any]:
    subject = signoff.subject(run_id)
    seqs = [e.audit_seq for e in items if e.audit_seq is not None]
    full = list(session.exec(select(audit.AuditEntry).where(or_(
        audit.AuditEntry.subject == subject, col(audit.AuditEntry.subject).startswith(subject + "/"),
        col(audit.AuditEntry.seq).in_(seqs))).order_by(audit.AuditEntry.seq)).all())
    chain: list[dict[str, Any]] = []
    if full:
        wanted = {e.seq for e in full}
        by_seq = {e.seq: e for e in full}
        # Only three short columns for the entries in between: their content is not the run's business.
        links = session.exec(select(audit.AuditEntry.seq, audit.AuditEntry.prev_hash, audit.AuditEntry.entry_hash)
                             .where(audit.AuditEntry.seq >= full[0].seq, audit.AuditEntry.seq <= full[-1].seq)
                             .order_by(audit.AuditEntry.seq)).all()
        for seq, prev_hash, entry_hash in links:
            chain.append(_entry(by_seq[seq]) if seq in wanted else
                         {"seq": seq, "prev_hash": prev_hash, "entry_hash": entry_hash})
    top = audit.head(session)
    return {"format": AUDIT_FORMAT, "run_id": run_id, "chain": chain,
            "head": {"seq": top.seq, "entry_hash": top.entry_hash} if top else None}


def _signoff_entry(session: Session, run: CommissioningRun) -> audit.AuditEntry:
    entry = session.exec(select(audit.AuditEntry).where(audit.AuditEntry.kind == signoff.KIND,
                                                        audit.AuditEntry.subject == signoff.subject(run.id or 0))
                         .order_by(col(audit.AuditEntry.seq).desc())).first()
    if entry is None:
        if run.witnessed_at is not None:
            raise PackageError(f"run {run.id} names a witness ({run.witness}) but the audit chain has no "
                               f"{signoff.KIND} entry for it: the sign-off was not made through EnergizeOS")
        raise PackageError(f"run {run.id} is not signed off: a witness signs it first "
                           f"(energizeos evidence signoff --run {run.id} --user NAME)")
    return entry


def _evidence_bytes(item: EvidenceItem) -> bytes:
    stored = Path(item.stored_path)
    if not stored.is_file():
        raise PackageError(f"evidence {item.id} ({item.filename}): stored copy missing at {stored}")
    data = stored.read_bytes()
    if _sha256(data) != item.sha256:
        raise PackageError(f"evidence {item.id} ({item.filename}): stored copy altered (its SHA-256 differs "
                           "from the one recorded)")
    return data


def _zip_bytes(files: dict[str, bytes], when: datetime) -> bytes:
    stamp = when.astimezone(UTC).timetuple()[:6]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def _write_new(path: Path, data: bytes, replace: bool) -> None:
    from energizeos.reports.render import write_atomic

    if path.exists() and not replace:
        raise PackageError(f"{path} exists: choose another name or allow replacing it")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


def _json_bytes(doc: Any) -> bytes:
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode()


def build(engine: Engine, run_id: int, out: Path, replace: bool = False, now: datetime | None = None) -> Built:
    """Write the evidence package of run ``run_id`` to ``out``; PackageError naming the reason otherwise."""
    from energizeos.reports.commissioning import render_report

    when = (now or datetime.now(UTC)).astimezone(UTC)
    with Session(engine) as session:  # one read transaction: run, steps, evidence and chain agree
        try:
            run, steps = signoff.load_run(session, run_id)
        except signoff.SignoffError as exc:
            raise PackageError(str(exc)) from None
        entry = _signoff_entry(session, run)
        signed = json.loads(entry.payload_json).get("run_sha256", "")
        items = signoff.evidence_of(session, run_id)
        run_doc = run_document(run, steps, items, signed)
        audit_doc = audit_document(session, run_id, items)
    files: dict[str, bytes] = {"run.json": _json_bytes(run_doc), "audit.json": _json_bytes(audit_doc)}
    for item in items:
        files[archive_name(item)] = _evidence_bytes(item)
    files["report.pdf"] = render_report(run_doc, audit_doc, entry.seq, entry.entry_hash, when)
    listing = [{"path": name, "sha256": _sha256(data), "size": len(data)} for name, data in files.items()]
    manifest = {"format": MANIFEST_FORMAT, "run_id": run_id, "packaged_at": signoff.iso(when),
                "run_sha256": signed, "signoff": {"audit_seq": entry.seq, "entry_hash": entry.entry_hash},
                "files": listing}
    files[MANIFEST] = _json_bytes(manifest)
    _write_new(Path(out), _zip_bytes(files, when), replace)
    warnings = []
    if run_doc["run_sha256"] != signed:
        warnings.append(f"run {run_id} as recorded now (SHA-256 {run_doc['run_sha256']}) is not what the witness "
                        f"signed ({signed}, audit entry {entry.seq}): the run or a step changed after the "
                        "sign-off, and this package will fail verification")
    return Built(Path(out), run_id, listing, signed, entry.seq, entry.entry_hash, warnings)
