"""Alembic environment: the connection comes from ``energizeos.records.migrate`` (never from a
hard-coded URL), so the same migrations run on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from energizeos.records import models  # noqa: F401 - registers the tables
from energizeos.records.audit import AuditEntry  # noqa: F401

target_metadata = SQLModel.metadata
connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=target_metadata,
                  render_as_batch=connection.dialect.name == "sqlite")  # SQLite alters tables by copy
with context.begin_transaction():
    context.run_migrations()
