"""planner: the day-ahead plan behind the safety gate, and model-predictive re-plans during the day.

Every day at ``plan_hour`` (site time) it forecasts tomorrow's load from the measured history,
solves the battery LP against the tariff and runs the safety gate. A plan that passes is approved
by the configured policy (``approval: auto``) or waits for a user with the right role on
``/ems/plan/approve``; a plan that fails is rejected with its findings (``EMS_PLAN_REJECTED``).
Approved plans become ``/ems/plan/active`` at the start of their day. While a plan is active, the
rest of the day is re-planned every 15 minutes from the measured SOC (or, with ``replan_deviation_pct``, only when the
load or the SOC departs from the plan); the
rest of the day is re-planned from the measured SOC and the month's peaks so far, gated again, and
approved as a continuation of the approved plan. Every plan's LP also sees the next day's forecast
(``lookahead_intervals``, not past the end of the billing month) and the plan keeps its own day: a day
planned alone spent energy the next day needed and could not buy back under the month's peak.
A month's peak just above the thresholds the plans held is planned as that threshold (``peak_noise_pct``),
and a once-a-day week plan (``week_plan_days``, 7 by default) sets where every plan ends and what a kWh
short costs. Plans, week plans and approvals are stored and on the audit chain.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from energizeos import runtime
from energizeos.nodes.conditions import ConditionReporter
from energizeos.nodes.events import EventReporter
from energizeos.planning import approval, day_ahead
from energizeos.planning.day_ahead import Plan, PlannerSettings, TerminalGuide, local_day, plan_day, plan_partial
from energizeos.planning.lp import HOLD_VALUE_PER_KWH, Battery
from energizeos.planning.tracker import INTERVAL_S, LoadTracker, interval_start
from energizeos.records.db import error_line, init_db, make_engine
from energizeos.records.users import authorize
from energizeos.runtime import Node, ParameterDescriptor, qos_profile_latched
from energizeos_msgs.msg import Alarm, BmsStatus, DispatchPlan, MeterReading, PcsStatus
from energizeos_msgs.srv import PlanApproval

GOOD = 0
HISTORY_DAYS = 42


class Planner(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("planner", **kwargs)
        p = self.declare_parameter
        tariff_name = p("tariff", "sdge-al-tou", ParameterDescriptor("tariff name or file")).value
        self.tz = p("timezone", "America/Los_Angeles").value
        self.plan_hour = p("plan_hour", 17, ParameterDescriptor("site hour when tomorrow is planned",
                                                                 min_value=0, max_value=23)).value
        self.policy = p("approval", "auto", ParameterDescriptor(
            "auto: a plan that passes the gate is approved by policy; manual: a user approves it",
            choices=("auto", "manual"))).value
        self.settings = PlannerSettings(
            site=p("site", "reference-plant").value, tz=self.tz,
            battery=Battery(
                power_kw=p("bess_kw", 500.0, ParameterDescriptor("PCS rating", min_value=1.0)).value,
                energy_kwh=p("bess_kwh", 1000.0, ParameterDescriptor("usable energy", min_value=1.0)).value,
                soc_min_pct=p("soc_min_pct", 10.0).value, soc_reserve_pct=p("soc_reserve_pct", 5.0).value,
                soc_max_pct=p("soc_max_pct", 95.0).value,
                charge_efficiency=p("charge_efficiency", 0.95).value,
                discharge_efficiency=p("discharge_efficiency", 0.95).value,
                ramp_kw_per_interval=p("ramp_kw_per_interval", 500.0).value),
            export_limit_kw=p("export_limit_kw", 0.0).value,
            terminal_soc_pct=p("terminal_soc_pct", 50.0).value,
            replan_deviation_pct=p("replan_deviation_pct", 0.0, ParameterDescriptor(
                "re-plan when the load departs this much from the forecast (0: every interval)", min_value=0.0)).value,
            replan_soc_deviation_pct=p("replan_soc_deviation_pct", 0.0, ParameterDescriptor(
                "... or the SOC this many points from the plan (0: every interval)", min_value=0.0)).value,
            bias_decay_intervals=p("bias_decay_intervals", 0.0, ParameterDescriptor(
                "how fast a re-plan's correction for the measured departure fades, in 15-minute intervals "
                "(e-folding); 0: it holds for the rest of the day", min_value=0.0)).value,
            threshold_margin_pct=p("threshold_margin_pct", 0.0, ParameterDescriptor(
                "plan the POI threshold for a load this much above the forecast", min_value=0.0,
                max_value=50.0)).value,
            on_peak_margin_pct=p("on_peak_margin_pct", 2.0, ParameterDescriptor(
                "plan the on-peak POI thresholds alone for a load this much above the forecast", min_value=0.0,
                max_value=50.0)).value,
            lookahead_intervals=p("lookahead_intervals", 96, ParameterDescriptor(
                "15-minute intervals of the next day's forecast every plan's LP also sees (the plan keeps its "
                "own day); 0: the day alone", min_value=0, max_value=96)).value,
            hold_value_per_kwh=p("hold_value_per_kwh", HOLD_VALUE_PER_KWH, ParameterDescriptor(
                "$ per kWh held per interval: among equally cheap plans the LP keeps energy in the battery "
                "(0: no tie-break)", min_value=0.0, max_value=0.001)).value)
        self.holidays = _parse_holidays(p("holidays", "us-federal", ParameterDescriptor(
            "days the site runs as on a Sunday: us-federal, none, or ISO dates separated by commas")).value)
        self.demand_floor_days = p("demand_floor_days", 14, ParameterDescriptor(
            "plan the month's non-coincident peak as at least the highest peak the day plan would have set "
            "on the measured load of this many recent days (0: off)", min_value=0, max_value=HISTORY_DAYS)).value
        self.demand_floor_window_days = p("demand_floor_window_days", 0, ParameterDescriptor(
            "the demand floor's plans span this many consecutive days, so a battery that carries energy from light "
            "days to heavy ones is credited with it (0: 7 when the battery's usable energy is at least 0.15 of the "
            "site's mean day, else 1)", min_value=0, max_value=7)).value
        self.peak_noise_pct = p("peak_noise_pct", 1.0, ParameterDescriptor(
            "a month's measured peak at most this much above the highest threshold the followed plans held is "
            "planned as that threshold: the 15-minute mean's overshoot is noise, not a new peak (0: off)",
            min_value=0.0, max_value=5.0)).value
        self.week_plan_days = p("week_plan_days", 7, ParameterDescriptor(
            "once a day, plan this many days ahead (to the month's end at most); every plan then ends at the week "
            "plan's SOC, a kWh short costing what the week plan says it is worth (0: off; each plan ends at "
            "terminal_soc_pct)", min_value=0, max_value=14)).value
        self._week: tuple[date, TerminalGuide | None] | None = None  # (the local day it was made on, the guide)
        self._week_retry_at: datetime | None = None  # a week plan the records refused is made again from then
        self._floor: tuple[date, dict] | None = None  # (the local day it was found for, the floor)
        self._floor_days: dict = {}  # (day, its load) -> the peak its day plan sets: each day is solved once
        self._ahead: dict[tuple[date, date], np.ndarray | None] = {}  # (found on, for day) -> forecast
        db_url = p("db_url", "").value
        check_s = p("check_period_s", 60.0, ParameterDescriptor("how often the schedule is looked at",
                                                                min_value=1.0, max_value=900.0)).value
        from energizeos.tariffs import load_tariff

        self.tariff = load_tariff(tariff_name)
        self.engine = make_engine(db_url or None)
        self._db_ready = False
        self.tracker = LoadTracker()
        self.soc_pct: float | None = None
        self.pcs_kw: float | None = None
        self.active: Plan | None = None
        self.next: Plan | None = None  # tomorrow's plan once made
        self.approved: dict[int, str] = {}  # plan id -> who approved it (a user or a policy)
        self.plans: dict[int, Plan] = {}
        self.month_key = ""
        self.month_peak: dict[str, float] = {}
        self.month_on_peak: dict[str, float] = {}
        # the highest POI thresholds the followed plans held, by month (non-coincident, on-peak): peak_noise_pct
        self.month_held: dict[str, float] = {}
        self.month_held_on_peak: dict[str, float] = {}
        self._peaks_done_k = 0
        self._last_replan_k = 0
        self._rest_attempt_k = 0
        self._tomorrow_attempt: tuple[date, int] | None = None
        self._ids = 0
        self.conditions = ConditionReporter(self)
        self.events = EventReporter(self)
        self.proposed_pub = self.create_publisher(DispatchPlan, "/ems/plan/proposed", qos_profile_latched)
        self.active_pub = self.create_publisher(DispatchPlan, "/ems/plan/active", qos_profile_latched)
        self.create_subscription(MeterReading, "/site/poi/meter", self.on_meter, 10)
        self.create_subscription(PcsStatus, "/bess/pcs/status", self.on_pcs, 10)
        self.create_subscription(BmsStatus, "/bess/bms/status", self.on_bms, 10)
        self.create_service(PlanApproval, "/ems/plan/approve", self.on_approve)
        self.create_timer(check_s, self.check)
        self._seed_from_records()

    def _seed_from_records(self) -> None:
        """The measured history in the records, so a restarted planner forecasts at once."""
        from energizeos.planning.history import POI_POINT, LoadHistory, point_means, site_load_history

        now = interval_start(int(self.now().timestamp()) // INTERVAL_S)  # the last whole interval boundary
        try:
            history = site_load_history(self._records(), now - timedelta(days=HISTORY_DAYS), now)
            poi = point_means(self._records(), POI_POINT, history.start, history.end, history.interval_s)
        except SQLAlchemyError as exc:
            self._db_ready = False
            self.get_logger().warning(f"no load history from the records ({error_line(exc)}): "
                                      "forecasting from live readings only")
            return
        if history.coverage > 0:
            self.tracker.seed(history, LoadHistory(history.start, history.interval_s, poi))
            self.get_logger().info(f"load history from the records: {100 * history.coverage:.0f} % of "
                                   f"{HISTORY_DAYS} days")

    # --- inputs -------------------------------------------------------------------------------
    def on_meter(self, msg: MeterReading) -> None:
        self.tracker.on_poi(self.get_clock().now().nanoseconds, msg.p_kw, msg.quality == GOOD)

    def on_pcs(self, msg: PcsStatus) -> None:
        self.pcs_kw = msg.p_kw if msg.quality == GOOD else None
        self.tracker.on_pcs(msg.p_kw, msg.quality == GOOD)

    def on_bms(self, msg: BmsStatus) -> None:
        if msg.quality == GOOD and np.isfinite(msg.soc_pct):
            self.soc_pct = float(msg.soc_pct)

    # --- schedule -------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.get_clock().now().to_datetime().astimezone(UTC)

    def check(self) -> None:
        now = self.now()
        local = now.astimezone(ZoneInfo(self.tz))
        self._update_peaks(now)
        if self.active is not None and now >= self.active.end:
            self.active = None
        if self.active is None and self.next is not None and self.next.start <= now:
            if self.next.plan_id in self.approved:
                self._activate(self.next)
            self.next = None
        if self.active is None:  # a plan approved before its first interval began (manual approval) starts now
            due = [p for p in self.plans.values() if p.plan_id in self.approved and p.start <= now < p.end]
            if due:
                self._activate(max(due, key=lambda p: p.plan_id))
        k = int(now.timestamp()) // INTERVAL_S
        if self.active is None and self.next is None and k != self._rest_attempt_k and self.soc_pct is not None:
            self._rest_attempt_k = k  # at most one attempt per interval
            self._plan_rest_of_today(now)
        tomorrow = local.date() + timedelta(days=1)
        due = local.hour >= self.plan_hour and (self.next is None or self.next.start < now)
        if due and self._tomorrow_attempt != (tomorrow, local.hour):
            self._tomorrow_attempt = (tomorrow, local.hour)  # at most one attempt per hour
            self._plan_tomorrow(tomorrow)
        if self.active is not None:
            self._maybe_replan(now)

    def _new_id(self) -> int:
        self._ids += 1
        return self.get_clock().now().nanoseconds // 1_000_000 * 100 + self._ids % 100

    def _forecast(self, day: date) -> tuple[np.ndarray, str, list[str]] | None:
        from energizeos.planning.forecast import ForecastError, forecast_day

        start, n = local_day(day, self.tz)
        history = self.tracker.history(start, HISTORY_DAYS)
        try:
            fc = forecast_day(history, day, tz=self.tz, holidays=self.holidays)
        except ForecastError as exc:
            recent = history.values[-96:]
            if np.sum(np.isfinite(recent)) < 48:
                self.get_logger().warning(f"no plan for {day}: {exc}; no day of history to fall back on",
                                          throttle_duration_sec=3600.0)
                return None
            filled = np.where(np.isfinite(recent), recent, np.nanmean(recent))
            values = np.resize(filled, n)
            return values, "persistence (last 24 h)", [f"forecast fell back to the last 24 h: {exc}"]
        return np.asarray(fc.values, dtype=float), fc.method, list(fc.notes)

    def _lookahead(self, day: date) -> np.ndarray | None:
        """The forecast of ``day`` that plans ending where it begins look into; made once a day (None: no
        look-ahead, or no forecast to look at)."""
        if self.settings.lookahead_intervals <= 0:
            return None
        today = self.now().astimezone(ZoneInfo(self.tz)).date()
        if (today, day) not in self._ahead:
            self._ahead = {key: kw for key, kw in self._ahead.items() if key[0] == today}
            made = self._forecast(day)
            self._ahead[(today, day)] = None if made is None else made[0]
        return self._ahead[(today, day)]

    def _plan_tomorrow(self, day: date) -> None:
        made = self._forecast(day)
        if made is None:
            return
        values, method, notes = made
        # tomorrow starts where today's plan ends (the week plan's SOC at midnight, else the terminal target),
        # not where the battery is now; the morning re-plan corrects it from the measured SOC
        guide = self._week_guide()
        start, _n = local_day(day, self.tz)
        guided = guide.at(start) if guide is not None else None
        soc = guided[0] if guided is not None else self.settings.terminal_soc_pct
        if soc is None:
            soc = self.soc_pct if self.soc_pct is not None else 50.0
        plan = plan_day(self.tariff, self.settings, day, values, soc, *self._prior_peaks(), plan_id=self._new_id(),
                        method=method, notes=notes, lookahead_kw=self._lookahead(day + timedelta(days=1)),
                        guide=guide)
        self.next = plan
        self._propose(plan)

    def _plan_rest_of_today(self, now: datetime) -> None:
        today = now.astimezone(ZoneInfo(self.tz)).date()
        made = self._forecast(today)
        if made is None or self.soc_pct is None:
            return
        values, method, notes = made
        start, _n = local_day(today, self.tz)
        k = int((now - start).total_seconds() // INTERVAL_S) + 1  # from the next whole interval
        if k >= len(values):
            return
        rest_start = start + timedelta(seconds=k * INTERVAL_S)
        plan = plan_partial(self.tariff, self.settings, self._new_id(), rest_start, values[k:], self.soc_pct,
                            *self._prior_peaks(), self.pcs_kw, method, [*notes, "plan for the rest of today"],
                            self._lookahead(today + timedelta(days=1)), self._week_guide())
        self._propose(plan)
        if plan.plan_id in self.approved:
            self._activate(plan)

    def _maybe_replan(self, now: datetime) -> None:
        k = int(now.timestamp()) // INTERVAL_S
        if k == self._last_replan_k or self.soc_pct is None:
            return
        self._last_replan_k = k
        if self.active is None:
            return
        observed = self.tracker.recent_loads(interval_start(k))
        day_after = self.active.end.astimezone(ZoneInfo(self.tz)).date()
        plan = day_ahead.replan(self.tariff, self.settings, self.active, interval_start(k), self.soc_pct, observed,
                                *self._prior_peaks(), self.pcs_kw, self._new_id(), self._lookahead(day_after),
                                self._week_guide())
        if plan is None:
            return
        self._propose(plan, continuation_of=self.active.plan_id)
        if plan.plan_id in self.approved:
            self._activate(plan)

    def _week_guide(self) -> TerminalGuide | None:
        """The week plan, made once a day from the next interval on with the measured SOC (None: off, or no
        forecast or SOC to make it from; plans then end at the terminal target). One the records could not
        store is made again by the first plan or re-plan an interval later."""
        if self.week_plan_days <= 0:
            return None
        now = self.now()
        today = now.astimezone(ZoneInfo(self.tz)).date()
        if self._week is not None and self._week[0] == today and not (
                self._week_retry_at is not None and now >= self._week_retry_at):
            return self._week[1]
        guide, self._week_retry_at = None, None
        made = self._forecast(today)
        if made is not None and self.soc_pct is not None:
            start, _n = local_day(today, self.tz)
            k = int((now - start).total_seconds() // INTERVAL_S) + 1  # from the next whole interval
            days = [made[0][k:]]
            for ahead in range(1, self.week_plan_days + 1):
                later = self._forecast(today + timedelta(days=ahead))
                if later is None:
                    break
                days.append(later[0])
            guide = day_ahead.plan_week(self.tariff, self.settings, start + timedelta(seconds=k * INTERVAL_S),
                                        np.concatenate(days), self.soc_pct, *self._prior_peaks(),
                                        plan_id=self._new_id())
            if guide is not None:
                guide = self._store_week_plan(guide)
                if guide is None:  # a database hiccup should not cost the whole day its week plan
                    self._week_retry_at = now + timedelta(seconds=INTERVAL_S)
            if guide is None:
                retry = self._week_retry_at
                again = f"; it is made again by the first plan or re-plan from {retry.isoformat()}" if retry else ""
                self.get_logger().warning(f"no week plan on {today}: plans end at the terminal target{again}")
            else:  # the plans' notes name it by its id; the records hold what it says
                self.get_logger().info(
                    f"week plan {guide.plan_id}: {len(guide.soc_pct)} intervals from {guide.start.isoformat()}, SOC "
                    f"{np.min(guide.soc_pct):.0f}-{np.max(guide.soc_pct):.0f} %, ending at {guide.soc_pct[-1]:.0f} %")
        self._week = (today, guide)
        return guide

    def _store_week_plan(self, guide: TerminalGuide) -> TerminalGuide | None:
        """The week plan in the records and on the audit chain; None if it cannot be stored: a plan's note
        naming a week plan the records do not hold would be evidence nobody can check."""
        try:
            approval.save_week_plan(self._records(), guide.plan_id, self.settings.site, guide.start, guide.interval_s,
                                    guide.body(), self.get_clock().now().nanoseconds)
        except SQLAlchemyError as exc:
            self._db_ready = False
            self.get_logger().error(f"week plan {guide.plan_id} could not be stored ({error_line(exc)})")
            return None
        return guide

    # --- peaks so far -----------------------------------------------------------------------------
    def _update_peaks(self, now: datetime) -> None:
        """Fold the intervals closed since the last call into this month's peaks (non-coincident and
        on-peak); each interval is looked at once."""
        k_now = int(now.timestamp()) // INTERVAL_S
        first = max(self._peaks_done_k + 1, k_now - 31 * 96)
        if first >= k_now:
            return
        for k, poi in sorted(self.tracker.poi_means(interval_start(first), interval_start(k_now)).items()):
            prices = self.tariff.interval_prices(interval_start(k), 1, INTERVAL_S)
            month = prices.month_key[0]
            self.month_peak[month] = max(self.month_peak.get(month, 0.0), poi)
            if bool(prices.on_peak_demand[0]):
                self.month_on_peak[month] = max(self.month_on_peak.get(month, 0.0), poi)
        self._peaks_done_k = k_now - 1

    def _prior_peaks(self) -> tuple[dict[str, float], dict[str, float]]:
        """The peaks already set (billed) this month, non-coincident and on-peak, by month; the
        non-coincident one at least the demand floor (energizeos.planning.demand_floor). A peak within
        ``peak_noise_pct`` above the threshold the plans held is planned as that threshold."""
        peaks = self._denoised(self.month_peak, self.month_held)
        floor = self._demand_floor()
        if floor:
            now = self.now()
            for t in (now, now + timedelta(days=1)):  # today's month and tomorrow's
                month = self.tariff.interval_prices(t, 1, INTERVAL_S).month_key[0]
                peaks[month] = max(peaks.get(month, 0.0), floor["kw"])
        return peaks, self._denoised(self.month_on_peak, self.month_held_on_peak)

    def _denoised(self, measured: dict[str, float], held: dict[str, float]) -> dict[str, float]:
        """``measured`` with each month's peak that lies just above the threshold the plans held (by at most
        ``peak_noise_pct``) put back at that threshold. Why: the dispatcher holds the billed 15-minute mean,
        and a load that moves in an interval's last minute lands it up to ~0.5 % above. Planned as a new peak,
        each such overshoot became the next plan's threshold and the month's peak climbed by ratchet
        (measured, Warehouse August: 28.2 -> 31.1 kW, 0.05-0.15 kW at a time). The bill still counts the
        overshoot; the plans just do not build on it."""
        out = dict(measured)
        if self.peak_noise_pct <= 0:
            return out
        for month, kw in measured.items():
            level = held.get(month)
            if level is not None and level < kw <= level * (1.0 + self.peak_noise_pct / 100.0):
                out[month] = level
        return out

    def _note_held(self, plan: Plan) -> None:
        """The thresholds ``plan`` makes the dispatcher hold, folded into its month's highest (a plan covers
        at most one local day, so one billing month)."""
        month = self.tariff.interval_prices(plan.start, 1, plan.interval_s).month_key[0]
        held = np.where(np.isfinite(plan.threshold_kw), plan.threshold_kw, 0.0)
        self.month_held[month] = max(self.month_held.get(month, 0.0), float(np.max(held, initial=0.0)))
        if np.any(plan.on_peak):
            on_peak = float(np.max(held[plan.on_peak]))
            self.month_held_on_peak[month] = max(self.month_held_on_peak.get(month, 0.0), on_peak)

    def _demand_floor(self) -> dict:
        """The floor from the ``demand_floor_days`` whole days before today, found once a day (one new LP:
        the days before are remembered)."""
        if self.demand_floor_days <= 0:
            return {}
        today = self.now().astimezone(ZoneInfo(self.tz)).date()
        if self._floor is None or self._floor[0] != today:
            from energizeos.planning.demand_floor import demand_floor, describe

            start, _n = local_day(today, self.tz)
            first = today - timedelta(days=self.demand_floor_days)
            self._floor_days = {key: kw for key, kw in self._floor_days.items() if key[0] >= first}
            floor = demand_floor(self.tracker.history(start, self.demand_floor_days), self.tariff, self.settings,
                                 self._floor_days, month_of=today, window_days=self.demand_floor_window_days)
            self._floor = (today, floor)
            if floor:
                self.get_logger().info(
                    f"{describe(floor)} (a full battery alone could have held it at {floor['holdable_kw']:.1f} kW)")
        return self._floor[1]

    # --- gate, approval, activation ---------------------------------------------------------------
    def _records(self):
        if not self._db_ready:
            init_db(self.engine)
            self._db_ready = True
        return self.engine

    def _propose(self, plan: Plan, continuation_of: int = 0) -> None:
        self.plans[plan.plan_id] = plan
        self.proposed_pub.publish(self._msg(plan, DispatchPlan.STATUS_PROPOSED))
        decision = self._policy_decision(plan, continuation_of)
        try:  # the plan and the policy's decision on it in one transaction
            approval.save_plan(self._records(), plan.plan_id, self.settings.site, plan.start, plan.interval_s,
                               plan.body(), plan.gate.findings, self.get_clock().now().nanoseconds, decision)
        except SQLAlchemyError as exc:
            self._db_ready = False
            self.get_logger().error(f"plan {plan.plan_id} could not be stored ({error_line(exc)}): "
                                    "it cannot be approved")
            return
        if decision is not None:
            self._decided(plan, decision)
        if not plan.gate.passed:
            self.conditions.set("EMS_PLAN_REJECTED", True, Alarm.PRIORITY_MEDIUM,
                                f"plan {plan.plan_id} for {plan.start.isoformat()} rejected by the safety gate: "
                                + "; ".join(plan.gate.failures), {"plan_id": plan.plan_id})
        else:
            self.conditions.set("EMS_PLAN_REJECTED", False)

    def _policy_decision(self, plan: Plan, continuation_of: int) -> approval.Decision | None:
        """What the configured policy decides on a new plan at once; None: it waits for a user."""
        if not plan.gate.passed:
            return approval.Decision(False, "policy:safety-gate", "policy", "; ".join(plan.gate.failures))
        if continuation_of and continuation_of in self.approved:
            return approval.Decision(True, "policy:replan", "policy",
                                     f"re-plan of approved plan {continuation_of}; passed the safety gate")
        if self.policy == "auto":
            return approval.Decision(True, "policy:auto", "policy", "passed the safety gate")
        return None

    def _decide(self, plan: Plan, approved: bool, user: str, role: str, comment: str) -> bool:
        """A user's decision on a stored plan."""
        try:
            approval.record_decision(self._records(), plan.plan_id, approved, user, role, comment,
                                     self.get_clock().now().nanoseconds)
        except (SQLAlchemyError, ValueError) as exc:
            self.get_logger().error(f"decision on plan {plan.plan_id} could not be recorded: {exc}")
            return False
        self._decided(plan, approval.Decision(approved, user, role, comment))
        return True

    def _decided(self, plan: Plan, decision: approval.Decision) -> None:
        """A recorded decision takes effect: an approved plan may be followed; either way it is an event."""
        verb = "approved" if decision.approved else "rejected"
        if decision.approved:
            self.approved[plan.plan_id] = decision.user
        self.events.report("plan_approval" if decision.approved else "plan_rejection",
                           f"plan {plan.plan_id} {verb} by {decision.user}: {decision.comment}", decision.user,
                           plan_id=plan.plan_id)

    def _activate(self, plan: Plan) -> None:
        self.active = plan
        self._note_held(plan)
        self.active_pub.publish(self._msg(plan, DispatchPlan.STATUS_ACTIVE))
        self.get_logger().info(f"plan {plan.plan_id} active from {plan.start.isoformat()} "
                               f"({len(plan.p_kw)} intervals, {plan.forecast_method})")

    def _msg(self, plan: Plan, status: int) -> DispatchPlan:
        return plan.to_msg(status, self.get_clock().now().to_msg(), self.settings.site,
                           self.approved.get(plan.plan_id, ""))

    def on_approve(self, request: PlanApproval.Request, response: PlanApproval.Response) -> PlanApproval.Response:
        plan = self.plans.get(request.plan_id)
        user = request.user.strip()
        if plan is None:
            response.success, response.message = False, f"plan {request.plan_id} is not a proposed plan"
            return response
        try:
            role, refusal = authorize(self._records(), user, "approve plans")
        except SQLAlchemyError as exc:
            response.success, response.message = False, f"the user database cannot be read: {error_line(exc)}"
            return response
        if refusal:
            response.success, response.message = False, refusal
            return response
        if request.approve and not plan.gate.passed:
            response.success, response.message = False, "the plan failed the safety gate: it cannot be approved"
            return response
        if not self._decide(plan, request.approve, user, role, request.comment):
            response.success, response.message = False, "the decision could not be recorded: nothing changed"
            return response
        if request.approve and plan.start <= self.now() < plan.end and self.active is None:
            self._activate(plan)
        response.success = True
        response.message = f"plan {plan.plan_id} {'approved' if request.approve else 'rejected'} by {user}"
        return response


def _parse_holidays(text: str) -> set[date] | None:
    """None: the forecaster's default (US federal holidays, observed)."""
    from energizeos.runtime.parameters import ParameterError

    text = text.strip()
    if text in ("", "us-federal"):
        return None
    if text == "none":
        return set()
    try:
        return {date.fromisoformat(part.strip()) for part in text.split(",") if part.strip()}
    except ValueError as exc:
        raise ParameterError(f"holidays: {exc} (give us-federal, none or YYYY-MM-DD dates)") from exc


def main(args: list[str] | None = None) -> None:
    runtime.run_node(Planner, args)


if __name__ == "__main__":
    main()
