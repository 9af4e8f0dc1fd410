"""The audit chain: an append-only log in which every entry carries the SHA-256 of the previous one.

Each entry's hash covers its sequence number, time, kind, actor, subject, payload and the previous
hash, so editing an entry, deleting one or re-ordering two breaks the chain at a place that
``verify`` names. Nothing here updates or deletes: the API only appends.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

GENESIS = "0" * 64


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_chain"

    seq: int = Field(primary_key=True)  # 1, 2, 3, ... without gaps
    recorded_ns: int = Field(sa_type=BigInteger)  # UTC, nanoseconds since the epoch (an integer hashes exactly)
    kind: str = Field(index=True)  # command, decision, approval, setting_change, evidence, ...
    actor: str  # the user or node that caused it
    subject: str = Field(index=True)  # what it relates to, e.g. "decision:1795670233465001"
    payload_json: str
    prev_hash: str
    entry_hash: str = Field(unique=True)


def entry_digest(seq: int, recorded_ns: int, kind: str, actor: str, subject: str, payload_json: str,
                 prev_hash: str) -> str:
    canonical = json.dumps([seq, recorded_ns, kind, actor, subject, payload_json, prev_hash],
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def head(session: Session) -> AuditEntry | None:
    return session.exec(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).first()  # type: ignore[union-attr]


def append(session: Session, kind: str, actor: str, subject: str, payload: dict[str, Any],
           recorded_ns: int) -> AuditEntry:
    """Add one entry after the current head (the caller commits). Two writers racing for the same
    sequence number collide on the primary key instead of forking the chain."""
    if not kind or not actor:
        raise ValueError("an audit entry needs a kind and an actor")
    last = head(session)
    seq = 1 if last is None else last.seq + 1
    prev = GENESIS if last is None else last.entry_hash
    payload_json = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    entry = AuditEntry(seq=seq, recorded_ns=recorded_ns, kind=kind, actor=actor, subject=subject,
                       payload_json=payload_json, prev_hash=prev,
                       entry_hash=entry_digest(seq, recorded_ns, kind, actor, subject, payload_json, prev))
    session.add(entry)
    session.flush()
    return entry


def append_committed(engine: Engine, kind: str, actor: str, subject: str, payload: dict[str, Any],
                     recorded_ns: int | None = None, changes: Callable[[Session], None] | None = None,
                     attempts: int = 5) -> int:
    """Append one entry (with ``changes`` made in the same transaction) and commit; when another writer
    took the next sequence number first, go again. Returns the entry's sequence number."""
    for attempt in range(attempts):
        try:
            with Session(engine) as session:
                if changes is not None:
                    changes(session)
                entry = append(session, kind, actor, subject, payload,
                               recorded_ns if recorded_ns is not None else time.time_ns())
                session.commit()
                return entry.seq
        except IntegrityError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    head_hash: str
    broken_seq: int | None = None
    reason: str = ""


def verify(session: Session, batch: int = 5000) -> Verification:
    """Walk the chain from the genesis; stop at the first entry that does not fit."""
    expected_seq, prev, checked = 1, GENESIS, 0
    last_seq = 0
    while True:
        rows = session.exec(select(AuditEntry).where(AuditEntry.seq > last_seq)
                            .order_by(AuditEntry.seq).limit(batch)).all()
        if not rows:
            return Verification(True, checked, prev)
        for e in rows:
            if e.seq != expected_seq:
                return Verification(False, checked, prev, expected_seq,
                                    f"entry {expected_seq} is missing (deleted): the next entry is {e.seq}")
            if e.prev_hash != prev:
                return Verification(False, checked, prev, e.seq,
                                    f"entry {e.seq} does not follow entry {e.seq - 1} (its previous-hash differs: "
                                    "entries re-ordered, inserted or replaced)")
            digest = entry_digest(e.seq, e.recorded_ns, e.kind, e.actor, e.subject, e.payload_json, e.prev_hash)
            if digest != e.entry_hash:
                return Verification(False, checked, prev, e.seq, f"entry {e.seq} was edited (its content no longer "
                                                                 "matches its hash)")
            prev, expected_seq, checked, last_seq = e.entry_hash, e.seq + 1, checked + 1, e.seq
