"""The safety arbiter's rules: a pure, deterministic decision with no I/O and no clock of its own.

``decide(state, request_kw, limits, now_ns) -> Decision`` applies, in this fixed order:

1. Freshness: every input must be younger than its watchdog. A stale BMS, relay or PCS refuses
   dispatch. A stale POI meter is the fail-safe case: for ``meter_failsafe_s`` after the
   watchdog, discharge is capped at ``min_site_load_kw`` (the documented lowest load of the
   site, so the site cannot export whatever the load does) and charging stops; after that, 0 kW.
   A meter reading flagged good that is not a number is invalid data: 0 kW.
2. Relay: breaker known and closed, no trip, no 86 lockout.
3. BMS: permissive, contactors closed, no fault; its current limits become power limits at the
   present DC voltage.
4. SOC window (discharge stops at soc_min + reserve, charge at soc_max), PCS rating, and the
   ramp-rate limit on increases of magnitude (a decrease toward 0 kW is never delayed).
5. IEEE 1547 enter service: after a trip or loss of grid, nothing until V and f have been
   inside the enter-service window continuously for the delay, then a linear ramp.
6. Export limit: the command never plans POI export beyond the limit, given the latest POI
   reading and the present PCS output (site load = POI + PCS). The two readings must be a pair:
   a PCS reading sampled before the POI reading (by more than ``reading_pair_window_s``) after
   which the command moved by more than the export margin says what the PCS did then, not while
   the POI was measured (the new set-point took effect between the two samples), and POI + PCS
   is not the site load. Until the PCS is read again, a POI that shows no export keeps what is
   already granted and allows no increase; a POI that shows export is cut at once from the lower
   of the two PCS values.

Sign conventions: BESS power > 0 discharges; POI power > 0 imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

NS = 1_000_000_000

GRANTED, CLIPPED, REFUSED = 0, 1, 2  # ArbiterDecision.OUTCOME_*


@dataclass(frozen=True)
class Limits:
    meter_watchdog_s: float = 1.0
    bms_watchdog_s: float = 2.0
    relay_watchdog_s: float = 1.0
    pcs_watchdog_s: float = 2.0
    meter_failsafe_s: float = 5.0  # stage 1 of a stale meter, then 0 kW
    min_site_load_kw: float = 100.0  # lowest load the site ever draws (documented fail-safe cap)
    soc_min_pct: float = 10.0
    soc_reserve_pct: float = 5.0
    soc_max_pct: float = 95.0
    pcs_rated_kw: float = 500.0
    ramp_kw_per_s: float = 250.0
    export_limit_kw: float = 0.0  # 0: zero export
    export_margin_kw: float = 5.0  # keep this much import when limiting against export
    reading_pair_window_s: float = 0.25  # a PCS reading this much older than the POI reading no longer explains it
    es_v_min_pu: float = 0.917
    es_v_max_pu: float = 1.05
    es_f_min_hz: float = 59.5
    es_f_max_hz: float = 60.1
    es_delay_s: float = 300.0
    es_ramp_s: float = 300.0


@dataclass(frozen=True)
class MeterIn:
    p_kw: float
    good: bool
    received_ns: int
    sampled_ns: int | None = None  # the reading's own sample time (header stamp); None: unknown


@dataclass(frozen=True)
class RelayIn:
    breaker_closed: bool | None  # None: unknown
    trip: bool
    lockout_86: bool
    close_permissive: bool
    voltage_pu: float
    frequency_hz: float
    good: bool
    received_ns: int
    elements_active: bool = False  # a protection element is picked up (the fault is still there)


@dataclass(frozen=True)
class BmsIn:
    soc_pct: float
    permissive: bool
    contactors_closed: bool
    fault: bool
    max_charge_a: float
    max_discharge_a: float
    dc_voltage_v: float
    good: bool
    received_ns: int


@dataclass(frozen=True)
class PcsIn:
    p_kw: float
    good: bool
    received_ns: int
    fault: bool = False  # the PCS reports its FAULT state: nothing may be dispatched to it
    sampled_ns: int | None = None  # the reading's own sample time (header stamp); None: unknown
    command_kw: float | None = None  # the arbiter's command in force when it was sampled; None: unknown


@dataclass(frozen=True)
class EnterService:
    """IEEE 1547 enter-service tracking. ``in_service_since_ns`` is None until the grid has been
    inside the window for the delay; ``window_since_ns`` is when it last entered the window."""

    window_since_ns: int | None = None
    in_service_since_ns: int | None = None


@dataclass(frozen=True)
class SiteState:
    meter: MeterIn | None = None
    relay: RelayIn | None = None
    bms: BmsIn | None = None
    pcs: PcsIn | None = None
    last_granted_kw: float = 0.0
    last_decision_ns: int | None = None
    enter_service: EnterService = field(default_factory=EnterService)


@dataclass(frozen=True)
class Reason:
    code: str
    text: str


@dataclass(frozen=True)
class Link:
    """One permissive of the interlock chain, with its evidence."""

    name: str
    ok: bool
    source: str
    value: str
    age_s: float


@dataclass(frozen=True)
class Decision:
    requested_kw: float
    granted_kw: float
    outcome: int
    reasons: tuple[Reason, ...]


def _age_s(received_ns: int | None, now_ns: int) -> float:
    return math.inf if received_ns is None else (now_ns - received_ns) / NS


def grid_in_window(relay: RelayIn | None, limits: Limits) -> bool:
    return (relay is not None and relay.good
            and limits.es_v_min_pu <= relay.voltage_pu <= limits.es_v_max_pu
            and limits.es_f_min_hz <= relay.frequency_hz <= limits.es_f_max_hz)


def update_enter_service(es: EnterService, relay: RelayIn | None, limits: Limits, now_ns: int) -> EnterService:
    """Advance the enter-service state with a new relay reading (pure).

    Leaving service: a trip, a lockout, an open or unknown breaker, or V/f outside the window.
    Entering: inside the window continuously for the delay, with the breaker closed and healthy.
    """
    healthy = (relay is not None and relay.good and relay.breaker_closed is True
               and not relay.trip and not relay.lockout_86)
    if not (healthy and grid_in_window(relay, limits)):
        return EnterService()
    window_since = es.window_since_ns if es.window_since_ns is not None else now_ns
    if es.in_service_since_ns is not None:
        return replace(es, window_since_ns=window_since)
    if now_ns - window_since >= limits.es_delay_s * NS:
        return EnterService(window_since, now_ns)
    return EnterService(window_since, None)


def interlock_chain(state: SiteState, limits: Limits, now_ns: int) -> list[Link]:
    """Every permissive with its source reading and age, in the order decide() checks them."""
    m, r, b, p = state.meter, state.relay, state.bms, state.pcs
    links = [
        Link("meter.fresh", m is not None and m.good and _age_s(m.received_ns, now_ns) <= limits.meter_watchdog_s,
             "/site/poi/meter", "none" if m is None else f"p={m.p_kw:.1f} kW good={m.good}",
             _age_s(m and m.received_ns, now_ns)),
        Link("relay.fresh", r is not None and r.good and _age_s(r.received_ns, now_ns) <= limits.relay_watchdog_s,
             "/site/poi/relay", "none" if r is None else f"good={r.good}", _age_s(r and r.received_ns, now_ns)),
        Link("bms.fresh", b is not None and b.good and _age_s(b.received_ns, now_ns) <= limits.bms_watchdog_s,
             "/bess/bms/status", "none" if b is None else f"good={b.good}", _age_s(b and b.received_ns, now_ns)),
        Link("pcs.fresh", p is not None and p.good and _age_s(p.received_ns, now_ns) <= limits.pcs_watchdog_s,
             "/bess/pcs/status", "none" if p is None else f"p={p.p_kw:.1f} kW", _age_s(p and p.received_ns, now_ns)),
    ]
    if r is not None:
        age = _age_s(r.received_ns, now_ns)
        links += [
            Link("relay.breaker_closed", r.breaker_closed is True, "/site/poi/relay",
                 {True: "closed", False: "open", None: "unknown"}[r.breaker_closed], age),
            Link("relay.no_trip", not r.trip, "/site/poi/relay", f"trip={r.trip}", age),
            Link("relay.no_86_lockout", not r.lockout_86, "/site/poi/relay", f"86={r.lockout_86}", age),
            Link("relay.close_permissive", r.close_permissive, "/site/poi/relay", f"IN101={r.close_permissive}", age),
        ]
    if b is not None:
        age = _age_s(b.received_ns, now_ns)
        links += [
            Link("bms.permissive", b.permissive, "/bess/bms/status", f"permissive={b.permissive}", age),
            Link("bms.contactors_closed", b.contactors_closed, "/bess/bms/status",
                 f"closed={b.contactors_closed}", age),
            Link("bms.no_fault", not b.fault, "/bess/bms/status", f"fault={b.fault}", age),
            Link("bms.soc_in_window", limits.soc_min_pct <= b.soc_pct <= limits.soc_max_pct, "/bess/bms/status",
                 f"soc={b.soc_pct:.1f} %", age),
        ]
    if p is not None:
        links.append(Link("pcs.no_fault", not p.fault, "/bess/pcs/status", f"fault={p.fault}",
                          _age_s(p.received_ns, now_ns)))
    es = state.enter_service
    links.append(Link("grid.enter_service", es.in_service_since_ns is not None, "/site/poi/relay",
                      "in service" if es.in_service_since_ns is not None else (
                          "waiting: V/f in window for "
                          f"{0 if es.window_since_ns is None else (now_ns - es.window_since_ns) / NS:.0f} s "
                          f"of {limits.es_delay_s:.0f} s"),
                      _age_s(r and r.received_ns, now_ns)))
    return links


def _clip(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def decide(state: SiteState, request_kw: float, limits: Limits, now_ns: int) -> Decision:
    """The one decision path for PCS power. Returns the granted power and every reason it differs."""
    reasons: list[Reason] = []
    request = request_kw if math.isfinite(request_kw) else 0.0
    if request != request_kw:
        reasons.append(Reason("REQUEST_INVALID", f"requested {request_kw} kW is not a number: 0 kW"))

    # A non-finite request was replaced by 0 kW above, but it is still not "granted as asked".
    refused_outcome = REFUSED if request_kw != 0 else GRANTED

    def refuse(code: str, text: str) -> Decision:
        return Decision(request_kw, 0.0, refused_outcome, (*reasons, Reason(code, text)))

    def refuse_all(found: list[Reason]) -> Decision:
        # every broken link is named, not just the first: the record must explain the whole refusal
        return Decision(request_kw, 0.0, refused_outcome, (*reasons, *found))

    # 1. freshness
    stale = []
    for name, reading, watchdog in (("BMS", state.bms, limits.bms_watchdog_s),
                                    ("RELAY", state.relay, limits.relay_watchdog_s),
                                    ("PCS", state.pcs, limits.pcs_watchdog_s)):
        if reading is None or not reading.good or _age_s(reading.received_ns, now_ns) > watchdog:
            age = _age_s(reading and reading.received_ns, now_ns)
            quality = "no reading" if reading is None else ("invalid/stale quality" if not reading.good
                                                            else f"{age:.1f} s old (watchdog {watchdog:g} s)")
            stale.append(Reason(f"STALE_{name}", f"{name.lower()} data not fresh: {quality}: 0 kW"))
    if stale:
        return refuse_all(stale)
    low, high = -limits.pcs_rated_kw, limits.pcs_rated_kw
    meter = state.meter
    meter_age = _age_s(meter and meter.received_ns, now_ns)
    meter_ok = meter is not None and meter.good and meter_age <= limits.meter_watchdog_s
    if meter_ok and not math.isfinite(meter.p_kw):  # type: ignore[union-attr]
        return refuse("METER_INVALID", f"POI meter reports P = {meter.p_kw} kW as good: 0 kW")  # type: ignore[union-attr]
    if not meter_ok:
        if meter_age > limits.meter_watchdog_s + limits.meter_failsafe_s or meter is None:
            return refuse("STALE_METER", f"POI meter data not fresh for {meter_age:.1f} s: 0 kW (fail-safe)")
        high = min(high, limits.min_site_load_kw)
        low = 0.0
        reasons.append(Reason("STALE_METER_FAILSAFE",
                              f"POI meter not fresh ({meter_age:.1f} s): discharge capped at the site's minimum "
                              f"load {limits.min_site_load_kw:g} kW, no charging"))
    # 2. relay and 3. BMS permissives
    relay, bms = state.relay, state.bms
    assert relay is not None and bms is not None
    broken = []
    if relay.breaker_closed is not True:
        broken.append(Reason("BREAKER_OPEN" if relay.breaker_closed is False else "BREAKER_UNKNOWN",
                             f"POI breaker is {'open' if relay.breaker_closed is False else 'in an unknown state'}"))
    if relay.trip:
        broken.append(Reason("RELAY_TRIP", "POI relay trip asserted"))
    if relay.lockout_86:
        broken.append(Reason("RELAY_86_LOCKOUT", "86 lockout latched until an authorised reset"))
    if bms.fault:
        broken.append(Reason("BMS_FAULT", "BMS reports a fault"))
    if not bms.contactors_closed:
        broken.append(Reason("BMS_CONTACTORS_OPEN", "BMS DC contactors open"))
    if not bms.permissive:
        broken.append(Reason("BMS_NOT_READY", "BMS permissive is off"))
    if not math.isfinite(bms.soc_pct):
        broken.append(Reason("BMS_SOC_INVALID", f"BMS reports SOC {bms.soc_pct}"))
    if state.pcs is not None and state.pcs.fault:
        broken.append(Reason("PCS_FAULT", "PCS reports a fault"))
    if broken:
        return refuse_all([*broken[:-1], Reason(broken[-1].code, broken[-1].text + ": 0 kW")])
    volts = bms.dc_voltage_v if math.isfinite(bms.dc_voltage_v) and bms.dc_voltage_v > 0 else 0.0
    max_dis = max(0.0, bms.max_discharge_a) * volts / 1000.0 if math.isfinite(bms.max_discharge_a) else 0.0
    max_cha = max(0.0, bms.max_charge_a) * volts / 1000.0 if math.isfinite(bms.max_charge_a) else 0.0
    if high > max_dis:
        high = max_dis
        if request > max_dis:
            reasons.append(Reason("BMS_DISCHARGE_LIMIT", f"BMS allows {bms.max_discharge_a:.0f} A at {volts:.0f} V"
                                                         f" = {max_dis:.1f} kW discharge"))
    if low < -max_cha:
        low = -max_cha
        if request < -max_cha:
            reasons.append(Reason("BMS_CHARGE_LIMIT",
                                  f"BMS allows {bms.max_charge_a:.0f} A at {volts:.0f} V = {max_cha:.1f} kW charge"))
    # 4. SOC window, rating (already in low/high), ramp
    if bms.soc_pct <= limits.soc_min_pct + limits.soc_reserve_pct and high > 0:
        high = 0.0
        if request > 0:
            reasons.append(Reason("SOC_LOW", f"SOC {bms.soc_pct:.1f} % at or below the floor "
                                             f"{limits.soc_min_pct + limits.soc_reserve_pct:g} % (min + reserve)"))
    if bms.soc_pct >= limits.soc_max_pct and low < 0:
        low = 0.0
        if request < 0:
            reasons.append(Reason("SOC_HIGH",
                                  f"SOC {bms.soc_pct:.1f} % at or above the ceiling {limits.soc_max_pct:g} %"))
    if abs(request) > limits.pcs_rated_kw:
        reasons.append(Reason("PCS_RATING", f"PCS rating is ±{limits.pcs_rated_kw:g} kW"))
    # 5. enter service (after a trip or loss of grid)
    es = state.enter_service
    if es.in_service_since_ns is None:
        waited = 0.0 if es.window_since_ns is None else (now_ns - es.window_since_ns) / NS
        return refuse("ENTER_SERVICE_DELAY",
                      f"IEEE 1547 enter service: V/f inside the window for {waited:.0f} s of the required "
                      f"{limits.es_delay_s:g} s: 0 kW")
    ramp_frac = min(1.0, (now_ns - es.in_service_since_ns) / NS / limits.es_ramp_s) if limits.es_ramp_s > 0 else 1.0
    if ramp_frac < 1.0:
        cap = limits.pcs_rated_kw * ramp_frac
        if abs(request) > cap:
            reasons.append(Reason("ENTER_SERVICE_RAMP",
                                  f"entering service: {100 * ramp_frac:.0f} % of the {limits.es_ramp_s:g} s ramp, "
                                  f"|P| <= {cap:.1f} kW"))
        high, low = min(high, cap), max(low, -cap)
    # 6. export limit: predicted POI = site load - command >= -limit
    if meter_ok and state.pcs is not None:
        assert meter is not None
        high, found = _export_cap(meter, state.pcs, state.last_granted_kw, request, high, limits)
        reasons += found
    # ramp on increases of magnitude only: reducing toward 0 kW is the safe direction
    target = _clip(request, min(low, 0.0), max(high, 0.0))
    if state.last_decision_ns is not None and limits.ramp_kw_per_s > 0:
        step = limits.ramp_kw_per_s * max(0.0, (now_ns - state.last_decision_ns) / NS)
        last = state.last_granted_kw
        if target > 0 and target > max(last, 0.0) + step:
            target = max(last, 0.0) + step
            reasons.append(Reason("RAMP_LIMIT", f"ramp {limits.ramp_kw_per_s:g} kW/s from {last:.1f} kW"))
        elif target < 0 and target < min(last, 0.0) - step:
            target = min(last, 0.0) - step
            reasons.append(Reason("RAMP_LIMIT", f"ramp {limits.ramp_kw_per_s:g} kW/s from {last:.1f} kW"))
    target = _clip(target, min(low, 0.0), max(high, 0.0))
    if target == request and not any(r.code == "REQUEST_INVALID" for r in reasons):
        return Decision(request_kw, target, GRANTED, tuple(reasons))
    outcome = REFUSED if target == 0.0 and request != 0.0 else CLIPPED
    if not reasons:
        reasons.append(Reason("LIMITED", "limited by the permissive chain"))
    return Decision(request_kw, target, outcome, tuple(reasons))


def sampled_ns(stamp) -> int | None:
    """A reading's sample time from its header stamp (sec, nanosec); None when the device left it unset."""
    return stamp.sec * NS + stamp.nanosec or None


