"""Day-ahead and rolling plans against the shipped SDG&E AL-TOU tariff, through the safety gate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from energizeos.planning.day_ahead import PlannerSettings, local_day, plan_day, replan
from energizeos.planning.lp import Battery
from energizeos.tariffs import load_tariff

TARIFF = load_tariff("sdge-al-tou")
# thresholds from the plan itself: the margins that raise them have tests of their own
SETTINGS = PlannerSettings(battery=Battery(power_kw=500, energy_kwh=1000), on_peak_margin_pct=0.0)


def office_day(n: int = 96, base: float = 300.0, peak: float = 900.0) -> np.ndarray:
    """A plausible office day: low at night, high 9:00-18:00, highest around 15:00-17:00 local."""
    hours = np.arange(n) / 4.0
    shape = np.clip(np.sin((hours - 6.0) / 13.0 * np.pi), 0.0, None)
    return base + (peak - base) * shape


def test_local_days_have_92_96_or_100_intervals():
    assert local_day(date(2025, 7, 15), "America/Los_Angeles") == (datetime(2025, 7, 15, 7, tzinfo=UTC), 96)
    assert local_day(date(2025, 3, 9), "America/Los_Angeles")[1] == 92
    assert local_day(date(2025, 11, 2), "America/Los_Angeles")[1] == 100


def test_a_summer_weekday_plan_shaves_the_on_peak_and_passes_the_gate():
    load = office_day()
    plan = plan_day(TARIFF, SETTINGS, date(2025, 7, 15), load, soc_pct=50.0, plan_id=1)
    assert plan.gate.passed, plan.gate.failures
    assert len(plan.gate.findings) == 9 and all(f.startswith("PASS") for f in plan.gate.findings)
    on_peak = plan.on_peak
    assert on_peak.sum() == 20  # 16:00-21:00
    assert np.max(plan.grid_kw[on_peak]) < np.max(load[on_peak]) - 100  # the battery works on-peak
    assert np.max(plan.grid_kw) < np.max(load)
    assert np.all(plan.grid_kw >= -1e-6)  # zero export
    assert plan.threshold_kw[on_peak] == pytest.approx(plan.result.on_peak_kw["2025-07"])
    body = plan.body()
    assert len(body["p_kw"]) == 96 and body["lp_status"] == "optimal"


def test_a_dst_day_is_planned_over_its_92_intervals():
    _start, n = local_day(date(2025, 3, 9), "America/Los_Angeles")
    plan = plan_day(TARIFF, SETTINGS, date(2025, 3, 9), office_day(n), soc_pct=50.0, plan_id=2)
    assert plan.gate.passed and len(plan.p_kw) == 92
    with pytest.raises(ValueError, match="has 96 intervals; the local day has 92"):
        plan_day(TARIFF, SETTINGS, date(2025, 3, 9), office_day(96), soc_pct=50.0)


def test_a_plan_that_cannot_hold_the_export_limit_fails_the_gate_with_the_binding_constraint():
    load = office_day() - 700.0  # big PV: the site exports most of the day, more than the battery can take
    plan = plan_day(TARIFF, SETTINGS, date(2025, 7, 15), load, soc_pct=90.0, plan_id=3)
    assert not plan.gate.passed
    assert any(f.startswith("FAIL LP: export limit binds: interval") for f in plan.gate.failures)
    assert any(f.startswith("FAIL export:") for f in plan.gate.failures)


def test_replan_waits_for_a_real_departure_then_plans_the_rest_of_the_day_from_the_measured_soc():
    from dataclasses import replace as _replace

    settings = _replace(SETTINGS, replan_deviation_pct=5.0, replan_soc_deviation_pct=5.0)
    load = office_day()
    plan = plan_day(TARIFF, SETTINGS, date(2025, 7, 15), load, soc_pct=50.0, plan_id=4)
    noon = plan.start + timedelta(hours=12)
    on_plan = float(plan.soc_pct[47])
    assert replan(TARIFF, settings, plan, noon, on_plan, load[44:48] * 1.04, {}, {}, 0.0, 5) is None  # within 5 %
    assert replan(TARIFF, settings, plan, noon, on_plan, np.array([np.nan, np.nan, 2000.0, 2000.0]), {}, {}, 0.0,
                  5) is None  # two measured intervals are not enough to act on
    drained = replan(TARIFF, settings, plan, noon, on_plan - 6.0, load[44:48], {}, {}, 0.0, 5)
    assert drained is not None and "the SOC -6.0 points from the plan" in drained.notes[0]  # SOC off the plan
    again = replan(TARIFF, settings, plan, noon, 40.0, load[44:48] * 1.25, {"2025-07": 800.0}, {}, 0.0, 5)
    assert again is not None and again.parent_plan_id == 4 and again.start == noon and len(again.p_kw) == 48
    assert again.soc_start_pct == 40.0 and again.gate.passed
    assert again.load_kw[0] == pytest.approx(load[48] * (1 + 0.25 * 1.0), rel=1e-6)  # corrected, decaying
    assert again.load_kw[-1] == pytest.approx(load[-1] * 1.25, rel=1e-6)  # by default the departure holds all day
    fading = replan(TARIFF, _replace(settings, bias_decay_intervals=16.0), plan, noon, 40.0, load[44:48] * 1.25,
                    {"2025-07": 800.0}, {}, 0.0, 6)
    assert fading.load_kw[-1] == pytest.approx(load[-1] * (1 + 0.25 * np.exp(-47 / 16)), rel=1e-6)  # or fades
    assert "re-plan at" in again.notes[0] and "+25 % from the forecast" in again.notes[0]


def test_a_threshold_margin_plans_the_defended_poi_level_for_a_heavier_day():
    from dataclasses import replace

    load = office_day()
    plain = plan_day(TARIFF, SETTINGS, date(2025, 7, 15), load, soc_pct=50.0, plan_id=7)
    wary = plan_day(TARIFF, replace(SETTINGS, threshold_margin_pct=5.0), date(2025, 7, 15), load, soc_pct=50.0,
                    plan_id=8)
    assert np.array_equal(wary.p_kw, plain.p_kw) and wary.gate.passed  # the same power schedule...
    assert np.all(wary.threshold_kw >= plain.threshold_kw - 1e-6)  # ...defending a level it can keep
    assert np.max(wary.threshold_kw[wary.on_peak]) > np.max(plain.threshold_kw[plain.on_peak]) + 10.0


def test_an_on_peak_margin_plans_only_the_on_peak_thresholds_for_a_heavier_day():
    from dataclasses import replace

    load, day = office_day(), date(2025, 7, 15)
    plain = plan_day(TARIFF, SETTINGS, day, load, soc_pct=50.0, plan_id=7)
    wary = plan_day(TARIFF, replace(SETTINGS, threshold_margin_pct=5.0), day, load, soc_pct=50.0, plan_id=8)
    on = plan_day(TARIFF, replace(SETTINGS, on_peak_margin_pct=5.0), day, load, soc_pct=50.0, plan_id=9)
    assert np.array_equal(on.p_kw, plain.p_kw) and on.gate.passed  # the same power schedule
    assert on.threshold_kw[~on.on_peak] == pytest.approx(plain.threshold_kw[~plain.on_peak])  # off-peak: the plan's
    assert on.threshold_kw[on.on_peak] == pytest.approx(wary.threshold_kw[wary.on_peak])  # on-peak: the heavier day's
    assert np.max(on.threshold_kw[on.on_peak]) > np.max(plain.threshold_kw[plain.on_peak]) + 10.0
    assert np.max(wary.threshold_kw[~wary.on_peak]) > np.max(plain.threshold_kw[~plain.on_peak]) + 10.0  # not so here
    both = plan_day(TARIFF, replace(SETTINGS, threshold_margin_pct=5.0, on_peak_margin_pct=2.0), day, load,
                    soc_pct=50.0, plan_id=10)
    assert both.threshold_kw == pytest.approx(wary.threshold_kw)  # the larger margin applies on-peak


def test_by_default_every_interval_is_re_planned_from_the_measured_state():
    plan = plan_day(TARIFF, SETTINGS, date(2025, 7, 15), office_day(), soc_pct=50.0, plan_id=9)
    noon = plan.start + timedelta(hours=12)
    again = replan(TARIFF, SETTINGS, plan, noon, float(plan.soc_pct[47]), plan.load_kw[44:48], {}, {}, 0.0, 10)
    assert again is not None and again.start == noon and again.gate.passed  # on plan, and re-planned all the same


def test_a_re_plan_of_a_re_plan_still_corrects_by_the_departure_from_the_days_own_forecast():
    # every interval is re-planned, so the active plan is always one interval old: the departure must be
    # measured against the day's forecast, not against the last re-plan's single interval
    load = office_day()
    plan = plan_day(TARIFF, SETTINGS, date(2025, 7, 15), load, soc_pct=50.0, plan_id=11)
    noon = plan.start + timedelta(hours=12)
    first = replan(TARIFF, SETTINGS, plan, noon, float(plan.soc_pct[47]), load[44:48] * 1.10, {}, {}, 0.0, 12)
    later = noon + timedelta(minutes=15)
    second = replan(TARIFF, SETTINGS, first, later, float(first.soc_pct[0]), load[45:49] * 1.10, {}, {}, 0.0, 13)
    assert second is not None and second.start == later and second.parent_plan_id == 12
    assert second.load_kw[0] == pytest.approx(load[49] * 1.10, rel=1e-6)  # still +10 %, measured afresh
    assert "+10 % from the forecast" in second.notes[0]
    assert second.forecast_method.count("(bias-corrected)") == 1
    on_forecast = replan(TARIFF, SETTINGS, first, later, float(first.soc_pct[0]), load[45:49], {}, {}, 0.0, 14)
    assert on_forecast.load_kw[0] == pytest.approx(load[49], rel=1e-6)  # back on the forecast: no correction


def test_the_terminal_target_is_not_bought_back_at_an_evening_rate_the_night_refills_for_less():
    from energizeos.planning.day_ahead import refill_cost

    plan = plan_day(TARIFF, SETTINGS, date(2025, 7, 15), office_day(), soc_pct=50.0, plan_id=15)
    # the cheapest rate of the next day is summer super off-peak, 0.10 $/kWh, through 95 % charging
    assert refill_cost(TARIFF, plan.end, SETTINGS.battery) == pytest.approx(0.10 / 0.95)
    evening = slice(84, 96)  # 21:00-24:00, off-peak at 0.15 $/kWh
    assert np.all(plan.p_kw[evening] > -1.0)  # no recharge bought at 0.15 that 0.10 would buy after midnight
    assert plan.soc_pct[-1] < 50.0 and any("below the terminal SOC target" in n for n in plan.notes)


def test_a_trip_or_a_short_event_does_not_steer_the_rest_of_the_day():
    load = office_day()
    plan = plan_day(TARIFF, SETTINGS, date(2025, 7, 15), load, soc_pct=50.0, plan_id=16)
    noon = plan.start + timedelta(hours=12)
    soc = float(plan.soc_pct[47])
    # the breaker open for an interval (0 kW measured), another with a short drop, two on the forecast
    tripped = np.array([0.0, load[45] * 0.7, load[46], load[47]])
    again = replan(TARIFF, SETTINGS, plan, noon, soc, tripped, {}, {}, 0.0, 17)
    assert again.load_kw[0] == pytest.approx(load[48] * 1.0, rel=1e-6)  # median of 0.7, 1.0, 1.0
    heavy = replan(TARIFF, SETTINGS, plan, noon, soc, np.array([0.0, *(load[45:48] * 1.08)]), {}, {}, 0.0, 18)
    assert heavy.load_kw[0] == pytest.approx(load[48] * 1.08, rel=1e-6)  # a real departure still counts
    too_few = replan(TARIFF, SETTINGS, plan, noon, soc, np.array([0.0, 0.0, load[46] * 1.2, load[47] * 1.2]),
                     {}, {}, 0.0, 19)
    assert too_few.load_kw[0] == pytest.approx(load[48], rel=1e-6)  # two typical intervals are not enough


def warehouse_day() -> np.ndarray:
    """A small warehouse's day: 15 kW at night, 42 kW on the floor 8:00-16:00, 10 kW in the evening."""
    hours = np.arange(96) / 4.0
    return np.where(hours < 8, 15.0, np.where(hours < 16, 42.0, 10.0))


