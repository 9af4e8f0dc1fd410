"""``energizeos report daily|monthly``: the reporter's report on demand, kept and put on the audit chain."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="Daily and monthly performance, savings and availability reports from the records.",
                  no_args_is_help=True)

FORMAT_HELP = "pdf, html or csv"


def _make(kind: str, label: str, fmt: str, out: str, site_config: str, db: str, user: str, as_json: bool) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from energizeos.records.db import error_line, init_db, make_engine
    from energizeos.reports import store
    from energizeos.reports.build import ReportError, build_report
    from energizeos.reports.render import FORMATS
    from energizeos.site_config import SiteConfigError, load_site_config, report_settings
    from energizeos.tariffs import TariffError

    if fmt not in FORMATS:
        typer.echo(f"error: unknown format {fmt!r}; one of {', '.join(FORMATS)}", err=True)
        raise typer.Exit(2)
    console = Console(stderr=True)
    started = time.perf_counter()
    try:
        cfg = load_site_config(site_config)
        settings = report_settings(cfg)
        engine = make_engine(db or cfg.records.db_url or None)
        init_db(engine)
        with console.status(f"computing the {kind} report {label} from the records…"):
            doc = build_report(engine, kind, label, settings)
        with console.status(f"rendering {fmt}…"):
            kept = store.save(engine, doc, fmt, f"cli:{user}", Path(out) if out else None)
    except (SiteConfigError, TariffError, ReportError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except OSError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except SQLAlchemyError as exc:  # the database: say which error, not a traceback
        typer.echo(f"error: records database: {error_line(exc)}", err=True)
        raise typer.Exit(1) from exc
    seconds = time.perf_counter() - started
    if as_json:
        typer.echo(json.dumps({"path": str(kept.path), "format": fmt, "sha256": kept.sha256,
                               "audit_seq": kept.audit_seq, "has_data": doc.has_data, "notes": doc.notes,
                               "figures": doc.figures, "figures_sha256": doc.figures_sha256,
                               "seconds": round(seconds, 3)}, default=str))
        return
    for note in doc.notes:
        console.print(f"[yellow]note:[/] {note}")
    typer.echo(f"{kept.path}\nsha256 {kept.sha256} (audit entry {kept.audit_seq}), {seconds:.1f} s")


# the options both commands take (typer reads these as the parameters' defaults)
FORMAT = typer.Option("pdf", "--format", help=FORMAT_HELP)
OUT = typer.Option("", "--out", help="File to write (default: under $ENERGIZEOS_HOME/reports).")
SITE_CONFIG = typer.Option("config/sim_site.yaml", "--site-config")
DB = typer.Option("", "--db", help="Records database URL (default: the site's).")
USER = typer.Option("operator", "--user", help="Who asked (recorded on the audit chain).")
AS_JSON = typer.Option(False, "--json", help="Print the figures and the file's hash as JSON.")


@app.command()
def daily(day: str = typer.Option(..., "--date", help="Site-local day, YYYY-MM-DD."), fmt: str = FORMAT,
          out: str = OUT, site_config: str = SITE_CONFIG, db: str = DB, user: str = USER,
          as_json: bool = AS_JSON) -> None:
    """The report of one site day: energy, battery, peaks, savings, availability, exports, alarms, plan."""
    _make("daily", day, fmt, out, site_config, db, user, as_json)


@app.command()
def monthly(month: str = typer.Option(..., "--month", help="Site-local month, YYYY-MM."), fmt: str = FORMAT,
            out: str = OUT, site_config: str = SITE_CONFIG, db: str = DB, user: str = USER,
            as_json: bool = AS_JSON) -> None:
    """The report of one site month, with its bills with and without the battery."""
    _make("monthly", month, fmt, out, site_config, db, user, as_json)
