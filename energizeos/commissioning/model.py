"""Commissioning procedures as data: one YAML file per procedure under ``procedures/``.

Each step says what to do (an automatic ``action`` for the simulated site, and a ``prompt`` for a
person on real equipment, with ``restore`` to undo it), what to observe, the acceptance criteria
with their numbers, and which measured values are kept as evidence. Loading validates the file
against these models and against the action table, and every error names the file and the field
(``interlocks.yaml: steps.3.acceptance.0.max: ...``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from energizeos.commissioning.criteria import parse_limit
from energizeos.commissioning.settings import SETTING_NAMES
from energizeos.yaml_file import read_yaml

PROCEDURES_DIR = Path(__file__).resolve().parent / "procedures"
ID = r"^[a-z][a-z0-9-]*$"
MEASURE = r"^[a-z][a-z0-9_]*$"


class ProcedureError(ValueError):
    """A procedure file that cannot be used, with the file and the field named."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Limit = float | str


class Criterion(_Strict):
    """One acceptance criterion on one measured value: a range (``min``/``max``), ``equals``, or a
    list that ``contains`` / ``excludes`` codes."""

    measure: str = Field(pattern=MEASURE)
    min: Limit | None = None
    max: Limit | None = None
    equals: bool | float | str | None = None
    contains: list[str] | None = None
    excludes: list[str] | None = None
    unit: str = ""
    why: str = ""

    @field_validator("min", "max")
    @classmethod
    def _known_setting(cls, value: Limit | None) -> Limit | None:
        if isinstance(value, str):
            name, _offset = parse_limit(value)
            if name not in SETTING_NAMES:
                raise ValueError(f"{value!r} names no site setting; settings: {', '.join(sorted(SETTING_NAMES))}")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Criterion:
        kinds = [self.min is not None or self.max is not None, self.equals is not None,
                 self.contains is not None, self.excludes is not None]
        if sum(kinds) != 1:
            raise ValueError("give exactly one kind of criterion: min and/or max, equals, contains or excludes")
        return self


class Action(_Strict):
    action: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    params: dict[str, Any] = {}


class Step(_Strict):
    id: str = Field(pattern=ID)
    title: str = Field(min_length=1)
    do: Action
    prompt: str = ""  # what a person does on real equipment ("" when the action only reads and commands)
    restore: str = ""  # what a person does afterwards to undo the prompt's change
    observe: str = Field(min_length=1)
    acceptance: list[Criterion] = Field(min_length=1)
    evidence: list[Annotated[str, Field(pattern=MEASURE)]] = []  # measured values kept as evidence


class Procedure(_Strict):
    id: str = Field(pattern=ID)
    title: str = Field(min_length=1)
    phases: list[Literal["FAT", "SAT"]] = Field(min_length=1)
    purpose: str = Field(min_length=1)
    references: list[str] = []
    steps: list[Step] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _unique_steps(cls, steps: list[Step]) -> list[Step]:
        seen: set[str] = set()
        for step in steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return steps


def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _problems(exc: ValidationError, prefix: tuple = ()) -> str:
    return "; ".join(f"{_where(prefix + tuple(e['loc']))}: {e['msg']}" for e in exc.errors())


def validate_procedure(data: Any, path: Path) -> Procedure:
    """Check a parsed procedure file; ProcedureError names the file and every field in error."""
    from energizeos.commissioning.registry import actions

    name = path.name
    try:
        procedure = Procedure.model_validate(data)
    except ValidationError as exc:
        raise ProcedureError(f"{name}: {_problems(exc)}") from exc
    if procedure.id != path.stem:
        raise ProcedureError(f"{name}: id: {procedure.id!r} must match the file name {path.stem!r}")
    table = actions()
    problems = []
    for i, step in enumerate(procedure.steps):
        spec = table.get(step.do.action)
        where = f"steps.{i}"
        if spec is None:
            problems.append(f"{where}.do.action: unknown action {step.do.action!r}; "
                            f"actions: {', '.join(sorted(table))}")
            continue
        try:
            spec.params.model_validate(step.do.params)
        except ValidationError as exc:
            problems.append(_problems(exc, (*where.split("."), "do", "params")))
        for j, criterion in enumerate(step.acceptance):
            if criterion.measure not in spec.measures:
                problems.append(f"{where}.acceptance.{j}.measure: {step.do.action} does not measure "
                                f"{criterion.measure!r}; it measures {', '.join(sorted(spec.measures))}")
        for j, kept in enumerate(step.evidence):
            if kept not in spec.measures:
                problems.append(f"{where}.evidence.{j}: {step.do.action} does not measure {kept!r}")
    if problems:
        raise ProcedureError(f"{name}: " + "; ".join(problems))
    return procedure


def load_procedure(path: Path) -> Procedure:
    return validate_procedure(read_yaml(Path(path), "procedure", ProcedureError), Path(path))


ORDER = ("settings", "communications", "ct-pt", "interlocks", "trip-lockout", "export-limit", "reversion")


@cache
def shipped() -> dict[str, Procedure]:
    """The procedures in ``procedures/``, in the order a commissioning runs them (``--all``)."""
    found = {p.stem: load_procedure(p) for p in sorted(PROCEDURES_DIR.glob("*.yaml"))}
    rank = {name: i for i, name in enumerate(ORDER)}
    return dict(sorted(found.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))
