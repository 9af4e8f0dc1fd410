"""The automatic actions a procedure step can name, with the parameters and measurements each has.

A procedure file is checked against this table when it is loaded: an unknown action, a wrong
parameter or an acceptance criterion on a value the action never measures is an error naming the
file and the field, before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from energizeos.commissioning.context import StepContext
    from energizeos.commissioning.driver import Steps


class Params(BaseModel):
    """Base of every action's parameters: a misspelt parameter is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ActionSpec:
    name: str
    params: type[Params]
    measures: frozenset[str]
    run: Callable[[StepContext, Any], Steps]
    doc: str


ACTIONS: dict[str, ActionSpec] = {}


def action(name: str, params: type[Params], measures: tuple[str, ...]) -> Callable:
    """Register ``fn(ctx, params) -> Steps`` under ``name``."""

    def register(fn: Callable[[StepContext, Any], Steps]) -> Callable[[StepContext, Any], Steps]:
        if name in ACTIONS:
            raise ValueError(f"action {name!r} registered twice")
        ACTIONS[name] = ActionSpec(name, params, frozenset(measures), fn, (fn.__doc__ or "").strip())
        return fn

    return register


def actions() -> dict[str, ActionSpec]:
    """Every registered action (importing the action modules registers them)."""
    import energizeos.commissioning.actions  # noqa: F401

    return ACTIONS