def belong_together(meter_ns: int | None, pcs_ns: int | None, command_then_kw: float, command_now_kw: float,
                    window_ns: float, margin_kw: float) -> bool:
    """Whether a POI reading and a PCS reading give the site load as POI + PCS: either has no sample time,
    they were sampled within ``window_ns`` (or the PCS later), or the command now is within ``margin_kw``
    of the one in force when the PCS was sampled (only the end points count: a swing that came back does
    not matter, where the PCS is heading now does)."""
    if meter_ns is None or pcs_ns is None or pcs_ns >= meter_ns - window_ns:
        return True
    return abs(command_now_kw - command_then_kw) <= margin_kw


def readings_paired(meter: MeterIn, pcs: PcsIn, last_granted_kw: float, limits: Limits) -> bool:
    """``belong_together`` for the arbiter: its commands, its export margin."""
    then = pcs.command_kw if pcs.command_kw is not None else pcs.p_kw
    return belong_together(meter.sampled_ns, pcs.sampled_ns, then, last_granted_kw,
                           limits.reading_pair_window_s * NS, limits.export_margin_kw)


def _export_cap(meter: MeterIn, pcs: PcsIn, last_granted_kw: float, request: float, high: float,
                limits: Limits) -> tuple[float, list[Reason]]:
    """The discharge ceiling the export limit allows (rule 6), and the reason when it binds."""
    site_load = meter.p_kw + pcs.p_kw
    paired = readings_paired(meter, pcs, last_granted_kw, limits)
    if not paired:  # the PCS may have moved since its reading: count the lower of it and the last command
        site_load = meter.p_kw + min(pcs.p_kw, last_granted_kw)
    # an unknown site load (a PCS reading that is not a number) allows no discharge at all
    cap = max(0.0, site_load + limits.export_limit_kw - limits.export_margin_kw) if math.isfinite(site_load) else 0.0
    held = ""
    if not paired and math.isfinite(site_load) and meter.p_kw >= -limits.export_limit_kw and last_granted_kw > cap:
        # the POI exports nothing with the PCS on its way to the last command: keep that command (a cut here
        # would be undone by the next paired reading: the loop oscillated a step at a time, measured)
        cap, held = last_granted_kw, " (held until the PCS is read again)"
    if cap >= high:
        return high, []
    if request <= cap:
        return cap, []
    if not paired:
        text = (f"POI {meter.p_kw:.1f} kW sampled after the last PCS reading ({pcs.p_kw:.1f} kW): discharge <= "
                f"{cap:.1f} kW{held or ' keeps export within ' + format(limits.export_limit_kw, 'g') + ' kW'}")
        return cap, [Reason("EXPORT_LIMIT", text)]
    return cap, [Reason("EXPORT_LIMIT", f"POI {meter.p_kw:.1f} kW with the PCS at {pcs.p_kw:.1f} kW: site load "
                                        f"{site_load:.1f} kW, so discharge <= {cap:.1f} kW keeps export within "
                                        f"{limits.export_limit_kw:g} kW")]


