"""The one data directory: DB, indexes, bags, reports, launch runs. ``$ENERGIZEOS_HOME``, default ./var."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    path = Path(os.environ.get("ENERGIZEOS_HOME") or "var").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def subdir(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
