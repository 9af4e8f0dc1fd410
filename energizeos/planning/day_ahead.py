"""Day-ahead and rolling (model-predictive) plans: forecast + tariff + LP + safety gate, pure.

``plan_day`` makes tomorrow's plan over the local day's 15-minute intervals (92, 96 or 100 of them
across DST changes). ``replan`` re-plans the rest of today from the measured SOC and the peaks set so
far, with the forecast corrected by how far reality has departed from it. Both return a ``Plan``
whose gate result says whether it may be approved; neither approves anything.

With a look-ahead (``PlannerSettings.lookahead_intervals``) the LP also sees the next day's forecast,
up to the end of the billing month, and the plan keeps its own intervals. The plan's own day keeps
peaks of its own at a small weight (``own_peak_weight``), and the POI thresholds the dispatcher holds
are the peaks the plan sets on its own day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from energizeos.planning import gate
from energizeos.planning.lp import HOLD_VALUE_PER_KWH, Battery, Prices, Problem, Result, solve
from energizeos_msgs.msg import DispatchPlan, Header
from energizeos_msgs.msg import Time as TimeMsg

INTERVAL_S = 900


@dataclass(frozen=True)
class PlannerSettings:
    site: str = "reference-plant"
    tz: str = "America/Los_Angeles"
    battery: Battery = field(default_factory=Battery)
    export_limit_kw: float = 0.0
    terminal_soc_pct: float | None = 50.0  # soft target at the end of each day; None: the start SOC
    # Re-plan when the last hour's load departs this much from the forecast, or the SOC this many points from
    # the plan's. 0 (the default): re-plan every interval from the measured state, a rolling horizon.
    # Measured on 14 LargeOffice days against 5 / 5: savings ratio 0.46 -> 0.58 in January, 0.78 -> 0.79 in July.
    replan_deviation_pct: float = 0.0
    replan_soc_deviation_pct: float = 0.0
    # the POI threshold is planned for a load this much above the forecast (0: the forecast's own). Measured a
    # month at a time, 3 % raised LargeOffice April 0.798 -> 0.820 and Warehouse January 0.701 -> 0.751, but
    # over a year (with a 28-day demand floor) LargeOffice fell 0.890 -> 0.878: September and October lost more
    threshold_margin_pct: float = 0.0
    # the on-peak thresholds alone are planned for a load this much above the forecast (the larger of this and
    # threshold_margin_pct). Measured a month at a time with the tie-break, 2 %: Hospital June 0.896 -> 0.923,
    # LargeOffice September 0.9158 -> 0.9158, where threshold_margin_pct 2 % gave 0.949 and 0.902 (max demand +9 kW).
    # Over 2025: Hospital 0.888 -> 0.900, LargeOffice 0.913 -> 0.911, MediumOffice 0.893 -> 0.893, Warehouse
    # 0.828 -> 0.824 (net +$1,248 a year over the four)
    on_peak_margin_pct: float = 2.0
    # how fast a re-plan's correction for the measured departure fades over the rest of the day, in
    # intervals (e-folding); 0: it holds for the rest of the day. A heavy morning stays heavy into the
    # evening's on-peak: measured on LargeOffice (Jan, May, Jun, Jul), a 12 h fade reached 0.752 of the
    # perfect-foresight savings, no fade 0.822; July alone 0.860 with a 4 h fade, 0.913 with 12 h, 0.934 with none
    bias_decay_intervals: float = 0.0
    # the LP also sees this many intervals of the next day's forecast and the plan keeps only its own: a day
    # plan that ends at the terminal target with its refill priced as free of demand charges emptied a
    # Warehouse by evening and bought it back at night up to a new monthly peak (0: the day alone)
    lookahead_intervals: int = 0
    # with a look-ahead, the plan's own day's peaks also cost this x the demand rates: below a peak that only
    # the next day's forecast sets, the day was left unshaved. Measured, LargeOffice September: with neither
    # this nor thresholds from the plan's own day, on-peak +22 kW and a savings ratio of 0.896; with both 0.924
    # (the day alone: 0.9245)
    own_peak_weight: float = 0.1
    # among equally cheap plans, the LP keeps energy in the battery (planning/lp.py HOLD_VALUE_PER_KWH; 0: no tie-break)
    hold_value_per_kwh: float = HOLD_VALUE_PER_KWH


@dataclass
class Plan:
    plan_id: int
    start: datetime  # aware UTC, start of the first interval
    interval_s: int
    p_kw: np.ndarray
    soc_pct: np.ndarray
    load_kw: np.ndarray  # the forecast the plan is based on
    grid_kw: np.ndarray  # planned POI import
    threshold_kw: np.ndarray  # POI import the dispatcher holds under when reality exceeds the forecast
    energy_rate: np.ndarray
    on_peak: np.ndarray
    soc_start_pct: float
    result: Result
    gate: gate.GateResult
    forecast_method: str
    notes: list[str] = field(default_factory=list)
    parent_plan_id: int = 0  # the approved plan a re-plan continues
    # the day's own forecast (start, kW per interval) every re-plan measures the load against and corrects:
    # a re-plan's load_kw is already corrected, and comparing with it would hide a lasting departure
    reference: tuple[datetime, np.ndarray] | None = None

    @property
    def reference_forecast(self) -> tuple[datetime, np.ndarray]:
        return self.reference if self.reference is not None else (self.start, self.load_kw)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.interval_s * len(self.p_kw))

    def body(self) -> dict:
        """The plan as JSON-able data (what is stored and hashed)."""
        r = lambda a: [round(float(v), 3) for v in a]  # noqa: E731 - local shorthand
        return {"start": self.start.isoformat(), "interval_s": self.interval_s, "p_kw": r(self.p_kw),
                "soc_pct": r(self.soc_pct), "load_forecast_kw": r(self.load_kw), "grid_kw": r(self.grid_kw),
                "peak_threshold_kw": r(self.threshold_kw), "energy_rate": [float(v) for v in self.energy_rate],
                "on_peak": [bool(v) for v in self.on_peak], "soc_start_pct": round(self.soc_start_pct, 3),
                "forecast_method": self.forecast_method, "notes": self.notes, "lp_status": self.result.status,
                "lp_cost": round(self.result.cost, 2), "binding": self.result.binding,
                "parent_plan_id": self.parent_plan_id}

    def to_msg(self, status: int, stamp: TimeMsg, site: str, approved_by: str = "") -> DispatchPlan:
        return DispatchPlan(header=Header(stamp=stamp, frame_id="site"), plan_id=self.plan_id, site=site,
                            start=TimeMsg(sec=int(self.start.timestamp())), interval_s=self.interval_s,
                            status=status, p_kw=self.p_kw.astype(float), soc_pct=self.soc_pct.astype(float),
                            load_forecast_kw=self.load_kw.astype(float),
                            peak_threshold_kw=self.threshold_kw.astype(float),
                            gate_findings=list(self.gate.findings), approved_by=approved_by)


@dataclass(frozen=True)
class TerminalGuide:
    """Where a longer plan (the week plan) has the battery at the end of each of its intervals, and what a
    kWh stored there is worth to the rest of it. A day plan whose horizon ends inside it ends at that SOC,
    a kWh short costing that value: a day plan alone values stored energy at the night's refill price and
    spends on its own evening what the week's heavier days needed (measured, Warehouse August: every day
    plan ended 350 kWh below its 50 % target, where perfect foresight filled to 87 % over the weekend)."""

    start: datetime  # aware UTC, start of the first interval
    interval_s: int
    soc_pct: np.ndarray  # at the end of each interval
    value_per_kwh: np.ndarray  # $ a kWh more stored at the end of each interval saves later
    plan_id: int = 0
    p_kw: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the week plan's BESS power (for the record)
    load_kw: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the forecast it was made on
    soc_start_pct: float = float("nan")

    def at(self, end: datetime) -> tuple[float, float] | None:
        """(SOC %, $ per kWh) at ``end``, an interval boundary inside the guide; None outside it."""
        k = round((end - self.start).total_seconds() / self.interval_s) - 1
        if k < 0 or k >= len(self.soc_pct):
            return None
        return float(self.soc_pct[k]), max(float(self.value_per_kwh[k]), 0.0)

    def body(self) -> dict:
        """The week plan as JSON-able data (what is stored and hashed): the day plans' notes name it by id,
        so the records say what SOC and value each of them ended at."""
        r = lambda a: [round(float(v), 3) for v in a]  # noqa: E731 - local shorthand
        return {"kind": "week plan", "start": self.start.isoformat(), "interval_s": self.interval_s,
                "p_kw": r(self.p_kw), "soc_pct": r(self.soc_pct), "soc_value_per_kwh": r(self.value_per_kwh),
                "load_forecast_kw": r(self.load_kw), "soc_start_pct": round(self.soc_start_pct, 3)}


def local_day(day: date, tz: str) -> tuple[datetime, int]:
    """(UTC start, number of 15-minute intervals) of a local calendar day."""
    zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    seconds = (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds()  # aware same-zone subtraction is wall time
    return start.astimezone(UTC), round(seconds / INTERVAL_S)


def tariff_prices(tariff, start: datetime, n: int) -> Prices:
    """What the LP needs from the tariff for ``n`` 15-minute intervals from ``start``."""
    ip = tariff.interval_prices(start, n, INTERVAL_S)
    return Prices(np.asarray(ip.energy_rate, dtype=float), np.asarray(ip.export_rate, dtype=float),
                  np.asarray(ip.on_peak_demand, dtype=bool), list(ip.month_key), dict(ip.max_demand_rate),
                  dict(ip.on_peak_demand_rate))


def refill_cost(tariff, end: datetime, battery) -> float:
    """What a kWh short of the terminal SOC target really costs: bought back at the cheapest energy rate
    of the day after the horizon, through the charger's losses. Valued at the horizon's dearest rate
    instead, the plan recharged at off-peak in the evening what the night would have refilled for less."""
    after = tariff_prices(tariff, end, 96)
    return float(np.min(after.energy_rate)) / battery.charge_efficiency


def _own_peaks(result: Result, n: int, months: list[str], on_peak: np.ndarray, prior_peak: dict[str, float],
               prior_on_peak: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """Per month, the non-coincident and on-peak levels the first ``n`` intervals of ``result`` plan (at least
    the peaks already set)."""
    grid = np.asarray(result.grid_kw[:n], dtype=float)
    peak: dict[str, float] = {}
    on: dict[str, float] = {}
    for i, m in enumerate(months):
        peak[m] = max(peak.get(m, prior_peak.get(m, 0.0)), float(grid[i]))
        if on_peak[i]:
            on[m] = max(on.get(m, prior_on_peak.get(m, 0.0)), float(grid[i]))
    return peak, on


def _plan(tariff, settings: PlannerSettings, plan_id: int, start: datetime, load_kw: np.ndarray, soc_pct: float,
          prior_peak: dict[str, float], prior_on_peak: dict[str, float], previous_p_kw: float | None,
          method: str, notes: list[str], expected_intervals: int | None, parent: int = 0,
          lookahead_kw: np.ndarray | None = None, guide: TerminalGuide | None = None) -> Plan:
    n = len(load_kw)
    ahead = np.asarray(lookahead_kw if lookahead_kw is not None else [], dtype=float)[:settings.lookahead_intervals]
    if ahead.size and not np.all(np.isfinite(ahead)):
        raise ValueError("the look-ahead forecast has values that are not numbers")
    prices = tariff_prices(tariff, start, n + ahead.size)
    if ahead.size:
        # not into the next billing month: one day of it would set that month's whole demand charge in the LP,
        # and the last night of the month was charged up to a new peak to shave it (measured, Warehouse July)
        months = prices.month[n - 1:]
        kept = next((i for i, m in enumerate(months[1:]) if m != months[0]), ahead.size)
        if kept < ahead.size:  # priced again only when cut (the prices are looked up on every re-plan)
            ahead = ahead[:kept]
            prices = tariff_prices(tariff, start, n + ahead.size)
        notes = [*notes, f"the LP looked {ahead.size} intervals into the next day's forecast; the plan keeps its "
                         f"own {n}"] if ahead.size else [*notes, "no look-ahead: the next day is in another month"]
    horizon = n + ahead.size
    end = start + timedelta(seconds=horizon * INTERVAL_S)
    guided = guide.at(end) if guide is not None else None
    if guided is not None:
        terminal_soc, terminal_value = guided
        notes = [*notes, f"ends at week plan {guide.plan_id}'s SOC there, {terminal_soc:.1f} %, a kWh short costing "
                         f"${terminal_value:.3f}"]
    else:
        terminal_soc, terminal_value = settings.terminal_soc_pct, refill_cost(tariff, end, settings.battery)

    def lp(load: np.ndarray) -> Result:
        return solve(Problem(load_kw=load, prices=prices, battery=settings.battery, soc_start_pct=soc_pct,
                             interval_s=INTERVAL_S, export_limit_kw=settings.export_limit_kw,
                             prior_peak_kw=prior_peak, prior_on_peak_kw=prior_on_peak, previous_p_kw=previous_p_kw,
                             terminal_soc_pct=terminal_soc, terminal_value_per_kwh=terminal_value,
                             head_intervals=n if ahead.size else 0, head_peak_weight=settings.own_peak_weight,
                             hold_value_per_kwh=settings.hold_value_per_kwh))

    load = np.asarray(load_kw, dtype=float)
    result = lp(np.concatenate([load, ahead]))
    b = settings.battery
    soc_start = min(max(soc_pct, b.floor_pct), b.soc_max_pct)
    # The power schedule follows the forecast; the POI threshold the dispatcher defends when reality runs
    # above it may come from the same LP on a heavier load: a threshold the battery can hold on a day a
    # little heavier than forecast is one it keeps, at the price of less shaving when the forecast is right.

    def heavier(pct: float) -> Result:  # the same LP on a load pct heavier; the plan's own when that fails
        if pct <= 0:
            return result
        margin = lp(np.concatenate([load, ahead]) * (1.0 + pct / 100.0))
        return margin if margin.ok else result

    bound = heavier(settings.threshold_margin_pct)
    on_pct = max(settings.threshold_margin_pct, settings.on_peak_margin_pct)
    on_bound = bound if on_pct == settings.threshold_margin_pct else heavier(on_pct)
    months, on_peak = prices.month[:n], prices.on_peak[:n]
    p_kw, soc, grid = result.p_kw[:n], result.soc_pct[:n], result.grid_kw[:n]  # the plan's own intervals

    def peaks(r: Result) -> tuple[dict[str, float], dict[str, float]]:
        if ahead.size:  # the peaks the plan's own day sets, not the look-ahead's: the dispatcher holds today's
            return _own_peaks(r, n, months, on_peak, prior_peak, prior_on_peak)
        return r.peak_kw, r.on_peak_kw

    bound_peaks, on_bound_peaks, result_peaks = peaks(bound), peaks(on_bound), peaks(result)
    threshold = np.array([on_bound_peaks[1].get(m, np.inf) if on else bound_peaks[0].get(m, np.inf)
                          for m, on in zip(months, on_peak, strict=True)])
    threshold = np.maximum(threshold, [result_peaks[1].get(m, 0.0) if on else result_peaks[0].get(m, 0.0)
                                       for m, on in zip(months, on_peak, strict=True)])
    threshold = np.where(np.isfinite(threshold), threshold, np.max(grid, initial=0.0))
    to_check = gate.PlanToCheck(start, INTERVAL_S, p_kw, soc, load, soc_start, prices.energy_rate[:n], on_peak)
    again = tariff_prices(tariff, start, n)  # looked up afresh: the gate does not trust what the LP was given
    verdict = gate.check(to_check, gate.GateLimits(b, settings.export_limit_kw, expected_intervals),
                         again.energy_rate, again.on_peak)
    if not result.ok:
        verdict.passed = False
        verdict.findings += [f"FAIL LP: {line}" for line in result.binding]
    lp_notes = [f"{note} (at the end of the look-ahead)" if ahead.size and note.startswith("ends ") else note
                for note in result.notes]  # the terminal target is at the end of the LP's horizon
    return Plan(plan_id, start, INTERVAL_S, p_kw, soc, load, grid, threshold, prices.energy_rate[:n], on_peak,
                soc_start, result, verdict, method, [*notes, *lp_notes], parent)


def plan_partial(tariff, settings: PlannerSettings, plan_id: int, start: datetime, forecast_kw: np.ndarray,
                 soc_pct: float, prior_peak: dict[str, float], prior_on_peak: dict[str, float],
                 previous_p_kw: float | None, method: str, notes: list[str],
                 lookahead_kw: np.ndarray | None = None, guide: TerminalGuide | None = None) -> Plan:
    """A plan from ``start`` (an interval boundary) over the given forecast: the rest of a day. The LP also
    sees ``lookahead_kw`` (the next day's forecast, up to ``settings.lookahead_intervals`` of it)."""
    return _plan(tariff, settings, plan_id, start, forecast_kw, soc_pct, prior_peak, prior_on_peak, previous_p_kw,
                 method, notes, None, lookahead_kw=lookahead_kw, guide=guide)


def plan_day(tariff, settings: PlannerSettings, day: date, forecast_kw: np.ndarray, soc_pct: float,
             prior_peak: dict[str, float] | None = None, prior_on_peak: dict[str, float] | None = None,
             plan_id: int = 0, method: str = "forecast", notes: list[str] | None = None,
             lookahead_kw: np.ndarray | None = None, guide: TerminalGuide | None = None) -> Plan:
    """Tomorrow's plan over the whole local day (the LP also sees ``lookahead_kw``, the day after's forecast)."""
    start, n = local_day(day, settings.tz)
    if len(forecast_kw) != n:
        raise ValueError(f"the forecast for {day} has {len(forecast_kw)} intervals; the local day has {n}")
    return _plan(tariff, settings, plan_id, start, forecast_kw, soc_pct, prior_peak or {}, prior_on_peak or {},
                 None, method, list(notes or []), n, lookahead_kw=lookahead_kw, guide=guide)


def replan(tariff, settings: PlannerSettings, active: Plan, now: datetime, soc_pct: float,
           observed_kw: np.ndarray, prior_peak: dict[str, float], prior_on_peak: dict[str, float],
           previous_p_kw: float | None, plan_id: int, lookahead_kw: np.ndarray | None = None,
           guide: TerminalGuide | None = None) -> Plan | None:
    """Re-plan the rest of the active plan's day when the measured load of its last (up to four) intervals,
    ``observed_kw`` (NaN where not measured), departs from their forecast by more than the setting, or the
    measured SOC from the planned one (with both settings at 0, always); None when neither does or nothing
    is left to plan. The LP also sees ``lookahead_kw``, the next day's forecast, as it stands."""
    k = int((now - active.start).total_seconds() // active.interval_s)
    if k <= 0 or k >= len(active.p_kw):
        return None
    ref_start, ref_kw = active.reference_forecast
    j = int((now - ref_start).total_seconds() // active.interval_s)  # now, counted in the reference's intervals
    forecast = ref_kw[max(0, j - len(observed_kw)):j]
    observed = np.asarray(observed_kw, dtype=float)[len(observed_kw) - len(forecast):]
    seen = np.isfinite(observed) & (forecast > 0)
    per_interval = observed[seen] / forecast[seen]
    # an interval off by half or more is a trip, an outage or a short event, not a forecast that runs
    # light or heavy: it is left out, and the median of the rest keeps one odd interval from steering
    # the rest of the day (a breaker trip measured as 0 kW once made the whole evening -26 %)
    typical = per_interval[(per_interval > 0.5) & (per_interval < 1.5)]
    ratio = float(np.median(typical)) if typical.size >= 3 else 1.0  # three measured intervals to act on
    soc_off = soc_pct - float(active.soc_pct[k - 1])
    if abs(ratio - 1.0) * 100.0 < settings.replan_deviation_pct and abs(soc_off) < settings.replan_soc_deviation_pct:
        return None
    steps = np.arange(len(ref_kw) - j)
    weights = np.exp(-steps / settings.bias_decay_intervals) if settings.bias_decay_intervals else np.ones(len(steps))
    rest = ref_kw[j:] * (1.0 + (ratio - 1.0) * weights)
    start = active.start + timedelta(seconds=k * active.interval_s)
    note = (f"re-plan at {now.isoformat()}: the last hour's load is {100 * (ratio - 1):+.0f} % from the forecast, "
            f"the SOC {soc_off:+.1f} points from the plan")
    plan = _plan(tariff, settings, plan_id, start, rest, soc_pct, prior_peak, prior_on_peak, previous_p_kw,
                 f"{active.forecast_method.removesuffix(' (bias-corrected)')} (bias-corrected)", [note], None,
                 parent=active.plan_id, lookahead_kw=lookahead_kw, guide=guide)
    plan.reference = (ref_start, ref_kw)
    return plan


def plan_week(tariff, settings: PlannerSettings, start: datetime, load_kw: np.ndarray, soc_pct: float,
              prior_peak: dict[str, float], prior_on_peak: dict[str, float], plan_id: int = 0) -> TerminalGuide | None:
    """The week plan: the same LP over several days' forecasts from ``start`` (cut at the end of the billing
    month: the next month's demand charge is not this plan's to trade), ending at the terminal target. Its SOC
    and its shadow price of stored energy guide where the day plans end; None when it cannot be solved."""
    load = np.asarray(load_kw, dtype=float)
    if load.size == 0 or not np.all(np.isfinite(load)):
        return None
    prices = tariff_prices(tariff, start, load.size)
    kept = next((i for i, m in enumerate(prices.month) if m != prices.month[0]), load.size)
    if kept < load.size:
        load = load[:kept]
        prices = tariff_prices(tariff, start, kept)
    end = start + timedelta(seconds=load.size * INTERVAL_S)
    result = solve(Problem(load_kw=load, prices=prices, battery=settings.battery, soc_start_pct=soc_pct,
                           interval_s=INTERVAL_S, export_limit_kw=settings.export_limit_kw, prior_peak_kw=prior_peak,
                           prior_on_peak_kw=prior_on_peak, terminal_soc_pct=settings.terminal_soc_pct,
                           terminal_value_per_kwh=refill_cost(tariff, end, settings.battery),
                           hold_value_per_kwh=settings.hold_value_per_kwh))
    if not result.ok:
        return None
    return TerminalGuide(start, INTERVAL_S, result.soc_pct, result.soc_value_per_kwh, plan_id, result.p_kw, load,
                         soc_pct)
