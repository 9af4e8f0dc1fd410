"""What a step's action works with: the site, the step's own definition (its operator prompts), the
site settings, the measured values it fills in, and the faults it has injected (so a failing step
can clear every one of them)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energizeos.commissioning.driver import Ask, Await, StepFailed, Steps
from energizeos.commissioning.model import Step
from energizeos.commissioning.settings import SiteSettings
from energizeos.commissioning.site_io import SiteIO

BREAKER_OPEN, BREAKER_CLOSE, BREAKER_RESET = 0, 1, 2  # BreakerRequest.ACTION_*
KeepFile = Callable[[Path, str, str], dict[str, Any]]  # (path, kind, note) -> {"evidence_id", "sha256"}


def clean(value: Any) -> Any:
    """A measured value as it is stored: floats rounded to 3 decimals, NaN and inf as None."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [clean(v) for v in items]
    if hasattr(value, "item"):  # a numpy scalar
        return clean(value.item())
    return str(value)


@dataclass
class Injected:
    fault: str
    device: str
    params: dict[str, Any]
    prompt: str  # what the operator was asked to do (real equipment)
    restore: str


@dataclass
class StepContext:
    io: SiteIO
    step: Step
    settings: SiteSettings
    operator: str
    faults: list[Injected]  # shared by the run: what is injected now, cleared by the safe stop
    shared: dict[str, Any]  # values one step of a procedure hands to the next (e.g. when the breaker closed)
    keep_file: KeepFile | None = None
    measured: dict[str, Any] = field(default_factory=dict)

    def now(self) -> float:
        return self.io.now()

    def measure(self, **values: Any) -> None:
        for key, value in values.items():
            self.measured[key] = clean(value)

    # --- acting on the site ---------------------------------------------------------------------
    def inject(self, fault: str, device: str = "", **params: Any) -> Steps:
        """Create a condition: by fault injection on a simulated site, by the operator otherwise."""
        entry = Injected(fault, device, params, self.step.prompt, self.step.restore)
        if self.io.can_inject():
            answer = yield Await(self.io.inject(fault, device, json.dumps(params), False), "/sim/inject")
            if not answer.success:
                raise StepFailed(f"could not inject {fault}: {answer.message}")
        else:
            done = yield Ask(self.step.prompt or f"Create the condition '{fault}' {device}".strip())
            if not done:
                raise StepFailed(f"the operator could not create the condition ({self.step.prompt or fault})")
        self.faults[:] = [f for f in self.faults if (f.fault, f.device) != (fault, device)] + [entry]

    def clear(self, fault: str, device: str = "") -> Steps:
        entry = next((f for f in self.faults if (f.fault, f.device) == (fault, device)), None)
        yield from clear_condition(self.io, entry or Injected(fault, device, {}, "", self.step.restore))
        if entry is not None:
            self.faults.remove(entry)

    def set_mode(self, mode: str, p_kw: float = 0.0) -> Steps:
        answer = yield Await(self.io.set_mode(mode, p_kw, self.operator), "/ems/dispatch/mode")
        if not answer.accepted:
            raise StepFailed(f"dispatch mode {mode} refused: {answer.message}")

    def breaker(self, action: int, reason: str, requested_by: str | None = None) -> Steps:
        """A breaker request through the arbiter's one path; returns its answer (refusals included)."""
        who = self.operator if requested_by is None else requested_by
        return (yield Await(self.io.breaker(action, who, f"commissioning {self.step.id}: {reason}"),
                            "/ems/breaker/request"))


def clear_condition(io: SiteIO, entry: Injected) -> Steps:
    if io.can_inject():
        answer = yield Await(io.inject(entry.fault, entry.device, "{}", True), "/sim/inject")
        if not answer.success:
            raise StepFailed(f"could not clear {entry.fault}: {answer.message}")
    else:
        done = yield Ask(entry.restore or f"Undo: {entry.prompt or entry.fault}")
        if not done:
            raise StepFailed(f"the operator could not restore {entry.fault}")
