"""``energizeos evidence add|list|check``: files kept as interconnection and commissioning evidence;
``signoff|package|verify``: the witness sign-off of a commissioning run and its evidence package."""

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


# --- commissioning: witness sign-off and the evidence package -----------------------------------------
@app.command()
def signoff(
    run_id: int = typer.Option(..., "--run", help="The commissioning run to sign."),
    user: str = typer.Option(..., "--user", help="The witness's account; its role must hold 'witness' "
                                                  "(epc, engineer or admin)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the witness's password from stdin "
                                                                        "instead of asking for it."),
    db: str = DB,
) -> None:
    """Sign a finished commissioning run as its witness (name, organisation and time go on the audit chain).
    The witness types their own password: the signature is theirs, whoever's console it is."""
    from energizeos.access.accounts import login, logout
    from energizeos.records.signoff import SignoffError, sign_off

    engine = _engine(db)
    password = input().rstrip("\n") if password_stdin else getpass.getpass(f"password of {user}: ")
    session = login(engine, user, password)  # wrong passwords count towards the lock-out, on the audit chain
    if not session.ok:
        typer.echo(f"error: {session.message}", err=True)
        raise typer.Exit(2)
    try:
        made = sign_off(engine, run_id, user, via="console")
    except SignoffError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        logout(engine, session.token)
    org = f" ({made.organisation})" if made.organisation else ""
    typer.echo(f"run {made.run_id} signed off by {made.witness}{org} at {made.witnessed_at.isoformat()}\n"
               f"run SHA-256 {made.run_sha256}\n"
               f"audit entry {made.audit_seq}, hash {made.entry_hash} (keep it: `evidence verify --expect-signoff` "
               "checks a package against it)")


@app.command()
def package(
    run_id: int = typer.Option(..., "--run", help="The witnessed commissioning run."),
    out: Path = typer.Option(..., "--out", help="The zip file to write."),
    replace: bool = typer.Option(False, "--replace", help="Replace OUT if it exists."),
    db: str = DB,
) -> None:
    """Write the run's evidence package: run.json, report.pdf, settings files, audit entries, manifest.json."""
    from energizeos.records.package import PackageError, build

    try:
        built = build(_engine(db), run_id, out, replace=replace)
    except PackageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for warning in built.warnings:
        typer.echo(f"WARNING: {warning}", err=True)
    typer.echo(f"{built.path}: run {built.run_id}, {len(built.files)} files and manifest.json; run SHA-256 (signed) "
               f"{built.run_sha256}; sign-off audit entry {built.signoff_seq}")


@app.command()
def verify(
    file: Path = typer.Argument(..., help="The evidence package (.zip)."),
    expect_signoff: str = typer.Option("", "--expect-signoff", help="The sign-off entry's hash as noted when the "
                                                                     "run was signed: also catches a package "
                                                                     "rewritten as a whole."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check a package without the database. Exit 0 when intact, 1 naming each problem, 2 when unreadable."""
    from energizeos.records.package_check import verify_package

    report = verify_package(file, expect_signoff.strip().lower())
    if as_json:
        print(json.dumps({"ok": report.ok, "problems": report.problems, "summary": report.summary}, indent=1))
    elif report.ok:
        typer.echo(f"{file}: evidence package OK")
        for line in report.summary:
            typer.echo(f"  {line}")
    else:
        typer.echo(f"{file}: evidence package FAILED verification ({len(report.problems)} problem(s)):")
        for line in report.problems:
            typer.echo(f"  - {line}")
    raise typer.Exit(0 if report.ok else 1 if report.readable else 2)
