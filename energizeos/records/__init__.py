"""Records: the database (SQLite by default, PostgreSQL by URL) and the tamper-evident audit chain."""
