"""``energizeos audit verify|tail``: check the tamper-evident audit chain."""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="The tamper-evident audit chain.", no_args_is_help=True)


@app.command()
def verify(
    db: str = typer.Option("", "--db", help="Database URL (default: $ENERGIZEOS_DB_URL or the SQLite file)."),
    expect_head: str = typer.Option("", help="Head hash recorded elsewhere (a report, a witness): also "
                                             "catches a rewritten or truncated tail."),
    rows: bool = typer.Option(True, "--rows/--chain-only", help="Also recompute every sealed record row "
                                                                 "(commands, decisions, alarm transitions)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Walk the chain, then the rows it seals; exit 1 naming the first broken entry or row."""
    from sqlmodel import Session

    from energizeos.records import audit
    from energizeos.records.db import init_db, make_engine
    from energizeos.records.writer import verify_sealed_rows

    engine = make_engine(db or None)
    init_db(engine)
    with Session(engine) as session:
        result = audit.verify(session)
        problem = verify_sealed_rows(session) if rows and result.ok else None
    ok = result.ok and (not expect_head or result.head_hash == expect_head)
    reason, broken = result.reason, result.broken_seq
    if result.ok and not ok:
        reason = f"the chain ends at {result.head_hash[:16]}..., not at the expected head {expect_head[:16]}..."
    if ok and problem is not None:
        ok, reason, broken = False, problem.reason, problem.audit_seq
    if as_json:
        print(json.dumps({"ok": ok, "checked": result.checked, "head_hash": result.head_hash,
                          "broken_seq": broken, "reason": reason}))
    elif ok:
        print(f"audit chain intact: {result.checked} entries, head {result.head_hash}")
    else:
        print(f"audit chain BROKEN: {reason}")
    raise typer.Exit(0 if ok else 1)


@app.command()
def tail(
    count: int = typer.Option(10, "-n", help="How many of the newest entries."),
    db: str = typer.Option("", "--db"),
) -> None:
    """The newest entries, oldest first."""
    from sqlmodel import Session, select

    from energizeos.records.audit import AuditEntry
    from energizeos.records.db import init_db, make_engine

    engine = make_engine(db or None)
    init_db(engine)
    with Session(engine) as session:
        rows = session.exec(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(count)).all()  # type: ignore[union-attr]
    for e in reversed(rows):
        print(f"{e.seq:>8} {e.recorded_ns} {e.kind:14s} {e.actor:16s} {e.subject:30s} {e.entry_hash[:16]} "
              f"{e.payload_json}")
