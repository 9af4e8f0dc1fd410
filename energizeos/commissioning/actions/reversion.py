"""PCS command reversion: while discharging, cut the EMS-PCS link (the heartbeat stops); the PCS
must revert to 0 kW within the reversion time it was given. Its own status is stale then, so the
reversion is observed at the POI meter: import rises by the power the PCS stopped delivering."""

from __future__ import annotations

import statistics

from pydantic import Field

from energizeos.commissioning.actions.common import alarms_raised, mean
from energizeos.commissioning.context import StepContext
from energizeos.commissioning.driver import StepFailed, Steps, Until
from energizeos.commissioning.registry import Params, action


class ReversionParams(Params):
    rise_fraction: float = Field(0.8, gt=0, le=1, description="POI rise, as a share of the PCS output, that "
                                                             "counts as reverted")
    timeout_s: float = Field(30.0, gt=0)
    recover_timeout_s: float = Field(20.0, gt=0)


@action("pcs_reversion", ReversionParams, ("reversion_setting_s", "pcs_before_kw", "pcs_status_stale", "reverted",
                                           "reverted_after_s", "poi_rise_kw", "comms_alarm", "recovered_after_s"))
def pcs_reversion(ctx: StepContext, p: ReversionParams) -> Steps:
    """Cut the PCS link while it discharges and time its reversion at the meter."""
    status = ctx.io.fresh("pcs", 2.0)
    if status is None or status.p_kw < 50.0:
        raise StepFailed("the PCS must be discharging at least 50 kW before its link is cut")
    before = float(status.p_kw)
    poi_before = mean(ctx.io.since("meter", ctx.now() - 1.0), lambda m: m.p_kw if m.quality == 0 else float("nan"))
    t0 = ctx.now()
    yield from ctx.inject("comms_loss", "pcs")

    def poi_now() -> float:
        recent = [s.msg.p_kw for s in ctx.io.since("meter", t0)[-3:] if s.msg.quality == 0]
        return statistics.median(recent) if recent else float("nan")  # the median: one noisy reading is not a step

    reverted = yield Until(lambda: poi_now() - poi_before >= p.rise_fraction * before, p.timeout_s,
                           "the POI import to rise by the PCS output", required=False)
    stale = any(s.msg.quality != 0 for s in ctx.io.since("pcs", t0))
    ctx.measure(reversion_setting_s=status.reversion_timeout_s, pcs_before_kw=before, pcs_status_stale=stale,
                reverted=reverted is not None, reverted_after_s=reverted, poi_rise_kw=poi_now() - poi_before,
                comms_alarm="PCS_COMMS_LOSS" in alarms_raised(ctx, t0))
    t_clear = ctx.now()
    yield from ctx.set_mode("standby")
    yield from ctx.clear("comms_loss", "pcs")

    def first_good() -> float | None:
        return next((s.t for s in ctx.io.since("pcs", t_clear) if s.msg.quality == 0), None)

    yield Until(lambda: first_good() is not None, p.recover_timeout_s, "PCS status good again", required=False)
    back = first_good()
    ctx.measure(recovered_after_s=None if back is None else back - t_clear)
