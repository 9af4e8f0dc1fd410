"""A recorded commissioning run to sign and package: written straight into the records, as the runner
(``energizeos commission``) would leave it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from energizeos.records.models import CommissioningRun, CommissioningStep

T0 = datetime(2026, 7, 15, 21, 0, tzinfo=UTC)
STEPS = (  # number, name, verdict, measured, acceptance
    (1, "PCS discharge 250 kW, POI balance", "pass", {"p_pcs_kw": 249.8, "p_poi_delta_kw": -250.3},
     "|p_poi_delta + p_pcs| <= 2 % of 250 kW"),
    (2, "86 latches on relay trip", "pass", {"trip_to_open_ms": 61.0, "lockout_86": True}, "open <= 100 ms, 86 set"),
    (3, "export limit clearing time", "fail", {"export_kw_peak": 131.2, "clearing_s": 2.6}, "clearing <= 2.0 s"),
)


def make_run(engine: Engine, status: str = "failed", finished: bool = True, procedure: str = "bess-sat-1") -> int:
    """A run with three steps (two pass, one fail); its id."""
    with Session(engine) as session:
        run = CommissioningRun(procedure=procedure, site="reference-plant", started_at=T0, status=status,
                               operator="engineer", finished_at=T0 + timedelta(minutes=50) if finished else None)
        session.add(run)
        session.flush()
        for number, name, verdict, measured, acceptance in STEPS:
            start = T0 + timedelta(minutes=10 * number)
            session.add(CommissioningStep(run_id=run.id, number=number, name=name, started_at=start,
                                          finished_at=start + timedelta(minutes=5), verdict=verdict,
                                          measured_json=json.dumps(measured), acceptance=acceptance))
        session.commit()
        return run.id or 0
