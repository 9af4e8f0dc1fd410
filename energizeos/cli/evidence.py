"""``energizeos evidence add|list|check|package|verify``: files kept as interconnection and commissioning evidence,
and the evidence package of a commissioning run that another machine can check."""

from __future__ import annotations

import getpass
import hashlib
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


@app.command()
def package(
    run: int = typer.Option(..., "--run", help="The commissioning run."),
    out: Path = typer.Option(..., "--out", help="The zip file to write."),
    by: str = typer.Option("", "--by", help="Who makes it (default: the login name)."),
    site_config: str = typer.Option("config/sim_site.yaml", "--site-config", help="For the site's time zone."),
    db: str = DB,
) -> None:
    """A self-contained evidence package of a commissioning run: every step and measurement (JSON), a PDF
    report, the evidence files, the run's audit entries and a manifest of SHA-256 hashes."""
    import time
    from datetime import UTC, datetime

    from energizeos.commissioning import package as pkg
    from energizeos.commissioning.report import report_doc
    from energizeos.records import audit
    from energizeos.reports.render.pdf import render_pdf
    from energizeos.site_config import SiteConfigError, load_site_config

    try:
        timezone = load_site_config(site_config).timezone
    except SiteConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    engine, who, now_ns = _engine(db), by or getpass.getuser(), time.time_ns()
    now = datetime.fromtimestamp(now_ns / 1e9, UTC)
    try:
        manifest = pkg.build(engine, run, out, who, now.isoformat(),
                             lambda body, head: render_pdf(report_doc(body, head, timezone, now)))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    fingerprint = hashlib.sha256(out.read_bytes()).hexdigest()
    seq = audit.append_committed(engine, "evidence_package", who, f"commissioning_run:{run}/package",
                                 {"file": out.name, "sha256": fingerprint, "files": len(manifest["files"]),
                                  "audit_head": manifest["audit_head"]}, now_ns)
    typer.echo(f"{out}: {len(manifest['files'])} files, SHA-256 {fingerprint} (audit entry {seq})")


@app.command()
def verify(file: Path = typer.Argument(..., help="An evidence package (zip)."),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Check a package on any machine, without the database: every file against the manifest, every audit
    entry against its hash, the steps and files against their audit entries. Exit 1 naming what fails."""
    from energizeos.commissioning.package import verify as check

    problems = check(file)
    if as_json:
        print(json.dumps({"file": str(file), "ok": not problems, "problems": problems}, indent=1))
    else:
        for problem in problems:
            typer.echo(problem)
        if not problems:
            typer.echo(f"{file}: intact (every file, audit entry and step agrees)")
    if problems:
        raise typer.Exit(1)
