"""Evidence & audit: the files kept as evidence (with their SHA-256 and a download of the stored copy) and
the audit chain (its length, head hash, the latest entries) with a button that re-verifies the whole
chain on the server. Every role may read this page; nothing here changes anything."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from energizeos.access.permissions import PermissionDenied
from energizeos.records import evidence
from energizeos.records.audit import AuditEntry, head
from energizeos.records.db import error_line
from energizeos.records.models import EvidenceItem
from energizeos.records.types import utc_from_ns
from energizeos.ui import context


def local(value: datetime | None, zone: ZoneInfo) -> str:
    return "" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def size_text(size_bytes: int) -> str:
    if size_bytes < 1024:
        return f"{size_bytes} bytes"
    if size_bytes < 1024 ** 2:
        return f"{size_bytes / 1024:.1f} KiB"
    return f"{size_bytes / 1024 ** 2:.1f} MiB"


# --- evidence -----------------------------------------------------------------------------------------
def evidence_section(zone: ZoneInfo) -> None:
    st.subheader("Evidence")
    items = evidence.items(context.records())
    if not items:
        st.info("No evidence file is kept yet (`energizeos evidence add FILE --kind KIND` adds one).")
        return
    st.dataframe([{"id": i.id, "kind": i.kind, "filename": i.filename, "sha256": i.sha256,
                   "size": size_text(i.size_bytes), "added by": i.added_by,
                   "recorded (site time)": local(i.recorded_at, zone), "audit entry": i.audit_seq,
                   "relates to": i.relates_to, "note": i.note,
                   "stored copy": "kept" if Path(i.stored_path).is_file() else "MISSING"} for i in items],
                 hide_index=True, width="stretch")
    downloads(items)
    if st.button("Re-hash the stored copies", key="evidence_check"):
        store_check()


def downloads(items: list[EvidenceItem]) -> None:
    with st.expander("Download the stored copies", expanded=False):
        for item in items:
            stored = Path(item.stored_path)
            if not stored.is_file():
                st.caption(f"{item.id}: {item.filename}: the stored copy is missing")
                continue
            # read on click, not on every rerun: evidence files can be large
            st.download_button(f"{item.id}: {item.filename} ({item.kind})", stored.read_bytes,
                               file_name=item.filename, key=f"evidence_download_{item.id}", on_click="ignore")


def store_check() -> None:
    problems = evidence.check_store(context.records())
    if problems:
        st.error("\n\n".join(p.reason for p in problems))
    else:
        st.success("Every stored copy matches its SHA-256")


# --- the audit chain ----------------------------------------------------------------------------------
def chain_summary() -> None:
    with Session(context.records()) as session:
        count = session.exec(select(func.count()).select_from(AuditEntry)).one()
        last = head(session)
    cols = st.columns([1, 4])
    cols[0].metric("Audit entries", count)
    cols[1].markdown(f"**Head hash**  \n`{last.entry_hash if last else 'none (the chain is empty)'}`")


def verify_button() -> None:
    if not st.button("Verify the audit chain", key="verify_audit"):
        return
    with st.spinner("Walking the chain from the first entry"):
        try:
            status = context.actions().verify_audit(context.token())
        except PermissionDenied as exc:
            st.error(str(exc))
            return
    if status.ok:
        st.success(f"Audit chain intact: {status.message}")
    else:
        st.error(f"Audit chain BROKEN: {status.message}")
    st.caption(f"{status.entries} entries checked; last good hash `{status.head_hash}`")


def distinct_values(column) -> list[str]:
    with Session(context.records()) as session:
        return sorted(v for v in session.exec(select(column).distinct()).all() if v)


def latest_entries(zone: ZoneInfo) -> None:
    st.markdown("**Latest entries**")
    cols = st.columns([2, 2, 1])
    kinds = cols[0].multiselect("Kind", distinct_values(AuditEntry.kind), key="audit_kinds")
    actors = cols[1].multiselect("Actor", distinct_values(AuditEntry.actor), key="audit_actors")
    limit = int(cols[2].number_input("Entries shown", min_value=10, max_value=5000, value=100, step=10,
                                     key="audit_limit"))
    query = select(AuditEntry)
    if kinds:
        query = query.where(AuditEntry.kind.in_(kinds))  # type: ignore[attr-defined]
    if actors:
        query = query.where(AuditEntry.actor.in_(actors))  # type: ignore[attr-defined]
    with Session(context.records()) as session:
        rows = session.exec(query.order_by(AuditEntry.seq.desc()).limit(limit)).all()  # type: ignore[union-attr]
    if not rows:
        st.caption("No entry matches.")
        return
    st.dataframe([{"seq": e.seq, "time (site time)": local(utc_from_ns(e.recorded_ns), zone), "kind": e.kind,
                   "actor": e.actor, "subject": e.subject, "details": e.payload_json} for e in rows],
                 hide_index=True, width="stretch")


st.title("Evidence & audit")
site_zone = context.zone()
try:
    evidence_section(site_zone)
    st.subheader("Audit chain")
    st.caption("Every entry carries the SHA-256 of the one before it: an edited, deleted or re-ordered entry "
               "breaks the chain where it happened.")
    chain_summary()
    verify_button()
    latest_entries(site_zone)
except SQLAlchemyError as exc:  # the page stays up while the records are away
    st.warning(f"Records not readable yet: {error_line(exc)}")
