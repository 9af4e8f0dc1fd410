"""Database engine: SQLite in WAL mode under $ENERGIZEOS_HOME by default, any SQLAlchemy URL
(e.g. PostgreSQL) through ``ENERGIZEOS_DB_URL`` or the caller — the same code for both."""

from __future__ import annotations

import os

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, create_engine

from energizeos.home import home


def database_url() -> str:
    return os.environ.get("ENERGIZEOS_DB_URL") or f"sqlite:///{home() / 'energizeos.db'}"


def make_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    engine = create_engine(url)
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # WAL: readers never block the writer
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()
    return engine


def init_db(engine: Engine) -> None:
    """Create the tables that do not exist yet."""
    import energizeos.records.audit  # noqa: F401 - registers its table

    SQLModel.metadata.create_all(engine)
