"""``energizeos db upgrade|downgrade|status``: the records database and its migrations."""

from __future__ import annotations

import typer

app = typer.Typer(help="The records database (SQLite by default, PostgreSQL by URL) and its migrations.",
                  no_args_is_help=True)
DB = typer.Option("", "--db", help="Database URL (default: $ENERGIZEOS_DB_URL or the SQLite file).")


@app.command()
def upgrade(revision: str = typer.Argument("head"), db: str = DB) -> None:
    """Migrate the schema (to the newest revision by default)."""
    from energizeos.records.db import make_engine, redacted
    from energizeos.records.migrate import upgrade as run

    engine = make_engine(db or None)
    typer.echo(f"{redacted(engine)}: at revision {run(engine, revision)}")


@app.command()
def downgrade(revision: str = typer.Argument(..., help='Target revision, "base" for an empty database.'),
              db: str = DB) -> None:
    """Migrate the schema back (data in dropped tables is lost)."""
    from energizeos.records.db import make_engine, redacted
    from energizeos.records.migrate import downgrade as run

    engine = make_engine(db or None)
    typer.echo(f"{redacted(engine)}: at revision {run(engine, revision) or 'base'}")


@app.command()
def status(db: str = DB) -> None:
    """The database, its schema revision and the newest one this version knows."""
    from energizeos.records.db import make_engine, redacted
    from energizeos.records.migrate import current_revision, head_revision

    engine = make_engine(db or None)
    current, head = current_revision(engine), head_revision()
    typer.echo(f"{redacted(engine)}: revision {current or '(empty)'}, newest {head}"
               + ("" if current == head else " - run 'energizeos db upgrade'"))
