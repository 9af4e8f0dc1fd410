"""The edge's outbox: every record for the aggregator, numbered, on disk until it is acknowledged.

One SQLite file (WAL, ``synchronous=FULL``: a committed record survives a crash or power cut).
``seq`` comes from SQLite's AUTOINCREMENT, so numbers are never reused, even after pruning. The
outbox has an ``epoch`` (a random id made with the file): an edge reinstalled with a new outbox
starts a new numbering the aggregator can tell apart from the old one.
Records are pruned only once acknowledged and older than the retention, so a link that is down
for days loses nothing — the file grows instead (``pending`` says by how much).
"""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
from pathlib import Path
from typing import Any

from energizeos.remote.protocol import KINDS, Record

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    body TEXT NOT NULL
);
"""


class Outbox:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)  # explicit transactions below
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        meta = dict(self.db.execute("SELECT name, value FROM meta").fetchall())
        if "epoch" not in meta:
            meta = {"epoch": secrets.token_hex(6), "acked": "0"}
            with self._tx():
                self.db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        self.epoch: str = meta["epoch"]
        self._acked = int(meta["acked"])
        self._head = self._max_seq()

    def _tx(self):
        return _Transaction(self.db)

    def _max_seq(self) -> int:
        # sqlite_sequence keeps the highest seq ever given, even when those rows were pruned
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        return int(row[0]) if row else 0

    @property
    def head(self) -> int:
        return self._head

    @property
    def acked(self) -> int:
        return self._acked

    @property
    def pending(self) -> int:
        return self._head - self._acked

    def first_seq(self) -> int:
        """The oldest record still held (``head + 1`` when empty)."""
        row = self.db.execute("SELECT MIN(seq) FROM records").fetchone()
        return int(row[0]) if row[0] is not None else self._head + 1

    def append(self, records: list[tuple[str, int, dict[str, Any]]]) -> int:
        """Store ``(kind, time_ns, body)`` records in one transaction; returns the new head."""
        if not records:
            return self._head
        rows = []
        for kind, time_ns, body in records:
            if kind not in KINDS:
                raise ValueError(f"outbox: unknown record kind {kind!r}")
            rows.append((kind, int(time_ns), json.dumps(_finite(body), separators=(",", ":"), allow_nan=False)))
        with self._tx():
            self.db.executemany("INSERT INTO records (kind, time_ns, body) VALUES (?, ?, ?)", rows)
        self._head = self._max_seq()
        return self._head

    def read(self, after: int, limit: int) -> list[Record]:
        rows = self.db.execute("SELECT seq, kind, time_ns, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
                               (after, limit)).fetchall()
        return [Record(seq, kind, time_ns, json.loads(body)) for seq, kind, time_ns, body in rows]

    def set_acked(self, have: int) -> None:
        """What the aggregator holds. It may go back (an aggregator restored from a backup), but never
        below what is still here to send again."""
        have = max(min(have, self._head), self.first_seq() - 1)
        if have != self._acked:
            with self._tx():
                self.db.execute("UPDATE meta SET value = ? WHERE name = 'acked'", (str(have),))
            self._acked = have

    def prune(self, older_than_ns: int) -> int:
        """Delete acknowledged records older than the cutoff; returns how many went."""
        with self._tx():
            cur = self.db.execute("DELETE FROM records WHERE seq <= ? AND time_ns < ?", (self._acked, older_than_ns))
        return cur.rowcount

    def close(self) -> None:
        self.db.close()


def _finite(value: Any) -> Any:
    """NaN and infinities become None (JSON has no such numbers; a gap stays a gap, as in the historian)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
