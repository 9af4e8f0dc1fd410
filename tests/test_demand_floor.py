"""The month's demand floor: the highest peak the day plan sets on a recent day's measured load, and
its lower bound, the level a full battery could have held that day under."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energizeos.planning.day_ahead import PlannerSettings
from energizeos.planning.demand_floor import auto_window_days, demand_floor, describe, holdable_level, priced_as
from energizeos.planning.history import LoadHistory
from energizeos.planning.lp import Battery
from energizeos.tariffs import load_tariff

TZ = "America/Los_Angeles"
TARIFF = load_tariff("sdge-al-tou")  # illustrative rates: max demand $30/kW, summer on-peak $25/kW (16:00-21:00)


def floor_of(history: LoadHistory, battery: Battery | None = None, cache: dict | None = None,
             month_of: date | None = None, window_days: int = 1) -> dict:
    return demand_floor(history, TARIFF, PlannerSettings(tz=TZ, battery=battery or Battery()), cache, month_of,
                        window_days)


def test_the_level_spends_exactly_the_energy_by_hand():
    # four hours at 1000 kW over a 600 kW base; 800 kWh takes 200 kW off the four hours: level 800 kW
    load = np.array([600.0] * 8 + [1000.0] * 16 + [600.0] * 8)
    assert holdable_level(load, 800.0, 500.0, 900) == pytest.approx(800.0)
    # 2000 kWh reaches below the base: 4 h x (1000 - L) + 4 h x (600 - L) = 2000 gives L = 550 kW ...
    assert holdable_level(load, 2000.0, 500.0, 900) == pytest.approx(550.0)
    # ... unless the PCS is smaller: 400 kW stops it at 1000 - 400
    assert holdable_level(load, 2000.0, 400.0, 900) == pytest.approx(600.0)
    # a short spike: power binds first (1500 - 500)
    spike = np.array([600.0] * 10 + [1500.0] + [600.0] * 10)
    assert holdable_level(spike, 800.0, 500.0, 900) == pytest.approx(1000.0)


def test_missing_intervals_are_left_out_and_an_empty_day_is_an_error():
    load = np.array([np.nan, 600.0, 1000.0, 1000.0, np.nan])
    assert holdable_level(load, 100.0, 500.0, 900) == pytest.approx(800.0)  # 2 x 0.25 h x 200 kW = 100 kWh
    with pytest.raises(ValueError, match="no measured interval"):
        holdable_level(np.array([np.nan, np.nan]), 100.0, 500.0, 900)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 3000.0), min_size=1, max_size=96), st.floats(0.0, 2000.0), st.floats(1.0, 1000.0))
def test_the_level_is_the_lowest_the_battery_can_hold(values, energy, power):
    load = np.array(values)
    level = holdable_level(load, energy, power, 900)
    needed = np.clip(load - level, 0.0, None)
    assert needed.max() <= power + 1e-6 and needed.sum() * 0.25 <= energy + 1e-6  # it can be held
    if level > 1e-6:  # and no lower level can: either the power or the energy is used up
        assert needed.max() >= power - 1e-6 or needed.sum() * 0.25 >= energy - 1e-6


def _days(levels_kw: list[float], first: date, base_kw: float = 500.0, hours: slice = slice(40, 56)) -> LoadHistory:
    """Days with a base load and the given level over ``hours`` (10:00-14:00 by default: before the
    on-peak, which then has the base load), on the local-day grid."""
    start = datetime(first.year, first.month, first.day, tzinfo=ZoneInfo(TZ)).astimezone(UTC)
    values = []
    for level in levels_kw:
        day = np.full(96, base_kw)
        day[hours] = level
        values += list(day)
    return LoadHistory(start, 900, np.array(values))


BATTERY = Battery(power_kw=500.0, energy_kwh=1000.0, soc_min_pct=10.0, soc_reserve_pct=5.0, soc_max_pct=95.0,
                  discharge_efficiency=0.95)  # 800 kWh of SOC window: 760 kWh at the AC side


def test_the_floor_is_the_heaviest_days_planned_peak_by_hand():
    history = _days([900.0, 1400.0, 1200.0], date(2025, 6, 2))
    floor = floor_of(history, BATTERY)
    # the 1400 kW day: the plan fills the battery overnight and gives its 760 kWh to the four hours (the
    # midday max demand at $30/kW over 4 h beats the 500 kW on-peak at $25/kW over 5 h), taking 190 kW off;
    # it refills at off-peak between 14:00 and 16:00, under that peak, for the on-peak. A full battery could
    # have held the day at exactly that level too: here energy, not the on-peak, is what binds
    assert floor == {"kw": pytest.approx(1400.0 - 190.0, abs=0.01), "day": date(2025, 6, 3), "days": 1,
                     "holdable_kw": pytest.approx(1210.0)}
    assert describe(floor) == "demand floor 1210.0 kW: the peak the day plan sets on 2025-06-03's load"


def test_where_the_pcs_binds_the_floor_is_the_peak_less_the_rating():
    # one hour at 1200 kW over 500 kW: 500 kWh is within the battery, the 500 kW PCS is not: 1200 - 500
    history = _days([1200.0], date(2025, 6, 2), hours=slice(48, 52))
    assert floor_of(history, BATTERY)["kw"] == pytest.approx(700.0, abs=0.01)


def test_an_on_peak_that_needs_the_energy_lifts_the_floor_above_what_the_battery_could_hold():
    # a hospital-like day: 1000 kW around the clock, 1100 kW from 10:00 to 21:00. A full battery alone
    # could hold it at about 1031 kW; but the on-peak (16:00-21:00, $25/kW over 5 h) is worth more per
    # kWh than the max demand over the 11-hour plateau ($30/kW over 11 h), so the day plan keeps the energy
    # for the on-peak and its non-coincident peak stays at the plateau
    history = _days([1100.0], date(2025, 6, 2), base_kw=1000.0, hours=slice(40, 84))
    floor = floor_of(history, BATTERY)
    assert floor["holdable_kw"] == pytest.approx(1100.0 - 760.0 / 11.0)
    assert floor["kw"] == pytest.approx(1100.0, abs=0.01)


def test_each_day_is_solved_once_with_a_cache():
    cache: dict = {}
    history = _days([900.0, 1400.0], date(2025, 6, 2))
    first = floor_of(history, BATTERY, cache)
    assert len(cache) == 2
    cache[next(k for k in cache if k[0] == date(2025, 6, 3))] = 2000.0  # what the cache says is what is used
    assert floor_of(history, BATTERY, cache)["kw"] == 2000.0 and first["kw"] == pytest.approx(1210.0, abs=0.01)


def test_a_day_with_too_few_readings_does_not_set_the_floor():
    history = _days([900.0, 1400.0], date(2025, 6, 2))
    history.values[96 + 30:96 + 60] = np.nan  # the heavy day: 30 of 96 intervals missing
    assert floor_of(history)["day"] == date(2025, 6, 2)
    history.values[:96] = np.nan
    assert floor_of(history) == {}


def test_a_history_not_on_local_midnight_uses_its_whole_days_only():
    whole = _days([900.0, 1400.0, 1200.0], date(2025, 6, 2))
    shifted = LoadHistory(whole.start + timedelta(hours=5), 900, whole.values[20:])  # starts mid-day 1
    assert [floor_of(shifted)["day"]] == [date(2025, 6, 3)]
    cut = LoadHistory(whole.start, 900, whole.values[:96 + 50])  # ends mid-day 2
    assert floor_of(cut)["day"] == date(2025, 6, 2)


def test_a_history_at_another_interval_is_refused():
    with pytest.raises(ValueError, match="900 s intervals"):
        floor_of(LoadHistory(datetime(2025, 6, 2, 7, tzinfo=UTC), 300, np.full(288 * 2, 500.0)))


def test_a_day_of_an_earlier_month_is_priced_as_the_same_weekday_of_the_month_planned():
    assert priced_as(date(2025, 5, 27), date(2025, 6, 10)) == date(2025, 6, 3)  # Tuesday -> the first June Tuesday
    assert priced_as(date(2025, 5, 31), date(2025, 6, 30)) == date(2025, 6, 7)  # Saturday -> Saturday
    assert priced_as(date(2025, 6, 4), date(2025, 6, 20)) == date(2025, 6, 4)  # the month's own days keep theirs
    assert priced_as(date(2024, 12, 30), date(2025, 1, 2)) == date(2025, 1, 6)  # across the year


def test_the_month_planned_decides_what_a_late_may_day_floors_june_at():
    # the hospital-like day of the test above, on a Tuesday in May: at May's (winter) rates, on-peak $5/kW,
    # the day plan gives its energy to the 11-hour plateau (as far as the night's charging under the
    # 1000 kW base allows: 1038 kW, not the 1031 kW a full battery could hold); priced as June's first
    # Tuesday, it keeps the energy for the on-peak and the plateau stays
    history = _days([1100.0], date(2025, 5, 27), base_kw=1000.0, hours=slice(40, 84))
    cache: dict = {}
    may = floor_of(history, BATTERY, cache)
    assert 1100.0 - 760.0 / 11.0 < may["kw"] < 1050.0
    assert floor_of(history, BATTERY, cache, month_of=date(2025, 5, 30)) == may and len(cache) == 1
    june = floor_of(history, BATTERY, cache, month_of=date(2025, 6, 12))
    assert len(cache) == 2  # the same day at June's prices is another LP, remembered apart
    assert june["kw"] == pytest.approx(1100.0, abs=0.01) and june["day"] == date(2025, 5, 27)


def test_a_small_site_floor_is_what_a_day_can_repeat_not_what_the_stored_energy_buys_once():
    # a warehouse-like January weekday: 20 kW, 40 kW from 08:00 to 16:00, and a battery of 50 x its peak.
    # Spending the stored energy, one day could be held at 12.8 kW; a day that ends where it began charges
    # under the level all of its other 16 hours: 16 h x (L - 20) x 0.95 x 0.95 = 8 h x (40 - L), L = 27.13 kW
    # (the winter on-peak, $5/kW, gets none of the energy: the evening stays at 20 kW)
    floor = floor_of(_days([40.0], date(2025, 1, 6), base_kw=20.0, hours=slice(32, 64)), BATTERY)
    level = (8 * 40.0 + 16 * 20.0 * 0.95 * 0.95) / (8 + 16 * 0.95 * 0.95)
    assert level == pytest.approx(27.13, abs=0.01)
    assert floor["kw"] == pytest.approx(level, abs=0.01)


def test_a_window_of_days_credits_the_energy_a_light_day_stores_for_a_heavy_one():
    # a closed Sunday (0 kW) before a Monday at 40 kW from 08:00 to 16:00 and 0 kW otherwise. Alone, Monday ends
    # where it began by charging under the level in its other 16 hours: 16 h x L x 0.95 = 8 h x (40 - L) / 0.95,
    # L = 14.26 kW. Planned as one two-day window, Sunday's 24 hours charge too: 40 h x L x 0.95 = 8 h x (40 - L)
    # / 0.95, L = 7.26 kW, the level a site that stores energy over the weekend holds its weekdays at
    history = _days([0.0, 40.0], date(2025, 1, 5), base_kw=0.0, hours=slice(32, 64))
    alone, window = floor_of(history, BATTERY), floor_of(history, BATTERY, window_days=2)
    assert alone["kw"] == pytest.approx(320.0 / (8 + 16 * 0.95 * 0.95), abs=0.01) and alone["day"] == date(2025, 1, 6)
    assert window["kw"] == pytest.approx(320.0 / (8 + 40 * 0.95 * 0.95), abs=0.01)
    assert (window["day"], window["days"]) == (date(2025, 1, 5), 2)  # the window's first day, and its length
    assert describe(window) == ("demand floor 7.3 kW: the peak the 2-day plan sets on the load of 2025-01-05 to "
                                "2025-01-06")
    # a window needs all its days: a history one day long sets no two-day floor
    assert floor_of(LoadHistory(history.start, 900, history.values[:96]), BATTERY, window_days=2) == {}
    with pytest.raises(ValueError, match=r"at least one day .*, not -1"):
        floor_of(history, BATTERY, window_days=-1)


def test_window_days_0_plans_week_long_windows_only_for_a_battery_that_can_carry_a_share_of_a_day():
    # BATTERY gives 760 kWh at the AC side. The Sunday-and-Monday history above averages 6.67 kW, 160 kWh a day:
    # 4.75 days of it, so the floor is planned over 7-day windows. Two days are too few for one, so there is no
    # floor. Two weeks of five 320 kWh weekdays (229 kWh a day): the 7-day windows set the floor, and it says why
    history = _days([0.0, 40.0], date(2025, 1, 5), base_kw=0.0, hours=slice(32, 64))
    assert auto_window_days(history, BATTERY) == (7, "7-day windows: the battery's usable 760 kWh is 4.75 of a mean "
                                                     "day's 160 kWh (windows from 0.15)")
    assert floor_of(history, BATTERY, window_days=0) == {}
    fortnight = _days([0.0, 40.0, 40.0, 40.0, 40.0, 40.0, 0.0] * 2, date(2025, 1, 5), base_kw=0.0,
                      hours=slice(32, 64))
    auto, week = floor_of(fortnight, BATTERY, window_days=0), floor_of(fortnight, BATTERY, window_days=7)
    assert auto["kw"] == pytest.approx(week["kw"]) and (auto["day"], auto["days"]) == (week["day"], week["days"])
    assert describe(auto).endswith("(7-day windows: the battery's usable 760 kWh is 3.33 of a mean day's 229 kWh "
                                   "(windows from 0.15))")
    # a hospital-like site: 1000-1100 kW, 25,100 kWh a day, 0.03 of which the battery holds: each day alone,
    # and the floor is the day plan's of the test above
    hospital = _days([1100.0], date(2025, 6, 2), base_kw=1000.0, hours=slice(40, 84))
    days, why = auto_window_days(hospital, BATTERY)
    assert days == 1 and why.startswith("day windows: the battery's usable 760 kWh is 0.03 of a mean day's 25100 kWh")
    assert floor_of(hospital, BATTERY, window_days=0)["kw"] == pytest.approx(1100.0, abs=0.01)
    # the fraction decides: a day of 5067 kWh is the edge for 760 kWh (760 / 0.15)
    edge = 760.0 / 0.15 / 24.0
    assert auto_window_days(_days([edge * 0.99], date(2025, 6, 2), base_kw=edge * 0.99), BATTERY)[0] == 7
    assert auto_window_days(_days([edge * 1.01], date(2025, 6, 2), base_kw=edge * 1.01), BATTERY)[0] == 1
    no_load = LoadHistory(hospital.start, 900, np.full(96, np.nan))
    assert auto_window_days(no_load, BATTERY) == (1, "day windows: no measured load to size the battery against")
