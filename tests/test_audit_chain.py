"""The audit chain: verify names the first edited, deleted or re-ordered entry."""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from energizeos.records import audit
from energizeos.records.db import init_db, make_engine
from tests.conftest import ENERGIZEOS


@pytest.fixture
def db(db_url):
    """Ten entries, on SQLite and on the real PostgreSQL server (``db_url`` is parametrized)."""
    url = db_url
    engine = make_engine(url)
    init_db(engine)
    with Session(engine) as session:
        for i in range(1, 11):
            audit.append(session, "decision", "safety_arbiter", f"decision:{i}",
                         {"granted_kw": 10.0 * i, "reasons": ["EXPORT_LIMIT"]}, recorded_ns=1_700_000_000 * 10**9 + i)
        session.commit()
    return url, engine


def check(engine) -> audit.Verification:
    with Session(engine) as session:
        return audit.verify(session)


def test_an_intact_chain_verifies_and_sqlite_uses_wal(db):
    _url, engine = db
    result = check(engine)
    assert result.ok and result.checked == 10 and len(result.head_hash) == 64
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_an_edited_entry_is_named(db):
    _url, engine = db
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_chain SET payload_json = :p WHERE seq = 5"),
                     {"p": json.dumps({"granted_kw": 500.0})})
    result = check(engine)
    assert not result.ok and result.broken_seq == 5 and "edited" in result.reason


def test_a_deleted_entry_is_named(db):
    _url, engine = db
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_chain WHERE seq = 7"))
    result = check(engine)
    assert not result.ok and result.broken_seq == 7 and "missing" in result.reason


def test_a_swapped_pair_is_named(db):
    _url, engine = db
    cols = "recorded_ns, kind, actor, subject, payload_json, prev_hash, entry_hash"
    with engine.begin() as conn:
        a = conn.execute(text(f"SELECT {cols} FROM audit_chain WHERE seq = 3")).one()
        b = conn.execute(text(f"SELECT {cols} FROM audit_chain WHERE seq = 4")).one()
        conn.execute(text("UPDATE audit_chain SET entry_hash = 'x' WHERE seq = 3"))  # free the unique hash
        for seq, row in ((4, a), (3, b)):
            conn.execute(text("UPDATE audit_chain SET recorded_ns=:r, kind=:k, actor=:a, subject=:s, payload_json=:p, "
                              "prev_hash=:ph, entry_hash=:eh WHERE seq=:seq"),
                         {"r": row[0], "k": row[1], "a": row[2], "s": row[3], "p": row[4], "ph": row[5],
                          "eh": row[6], "seq": seq})
    result = check(engine)
    assert not result.ok and result.broken_seq == 3 and "does not follow" in result.reason


def test_the_cli_exits_non_zero_naming_the_entry_and_checks_an_anchored_head(db):
    url, engine = db
    ok = subprocess.run([ENERGIZEOS, "audit", "verify", "--db", url, "--json"], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["checked"] == 10
    head = json.loads(ok.stdout)["head_hash"]
    with engine.begin() as conn:  # a rewritten tail is consistent by itself...
        conn.execute(text("DELETE FROM audit_chain WHERE seq = 10"))
    assert check(engine).ok
    anchored = subprocess.run([ENERGIZEOS, "audit", "verify", "--db", url, "--expect-head", head],
                              capture_output=True, text=True)
    assert anchored.returncode == 1 and "not at the expected head" in anchored.stdout  # ...but not to an anchor
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_chain SET actor = 'mallory' WHERE seq = 2"))
    broken = subprocess.run([ENERGIZEOS, "audit", "verify", "--db", url], capture_output=True, text=True)
    assert broken.returncode == 1 and "entry 2 was edited" in broken.stdout


def test_a_writer_with_a_stale_view_cannot_fork_the_chain(db):
    _url, engine = db
    with Session(engine) as first, Session(engine) as second:
        stale_head = audit.head(second)  # second still believes entry 10 is the head
        assert stale_head is not None and stale_head.seq == 10
        audit.append(first, "note", "a", "x", {}, 1)
        first.commit()  # entry 11 now exists
        payload = "{}"
        fork = audit.AuditEntry(seq=11, recorded_ns=2, kind="note", actor="b", subject="y", payload_json=payload,
                                prev_hash=stale_head.entry_hash,
                                entry_hash=audit.entry_digest(11, 2, "note", "b", "y", payload, stale_head.entry_hash))
        second.add(fork)
        with pytest.raises(IntegrityError):
            second.commit()
    assert check(engine).ok and check(engine).checked == 11


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seq=st.integers(1, 10), column=st.sampled_from(["recorded_ns", "kind", "actor", "subject", "payload_json"]))
def test_any_single_field_edit_is_caught_at_that_entry(tmp_path_factory, seq, column):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('chain') / 'r.db'}")
    init_db(engine)
    with Session(engine) as session:
        for i in range(1, 11):
            audit.append(session, "decision", "safety_arbiter", f"d:{i}", {"i": i}, recorded_ns=i)
        session.commit()
    value = 999 if column == "recorded_ns" else "tampered"
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE audit_chain SET {column} = :v WHERE seq = :s"), {"v": value, "s": seq})
    result = check(engine)
    assert not result.ok and result.broken_seq == seq