def two_days(lookahead: int) -> tuple[float, float]:
    """The peaks of two such days planned one after the other, each from where the first one ended."""
    settings = PlannerSettings(battery=Battery(power_kw=500, energy_kwh=1000), lookahead_intervals=lookahead)
    first = plan_day(TARIFF, settings, date(2025, 7, 16), warehouse_day(), 40.0, lookahead_kw=warehouse_day())
    peak = float(np.max(first.grid_kw))
    second = plan_day(TARIFF, settings, date(2025, 7, 17), warehouse_day(), float(first.soc_pct[-1]),
                      prior_peak={"2025-07": peak}, lookahead_kw=warehouse_day())
    return peak, float(np.max(second.grid_kw))


def test_a_day_plan_that_sees_the_next_day_keeps_the_energy_the_next_day_needs():
    # The day alone spends the battery down to its floor to set a 16.9 kW peak, counting the refill as
    # energy at the night rate; but the night can only refill under the month's peak, so the next day
    # peaks at 32.5 kW. Seeing the next day, the first sets 23.5 kW and the second 26.5 kW.
    alone = two_days(lookahead=0)
    ahead = two_days(lookahead=96)
    assert alone == pytest.approx((16.87, 32.48), abs=0.01)
    assert ahead == pytest.approx((23.48, 26.51), abs=0.01)
    assert max(ahead) < max(alone) - 5.0


