"""CT/PT validation of the POI meter with the checks ``meter_node`` runs continuously
(``nodes/ct_pt_validation``): ratios against the nameplate, voltages, rotation, and the power
balance of a BESS step (POI import must change by minus the BESS change: ratio +1)."""

from __future__ import annotations

import math

from pydantic import Field

from energizeos.commissioning.actions.common import FRESH_S, alarms_raised, mean, pcs_kw
from energizeos.commissioning.context import StepContext
from energizeos.commissioning.driver import Sleep, StepFailed, Steps, Until
from energizeos.commissioning.registry import Params, action
from energizeos.nodes.ct_pt_validation import PowerBalanceCheck, check_ratios, check_rotation, check_voltages


class NoParams(Params):
    pass


class ReadingsParams(Params):
    window_s: float = Field(2.0, gt=0, description="meter readings averaged")


def _good_meter(ctx: StepContext):
    msg = ctx.io.fresh("meter", FRESH_S)
    if msg is None:
        raise StepFailed("no fresh good POI meter reading")
    return msg


@action("meter_ratios", NoParams, ("ctr", "ptr", "nameplate_ctr", "nameplate_ptr", "ctr_error_pct", "ptr_error_pct",
                                   "findings"))
def meter_ratios(ctx: StepContext, p: NoParams) -> Steps:
    """The CTR and PTR the meter applies against the nameplates in the site configuration."""
    yield Sleep(0.0)
    msg = _good_meter(ctx)
    s = ctx.settings
    findings = check_ratios(msg.ct_ratio, msg.pt_ratio, s.nameplate_ctr, s.nameplate_ptr)
    ctx.measure(ctr=msg.ct_ratio, ptr=msg.pt_ratio, nameplate_ctr=s.nameplate_ctr, nameplate_ptr=s.nameplate_ptr,
                ctr_error_pct=100.0 * (msg.ct_ratio - s.nameplate_ctr) / s.nameplate_ctr,
                ptr_error_pct=100.0 * (msg.pt_ratio - s.nameplate_ptr) / s.nameplate_ptr,
                findings=[f.code for f in findings])


@action("meter_voltages", ReadingsParams, ("v_primary", "v_mean_pu", "vb_rel_deg", "vc_rel_deg", "frequency_hz",
                                           "findings"))
def meter_voltages(ctx: StepContext, p: ReadingsParams) -> Steps:
    """Primary voltages against nominal (PT ratio, PT fuses) and ABC phase rotation, averaged over a window."""
    yield Sleep(p.window_s)
    _good_meter(ctx)
    readings = [s for s in ctx.io.since("meter", ctx.now() - p.window_s) if s.msg.quality == 0]
    volts = [mean(readings, lambda m, i=i: float(m.voltage_ln_v[i])) for i in range(3)]
    angles = [mean(readings, lambda m, i=i: float(m.voltage_angle_deg[i])) for i in range(3)]
    findings = [*check_voltages(volts, ctx.settings.nominal_ln_v), *check_rotation(angles)]
    wrap = lambda a: (a + 180.0) % 360.0 - 180.0  # noqa: E731
    ctx.measure(v_primary=volts, v_mean_pu=sum(volts) / 3 / ctx.settings.nominal_ln_v,
                vb_rel_deg=wrap(angles[1] - angles[0]), vc_rel_deg=wrap(angles[2] - angles[0]),
                frequency_hz=mean(readings, lambda m: m.frequency_hz), findings=[f.code for f in findings])


class StepParams(Params):
    step_kw: float = Field(description="BESS step from 0 kW: > 0 discharge, < 0 charge")
    hold_before_s: float = Field(4.0, gt=0, description="0 kW held before the step (the 'before' window)")
    settle_s: float = Field(3.0, gt=0)
    after_s: float = Field(2.0, gt=0)
    timeout_s: float = Field(30.0, gt=0)


@action("power_balance_step", StepParams, ("bess_step_kw", "poi_change_kw", "ratio", "bess_before_kw",
                                           "bess_after_kw", "poi_before_kw", "poi_after_kw", "finding", "ems_alarms"))
def power_balance_step(ctx: StepContext, p: StepParams) -> Steps:
    """Step the BESS from 0 kW by ``step_kw`` in manual mode and compare the POI change with it, using
    the meter node's own power-balance check on the recorded POI and PCS readings."""
    yield from ctx.set_mode("manual", 0.0)
    yield Until(lambda: (kw := pcs_kw(ctx)) is not None and abs(kw) <= 5.0, p.timeout_s, "the PCS at 0 kW")
    yield Sleep(p.hold_before_s)
    t_start = ctx.now() - p.hold_before_s
    yield from ctx.set_mode("manual", p.step_kw)
    yield Sleep(p.settle_s + p.after_s)
    check = PowerBalanceCheck(settle_s=p.settle_s, window_s=p.hold_before_s - 1.0)
    result = None
    bess = math.nan
    pcs = iter(ctx.io.since("pcs", t_start))
    next_pcs = next(pcs, None)
    for sample in ctx.io.since("meter", t_start):  # the POI reading with the PCS output known at that moment
        while next_pcs is not None and next_pcs.t <= sample.t:
            bess = next_pcs.msg.p_kw if next_pcs.msg.quality == 0 else math.nan
            next_pcs = next(pcs, None)
        if sample.msg.quality == 0 and math.isfinite(bess):
            outcome = check.add(sample.t, sample.msg.p_kw, bess)
            if outcome is not None:
                result = outcome
    yield from ctx.set_mode("manual", 0.0)
    evidence = check.last_evidence or {}
    ctx.measure(bess_step_kw=evidence.get("bess_step_kw"), poi_change_kw=evidence.get("poi_change_kw"),
                ratio=check.last_ratio, bess_before_kw=evidence.get("bess_before_kw"),
                bess_after_kw=evidence.get("bess_after_kw"), poi_before_kw=evidence.get("poi_before_kw"),
                poi_after_kw=evidence.get("poi_after_kw"),
                finding="none" if result is True else getattr(result, "code", "no step detected"),
                ems_alarms=alarms_raised(ctx, t_start))
