"""Export-limit response: discharging against a high load, the load drops in one step; the export
at the POI (meter readings) must clear within the acceptance time with little energy exported."""

from __future__ import annotations

import itertools
import statistics

from pydantic import Field

from energizeos.commissioning.actions.common import pcs_kw
from energizeos.commissioning.context import StepContext
from energizeos.commissioning.driver import Sleep, Steps, Until
from energizeos.commissioning.registry import Params, action


class LoadStepParams(Params):
    load_before_kw: float | None = Field(700.0, description="site load held before the step (simulated site); "
                                                            "on real equipment the site's own load stands")
    discharge_kw: float = Field(gt=0)
    load_after_kw: float = Field(ge=0)
    observe_s: float = Field(15.0, gt=0)
    deadband_kw: float = Field(1.0, ge=0, description="export within this of the limit is meter noise")
    timeout_s: float = Field(400.0, gt=0)


def export_events(samples: list[tuple[float, float]], t0: float, limit_kw: float, deadband_kw: float) -> dict:
    """Pure: export beyond the limit in POI readings ``(t, p_kw)`` taken from ``t0`` (each reading
    holds until the next). Returns the largest export, when it last exceeded and the energy."""
    over = [(t, -p - limit_kw) for t, p in samples if -p > limit_kw + deadband_kw]
    energy = 0.0
    for (t, p), (t_next, _p) in itertools.pairwise(samples):
        excess = -p - limit_kw
        if excess > deadband_kw:
            energy += excess * (t_next - t) / 3600.0
    return {"max_export_kw": max((e for _t, e in over), default=0.0),
            "export_cleared_after_s": (over[-1][0] - t0) if over else 0.0,
            "export_samples": len(over), "exported_kwh": energy}


@action("export_load_step", LoadStepParams, ("pcs_before_kw", "max_export_kw", "export_cleared_after_s",
                                             "exported_kwh", "export_samples", "poi_after_kw", "pcs_after_kw"))
def export_load_step(ctx: StepContext, p: LoadStepParams) -> Steps:
    """Discharge ``discharge_kw`` with the load at ``load_before_kw``; drop the load to ``load_after_kw``
    and measure the POI export (magnitude, clearing time, energy) from the meter readings."""
    if p.load_before_kw is not None and ctx.io.can_inject():
        yield from ctx.inject("load_step", kw=p.load_before_kw)
    yield from ctx.set_mode("manual", p.discharge_kw)
    yield Until(lambda: (kw := pcs_kw(ctx)) is not None and kw >= p.discharge_kw - 10.0, p.timeout_s,
                f"the PCS at {p.discharge_kw:g} kW")
    yield Sleep(3.0)  # steady before the step
    before = pcs_kw(ctx)
    t0 = ctx.now()
    yield from ctx.inject("load_step", kw=p.load_after_kw)
    yield Sleep(p.observe_s)
    readings = [(s.t, float(s.msg.p_kw)) for s in ctx.io.since("meter", t0) if s.msg.quality == 0]
    events = export_events(readings, t0, ctx.settings.export_limit_kw, p.deadband_kw)
    tail = [kw for t, kw in readings if t >= ctx.now() - 3.0]
    ctx.measure(pcs_before_kw=before, poi_after_kw=statistics.fmean(tail) if tail else None,
                pcs_after_kw=pcs_kw(ctx), **events)
    yield from ctx.set_mode("standby")
    yield from ctx.clear("load_step")
