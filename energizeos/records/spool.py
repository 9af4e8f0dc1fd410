"""A disk spool of batches the database could not take: one file per batch, numbered in order.

Files are written to a temporary name, flushed to disk and renamed, so a crash leaves either the
whole batch or nothing. Replay goes oldest first and removes a file only after its batch is in the
database; the writer's idempotent inserts make a replay after a crash between the two harmless.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from energizeos.records.writer import Batch

SUFFIX = ".batch.json"


class SpoolFileDamaged(ValueError):
    """A spool file that does not parse; it has been renamed to ``*.damaged`` and is kept."""


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = self.files()
        self._next = int(existing[-1].name.split(".")[0]) + 1 if existing else 1

    def files(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def __len__(self) -> int:
        return len(self.files())

    def rows_pending(self) -> int:
        return sum(Batch.from_json(p.read_text()).count for p in self.files())

    def put(self, batch: Batch) -> Path:
        path = self.directory / f"{self._next:012d}{SUFFIX}"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            fh.write(batch.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        self._next += 1
        return path

    def take_oldest(self) -> Batch | None:
        """Remove and return the oldest batch (to set aside one the database refuses)."""
        files = self.files()
        if not files:
            return None
        batch = Batch.from_json(files[0].read_text())
        files[0].unlink()
        return batch

    def replay(self, write: Callable[[Batch], None], max_batches: int | None = None) -> int:
        """Write spooled batches in order until one fails (its exception propagates); returns how many went."""
        done = 0
        for path in self.files():
            if max_batches is not None and done >= max_batches:
                break
            try:
                batch = Batch.from_json(path.read_text())
            except (ValueError, KeyError) as exc:  # a damaged file is kept aside, never silently dropped
                kept = path.with_suffix(".damaged")
                path.rename(kept)
                raise SpoolFileDamaged(f"spool file {path.name} is damaged ({exc!r}); kept as {kept.name}") from exc
            write(batch)
            path.unlink()
            done += 1
        return done
