"""Trip-lockout verification: trip -> breaker opens and 86 latches -> close refused -> a reset
without a name refused -> a named reset -> close -> IEEE 1547 enter-service delay and ramp respected.
The steps run in sequence on one site; the close time passes to the enter-service step."""

from __future__ import annotations

from pydantic import Field

from energizeos.commissioning.actions.common import dispatch_decisions, first_decision, pcs_kw
from energizeos.commissioning.context import BREAKER_CLOSE, BREAKER_RESET, StepContext
from energizeos.commissioning.driver import Sleep, StepFailed, Steps, Until
from energizeos.commissioning.registry import Params, action

OPEN, CLOSED = 0, 1  # RelayStatus.BREAKER_*


def _relay(ctx: StepContext):
    return ctx.io.fresh("relay", 2.0)


class TripParams(Params):
    timeout_s: float = Field(5.0, gt=0)


@action("relay_trip", TripParams, ("breaker_open", "breaker_open_after_s", "trip", "lockout_86", "last_trip_cause",
                                   "command_zero_after_s", "pcs_kw_after", "dispatch_reason_codes"))
def relay_trip(ctx: StepContext, p: TripParams) -> Steps:
    """Trip the relay while dispatching: the breaker opens, the trip and the 86 latch are reported,
    and the arbiter commands 0 kW."""
    t0 = ctx.now()
    yield from ctx.inject("relay_trip")

    def opened() -> bool:
        return any(s.msg.quality == 0 and s.msg.breaker_state == OPEN for s in ctx.io.since("relay", t0))

    yield Until(opened, p.timeout_s, "the breaker open", required=False)
    yield Until(lambda: first_decision(ctx, t0, lambda d: d.granted_kw == 0.0) is not None, p.timeout_s,
                "a 0 kW command", required=False)
    yield Sleep(2.0)  # the PCS has ceased to energise; the relay's latch is what it is
    open_at = next((s.t for s in ctx.io.since("relay", t0) if s.msg.quality == 0 and s.msg.breaker_state == OPEN), None)
    zero = first_decision(ctx, t0, lambda d: d.granted_kw == 0.0)
    # every reason the arbiter gave for its 0 kW commands in the step, not only the first one's: the meter
    # can see the open breaker one poll before the relay reports the trip, so the first 0 kW may say only
    # EXPORT_LIMIT and the relay's codes follow a poll later
    refusal_codes = sorted({c for s in dispatch_decisions(ctx, t0) if s.msg.granted_kw == 0.0
                            for c in s.msg.reason_codes})
    relay = _relay(ctx)
    ctx.measure(breaker_open=relay is not None and relay.breaker_state == OPEN,
                breaker_open_after_s=None if open_at is None else open_at - t0,
                trip=relay is not None and relay.trip, lockout_86=relay is not None and relay.lockout_86,
                last_trip_cause="" if relay is None else relay.last_trip_cause,
                command_zero_after_s=None if zero is None else zero.t - t0, pcs_kw_after=pcs_kw(ctx),
                dispatch_reason_codes=refusal_codes)


class NoParams(Params):
    pass


@action("close_while_locked_out", NoParams, ("close_accepted", "close_reason_codes", "breaker_open_after_close",
                                             "unnamed_reset_accepted", "unnamed_reset_codes"))
def close_while_locked_out(ctx: StepContext, p: NoParams) -> Steps:
    """A named close is refused while tripped and locked out, and a reset that names nobody is refused."""
    close = yield from ctx.breaker(BREAKER_CLOSE, "close must be refused while locked out")
    yield Sleep(2.0)
    relay = _relay(ctx)
    reset = yield from ctx.breaker(BREAKER_RESET, "a reset must name who asks", requested_by="")
    ctx.measure(close_accepted=close.accepted, close_reason_codes=list(close.reason_codes),
                breaker_open_after_close=relay is not None and relay.breaker_state == OPEN,
                unnamed_reset_accepted=reset.accepted, unnamed_reset_codes=list(reset.reason_codes))


class ResetParams(Params):
    timeout_s: float = Field(5.0, gt=0)


@action("reset_lockout", ResetParams, ("reset_accepted", "reset_codes", "lockout_cleared_after_s", "lockout_86",
                                       "trip"))