def test_a_look_ahead_plan_keeps_its_own_day_and_is_the_longer_lp_cut_to_it():
    from energizeos.planning.day_ahead import refill_cost, tariff_prices
    from energizeos.planning.lp import Problem, solve

    settings = PlannerSettings(battery=Battery(power_kw=500, energy_kwh=1000), lookahead_intervals=48)
    plan = plan_day(TARIFF, settings, date(2025, 7, 16), office_day(), 50.0, plan_id=4, lookahead_kw=office_day())
    assert plan.gate.passed and len(plan.p_kw) == len(plan.grid_kw) == len(plan.threshold_kw) == 96
    assert plan.end == local_day(date(2025, 7, 17), "America/Los_Angeles")[0]
    assert "the LP looked 48 intervals into the next day's forecast; the plan keeps its own 96" in plan.notes
    start = local_day(date(2025, 7, 16), "America/Los_Angeles")[0]
    load = np.concatenate([office_day(), office_day()[:48]])  # only lookahead_intervals of the next day
    direct = solve(Problem(load_kw=load, prices=tariff_prices(TARIFF, start, 144), battery=settings.battery,
                           soc_start_pct=50.0, terminal_soc_pct=50.0,
                           terminal_value_per_kwh=refill_cost(TARIFF, start + timedelta(hours=36), settings.battery),
                           head_intervals=96, head_peak_weight=settings.own_peak_weight))
    np.testing.assert_allclose(plan.p_kw, direct.p_kw[:96], atol=1e-6)
    off = plan_day(TARIFF, PlannerSettings(battery=Battery(power_kw=500, energy_kwh=1000)), date(2025, 7, 16),
                   office_day(), 50.0, lookahead_kw=office_day())  # lookahead_intervals 0: the day alone
    alone = plan_day(TARIFF, SETTINGS, date(2025, 7, 16), office_day(), 50.0)
    np.testing.assert_array_equal(off.p_kw, alone.p_kw)
    with pytest.raises(ValueError, match="look-ahead forecast has values that are not numbers"):
        plan_day(TARIFF, settings, date(2025, 7, 16), office_day(), 50.0, lookahead_kw=np.full(96, np.nan))


