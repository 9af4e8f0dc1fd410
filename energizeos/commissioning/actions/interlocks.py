"""Interlock-chain validation: while the BESS is dispatched, drop one permissive; the arbiter must
refuse dispatch (0 kW) and a breaker close, each with the reason code of the broken link, and
dispatch must come back once the permissive is restored."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from energizeos.commissioning.actions.common import dispatch_decisions, first_decision, pcs_kw
from energizeos.commissioning.context import BREAKER_CLOSE, BREAKER_RESET, StepContext
from energizeos.commissioning.driver import Sleep, StepFailed, Steps, Until
from energizeos.commissioning.registry import Params, action


class DropParams(Params):
    fault: str = Field(description="the condition created (a fault injected on the simulated site)")
    device: str = ""
    fault_params: dict[str, float] = {}
    refusal_code: str = Field(description="the reason code that marks the refusal of dispatch (0 kW)")
    refusal_timeout_s: float = Field(10.0, gt=0)
    recover: Literal["clear", "reset_and_close"] = Field(
        "clear", description="how the permissive is restored: clearing the condition, or (relay) a named 86 "
                             "reset and a close through the arbiter, then enter service")
    restore_timeout_s: float = Field(60.0, gt=0)


@action("drop_permissive", DropParams, ("granted_before_kw", "refused_after_s", "granted_kw_after",
                                        "dispatch_reason_codes", "codes_seen", "close_accepted", "close_reason_codes",
                                        "pcs_kw_after", "restored", "restored_after_s"))
def drop_permissive(ctx: StepContext, p: DropParams) -> Steps:
    """Drop one permissive while dispatching, check both refusals and their reasons, restore it."""
    before = dispatch_decisions(ctx, ctx.now() - 2.0)
    granted_before = before[-1].msg.granted_kw if before else 0.0
    if granted_before <= 0.0:
        raise StepFailed("nothing is being dispatched: the step needs a granted discharge to take away")
    t0 = ctx.now()
    yield from ctx.inject(p.fault, p.device, **p.fault_params)

    def refusal():
        return first_decision(ctx, t0, lambda d: p.refusal_code in d.reason_codes and d.granted_kw == 0.0)

    yield Until(lambda: refusal() is not None, p.refusal_timeout_s, f"a dispatch refusal with {p.refusal_code}",
                required=False)
    refused = refusal()
    seen = sorted({c for s in dispatch_decisions(ctx, t0) for c in s.msg.reason_codes})
    close = yield from ctx.breaker(BREAKER_CLOSE, f"close must be refused while {p.fault} is present")
    yield Sleep(2.0)
    ctx.measure(granted_before_kw=granted_before, refused_after_s=None if refused is None else refused.t - t0,
                granted_kw_after=None if refused is None else refused.msg.granted_kw,
                dispatch_reason_codes=[] if refused is None else list(refused.msg.reason_codes), codes_seen=seen,
                close_accepted=close.accepted, close_reason_codes=list(close.reason_codes), pcs_kw_after=pcs_kw(ctx))
    t_restore = ctx.now()
    yield from ctx.clear(p.fault, p.device)
    if p.recover == "reset_and_close":
        reset = yield from ctx.breaker(BREAKER_RESET, "86 reset after the interlock test")
        if not reset.accepted:
            raise StepFailed(f"86 reset refused: {', '.join(reset.reason_codes)}")
        yield Until(lambda: (r := ctx.io.fresh("relay", 2.0)) is not None and not r.lockout_86 and not r.trip,
                    5.0, "the relay reset")
        closed = yield from ctx.breaker(BREAKER_CLOSE, "close after the interlock test")
        if not closed.accepted:
            raise StepFailed(f"close refused after the reset: {', '.join(closed.reason_codes)}")

    def restored():
        return first_decision(ctx, t_restore, lambda d: d.granted_kw >= granted_before - 1.0)

    yield Until(lambda: restored() is not None, p.restore_timeout_s, "dispatch granted again", required=False)
    back = restored()
    ctx.measure(restored=back is not None, restored_after_s=None if back is None else back.t - t_restore)
