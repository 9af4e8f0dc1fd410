"""``energizeos users list|add|set-role|disable|enable|unlock|passwd``: the app's accounts, from the edge PC's
console (whoever can run this can read the database anyway). Every change goes on the audit chain as
actor ``console``; passwords are printed once and stored only as Argon2id hashes."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from energizeos.records.models import ROLES

app = typer.Typer(help="Users of the app: accounts, roles, lock-outs and passwords.", no_args_is_help=True)
DB = typer.Option("", "--db", help="Database URL (default: $ENERGIZEOS_DB_URL or the SQLite file).")
ROLE_HELP = "one of " + ", ".join(ROLES)


def _engine(db: str):
    from energizeos.records.db import init_db, make_engine

    engine = make_engine(db or None)
    init_db(engine)
    return engine


def _do(fn, *args) -> None:
    from energizeos.access.accounts import AccountError

    try:
        fn(*args)
    except AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("list")
def list_users(db: str = DB) -> None:
    """Every account with its role and lock-out state."""
    from energizeos.access.accounts import list_users as users

    table = Table("user", "role", "name", "organisation", "disabled", "failed logins", "locked until")
    for u in users(_engine(db)):
        table.add_row(u.username, u.role, u.display_name, u.organisation, "yes" if u.disabled else "",
                      str(u.failed_logins), u.locked_until.isoformat(timespec="seconds") if u.locked_until else "")
    Console().print(table)


@app.command()
def add(username: str, role: str = typer.Option(..., "--role", help=ROLE_HELP),
        name: str = typer.Option("", "--name", help="Display name."),
        organisation: str = typer.Option("", "--organisation", help="e.g. the utility, the EPC."),
        password_stdin: bool = typer.Option(False, "--password-stdin",
                                            help="Read the password from stdin instead of generating one."),
        db: str = DB) -> None:
    """Create an account; a random password is printed once unless one is given on stdin."""
    from energizeos.access.accounts import AccountError, create_user

    password = input().rstrip("\n") if password_stdin else None
    try:
        made = create_user(_engine(db), None, username, role, password, name, organisation)
    except AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"created {username} ({role})")
    if not password_stdin:
        typer.echo(f"password (shown once): {made}")


@app.command("set-role")
def set_role(username: str, role: str = typer.Argument(..., help=ROLE_HELP), db: str = DB) -> None:
    """Change an account's role (applies to its next action)."""
    from energizeos.access.accounts import set_role as run

    _do(run, _engine(db), None, username, role)
    typer.echo(f"{username} is now {role}")


@app.command()
def disable(username: str, db: str = DB) -> None:
    """Disable an account and end its sessions."""
    from energizeos.access.accounts import set_disabled

    _do(set_disabled, _engine(db), None, username, True)
    typer.echo(f"{username} disabled")


@app.command()
def enable(username: str, db: str = DB) -> None:
    from energizeos.access.accounts import set_disabled

    _do(set_disabled, _engine(db), None, username, False)
    typer.echo(f"{username} enabled")


@app.command()
def unlock(username: str, db: str = DB) -> None:
    """Clear a lock-out after too many wrong passwords."""
    from energizeos.access.accounts import unlock as run

    _do(run, _engine(db), None, username)
    typer.echo(f"{username} unlocked")


@app.command()
def passwd(username: str, db: str = DB) -> None:
    """Give an account a new random password (printed once) and end its sessions."""
    from energizeos.access.accounts import AccountError, set_password

    try:
        password = set_password(_engine(db), None, username)
    except AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"new password for {username} (shown once): {password}")
