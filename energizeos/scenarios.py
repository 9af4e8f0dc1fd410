"""Safety scenarios run in the deterministic executor against the real plant model and the real
nodes (device nodes on in-memory registers, arbiter, dispatcher). Each returns the measured
figures as a plain dict; ``energizeos simulate scenario NAME --json`` prints them.

Plant truth (the POI power the plant really exchanges, the PCS output) is sampled at 50 Hz by a
probe, independently of what the EMS measures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from energizeos.nodes.bms_node import BmsNode
from energizeos.nodes.device_link import InMemoryLink
from energizeos.nodes.dispatcher import Dispatcher
from energizeos.nodes.meter_node import MeterNode
from energizeos.nodes.pcs_node import PcsNode
from energizeos.nodes.relay_node import RelayNode
from energizeos.nodes.safety_arbiter import SafetyArbiter
from energizeos.nodes.sim_plant import SimPlant
from energizeos.runtime import Node, SimExecutor
from energizeos_msgs.msg import ArbiterDecision
from energizeos_msgs.srv import BreakerRequest

START = datetime(2025, 7, 15, 20, 0, tzinfo=UTC)  # noon Pacific standard time, a summer weekday
SAMPLE_HZ = 50.0


@dataclass
class Site:
    ex: SimExecutor
    plant: SimPlant
    arbiter: SafetyArbiter
    dispatcher: Dispatcher
    probe: Node
    truth: list[tuple[float, float, float]] = field(default_factory=list)  # (t_s, poi_kw, pcs_kw)
    decisions: list[tuple[float, ArbiterDecision]] = field(default_factory=list)

    @property
    def t(self) -> float:
        return self.ex.clock.nanoseconds / 1e9 - START.timestamp()

    def run(self, seconds: float) -> None:
        self.ex.spin_for(seconds)

    def run_until(self, predicate: Callable[[], bool], limit_s: float) -> float:
        """Advance in 0.1 s steps until ``predicate``; returns the time it took (inf if never)."""
        start = self.t
        while self.t - start < limit_s:
            if predicate():
                return self.t - start
            self.ex.spin_for(0.1)
        return float("inf")

    def call_breaker(self, action: int, who: str) -> BreakerRequest.Response:
        client = self.probe.create_client(BreakerRequest, "/ems/breaker/request")
        return client.call(BreakerRequest.Request(action=action, requested_by=who, reason="scenario"))


def build_site(dispatcher_params: dict | None = None, arbiter_params: dict | None = None,
               load_kw: float | None = None) -> Site:
    ex = SimExecutor(start=START)
    plant_params = {"serve_modbus": False, "step_hz": 20.0}
    plant = SimPlant(executor=ex, parameter_overrides=plant_params)
    images = plant.site.images
    for cls, name in ((MeterNode, "meter"), (RelayNode, "relay"), (BmsNode, "bms"), (PcsNode, "pcs")):
        cls(executor=ex, link=InMemoryLink(images[name]))
    arbiter = SafetyArbiter(executor=ex, parameter_overrides=arbiter_params or {})
    dispatcher = Dispatcher(executor=ex, parameter_overrides=dispatcher_params or {})
    probe = Node("scenario_probe", executor=ex)
    site = Site(ex, plant, arbiter, dispatcher, probe)
    if load_kw is not None:
        plant.site.inject("load_step", kw=load_kw)
    probe.create_timer(1.0 / SAMPLE_HZ, lambda: site.truth.append(
        (site.t, plant.site.plant.poi_true_kw if hasattr(plant.site.plant, "poi_true_kw") else 0.0,
         plant.site.plant.pcs_p_kw)))
    probe.create_subscription(ArbiterDecision, "/ems/arbiter/decision",
                              lambda d: site.decisions.append((site.t, d)), 1000)
    return site


def _ramp_in(site: Site, target_kw: float, limit_s: float = 1200.0) -> float:
    """Wait out the enter-service delay and ramp until the PCS delivers ``target_kw``."""
    return site.run_until(lambda: abs(site.plant.site.plant.pcs_p_kw - target_kw) < 5.0, limit_s)


def load_drop(before_kw: float = 900.0, after_kw: float = 150.0) -> dict:
    """Discharging 500 kW under zero export when the load falls 900 -> 150 kW in one step."""
    site = build_site({"mode": "peak_shaving", "peak_threshold_kw": 400.0, "recharge_windows": "0-6"},
                      load_kw=before_kw)
    ramp_s = _ramp_in(site, 500.0)
    site.run(5.0)
    t_drop = site.t
    site.plant.site.inject("load_step", kw=after_kw)
    site.run(10.0)
    after = [(t, poi, pcs) for t, poi, pcs in site.truth if t >= t_drop]
    exporting = [(t, -poi) for t, poi, _pcs in after if poi < 0.0]
    cleared_at = max((t for t, _ in exporting), default=t_drop)
    dt = 1.0 / SAMPLE_HZ
    return {
        "scenario": "load-drop",
        "load_before_kw": before_kw, "load_after_kw": after_kw,
        "pcs_before_kw": round(next(pcs for t, _p, pcs in after), 1),
        "seconds_to_reach_500_kw": round(ramp_s, 1),
        "max_export_kw": round(max((e for _t, e in exporting), default=0.0), 1),
        "export_cleared_after_s": round(cleared_at - t_drop, 2) if exporting else 0.0,
        "exported_kwh": round(sum(e * dt for _t, e in exporting) / 3600.0, 4),
        "pcs_after_kw": round(after[-1][2], 1), "poi_after_kw": round(after[-1][1], 1),
        "goal_cleared_within_s": 2.0,
        "goal_met": (cleared_at - t_drop if exporting else 0.0) <= 2.0,
    }


def bms_overtemp() -> dict:
    """A rack overheats while discharging: derated, then refused, within one control cycle."""
    site = build_site({"mode": "peak_shaving", "peak_threshold_kw": 300.0}, load_kw=700.0)
    _ramp_in(site, 400.0)
    t_inject = site.t
    site.plant.site.inject("rack_overtemp", rack=3, delta_c=45.0)
    bms_node = next(n for n in site.ex.nodes if isinstance(n, BmsNode))
    permissive_lost = site.run_until(lambda: "BMS_RACK_OVERTEMP" in bms_node.conditions.active, 1800.0)
    t_alarm = site.t
    site.run(2.0)
    refused = [(t, d) for t, d in site.decisions if t >= t_alarm - 1.0 and "BMS_NOT_READY" in d.reason_codes]
    derated = [(t, d) for t, d in site.decisions if t_inject <= t and "BMS_DISCHARGE_LIMIT" in d.reason_codes]
    first_refusal = refused[0] if refused else None
    return {
        "scenario": "bms-overtemp",
        "seconds_to_bms_alarm": round(permissive_lost, 1),
        "first_derating_after_s": round(derated[0][0] - t_inject, 1) if derated else None,
        "derated_kw_at_first_derating": round(derated[0][1].granted_kw, 1) if derated else None,
        "refused_after_alarm_s": round(first_refusal[0] - t_alarm, 2) if first_refusal else None,
        "refusal_reason": first_refusal[1].reason_texts[-1] if first_refusal else None,
        "pcs_kw_2s_after_alarm": round(site.plant.site.plant.pcs_p_kw, 1),
        "control_cycle_s": 1.0,
        "goal_met": bool(first_refusal) and first_refusal[0] - t_alarm <= 1.0,
    }


def relay_trip() -> dict:
    """Trip while discharging: PCS to 0; close refused while 86 is latched; after reset and close,
    the IEEE 1547 enter-service delay and ramp are respected."""
    site = build_site({"mode": "peak_shaving", "peak_threshold_kw": 300.0}, load_kw=700.0)
    _ramp_in(site, 400.0)
    plant = site.plant.site.plant
    pcs_before = plant.pcs_p_kw
    t_trip = site.t
    site.plant.site.inject("relay_trip")
    to_zero = site.run_until(lambda: any(t >= t_trip and d.granted_kw == 0.0 and "RELAY_TRIP" in d.reason_codes
                                         for t, d in site.decisions), 5.0)
    site.run(2.0)
    pcs_after_trip = plant.pcs_p_kw
    refused = site.call_breaker(BreakerRequest.Request.ACTION_CLOSE, "operator")
    reset = site.call_breaker(BreakerRequest.Request.ACTION_RESET_LOCKOUT, "operator")
    site.run(1.0)
    closed = site.call_breaker(BreakerRequest.Request.ACTION_CLOSE, "operator")
    t_close = site.t
    site.run_until(lambda: plant.breaker_closed, 5.0)
    first_power = site.run_until(lambda: any(t > t_close and d.granted_kw > 0.0 for t, d in site.decisions), 900.0)
    site.run(60.0)
    ramp = [(t - t_close, d.granted_kw) for t, d in site.decisions if t > t_close and d.granted_kw > 0]
    es_delay = site.arbiter.limits.es_delay_s
    rated = site.arbiter.limits.pcs_rated_kw
    over_ramp = [(t, p) for t, p in ramp if p > rated * max(0.0, (t - es_delay) / site.arbiter.limits.es_ramp_s) + 1]
    return {
        "scenario": "relay-trip",
        "pcs_before_trip_kw": round(pcs_before, 1),
        "command_zero_after_s": round(to_zero, 2),
        "pcs_after_trip_kw": round(pcs_after_trip, 1),
        "close_while_86_accepted": refused.accepted, "close_refusal_reasons": list(refused.reason_codes),
        "reset_accepted": reset.accepted, "close_after_reset_accepted": closed.accepted,
        "breaker_closed": plant.breaker_closed,
        "first_dispatch_after_close_s": round(first_power, 1),
        "enter_service_delay_s": es_delay,
        "ramp_violations": len(over_ramp),
        "goal_met": (to_zero <= 1.0 and not refused.accepted and reset.accepted and closed.accepted
                     and first_power >= es_delay and not over_ramp),
    }


def meter_loss() -> dict:
    """The POI meter stops answering while discharging: fail-safe cap, then 0 kW."""
    site = build_site({"mode": "peak_shaving", "peak_threshold_kw": 300.0}, load_kw=700.0)
    _ramp_in(site, 400.0)
    limits = site.arbiter.limits
    t_loss = site.t
    site.plant.site.inject("comms_loss", "meter")
    site.run(limits.meter_watchdog_s + limits.meter_failsafe_s + 5.0)
    after = [(t - t_loss, d) for t, d in site.decisions if t >= t_loss]
    capped = next(((t, d) for t, d in after if "STALE_METER_FAILSAFE" in d.reason_codes), None)
    zero = next(((t, d) for t, d in after if "STALE_METER" in d.reason_codes and d.granted_kw == 0.0), None)
    return {
        "scenario": "meter-loss",
        "meter_watchdog_s": limits.meter_watchdog_s,
        "failsafe_cap_kw": limits.min_site_load_kw,
        "capped_after_s": round(capped[0], 2) if capped else None,
        "granted_when_capped_kw": round(capped[1].granted_kw, 1) if capped else None,
        "zero_after_s": round(zero[0], 2) if zero else None,
        "pcs_kw_at_end": round(site.plant.site.plant.pcs_p_kw, 1),
        "export_kwh": round(sum(max(0.0, -poi) for t, poi, _ in site.truth if t >= t_loss) / SAMPLE_HZ / 3600, 4),
        "goal_met": bool(capped) and capped[0] <= limits.meter_watchdog_s + 0.6
        and bool(zero) and zero[0] <= limits.meter_watchdog_s + limits.meter_failsafe_s + 0.6,
    }


SCENARIOS: dict[str, Callable[[], dict]] = {
    "load-drop": load_drop, "bms-overtemp": bms_overtemp, "relay-trip": relay_trip, "meter-loss": meter_loss,
}
