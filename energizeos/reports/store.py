"""Keeping a rendered report: the file, its row in ``reports`` and an audit-chain entry with its SHA-256,
in one transaction, so anyone holding the file can check it is the one the site produced."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from energizeos.home import subdir
from energizeos.records import audit
from energizeos.records.evidence import sha256_file
from energizeos.records.models import ReportRecord
from energizeos.records.types import utc_from_ns
from energizeos.reports.document import ReportDoc
from energizeos.reports.render import render


@dataclass(frozen=True)
class StoredReport:
    path: Path
    format: str
    sha256: str
    audit_seq: int


def default_path(doc: ReportDoc, fmt: str) -> Path:
    """$ENERGIZEOS_HOME/reports/<kind>/<period>/<period>_<generated UTC>.<fmt>: a regenerated report
    (late data) never overwrites the one handed out before."""
    stamp = doc.generated_at.strftime("%Y%m%dT%H%M%SZ")
    return subdir("reports") / doc.kind / doc.period_label / f"{doc.period_label}_{stamp}.{fmt}"


def save(engine: Engine, doc: ReportDoc, fmt: str, actor: str, path: Path | None = None,
         now_ns: int | None = None) -> StoredReport:
    """Render ``doc`` as ``fmt`` to ``path`` (default: under the data directory) and record it."""
    path = render(doc, fmt, Path(path) if path else default_path(doc, fmt)).resolve()
    digest = sha256_file(path)
    now_ns = now_ns if now_ns is not None else time.time_ns()
    with Session(engine) as session:
        session.add(ReportRecord(kind=doc.kind, period_start=doc.period_start, period_end=doc.period_end,
                                 generated_at=doc.generated_at, format=fmt, path=str(path), sha256=digest))
        entry = audit.append(session, "report", actor, f"report:{doc.kind}:{doc.period_label}", {
            "format": fmt, "sha256": digest, "file": path.name, "figures_sha256": doc.figures_sha256,
            "computed_against": doc.audit_head, "has_data": doc.has_data,
            "generated_at": doc.generated_at.isoformat()}, now_ns)
        session.commit()
        return StoredReport(path, fmt, digest, entry.seq)


def stored(engine: Engine, kind: str, doc_start_ns: int) -> list[ReportRecord]:
    """Reports already kept for the period starting at ``doc_start_ns``."""
    with Session(engine) as session:
        return list(session.exec(select(ReportRecord).where(
            ReportRecord.kind == kind, ReportRecord.period_start == utc_from_ns(doc_start_ns))).all())
