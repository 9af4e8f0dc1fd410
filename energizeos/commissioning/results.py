"""What a run produces: each step's verdict with its measured values and the criteria it was judged by
(plain data, the same in the records, on the audit chain and in ``commission run --json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from energizeos.commissioning.criteria import Check

PASS, FAIL, SKIPPED = "pass", "fail", "skipped"


@dataclass
class StepResult:
    number: int
    procedure: str
    step: str
    title: str
    status: str  # pass / fail / skipped
    measured: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    reason: str = ""  # why it failed or was skipped
    site_time_start_s: float | None = None  # node clock (plant time in the deterministic executor)
    site_time_end_s: float | None = None
    started_ns: int = 0  # wall clock, for the records
    finished_ns: int = 0

    @property
    def name(self) -> str:
        return f"{self.procedure}/{self.step}"

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "procedure": self.procedure, "step": self.step, "title": self.title,
                "status": self.status, "measured": self.measured, "acceptance": [c.as_dict() for c in self.checks],
                "reason": self.reason, "site_time_start_s": self.site_time_start_s,
                "site_time_end_s": self.site_time_end_s}


@dataclass
class RunResult:
    procedures: list[str]
    operator: str
    witness: str
    run_id: int | None = None
    status: str = "running"  # passed / failed / aborted
    reason: str = ""  # why a run was aborted or could not end safe (a failing step says why in its own result)
    steps: list[StepResult] = field(default_factory=list)
    safe_stop: dict[str, Any] | None = None  # what the safe stop did, after a failing step
    site_mode: str = ""  # "simulated (fault injection)" or "equipment (operator prompts)"

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status, "reason": self.reason, "procedures": self.procedures,
                "operator": self.operator, "witness": self.witness, "site_mode": self.site_mode,
                "steps": [s.as_dict() for s in self.steps], "safe_stop": self.safe_stop,
                "counts": {k: sum(1 for s in self.steps if s.status == k) for k in (PASS, FAIL, SKIPPED)}}
