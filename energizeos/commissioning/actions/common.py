"""Actions and helpers most procedures share: wait for the whole interlock chain, hold a set-point."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import Field

from energizeos.commissioning.context import StepContext
from energizeos.commissioning.driver import Sleep, StepFailed, Steps, Until
from energizeos.commissioning.registry import Params, action
from energizeos.commissioning.site_io import Sample

DISPATCH = 0  # ArbiterDecision.KIND_DISPATCH
FRESH_S = 2.0  # a topic value older than this does not count as the present state


def mean(samples: Iterable[Sample], value: Callable[[Any], float]) -> float:
    numbers = [value(s.msg) for s in samples]
    numbers = [x for x in numbers if math.isfinite(x)]
    return statistics.fmean(numbers) if numbers else math.nan


def pcs_kw(ctx: StepContext) -> float | None:
    """The PCS output it reports now (None when its status is stale)."""
    msg = ctx.io.fresh("pcs", FRESH_S)
    return None if msg is None or not math.isfinite(msg.p_kw) else float(msg.p_kw)


def dispatch_decisions(ctx: StepContext, since: float) -> list[Sample]:
    return [s for s in ctx.io.since("decision", since) if s.msg.kind == DISPATCH]


def first_decision(ctx: StepContext, since: float, test: Callable[[Any], bool]) -> Sample | None:
    return next((s for s in dispatch_decisions(ctx, since) if test(s.msg)), None)


def alarms_raised(ctx: StepContext, since: float) -> list[str]:
    return sorted({s.msg.code for s in ctx.io.since("alarm", since) if s.msg.event == 0})  # Alarm.EVENT_RAISE


class InServiceParams(Params):
    timeout_s: float = Field(900.0, gt=0, description="longest wait (enter-service delay and ramp included)")
    full_power: bool = Field(False, description="also wait out the enter-service ramp (a step test needs the "
                                                "whole step at once)")


def in_service_since(ctx: StepContext) -> float | None:
    """When the arbiter's grid.enter_service link last turned healthy (None if it is not now)."""
    since = None
    for sample in ctx.io.since("interlocks", 0.0):
        ok = any(link.name == "grid.enter_service" and link.ok for link in sample.msg.permissives)
        since = (since if since is not None else sample.t) if ok else None
    return since


@action("wait_in_service", InServiceParams, ("in_service", "waited_s", "broken_links"))
def wait_in_service(ctx: StepContext, p: InServiceParams) -> Steps:
    """Wait until the arbiter reports the whole interlock chain healthy (enter service complete)."""

    def whole() -> bool:
        state = ctx.io.fresh("interlocks", FRESH_S)
        return state is not None and state.dispatch_permitted

    t0 = ctx.now()
    waited = yield Until(whole, p.timeout_s, "the whole interlock chain", required=False)
    since = in_service_since(ctx)
    if waited is not None and p.full_power and since is not None:
        yield Sleep(max(0.0, since + ctx.settings.es_ramp_s - ctx.now()))
    last = ctx.io.last("interlocks")
    broken = [link.name for link in last.msg.permissives if not link.ok] if last else ["no interlock state"]
    ctx.measure(in_service=waited is not None and whole(), waited_s=ctx.now() - t0, broken_links=broken)


class SetPointParams(Params):
    p_kw: float = Field(description="manual set-point: > 0 discharges, < 0 charges, 0 holds")
    tolerance_kw: float = Field(10.0, gt=0)
    settle_s: float = Field(3.0, ge=0, description="held after reaching the set-point, before the next step measures")
    timeout_s: float = Field(120.0, gt=0, description="the ramp may still be limiting after enter service")
    min_site_load_kw: float = Field(0.0, ge=0, description="the site load a discharge test needs (it must not "
                                                           "export): a lower load fails the step at once")


def site_load_kw(ctx: StepContext) -> float | None:
    """Site load = POI import + BESS output, from the present readings."""
    meter, pcs = ctx.io.fresh("meter", FRESH_S), pcs_kw(ctx)
    return None if meter is None or pcs is None or not math.isfinite(meter.p_kw) else float(meter.p_kw) + pcs


@action("hold_setpoint", SetPointParams, ("requested_kw", "site_load_kw", "pcs_kw", "reached_after_s",
                                          "arbiter_codes"))
def hold_setpoint(ctx: StepContext, p: SetPointParams) -> Steps:
    """Manual dispatch at a set-point through the dispatcher (the arbiter still decides); wait for the PCS."""
    load = site_load_kw(ctx)
    ctx.measure(requested_kw=p.p_kw, site_load_kw=load)
    if load is None or load < p.min_site_load_kw:
        raise StepFailed(f"site load {load if load is None else round(load, 1)} kW is below the "
                         f"{p.min_site_load_kw:g} kW this test needs (it must not export): run it at a higher load")
    t0 = ctx.now()
    yield from ctx.set_mode("manual", p.p_kw)

    def there() -> bool:
        kw = pcs_kw(ctx)
        return kw is not None and abs(kw - p.p_kw) <= p.tolerance_kw

    def held_back() -> float | None:
        """The request the dispatcher has kept below the set-point for 5 s (its export cap), else None."""
        recent = dispatch_decisions(ctx, max(t0 + 1.0, ctx.now() - 5.0))
        if ctx.now() - t0 < 6.0 or not recent or any(abs(d.msg.requested_kw - p.p_kw) <= p.tolerance_kw
                                                      for d in recent):
            return None
        return float(recent[-1].msg.requested_kw)

    reached = yield Until(lambda: there() or held_back() is not None, p.timeout_s, f"the PCS at {p.p_kw:g} kW",
                          required=False)
    if not there() and (capped := held_back()) is not None:
        ctx.measure(pcs_kw=pcs_kw(ctx))
        raise StepFailed(f"the dispatcher holds the request at {capped:.1f} kW, not {p.p_kw:g} kW (its export cap "
                         "at this site load)")
    yield Sleep(p.settle_s)
    last = dispatch_decisions(ctx, ctx.now() - FRESH_S)
    ctx.measure(pcs_kw=pcs_kw(ctx), reached_after_s=reached,
                arbiter_codes=list(last[-1].msg.reason_codes) if last else [])