def reset_lockout(ctx: StepContext, p: ResetParams) -> Steps:
    """The operator, by name, resets the 86 through the arbiter; the relay clears trip and lockout."""
    t0 = ctx.now()
    reset = yield from ctx.breaker(BREAKER_RESET, "authorised 86 reset")
    cleared = yield Until(lambda: (r := _relay(ctx)) is not None and not r.lockout_86 and not r.trip, p.timeout_s,
                          "the 86 and the trip cleared", required=False)
    relay = _relay(ctx)
    ctx.measure(reset_accepted=reset.accepted, reset_codes=list(reset.reason_codes),
                lockout_cleared_after_s=None if cleared is None else ctx.now() - t0,
                lockout_86=relay is None or relay.lockout_86, trip=relay is None or relay.trip)


class CloseParams(Params):
    timeout_s: float = Field(5.0, gt=0)


@action("close_breaker", CloseParams, ("close_accepted", "close_reason_codes", "breaker_closed_after_s"))
def close_breaker(ctx: StepContext, p: CloseParams) -> Steps:
    """A named close through the arbiter; the relay's own supervision executes it."""
    t0 = ctx.now()
    close = yield from ctx.breaker(BREAKER_CLOSE, "close after the reset")

    def closed_at() -> float | None:
        """Arrival of the first relay reading showing the breaker closed: the reading the arbiter's
        enter-service count starts from too."""
        return next((s.t for s in ctx.io.since("relay", t0) if s.msg.quality == 0 and s.msg.breaker_state == CLOSED),
                    None)

    yield Until(lambda: closed_at() is not None, p.timeout_s, "the breaker closed", required=False)
    at = closed_at()
    ctx.shared["closed_at"] = at
    ctx.measure(close_accepted=close.accepted, close_reason_codes=list(close.reason_codes),
                breaker_closed_after_s=None if at is None else at - t0)


class EnterServiceParams(Params):
    request_kw: float = Field(gt=0, description="the discharge requested all along (manual mode)")
    tolerance_kw: float = Field(10.0, gt=0)
    extra_s: float = Field(120.0, gt=0, description="wait beyond the delay and ramp before giving up")


@action("enter_service", EnterServiceParams, ("first_dispatch_after_close_s", "delay_reason_seen",
                                              "ramp_excess_kw", "ramp_early_s", "reached_request_after_close_s"))
def enter_service(ctx: StepContext, p: EnterServiceParams) -> Steps:
    """After the close: nothing until V and f have been in the window for the delay, then a linear ramp
    that the granted power never exceeds, until the request is met."""
    closed_at = ctx.shared.get("closed_at")
    if closed_at is None:
        raise StepFailed("the breaker was not closed by the previous step")
    s = ctx.settings
    limit = s.es_delay_s + s.es_ramp_s + p.extra_s
    yield Until(lambda: (kw := pcs_kw(ctx)) is not None and kw >= p.request_kw - p.tolerance_kw,
                max(0.0, limit - (ctx.now() - closed_at)), f"the PCS back at {p.request_kw:g} kW", required=False)
    first = first_decision(ctx, closed_at, lambda d: d.granted_kw > 0.0)
    excess, early = None, None
    for sample in dispatch_decisions(ctx, closed_at):
        # the ramp line from the close: rated power x (t - close - delay) / ramp time; in kW above it, and in
        # seconds ahead of it (the time resolution of the readings the line is drawn from)
        since_close = sample.t - closed_at - s.es_delay_s
        allowed = s.pcs_rated_kw * max(0.0, since_close) / s.es_ramp_s if s.es_ramp_s else 1e9
        excess = max(excess if excess is not None else -1e9, sample.msg.granted_kw - allowed)
        if sample.msg.granted_kw > 0.0:
            due = sample.msg.granted_kw / s.pcs_rated_kw * s.es_ramp_s  # seconds into the ramp this power needs
            early = max(early if early is not None else -1e9, due - since_close)
    reached = next((x.t for x in ctx.io.since("pcs", closed_at)
                    if x.msg.quality == 0 and x.msg.p_kw >= p.request_kw - p.tolerance_kw), None)
    ctx.measure(first_dispatch_after_close_s=None if first is None else first.t - closed_at,
                delay_reason_seen=any("ENTER_SERVICE_DELAY" in x.msg.reason_codes
                                      for x in dispatch_decisions(ctx, closed_at)),
                ramp_excess_kw=excess, ramp_early_s=early,
                reached_request_after_close_s=None if reached is None else reached - closed_at)
