"""Bringing the site to a safe, unforced state: dispatch to standby, every injected condition cleared,
the PCS at 0 kW. Run after a failing step and after every procedure; each part is tried even when
another fails, and what was done is reported."""

from __future__ import annotations

from typing import Any

from energizeos.commissioning.context import Injected, clear_condition
from energizeos.commissioning.driver import Await, StepFailed, Steps, Until
from energizeos.commissioning.site_io import SiteIO


def safe_stop(io: SiteIO, faults: list[Injected], operator: str, report: dict[str, Any],
              settle_timeout_s: float = 20.0) -> Steps:
    """Fills ``report`` with what it did; ``report["safe"]`` says whether the site ended safe."""
    problems: list[str] = []
    try:
        answer = yield Await(io.set_mode("standby", 0.0, operator), "/ems/dispatch/mode")
        if not answer.accepted:
            problems.append(f"standby refused: {answer.message}")
    except StepFailed as exc:
        problems.append(f"standby: {exc}")
    cleared = []
    for entry in reversed(list(faults)):
        try:
            yield from clear_condition(io, entry)
            cleared.append(f"{entry.fault} {entry.device}".strip())
            faults.remove(entry)
        except StepFailed as exc:
            problems.append(f"clearing {entry.fault}: {exc}")

    def at_zero() -> bool:
        pcs = io.fresh("pcs", 2.0)
        return pcs is not None and abs(pcs.p_kw) <= 1.0

    yield Until(at_zero, settle_timeout_s, "the PCS at 0 kW", required=False)
    pcs, relay = io.fresh("pcs", 2.0), io.fresh("relay", 2.0)
    if pcs is None or abs(pcs.p_kw) > 1.0:
        problems.append("the PCS is not reported at 0 kW")
    report.update(dispatch="standby", faults_cleared=cleared, faults_left=[f.fault for f in faults],
                  pcs_kw=None if pcs is None else round(float(pcs.p_kw), 1),
                  breaker={0: "open", 1: "closed"}.get(relay.breaker_state, "unknown") if relay else "unknown",
                  trip=bool(relay and relay.trip), lockout_86=bool(relay and relay.lockout_86),
                  problems=problems, safe=not problems)
