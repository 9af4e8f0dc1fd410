"""Reading a YAML file an integrator wrote, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


def read_yaml(path: Path, what: str, error: type[Exception]) -> Any:
    """The parsed document (``{}`` for an empty file); ``error`` names the file when it is missing or broken."""
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {exc}") from exc


def validated(model: type[BaseModel], data: Any, where: str, error: type[Exception]) -> Any:
    """``model`` from ``data``; ``error`` lists every problem as ``dotted.field: message``, after ``where``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise error(f"{where}: {problems}") from exc
