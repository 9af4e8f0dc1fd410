"""Database engine: SQLite in WAL mode under $ENERGIZEOS_HOME by default, any SQLAlchemy URL
(e.g. PostgreSQL) through ``ENERGIZEOS_DB_URL`` or the caller — the same code for both."""

from __future__ import annotations

import os

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import create_engine

from energizeos.home import home


def database_url() -> str:
    return os.environ.get("ENERGIZEOS_DB_URL") or f"sqlite:///{home() / 'energizeos.db'}"


def make_engine(url: str | None = None, sqlite_busy_timeout_ms: int = 5000) -> Engine:
    """``sqlite_busy_timeout_ms``: how long a write waits for a lock held by another process before
    "database is locked" (the historian keeps it short and spools instead of stalling its executor)."""
    url = url or database_url()
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # WAL: readers never block the writer
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout_ms)}")
            cursor.close()
    return engine


def init_db(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent, safe when several nodes start at once)."""
    from energizeos.records.migrate import upgrade

    upgrade(engine)


def redacted(engine: Engine) -> str:
    """The URL with any password hidden, for messages."""
    return engine.url.render_as_string(hide_password=True)


def error_line(exc: BaseException, width: int = 160) -> str:
    """The first line of a database error, short enough for a log line or a status message
    (SQLAlchemy appends the whole statement and its parameters; an error met while flushing before a query
    comes after a line saying so, which would hide it)."""
    lines = [line for line in str(exc).strip().splitlines() if not line.startswith("(raised as a result of")]
    return (lines[0] if lines else type(exc).__name__)[:width]