def test_the_look_ahead_stops_at_the_end_of_the_billing_month():
    # a single day of the next month would set that month's whole demand charge in the LP
    settings = PlannerSettings(battery=Battery(power_kw=500, energy_kwh=1000), lookahead_intervals=96)
    last = plan_day(TARIFF, settings, date(2025, 7, 31), warehouse_day(), 50.0, lookahead_kw=warehouse_day())
    alone = plan_day(TARIFF, SETTINGS, date(2025, 7, 31), warehouse_day(), 50.0)
    assert "no look-ahead: the next day is in another month" in last.notes
    np.testing.assert_array_equal(last.p_kw, alone.p_kw)
    assert set(last.result.peak_kw) == {"2025-07"}
    within = plan_day(TARIFF, settings, date(2025, 7, 30), warehouse_day(), 50.0, lookahead_kw=warehouse_day())
    assert "the LP looked 96 intervals into the next day's forecast; the plan keeps its own 96" in within.notes


def test_the_dispatcher_holds_the_peaks_the_plan_sets_on_its_own_day_not_the_look_aheads():
    from dataclasses import replace

    settings = replace(SETTINGS, lookahead_intervals=96)
    heavy_tomorrow = office_day(peak=1500.0)
    plan = plan_day(TARIFF, settings, date(2025, 7, 16), office_day(), 50.0, lookahead_kw=heavy_tomorrow)
    shared = plan.result.peak_kw["2025-07"]  # the horizon's peak: set by tomorrow
    own = float(np.max(plan.grid_kw))
    assert own < shared - 100.0
    assert plan.threshold_kw[~plan.on_peak] == pytest.approx(own)
    assert plan.threshold_kw[plan.on_peak] == pytest.approx(float(np.max(plan.grid_kw[plan.on_peak])))


