"""``energizeos evidence add|list|check``: files kept as interconnection and commissioning evidence."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Evidence: files kept with their SHA-256, who, when and what they relate to.",
                  no_args_is_help=True)
DB = typer.Option("", "--db", help="Database URL (default: $ENERGIZEOS_DB_URL or the SQLite file).")


def _engine(db: str):
    from energizeos.records.db import init_db, make_engine

    engine = make_engine(db or None)
    init_db(engine)
    return engine


@app.command()
def add(
    file: Path = typer.Argument(..., help="The file to keep."),
    kind: str = typer.Option(..., "--kind", help="protection-settings, test-result, approval, witness-signoff, "
                                                 "interconnection, drawing or other."),
    note: str = typer.Option("", "--note"),
    relates_to: str = typer.Option("", "--relates-to", help='What it concerns, e.g. "relay:SEL-700G" or "run:12".'),
    by: str = typer.Option("", "--by", help="Who adds it (default: the login name)."),
    db: str = DB,
) -> None:
    """Copy FILE into the evidence store, record its SHA-256 and put it on the audit chain."""
    from energizeos.records import evidence

    try:
        item = evidence.add(_engine(db), file, kind, by or getpass.getuser(), note, relates_to)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"evidence {item.id}: {item.filename} sha256 {item.sha256} ({item.size_bytes} bytes), "
               f"audit entry {item.audit_seq}")


@app.command("list")
def list_items(
    kind: str = typer.Option("", "--kind"),
    relates_to: str = typer.Option("", "--relates-to"),
    as_json: bool = typer.Option(False, "--json"),
    db: str = DB,
) -> None:
    """Evidence items, oldest first."""
    from energizeos.records import evidence

    rows = evidence.items(_engine(db), kind or None, relates_to or None)
    if as_json:
        print(json.dumps([{"id": r.id, "recorded_at": r.recorded_at.isoformat(), "kind": r.kind,
                           "filename": r.filename, "sha256": r.sha256, "size_bytes": r.size_bytes,
                           "added_by": r.added_by, "relates_to": r.relates_to, "note": r.note,
                           "audit_seq": r.audit_seq} for r in rows], indent=1))
        return
    table = Table("id", "recorded (UTC)", "kind", "file", "sha256", "by", "relates to", "note")
    for r in rows:
        table.add_row(str(r.id), r.recorded_at.strftime("%Y-%m-%d %H:%M:%S"), r.kind, r.filename, r.sha256[:16] + "…",
                      r.added_by, r.relates_to, r.note)
    Console(width=200).print(table)


@app.command()
def check(db: str = DB) -> None:
    """Re-hash every stored copy; exit 1 naming a missing or altered file."""
    from energizeos.records import evidence

    problems = evidence.check_store(_engine(db))
    for p in problems:
        typer.echo(p.reason)
    if problems:
        raise typer.Exit(1)
    typer.echo("every stored evidence file matches its recorded SHA-256")
