"""The assistant's evaluation day: the afternoon of 15 July 2025 at the simulated reference site
(15:30-19:00 at 0.5 s steps: fine enough for the meter's power-balance check), recorded by the real
graph (historian, alarm manager, planner with manual approval) in the deterministic executor, so the
same records — ids and times included — come out on every machine.

What happens (site time): the EMS starts at 15:30 with the battery at 90 % and the operator
approves the plan for the rest of the day at 15:35 (dispatch waits out the 300 s enter-service delay); rack 3 overheats
16:20-16:50 while the battery discharges on-peak; the operator rejects tomorrow's plan at 17:20; the
relay trips at 17:30, and the operator resets the 86 lockout at 17:45 and closes the breaker at
17:46; the load drops to 50 kW at 18:05 for 5 minutes while the battery discharges (an export
event); the meter's CTs are reversed 18:20-18:40 (a wiring fault, found by the power-balance check
when the battery steps); the operator acknowledges alarms at 17:10 and 18:50.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from energizeos.sim_records import RecordedRun, Run, record_run
from energizeos_msgs.srv import BreakerRequest

DAY = date(2025, 7, 15)
STEP_S = 0.5
H = 3600.0
START_HOUR, HOURS = 15.5, 3.5
REJECT_COMMENT = "forecast ignores the planned shutdown of line 2 tomorrow"


def _reject_tomorrow(run: Run) -> None:
    run.decide_plan(False, REJECT_COMMENT)


_AT_SITE_TIME = {  # seconds after midnight, site time
    15 * H + 35 * 60: lambda run: run.decide_plan(True, "plan checked against the production schedule", latest=False),
    16 * H + 20 * 60: lambda run: run.inject("rack_overtemp", rack=2, delta_c=45.0),
    16 * H + 50 * 60: lambda run: run.clear("rack_overtemp"),
    17 * H + 10 * 60: lambda run: run.acknowledge_all(),
    17 * H + 20 * 60: _reject_tomorrow,
    17 * H + 30 * 60: lambda run: run.inject("relay_trip"),
    17 * H + 45 * 60: lambda run: run.breaker(BreakerRequest.Request.ACTION_RESET_LOCKOUT,
                                              reason="trip investigated: external trip, grid normal"),
    17 * H + 46 * 60: lambda run: run.breaker(BreakerRequest.Request.ACTION_CLOSE, reason="return to service"),
    18 * H + 5 * 60: lambda run: run.inject("load_step", kw=50.0),
    18 * H + 10 * 60: lambda run: run.clear("load_step"),
    18 * H + 20 * 60: lambda run: run.inject("ct_polarity", phases="ABC"),
    18 * H + 40 * 60: lambda run: run.clear("ct_polarity"),
    18 * H + 50 * 60: lambda run: run.acknowledge_all(),
}


ACTIONS = {at - START_HOUR * H: action for at, action in _AT_SITE_TIME.items()}  # seconds after the start


def record_incident_day(directory: Path) -> RecordedRun:
    # this site's planner plans each day alone: seeing the next day, it keeps the evening's energy for
    # the 16th, and the 18:05 load drop then finds the battery idle, which is not the story the questions ask about.
    # The evaluation set's alarm ids, times and kW come from this day's records, made before the LP's tie-break
    # (hold_value_per_kwh), the on-peak margin (on_peak_margin_pct), the demand floor's week-long windows
    # (demand_floor_window_days), the measured peak's noise band (peak_noise_pct) and the week plan
    # (week_plan_days): all stay off here so the records, and the answers, stay those.
    return record_run(directory, DAY, 1, STEP_S, ACTIONS, approval="manual", start_hour=START_HOUR, hours=HOURS,
                      initial_soc_pct=90.0, planner_overrides={"lookahead_intervals": 0, "hold_value_per_kwh": 0.0,
                                                               "on_peak_margin_pct": 0.0,
                                                               "demand_floor_window_days": 1,
                                                               "peak_noise_pct": 0.0, "week_plan_days": 0})
