"""Stores a commissioning run: the run row, one step row per step, and an audit-chain entry for the
run's start, each step (its measured values and verdict) and the run's end, each in the same
transaction as its row. Evidence files go into the content-addressed evidence store."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from energizeos.commissioning.results import RunResult, StepResult
from energizeos.home import subdir
from energizeos.records import audit, evidence
from energizeos.records.models import CommissioningRun, CommissioningStep
from energizeos.records.types import utc_from_ns


class Recorder:
    def __init__(self, engine: Engine, site: str, operator: str, witness: str = "", witness_organisation: str = "",
                 wall_ns: Callable[[], int] = time.time_ns) -> None:
        self.engine, self.site, self.operator = engine, site, operator
        self.witness, self.witness_organisation = witness, witness_organisation
        self.now_ns = wall_ns
        self.run_id: int | None = None

    def start_run(self, result: RunResult) -> int:
        now = self.now_ns()
        label = ",".join(result.procedures)
        run = CommissioningRun(procedure=label, site=self.site, started_at=utc_from_ns(now), status="running",
                               operator=self.operator, witness=self.witness,
                               witness_organisation=self.witness_organisation)
        with Session(self.engine) as session:
            session.add(run)
            session.commit()
            session.refresh(run)
        assert run.id is not None
        self.run_id = run.id
        audit.append_committed(self.engine, "commissioning_run", self.operator, f"run:{run.id}",
                               {"event": "start", "procedures": result.procedures, "site": self.site,
                                "site_mode": result.site_mode, "witness": self.witness}, now)
        return run.id

    def record_step(self, step: StepResult) -> int:
        """The step row and its audit entry in one transaction; returns the entry's sequence number."""
        assert self.run_id is not None, "start_run first"
        body = step.as_dict()
        row = CommissioningStep(run_id=self.run_id, number=step.number, name=step.name,
                                started_at=utc_from_ns(step.started_ns or self.now_ns()),
                                finished_at=utc_from_ns(step.finished_ns or self.now_ns()), verdict=step.status,
                                measured_json=json.dumps(body, sort_keys=True, default=str),
                                acceptance="; ".join(c.criterion for c in step.checks))
        return audit.append_committed(self.engine, "commissioning_step", self.operator,
                                      f"run:{self.run_id}/step:{step.number}",
                                      {"run_id": self.run_id, **body}, step.finished_ns or self.now_ns(),
                                      changes=lambda session: session.add(row))

    def finish_run(self, result: RunResult) -> None:
        assert self.run_id is not None
        now = self.now_ns()

        def close(session: Session) -> None:
            run = session.get(CommissioningRun, self.run_id)
            assert run is not None
            run.status, run.finished_at = result.status, utc_from_ns(now)
            session.add(run)

        audit.append_committed(self.engine, "commissioning_run", self.operator, f"run:{self.run_id}",
                               {"event": "finish", "status": result.status, "reason": result.reason,
                                "safe_stop": result.safe_stop,
                                "counts": result.as_dict()["counts"]}, now, changes=close)

    def keep_file(self, name: str, data: bytes, kind: str, note: str) -> dict[str, Any]:
        """Keep ``data`` as an evidence file of this run (copied, hashed, on the audit chain)."""
        assert self.run_id is not None
        folder: Path = subdir("commissioning") / f"run-{self.run_id}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(data)
        item = evidence.add(self.engine, path, kind, self.operator, note, f"run:{self.run_id}", self.now_ns())
        assert item.sha256 == hashlib.sha256(data).hexdigest()
        return {"sha256": item.sha256, "evidence_id": item.id}
