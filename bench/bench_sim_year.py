"""Year-long savings simulation speed: the whole node graph in the deterministic executor at a
coarse step (default 60 s): plant physics, the four device nodes polling in-memory registers (same
maps and codecs as over Modbus), the safety arbiter (deciding on every POI reading and on its
tick) and the peak-shaving dispatcher, with CDR on every message. Goal: 365 days in <= 120 s wall,
i.e. <= ~0.3 s per simulated day.

    .venv/bin/python bench/bench_sim_year.py [--days 7] [--step-s 60] [--substep-s 1] [--repeat 3] [--profile]
                                             [--peak-kw 500] [--json out.json]

The plant integrates its physics in sub-steps of at most ``--substep-s`` (sim_plant ``max_substep_s``):
1 s, its default, costs 60 physics sub-steps per 60 s step; ``--substep-s 60`` integrates each step
in one (the PCS lag, ramp and relay clearing times are then not resolved).

It also checks that the site really works at this step: the PCS follows the arbiter (mean |PCS kW|,
refused decisions) and peak shaving discharges in the afternoon (mean PCS kW by local hour).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime

try:
    from bench import _common as common
except ImportError:  # run as a script
    import _common as common

from energizeos.nodes.bms_node import BmsNode
from energizeos.nodes.device_link import InMemoryLink
from energizeos.nodes.dispatcher import Dispatcher
from energizeos.nodes.meter_node import MeterNode
from energizeos.nodes.pcs_node import PcsNode
from energizeos.nodes.relay_node import RelayNode
from energizeos.nodes.safety_arbiter import SafetyArbiter
from energizeos.nodes.sim_plant import SimPlant
from energizeos.runtime import SimExecutor
from energizeos_msgs.msg import ArbiterDecision

UTC_OFFSET_H = -8.0  # the plant's and the dispatcher's site standard time (Pacific)
OUTCOMES = {ArbiterDecision.OUTCOME_GRANTED: "granted", ArbiterDecision.OUTCOME_CLIPPED: "clipped",
            ArbiterDecision.OUTCOME_REFUSED: "refused"}


def arbiter_params(step_s: float) -> dict:
    """Safety settings that make sense when every input arrives once per step."""
    return {
        # an input counts as stale after three missed steps (field defaults are 1-2 s)
        "meter_watchdog_s": 3 * step_s, "bms_watchdog_s": 3 * step_s,
        "relay_watchdog_s": 3 * step_s, "pcs_watchdog_s": 3 * step_s,
        "meter_failsafe_s": 3 * step_s,
        "request_timeout_s": 3 * step_s,  # the dispatcher asks once per step, not every second
        "watchdog_hz": 1.0 / step_s,
        # the PCS reverts to 0 kW unless refreshed within this: must exceed the step (commands come once a step)
        "pcs_reversion_s": 3 * step_s,
        "es_delay_s": 300.0,
    }


def build_dispatcher(ex: SimExecutor, step_s: float, peak_kw: float | None = None) -> tuple[Dispatcher, str]:
    """The peak-shaving dispatcher ticking once per step."""
    params: dict = {"mode": "peak_shaving", "control_rate_hz": 1.0 / step_s}
    if peak_kw is not None:
        params["peak_threshold_kw"] = peak_kw
    return Dispatcher(executor=ex, parameter_overrides=params), "control_rate_hz = 1/step"


def build(step_s: float, start: datetime, substep_s: float = 1.0, peak_kw: float | None = None) -> dict:
    hz = 1.0 / step_s
    ex = SimExecutor(start=start)
    plant_params = {"serve_modbus": False, "step_hz": hz}
    if substep_s != 1.0:  # the plant's default is 1 s; not passed otherwise (older trees lack the parameter)
        plant_params["max_substep_s"] = substep_s
    plant = SimPlant(executor=ex, parameter_overrides=plant_params)
    images = plant.site.images
    devices = {name: cls(executor=ex, link=InMemoryLink(images[name]),
                         parameter_overrides={"poll_hz": hz, **({"heartbeat_s": step_s} if cls is PcsNode else {})})
               for cls, name in ((MeterNode, "meter"), (RelayNode, "relay"), (BmsNode, "bms"), (PcsNode, "pcs"))}
    arbiter = SafetyArbiter(executor=ex, parameter_overrides=arbiter_params(step_s))
    dispatcher, dispatcher_note = build_dispatcher(ex, step_s, peak_kw)
    for node in ex.nodes:
        node.check_unused_overrides()  # a misspelt parameter name must fail here, not be ignored
    # Count the arbiter's decisions without a subscriber (which would add decoding to what is measured).
    outcomes: Counter[str] = Counter()
    refusal_codes: Counter[str] = Counter()
    publish_decision = arbiter._publish_decision

    def counting(decision, decision_id, kind, *rest) -> None:
        if kind == ArbiterDecision.KIND_DISPATCH:
            outcomes[OUTCOMES[decision.outcome]] += 1
            if decision.outcome == ArbiterDecision.OUTCOME_REFUSED:
                refusal_codes.update(r.code for r in decision.reasons)
        publish_decision(decision, decision_id, kind, *rest)

    arbiter._publish_decision = counting
    return {"ex": ex, "plant": plant, "devices": devices, "arbiter": arbiter, "dispatcher": dispatcher,
            "dispatcher_note": dispatcher_note, "outcomes": outcomes, "refusal_codes": refusal_codes}


def run(days: float, step_s: float, start: datetime, substep_s: float = 1.0, peak_kw: float | None = None,
        profile: bool = False) -> dict:
    g = build(step_s, start, substep_s, peak_kw)
    ex, physics = g["ex"], g["plant"].site.plant
    step_ns = round(step_s * 1e9)
    steps = round(days * 86400.0 / step_s)
    t0 = ex.clock.nanoseconds
    # plant truth after every step: PCS kW by local hour, energy, peaks
    hour_sum, hour_n = [0.0] * 24, [0] * 24
    abs_pcs = discharge_kwh = charge_kwh = follow_err = 0.0
    granted = None  # the arbiter's last grant at the end of the previous step: the PCS delivers it this step
    max_load = max_poi = 0.0
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    started = time.perf_counter()
    for k in range(1, steps + 1):
        ex.spin_until(t0 + k * step_ns)
        pcs = physics.pcs_p_kw
        hour = int((physics.t_s / 3600.0 + UTC_OFFSET_H + start.hour + start.minute / 60.0) % 24)
        hour_sum[hour] += pcs
        hour_n[hour] += 1
        abs_pcs += abs(pcs)
        if granted is not None:
            follow_err += abs(pcs - granted)
        last = g["arbiter"].last_decision
        granted = last.granted_kw if last is not None else None
        if pcs > 0:
            discharge_kwh += pcs * step_s / 3600.0
        else:
            charge_kwh -= pcs * step_s / 3600.0
        max_load = max(max_load, physics.load_kw - physics.pv_kw)
        max_poi = max(max_poi, getattr(physics, "poi_true_kw", 0.0))
    wall = time.perf_counter() - started
    if profiler:
        profiler.disable()
    hourly = [round(s / n, 1) if n else None for s, n in zip(hour_sum, hour_n, strict=True)]
    afternoon = [h for h in hourly[12:18] if h is not None]
    night = [h for h in hourly[0:6] if h is not None]
    polls = {name: node.polls for name, node in g["devices"].items()}
    result = {
        "days": days, "step_s": step_s, "physics_substep_s": substep_s,
        "peak_threshold_kw": g["dispatcher"].peak_kw, "start": start.isoformat(), "wall_s": round(wall, 3),
        "wall_s_per_day": round(wall / days, 4), "projected_year_s": round(wall / days * 365.0, 1),
        "steps": steps, "us_per_step": round(wall / steps * 1e6, 1),
        "events": ex.events_processed, "events_per_step": round(ex.events_processed / steps, 1),
        "device_polls": polls, "dispatcher": g["dispatcher_note"],
        "decisions": dict(g["outcomes"]), "refusal_codes": dict(g["refusal_codes"].most_common(8)),
        "pcs_refused_commands": g["devices"]["pcs"].refused_commands,
        "mean_abs_pcs_kw": round(abs_pcs / steps, 1),
        "mean_abs_pcs_minus_grant_kw": round(follow_err / max(1, steps - 1), 2),
        "alarms_active_at_end": sorted(code for node in [*g["devices"].values(), g["dispatcher"]]
                                       for code in node.conditions.active),
        "discharge_kwh": round(discharge_kwh, 1), "charge_kwh": round(charge_kwh, 1),
        "peak_load_kw": round(max_load, 1), "peak_poi_kw": round(max_poi, 1),
        "mean_pcs_kw_by_local_hour": hourly,
        "afternoon_12_18_mean_pcs_kw": round(sum(afternoon) / len(afternoon), 1) if afternoon else None,
        "night_0_6_mean_pcs_kw": round(sum(night) / len(night), 1) if night else None,
    }
    if profiler:
        result["profile"] = {}
        for key in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(25)
            result["profile"][key] = out.getvalue()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--step-s", type=float, default=60.0, help="one step for physics, polls, arbiter, dispatcher")
    parser.add_argument("--substep-s", type=float, default=1.0,
                        help="longest physics sub-step (sim_plant max_substep_s; 1 s = the plant's default)")
    parser.add_argument("--peak-kw", type=float, default=None,
                        help="dispatcher peak_threshold_kw (default: the dispatcher's own, 500 kW)")
    parser.add_argument("--start", default="2025-07-15T00:00:00+00:00", help="simulation start (ISO 8601, UTC)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the median wall time is reported")
    parser.add_argument("--profile", action="store_true", help="cProfile the (first) run: top 25 by cum/tottime")
    parser.add_argument("--log-level", default="ERROR", help="node log level (a year of alarms is a lot of lines)")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    logging.getLogger("energizeos").setLevel(args.log_level.upper())
    start = datetime.fromisoformat(args.start)
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    runs = [run(args.days, args.step_s, start, args.substep_s, args.peak_kw, profile=args.profile and i == 0)
            for i in range(args.repeat)]
    r = runs[0]
    per_day = [x["wall_s_per_day"] for x in runs]
    median = statistics.median(per_day)
    for key, text in r.pop("profile", {}).items():
        print(f"--- cProfile, top 25 by {key} ---\n{text}")
    print(f"{args.days:g} day(s) at a {args.step_s:g} s step (physics sub-steps <= {args.substep_s:g} s) "
          f"from {start:%Y-%m-%d}: "
          f"wall s per simulated day {', '.join(f'{x:.3f}' for x in per_day)} (median {median:.3f}; "
          f"365 days ~ {median * 365:.0f} s{' with the profiler on' if args.profile else ''})")
    print(f"  {r['steps']} steps, {r['events']} events ({r['events_per_step']}/step), {r['us_per_step']} us/step; "
          f"polls {r['device_polls']}; dispatcher: {r['dispatcher']}")
    print(f"  decisions {r['decisions']}, refusal reasons {r['refusal_codes']}, "
          f"PCS refused commands {r['pcs_refused_commands']}; mean |PCS - previous grant| "
          f"{r['mean_abs_pcs_minus_grant_kw']} kW; alarms active at the end {r['alarms_active_at_end']}")
    print(f"  mean |PCS| {r['mean_abs_pcs_kw']} kW; discharged {r['discharge_kwh']} kWh, "
          f"charged {r['charge_kwh']} kWh; peak load {r['peak_load_kw']} kW -> peak POI {r['peak_poi_kw']} kW "
          f"(threshold {r['peak_threshold_kw']:g} kW)")
    print(f"  mean PCS kW 12-18 local {r['afternoon_12_18_mean_pcs_kw']}, 0-6 local {r['night_0_6_mean_pcs_kw']}; "
          f"by hour {r['mean_pcs_kw_by_local_hour']}")
    if args.json:
        common.write_json(args.json, {"runs": runs, "median_wall_s_per_day": median})
    return 0


if __name__ == "__main__":
    sys.exit(main())
