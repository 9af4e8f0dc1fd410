"""The demand interval: the POI level that keeps the billed 15-minute mean at the threshold."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energizeos.nodes.demand_interval import DemandInterval

T = 900.0


def test_an_overshoot_already_metered_is_made_up_for_in_the_rest_of_the_interval():
    d = DemandInterval(900.0)
    for t in range(0, 301, 60):  # 1000 kW for the first five minutes
        d.add(float(t), 1000.0)
    # 1000 kW x 300 s imported; 900 kW x 900 s allowed: 850 kW for the remaining 600 s
    assert d.target_kw(300.0, T, 60.0) == pytest.approx(850.0)
    assert d.target_kw(900.0, T, 60.0) == T  # a new interval starts with the threshold itself


def test_an_early_undershoot_is_not_spent_and_the_last_period_is_not_asked_for_everything():
    d = DemandInterval(900.0)
    for t in range(0, 601, 60):
        d.add(float(t), 500.0)
    assert d.target_kw(600.0, T, 60.0) == T  # under the threshold so far: hold the threshold, no more
    e = DemandInterval(900.0)
    for t in [*range(0, 841, 60), 870]:
        e.add(float(t), 1000.0)
    # at 870 s with 30 s left the shortfall is spread over one control period (60 s), not 30 s
    assert e.target_kw(870.0, T, 60.0) == pytest.approx((T * 900 - 1000.0 * 870) / 60.0)


def test_a_gap_in_the_readings_counts_at_their_mean_and_a_reading_spanning_a_boundary_is_split():
    d = DemandInterval(900.0)
    d.add(0.0, 1000.0)
    d.add(60.0, 1000.0)
    assert d.target_kw(300.0, T, 60.0) == pytest.approx((T * 900 - 1000.0 * 300) / 600.0)  # 240 s unseen
    e = DemandInterval(900.0)
    e.add(840.0, 700.0)
    e.add(960.0, 1200.0)  # 60 s in the old interval, 60 s in the new one
    assert e.target_kw(960.0, T, 60.0) == pytest.approx((T * 900 - 1200.0 * 60) / 840.0)


def test_nonsense_is_refused_or_ignored():
    with pytest.raises(ValueError, match="interval_s must be positive"):
        DemandInterval(0.0)
    d = DemandInterval(900.0)
    d.add(0.0, float("nan"))
    assert d.target_kw(60.0, T, 60.0) == T


def _interval_mean(loads: list[float], compensate: bool, step_s: float = 60.0) -> float:
    """One demand interval under a controller that acts one step late, as the sim and a real loop do:
    the request made at t_j from the step just ended [t_j - step, t_j) holds over the next step."""
    d = DemandInterval(900.0)
    d.add(0.0, T)  # the previous interval's last reading: the first step of this one is metered in full
    poi = []
    bess = 0.0
    for j, load in enumerate(loads):  # load over [j step, (j + 1) step)
        p = load - bess
        poi.append(p)
        t = (j + 1) * step_s
        d.add(t, p)
        hold = d.target_kw(t, T, step_s) if compensate else T
        bess = max(0.0, load - hold)  # the load just measured is what the next step is sized on
    return sum(poi) / len(poi)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(1000.0, 1100.0), min_size=15, max_size=15))
def test_with_the_load_above_the_threshold_the_interval_mean_misses_only_by_the_last_steps_rise(loads):
    # while the battery discharges all interval the made-up target leaves only the last step's change
    # of load uncorrected: mean = threshold + (load_15 - load_14) / 15
    mean = _interval_mean([T + 5.0, *loads[1:]], compensate=True)
    assert mean <= T + max(0.0, loads[-1] - loads[-2]) / 15.0 + 1e-6


def test_without_making_up_a_load_rising_through_the_interval_sets_a_higher_demand():
    # each minute's rise is imported until the next request: the plain hold lets all of them through,
    # the made-up target takes them back later in the interval and leaves only the last one
    loads = [T - 20.0 + 10.0 * j for j in range(15)]
    plain, made_up = _interval_mean(loads, compensate=False), _interval_mean(loads, compensate=True)
    # 12 minutes above the threshold each 10 kW over, the first three 20, 10 and 0 kW under
    assert plain == pytest.approx(T + (12 * 10.0 - 30.0) / 15)
    assert made_up <= T + 10.0 / 15.0 + 1e-6
