"""The battery LP and the safety gate on small cases checked by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energizeos.planning import gate
from energizeos.planning.lp import Battery, Prices, Problem, solve

JULY = "2025-07"
IDEAL = Battery(power_kw=200, energy_kwh=1000, charge_efficiency=1.0, discharge_efficiency=1.0,
                degradation_per_kwh=0.0, ramp_kw_per_interval=1000)


def prices(n: int, energy=0.1, demand=10.0, on_peak_demand=0.0, on_peak: list[bool] | None = None,
           rate: np.ndarray | None = None) -> Prices:
    return Prices(rate if rate is not None else np.full(n, energy), np.zeros(n),
                  np.array(on_peak if on_peak is not None else [False] * n), [JULY] * n, {JULY: demand},
                  {JULY: on_peak_demand})


def test_flat_price_demand_charge_flattens_the_load():
    """Load 100/100/300/100 kW for an hour each, 10 $/kW demand, lossless battery that must end where it
    began: the best it can do is 150 kW flat (600 kWh over four hours). Cost 60 $ energy + 1500 $ demand."""
    r = solve(Problem(np.array([100.0, 100, 300, 100]), prices(4), IDEAL, 50.0, interval_s=3600,
                      terminal_value_per_kwh=1000.0))
    assert r.ok and r.status == "optimal"
    assert r.grid_kw == pytest.approx([150, 150, 150, 150], abs=1e-6)
    assert r.p_kw == pytest.approx([-50, -50, 150, -50], abs=1e-6)
    assert r.soc_pct[-1] == pytest.approx(50.0)
    assert r.cost == pytest.approx(60.0 + 1500.0)
    assert r.peak_kw[JULY] == pytest.approx(150.0)


def test_a_peak_already_set_this_month_is_not_paid_twice():
    r = solve(Problem(np.array([100.0, 100, 300, 100]), prices(4), IDEAL, 50.0, interval_s=3600,
                      prior_peak_kw={JULY: 250.0}, terminal_value_per_kwh=1000.0))
    assert r.peak_kw[JULY] == pytest.approx(250.0) and max(r.grid_kw) == pytest.approx(250.0, abs=1e-6)
    assert r.cost == pytest.approx(60.0 + 2500.0)


def test_the_head_of_the_horizon_keeps_peaks_of_its_own():
    """Load 100 then 200 kW for an hour each, free energy, 10 $/kW demand, a lossless 50 kW / 100 kWh battery
    at full charge with wear of 0.01 $/kWh. The shared peak is 150 kW (the second hour less 50 kW); below it
    the first hour is free, so wear keeps the battery idle. With the first hour's own peak at 0.1 x the rate,
    the 50 kWh left over shave it to 50 kW: 50 kW x 1 $/kW saves more than 50 kWh of wear costs."""
    b = Battery(power_kw=50, energy_kwh=100, charge_efficiency=1.0, discharge_efficiency=1.0, soc_min_pct=0,
                soc_reserve_pct=0, soc_max_pct=100, ramp_kw_per_interval=1000, degradation_per_kwh=0.01)
    load = np.array([100.0, 200.0])
    shared = solve(Problem(load, prices(2, energy=0.0), b, 100.0, interval_s=3600, terminal_soc_pct=0.0))
    assert shared.grid_kw == pytest.approx([100.0, 150.0], abs=1e-6)
    own = solve(Problem(load, prices(2, energy=0.0), b, 100.0, interval_s=3600, terminal_soc_pct=0.0,
                        head_intervals=1, head_peak_weight=0.1))
    assert own.grid_kw == pytest.approx([50.0, 150.0], abs=1e-6)
    assert own.peak_kw[JULY] == pytest.approx(150.0)
    assert own.cost == pytest.approx(1500.0 + 50.0 + 1.0, abs=1e-6)  # shared peak, own peak x 0.1, wear
    off = solve(Problem(load, prices(2, energy=0.0), b, 100.0, interval_s=3600, terminal_soc_pct=0.0,
                        head_intervals=1, head_peak_weight=0.0))
    assert off.grid_kw == pytest.approx(shared.grid_kw, abs=1e-6)


def test_among_equally_cheap_plans_the_battery_holds_its_energy():
    """Load 100/100/100/300 kW for an hour each, flat energy price, a 250 kW peak already set this month, the
    battery at its floor and asked to end there: it must discharge 50 kWh in the last hour and charge 50 kWh
    in any of the first three, all at the same cost. The tie-break charges in the first hour, so the energy
    is in the battery as early as it can be, and it stays out of the cost the plan reports. (It is far below
    the wear, 0.01 $/kWh here: it never pays for cycling more energy through the battery.)"""
    worn = replace(IDEAL, degradation_per_kwh=0.01)
    problem = Problem(np.array([100.0, 100, 100, 300]), prices(4), worn, worn.floor_pct, interval_s=3600,
                      prior_peak_kw={JULY: 250.0}, terminal_soc_pct=worn.floor_pct)
    held = solve(problem)
    assert held.p_kw == pytest.approx([-50, 0, 0, 50], abs=1e-6)
    assert held.soc_pct == pytest.approx([20, 20, 20, 15], abs=1e-6)
    assert held.cost == pytest.approx(60.0 + 2500.0 + 0.5)  # 600 kWh at 0.1 $, the 250 kW peak, wear; no hold value
    untied = solve(replace(problem, hold_value_per_kwh=0.0))
    assert untied.cost == pytest.approx(held.cost)
    assert np.all(held.soc_pct >= untied.soc_pct - 1e-6)


def test_the_solver_gets_the_rows_interval_by_interval(monkeypatch):
    """The constraint matrix is built a kind at a time with numpy but laid out as a per-interval loop writes it
    (each interval's balance, export, SOC, window, peak and ramp rows, the terminal row last): the same model
    in the same order gives the same plan as before the builder changed. Two intervals, the second on-peak,
    the first in the head, a present output: every kind of row once, written out here by hand."""
    import highspy

    passed = []
    real = highspy.Highs.passModel
    monkeypatch.setattr(highspy.Highs, "passModel", lambda self, lp: passed.append(lp) or real(self, lp))
    b = Battery(ramp_kw_per_interval=100.0)
    r = solve(Problem(np.array([300.0, 400.0]), prices(2, on_peak_demand=5.0, on_peak=[False, True]), b, 50.0,
                      previous_p_kw=20.0, head_intervals=1, head_peak_weight=0.1))
    assert r.ok
    lp = passed[-1]
    start, index = list(lp.a_matrix_.start_), list(lp.a_matrix_.index_)
    rows = [index[a:z] for a, z in pairwise(start)]
    # columns: c 0-1, d 2-3, g 4-5, x 6-7, s 8-9, export slack 10-11, SOC slacks 12-15, ramp slack 16-17,
    # terminal shortfall 18, month peak 19, on-peak 20, head peak 21, head on-peak 22
    assert rows == [
        [4, 6, 0, 2], [6, 10], [8, 0, 2], [8, 12], [8, 14], [19, 4], [21, 4], [2, 0, 16], [2, 0, 16],  # interval 0
        [5, 7, 1, 3], [7, 11], [9, 8, 1, 3], [9, 13], [9, 15], [19, 5], [20, 5],  # interval 1 ...
        [3, 1, 2, 0, 17], [3, 1, 2, 0, 17],  # ... its ramp from interval 0
        [9, 18]]  # terminal SOC
    assert lp.row_lower_[0] == lp.row_upper_[0] == 300.0 and lp.row_upper_[1] == 0.0  # balance = load; no export
    assert lp.row_lower_[7] == pytest.approx(20.0 - 100.0) and lp.row_upper_[8] == pytest.approx(20.0 + 100.0)
    assert lp.row_lower_[-1] == pytest.approx(500.0)  # 50 % of 1,000 kWh at the end
    soc_row = list(lp.a_matrix_.value_[start[11]:start[12]])  # s_1 - s_0 - dt eta_c c_1 + dt / eta_d d_1
    assert soc_row == pytest.approx([1.0, -1.0, -0.25 * 0.95, 0.25 / 0.95])


def test_energy_arbitrage_with_losses_is_done_only_when_it_pays():
    """Buy at 0.10, sell back (avoid) at 0.30 with 90 % round trip: worth it; at 0.105 it is not."""
    b = Battery(power_kw=100, energy_kwh=400, charge_efficiency=0.9487, discharge_efficiency=0.9487,
                degradation_per_kwh=0.0, soc_min_pct=0, soc_reserve_pct=0, soc_max_pct=100,
                ramp_kw_per_interval=1000)
    load = np.array([200.0, 200.0])
    r = solve(Problem(load, prices(2, demand=0.0, rate=np.array([0.10, 0.30])), b, 0.0, interval_s=3600,
                      terminal_soc_pct=0.0))
    assert r.p_kw == pytest.approx([-100.0, 90.0], abs=0.1)  # 100 kWh in, 90 kWh out
    flat = solve(Problem(load, prices(2, demand=0.0, rate=np.array([0.10, 0.105])), b, 0.0, interval_s=3600,
                         terminal_soc_pct=0.0))
    assert flat.p_kw == pytest.approx([0.0, 0.0], abs=1e-6)


def test_on_peak_demand_is_shaved_inside_on_peak_intervals():
    load = np.array([300.0, 300.0, 300.0, 300.0])
    r = solve(Problem(load, prices(4, energy=0.0, demand=0.0, on_peak_demand=20.0, on_peak=[False, False, True, True]),
                      IDEAL, 50.0, interval_s=3600, terminal_value_per_kwh=1000.0))
    # charged at 200 kW before (to 90 %), discharged at the 200 kW rating on-peak, back to 50 % at the end
    assert r.on_peak_kw[JULY] == pytest.approx(100.0, abs=1e-6)
    assert r.grid_kw[2:] == pytest.approx([100, 100], abs=1e-6)


def test_export_that_cannot_be_avoided_is_reported_as_binding_not_hidden():
    load = np.array([-50.0, 100.0])  # PV exceeds the load; the battery is full
    r = solve(Problem(load, prices(2), IDEAL, 95.0, interval_s=3600))
    assert not r.ok and r.status == "infeasible"
    assert r.binding == ["export limit binds: interval 0 needs export above 0 kW by 50.0 kW"]


def test_a_measured_soc_outside_the_window_is_clamped_and_said():
    r = solve(Problem(np.array([100.0, 100.0]), prices(2), IDEAL, 3.0, interval_s=3600))
    assert r.ok and "measured SOC 3.0 % is outside the planning window 15-95 %: planned from 15.0 %" in r.notes


def test_missing_load_values_are_refused():
    with pytest.raises(ValueError, match="1 missing intervals"):
        solve(Problem(np.array([100.0, np.nan]), prices(2), IDEAL, 50.0))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.floats(0.0, 800.0), min_size=8, max_size=24), st.floats(15.0, 95.0))
def test_plans_respect_power_soc_and_export_limits(load, soc):
    b = Battery(power_kw=250, energy_kwh=500)
    n = len(load)
    r = solve(Problem(np.array(load), prices(n, on_peak=[i % 4 == 3 for i in range(n)], on_peak_demand=15.0), b, soc))
    assert r.ok
    assert np.all(np.abs(r.p_kw) <= 250 + 1e-6)
    assert np.all(r.soc_pct >= b.floor_pct - 1e-6) and np.all(r.soc_pct <= b.soc_max_pct + 1e-6)
    assert np.all(r.grid_kw >= -1e-6)  # zero export
    check = gate.check(gate.PlanToCheck(datetime(2025, 7, 1, tzinfo=UTC), 900, r.p_kw, r.soc_pct, np.array(load),
                                        min(max(soc, b.floor_pct), b.soc_max_pct), np.full(n, 0.1),
                                        np.array([i % 4 == 3 for i in range(n)])),
                       gate.GateLimits(b), np.full(n, 0.1), np.array([i % 4 == 3 for i in range(n)]))
    assert check.passed, check.failures


def _plan_to_check(p_kw, soc_pct, load, soc0=50.0):
    n = len(p_kw)
    return gate.PlanToCheck(datetime(2025, 7, 1, tzinfo=UTC), 900, np.array(p_kw, dtype=float),
                            np.array(soc_pct, dtype=float), np.array(load, dtype=float), soc0, np.full(n, 0.1),
                            np.zeros(n, dtype=bool))


@pytest.mark.parametrize(("p_kw", "soc_pct", "load", "failure"), [
    ([600.0, 0.0], [42.1, 42.1], [900, 900], "FAIL power: largest |P| 600.0 kW within the 500 kW rating"),
    ([400.0, 400.0], [9.47, -1.05], [900, 900], "FAIL SOC: -1.1-9.5 % (recomputed) within 15-95 %"),
    ([100.0, 100.0], [50.0, 50.0], [900, 900], "FAIL SOC consistency"),
    ([300.0, 0.0], [42.1, 42.1], [200, 900], "FAIL export: at most 100.0 kW exported against a 0 kW limit"),
    ([-400.0, 400.0], [59.5, 49.0], [900, 900], "FAIL ramp: largest step 800.0 kW per interval within 500 kW"),
])
def test_the_gate_names_what_is_wrong(p_kw, soc_pct, load, failure):
    b = Battery(power_kw=500, energy_kwh=1000)
    soc0 = 20.0 if failure.startswith("FAIL SOC:") else 50.0
    result = gate.check(_plan_to_check(p_kw, soc_pct, load, soc0), gate.GateLimits(b), np.full(2, 0.1),
                        np.zeros(2, bool))
    assert not result.passed
    assert any(f.startswith(failure) for f in result.failures), result.findings


def test_the_gate_catches_a_plan_made_against_other_prices():
    b = Battery(power_kw=500, energy_kwh=1000)
    result = gate.check(_plan_to_check([0.0, 0.0], [50.0, 50.0], [100, 100]), gate.GateLimits(b),
                        np.array([0.1, 0.3]), np.zeros(2, bool))
    assert result.failures == ["FAIL tariff: the plan was optimised against other prices or periods than the tariff "
                               "gives now"]


def test_the_soc_rows_shadow_prices_are_what_a_stored_kwh_saves_later():
    """Two cheap hours (0.10 $/kWh) then two dear ones (0.50), 50 kW of load, a 100 kW / 100 kWh battery at 95 %
    each way that must end where it began (50 %). It fills to its 95 % ceiling in the cheap hours and spends down
    to 50 % in the dear ones, the grid still importing at the end. A kWh more stored in a cheap hour is one the
    charger need not buy: 0.10 / 0.95 = 0.1053 $. In a dear hour it is discharged: 0.95 kWh less bought at 0.50,
    0.475 $."""
    rate = np.array([0.1] * 8 + [0.5] * 8)
    battery = Battery(power_kw=100, energy_kwh=100, ramp_kw_per_interval=1000, degradation_per_kwh=0.0)
    r = solve(Problem(np.full(16, 50.0), prices(16, demand=0.0, rate=rate), battery, 50.0,
                      terminal_soc_pct=50.0, terminal_value_per_kwh=0.5, hold_value_per_kwh=0.0))
    assert r.ok and r.soc_pct[7] == pytest.approx(95.0) and r.soc_pct[-1] == pytest.approx(50.0)
    assert r.grid_kw[-1] == pytest.approx(50.0)  # the battery cannot cover the whole dear period
    assert r.soc_value_per_kwh[:8] == pytest.approx(0.1 / 0.95, abs=1e-6)
    assert r.soc_value_per_kwh[8:] == pytest.approx(0.5 * 0.95, abs=1e-6)