def test_a_week_plan_sets_where_each_day_plan_ends_and_what_a_kwh_short_costs():
    from energizeos.planning.day_ahead import TerminalGuide, plan_week, refill_cost, tariff_prices
    from energizeos.planning.lp import Problem, solve

    day = date(2025, 7, 16)
    start, n = local_day(day, SETTINGS.tz)
    end = start + timedelta(seconds=n * 900)
    alone = plan_day(TARIFF, SETTINGS, day, warehouse_day(), 50.0)
    assert alone.soc_pct[-1] < 20.0  # the day alone spends down: a kWh short is worth only the night's refill
    # a guide that has the battery 80 % full at the day's end, each kWh short of it worth 10 $ (more than the
    # demand charge for charging it): the day ends there
    guide = TerminalGuide(start, 900, np.full(2 * n, 80.0), np.full(2 * n, 10.0), plan_id=7)
    assert guide.at(end) == (80.0, 10.0) and guide.at(start) is None and guide.at(end + timedelta(days=2)) is None
    kept = plan_day(TARIFF, SETTINGS, day, warehouse_day(), 50.0, guide=guide)
    assert kept.soc_pct[-1] == pytest.approx(80.0, abs=0.01)
    assert "ends at week plan 7's SOC there, 80.0 %, a kWh short costing $10.000" in kept.notes
    # worth nothing there: the target does not hold the energy back
    free = plan_day(TARIFF, SETTINGS, day, warehouse_day(), 50.0,
                    guide=TerminalGuide(start, 900, np.full(n, 80.0), np.zeros(n)))
    assert free.soc_pct[-1] < 20.0
    # the week plan is the same LP over the days given, cut at the end of the billing month
    load = np.concatenate([warehouse_day()] * 3)
    week = plan_week(TARIFF, SETTINGS, start, load, 50.0, {"2025-07": 20.0}, {}, plan_id=8)
    direct = solve(Problem(load_kw=load, prices=tariff_prices(TARIFF, start, 3 * n), battery=SETTINGS.battery,
                           soc_start_pct=50.0, prior_peak_kw={"2025-07": 20.0}, terminal_soc_pct=50.0,
                           terminal_value_per_kwh=refill_cost(TARIFF, end + timedelta(days=2), SETTINGS.battery)))
    np.testing.assert_allclose(week.soc_pct, direct.soc_pct, atol=1e-6)
    np.testing.assert_allclose(week.value_per_kwh, direct.soc_value_per_kwh, atol=1e-9)
    last = local_day(date(2025, 7, 30), SETTINGS.tz)[0]
    assert len(plan_week(TARIFF, SETTINGS, last, load, 50.0, {}, {}).soc_pct) == 2 * n  # July 30 and 31 only
    assert plan_week(TARIFF, SETTINGS, start, np.full(n, np.nan), 50.0, {}, {}) is None
