"""``energizeos commission list|show|run``: FAT/SAT procedures as data, run against the simulated site
(in-process, deterministic: ``--target sim``) or the running site over Zenoh (``--target live``:
fault injection where the site is simulated, operator prompts on real equipment)."""

from __future__ import annotations

import getpass
import json
import sys

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Commissioning: FAT/SAT procedures, run step by step, each result on the audit chain.",
                  no_args_is_help=True)
DB = typer.Option("", "--db", help="Database URL (default: $ENERGIZEOS_DB_URL or the SQLite file).")
SITE_CONFIG = typer.Option("config/sim_site.yaml", "--site-config", help="Site configuration (devices, limits).")
STATUS_STYLE = {"pass": "green", "fail": "red", "skipped": "yellow"}


def _procedures():
    from energizeos.commissioning.model import ProcedureError, shipped

    try:
        return shipped()
    except ProcedureError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("list")
def list_procedures(as_json: bool = typer.Option(False, "--json")) -> None:
    """The shipped procedures, in the order ``run --all`` runs them."""
    procedures = _procedures()
    if as_json:
        print(json.dumps([{"id": p.id, "title": p.title, "phases": p.phases, "steps": [s.id for s in p.steps]}
                          for p in procedures.values()], indent=1))
        return
    table = Table("procedure", "title", "phases", "steps")
    for p in procedures.values():
        table.add_row(p.id, p.title, "/".join(p.phases), str(len(p.steps)))
    Console(width=160).print(table)


@app.command()
def show(procedure: str) -> None:
    """One procedure's steps: what is done, what is observed, the acceptance criteria and the evidence."""
    procedures = _procedures()
    if procedure not in procedures:
        typer.echo(f"error: unknown procedure {procedure!r}; procedures: {', '.join(procedures)}", err=True)
        raise typer.Exit(2)
    p = procedures[procedure]
    console = Console(width=160)
    console.print(f"[bold]{p.id}[/]: {p.title} ({'/'.join(p.phases)})\n{p.purpose}")
    for i, step in enumerate(p.steps, 1):
        console.print(f"\n[bold]{i}. {step.id}[/]: {step.title}\n  action: {step.do.action} {step.do.params or ''}")
        if step.prompt:
            console.print(f"  on equipment: {step.prompt}")
        console.print(f"  observe: {step.observe}")
        for c in step.acceptance:
            limits = {k: v for k, v in c.model_dump().items() if k in ("min", "max", "equals", "contains",
                                                                        "excludes") and v is not None}
            console.print(f"  accept: {c.measure} {limits} {c.unit}".rstrip() + (f"  ({c.why})" if c.why else ""))


def _check_people(engine, operator: str, witness: str) -> str:
    """The operator must hold the commission permission, the witness the witness permission; returns the
    witness's organisation."""
    from sqlmodel import Session, select

    from energizeos.access.permissions import PERMISSIONS
    from energizeos.records.models import User
    from energizeos.records.users import authorize

    _role, why = authorize(engine, operator, "run commissioning", PERMISSIONS["commission"])
    if why:
        raise ValueError(f"operator: {why}; add an engineer with `energizeos users add NAME --role engineer`")
    if not witness:
        return ""
    _role, why = authorize(engine, witness, "witness commissioning", PERMISSIONS["witness"])
    if why:
        raise ValueError(f"witness: {why}")
    with Session(engine) as session:
        user = session.exec(select(User).where(User.username == witness)).one()
        return user.organisation


@app.command()
def run(
    procedures: list[str] = typer.Argument(None, help="Procedure ids (see `commission list`)."),
    run_all: bool = typer.Option(False, "--all", help="Every shipped procedure, in order."),
    target: str = typer.Option("sim", "--target", help="sim: the simulated site in this process (FAT, "
                                                        "deterministic); live: the running site over Zenoh."),
    operator: str = typer.Option("", "--operator", help="Who runs it (default: the login name); needs the "
                                                        "commission permission (engineer, admin)."),
    witness: str = typer.Option("", "--witness", help="Who witnesses it (a user with the witness permission)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run as JSON: every step with status and measured."),
    site_config: str = SITE_CONFIG,
    db: str = DB,
    limit_s: float = typer.Option(4 * 3600.0, "--limit-s", help="Longest run (plant seconds with sim)."),
) -> None:
    """Run procedures step by step; each step's measured values and verdict go on the audit chain. A failing
    step stops the run safely: standby, every injected condition cleared, nothing left forced."""
    from energizeos.commissioning import live, sim_site
    from energizeos.commissioning.recorder import Recorder
    from energizeos.records.db import init_db, make_engine
    from energizeos.site_config import SiteConfigError, load_site_config

    table = _procedures()
    names = list(table) if run_all else list(procedures or [])
    unknown = [n for n in names if n not in table]
    if not names or unknown or target not in ("sim", "live"):
        why = (f"unknown procedure(s) {unknown}" if unknown else "name procedures or give --all" if not names
               else f"--target must be sim or live, not {target!r}")
        typer.echo(f"error: {why}; procedures: {', '.join(table)}", err=True)
        raise typer.Exit(2)
    operator = operator or getpass.getuser()
    try:
        config = load_site_config(site_config)
        engine = make_engine(db or config.records.db_url or None)
        init_db(engine)
        organisation = _check_people(engine, operator, witness)
    except (SiteConfigError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    recorder = Recorder(engine, config.site, operator, witness, organisation)
    err = Console(stderr=True)

    def progress(step) -> None:
        if not as_json:
            style = STATUS_STYLE.get(step.status, "")
            err.print(f"{step.number:3d} {step.name:38s} [{style}]{step.status}[/]"
                      + (f"  {step.reason}" if step.reason and step.status == "fail" else ""))

    chosen = [table[n] for n in names]
    if target == "sim":
        result = sim_site.run(config, chosen, operator, recorder, witness, limit_s=limit_s, on_step=progress)
    else:
        console_operator = live.ConsoleOperator(read=input, write=lambda text: print(text, file=sys.stderr))
        try:
            result = live.run(config, chosen, operator, recorder, witness, ask=console_operator.ask,
                              limit_s=limit_s, on_step=progress)
        finally:
            console_operator.close()
    if as_json:
        print(json.dumps(result.as_dict(), indent=1, default=str))
    else:
        counts = result.as_dict()["counts"]
        err.print(f"run {result.run_id}: [bold]{result.status}[/] ({counts['pass']} passed, {counts['fail']} failed, "
                  f"{counts['skipped']} skipped)")
        if result.reason:
            err.print(f"why: {result.reason}")
        if result.safe_stop:
            err.print(f"safe stop: {result.safe_stop}")
    if result.status != "passed":
        raise typer.Exit(1)