def decide_breaker(state: SiteState, action: int, requested_by: str, limits: Limits, now_ns: int,
                   chain: list[Link] | None = None) -> Decision:
    """Breaker requests: OPEN is always allowed (the safe direction); CLOSE needs the whole chain;
    RESET of the 86 lockout needs a named person and no protection element picked up.

    ``chain``: ``interlock_chain(state, limits, now_ns)`` if the caller has it already (the arbiter
    builds it for every decision anyway), so it is not built twice."""
    OPEN, CLOSE, RESET = 0, 1, 2  # BreakerRequest.ACTION_*
    if action == OPEN:
        return Decision(0.0, 0.0, GRANTED, (Reason("OPEN", f"open requested by {requested_by or 'unknown'}"),))
    if not requested_by.strip():
        return Decision(0.0, 0.0, REFUSED, (Reason("NO_REQUESTER", "a breaker close or reset must name who asks"),))
    relay = state.relay
    relay_fresh = relay is not None and relay.good and _age_s(relay.received_ns, now_ns) <= limits.relay_watchdog_s
    if action == RESET:
        if not relay_fresh:
            return Decision(0.0, 0.0, REFUSED, (Reason("STALE_RELAY", "relay data not fresh: reset refused"),))
        assert relay is not None
        if relay.elements_active:
            return Decision(0.0, 0.0, REFUSED, (Reason("ELEMENT_PICKED_UP",
                                                       "a protection element is still picked up: reset refused"),))
        return Decision(0.0, 0.0, GRANTED, (Reason("RESET", f"86 reset requested by {requested_by}"),))
    if action != CLOSE:
        return Decision(0.0, 0.0, REFUSED, (Reason("UNKNOWN_ACTION", f"unknown breaker action {action}"),))
    reasons = []
    for link in interlock_chain(state, limits, now_ns) if chain is None else chain:
        if link.name in ("relay.breaker_closed", "grid.enter_service", "pcs.fresh", "pcs.no_fault"):
            continue  # the breaker is open when we close it; enter service starts after the close; a faulted
            # PCS at 0 kW (checked below) does not stop the facility from being fed
        if not link.ok:
            reasons.append(Reason(link.name.upper().replace(".", "_"), f"{link.name} is not satisfied ({link.value})"))
    if not grid_in_window(relay, limits):
        reasons.append(Reason("GRID_OUT_OF_WINDOW", "grid V/f outside the enter-service window: close refused"))
    if state.pcs is not None and not (math.isfinite(state.pcs.p_kw) and abs(state.pcs.p_kw) <= 1.0):
        reasons.append(Reason("PCS_NOT_AT_ZERO", f"PCS at {state.pcs.p_kw:.1f} kW: must be at 0 kW to close"))
    if reasons:
        return Decision(0.0, 0.0, REFUSED, tuple(reasons))
    return Decision(0.0, 0.0, GRANTED, (Reason("CLOSE", f"close requested by {requested_by}: whole chain healthy"),))
