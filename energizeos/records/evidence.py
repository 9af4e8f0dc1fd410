"""Evidence items: files kept with the SHA-256 of their content, who added them, when and what they
relate to. The file is copied into a content-addressed store under $ENERGIZEOS_HOME/evidence and the
item goes on the audit chain in the same transaction as its row."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from energizeos.home import subdir
from energizeos.records import audit
from energizeos.records.models import EvidenceItem
from energizeos.records.types import utc_from_ns

KINDS = {
    "protection-settings": "relay settings file as approved or as read back",
    "test-result": "a measured test result (FAT, SAT, commissioning step)",
    "approval": "an approval or rejection document",
    "witness-signoff": "a witness's signed statement",
    "interconnection": "utility interconnection documents (application, agreement, PTO letter)",
    "drawing": "single-line diagram, three-line, as-built drawing",
    "other": "anything else worth keeping",
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def store_path(sha256: str) -> Path:
    return subdir("evidence") / sha256[:2] / sha256


def add(engine: Engine, path: Path, kind: str, added_by: str, note: str = "", relates_to: str = "",
        recorded_ns: int | None = None) -> EvidenceItem:
    """Keep ``path`` as evidence; raises ValueError naming what is wrong (missing file, unknown kind...)."""
    path = Path(path)
    if kind not in KINDS:
        raise ValueError(f"unknown evidence kind {kind!r}; one of: {', '.join(KINDS)}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if not added_by.strip():
        raise ValueError("evidence needs the name of who adds it")
    digest = sha256_file(path)
    stored = store_path(digest)
    # a stored copy that no longer matches its name was altered: the file being added restores it
    if not stored.exists() or sha256_file(stored) != digest:
        stored.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=stored.parent, prefix=f"{digest}.", suffix=".tmp",
                                         delete=False) as handle:
            tmp = Path(handle.name)  # unique: two adds of the same content at once do not collide
        shutil.copyfile(path, tmp)
        if sha256_file(tmp) != digest:  # the source changed while it was copied
            tmp.unlink()
            raise ValueError(f"{path} changed while it was being copied: add it again")
        if stored.exists():
            stored.chmod(0o644)
        tmp.replace(stored)
        stored.chmod(0o444)
    now_ns = recorded_ns if recorded_ns is not None else time.time_ns()
    with Session(engine) as session:
        item = EvidenceItem(recorded_at=utc_from_ns(now_ns), kind=kind, filename=path.name, sha256=digest,
                            size_bytes=path.stat().st_size, stored_path=str(stored), added_by=added_by,
                            relates_to=relates_to, note=note)
        session.add(item)
        session.flush()
        entry = audit.append(session, "evidence", added_by, f"evidence:{item.id}",
                             {"kind": kind, "filename": item.filename, "sha256": digest, "size_bytes": item.size_bytes,
                              "relates_to": relates_to, "note": note}, now_ns)
        item.audit_seq = entry.seq
        session.add(item)
        session.commit()
        session.refresh(item)
        return item


def items(engine: Engine, kind: str | None = None, relates_to: str | None = None) -> list[EvidenceItem]:
    with Session(engine) as session:
        query = select(EvidenceItem).order_by(EvidenceItem.id)
        if kind:
            query = query.where(EvidenceItem.kind == kind)
        if relates_to:
            query = query.where(EvidenceItem.relates_to == relates_to)
        return list(session.exec(query).all())


@dataclass(frozen=True)
class StoreProblem:
    item_id: int
    reason: str


def check_store(engine: Engine) -> list[StoreProblem]:
    """Re-hash every stored copy: a missing or altered file is named."""
    problems = []
    for item in items(engine):
        stored = Path(item.stored_path)
        if not stored.is_file():
            problems.append(StoreProblem(item.id or 0, f"evidence {item.id} ({item.filename}): stored copy missing"))
        elif sha256_file(stored) != item.sha256:
            problems.append(StoreProblem(item.id or 0, f"evidence {item.id} ({item.filename}): stored copy altered"))
    return problems
