"""The month's demand floor: the level a full battery could have held on the heaviest recent day."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energizeos.planning.demand_floor import demand_floor, holdable_level
from energizeos.planning.history import LoadHistory
from energizeos.planning.lp import Battery

TZ = "America/Los_Angeles"


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


def _days(levels_kw: list[float], first: date) -> LoadHistory:
    """Days with a 500 kW base and four hours at the given level, on the local-day grid."""
    start = datetime(first.year, first.month, first.day, tzinfo=ZoneInfo(TZ)).astimezone(UTC)
    values = []
    for level in levels_kw:
        values += [500.0] * 40 + [level] * 16 + [500.0] * 40
    return LoadHistory(start, 900, np.array(values))


def test_the_floor_is_the_heaviest_days_level():
    battery = Battery(power_kw=500.0, energy_kwh=1000.0, soc_min_pct=10.0, soc_reserve_pct=5.0, soc_max_pct=95.0,
                      discharge_efficiency=0.95)  # 800 kWh of SOC window: 760 kWh at the AC side
    history = _days([900.0, 1400.0, 1200.0], date(2025, 6, 2))
    floor = demand_floor(history, battery, TZ)
    # the 1400 kW day: 760 kWh over four hours takes 190 kW off it
    assert floor == {"kw": pytest.approx(1400.0 - 190.0), "day": date(2025, 6, 3)}


def test_a_day_with_too_few_readings_does_not_set_the_floor():
    battery = Battery()
    history = _days([900.0, 1400.0], date(2025, 6, 2))
    history.values[96 + 30:96 + 60] = np.nan  # the heavy day: 30 of 96 intervals missing
    assert demand_floor(history, battery, TZ)["day"] == date(2025, 6, 2)
    history.values[:96] = np.nan
    assert demand_floor(history, battery, TZ) == {}


def test_a_history_not_on_local_midnight_uses_its_whole_days_only():
    battery = Battery()
    whole = _days([900.0, 1400.0, 1200.0], date(2025, 6, 2))
    shifted = LoadHistory(whole.start + timedelta(hours=5), 900, whole.values[20:])  # starts mid-day 1
    assert [demand_floor(shifted, battery, TZ)["day"]] == [date(2025, 6, 3)]
    cut = LoadHistory(whole.start, 900, whole.values[:96 + 50])  # ends mid-day 2
    assert demand_floor(cut, battery, TZ)["day"] == date(2025, 6, 2)
