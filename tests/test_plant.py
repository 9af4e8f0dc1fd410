"""Physics of the simulated plant, checked against hand computations and the IEEE 1547 table."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energizeos.sim.plant import DEFAULT_PROFILE, TRIP_SETTINGS, Plant, PlantConfig, load_profile


def plant(**overrides) -> Plant:
    return Plant(PlantConfig(**overrides))


def run(p: Plant, seconds: float, dt: float = 0.02) -> None:
    end = p.t_s + seconds
    while p.t_s < end - 1e-9:
        p.step(min(end, p.t_s + dt))


def test_profile_scales_to_the_annual_energy():
    values = load_profile(DEFAULT_PROFILE)
    assert len(values) == 8760 and math.isclose(sum(values), 1.0, rel_tol=1e-3)
    p = plant(annual_kwh=8_760_000.0, load_noise_pct=0.0)  # 1 MW average
    hourly = [p._profile_kw(h * 3600.0) for h in range(8760)]
    assert math.isclose(sum(hourly), 8_760_000.0, rel_tol=2e-3)


def test_a_broken_profile_is_refused_with_its_path(tmp_path):
    bad = tmp_path / "short.dat"
    bad.write_text("0.1\n0.2\n")
    with pytest.raises(ValueError, match=r"short.dat has 2 values, expected 8760"):
        load_profile(bad)
    with pytest.raises(FileNotFoundError, match=r"missing\.dat"):
        load_profile(tmp_path / "missing.dat")


def test_same_seed_same_run_other_seed_other_noise():
    a, b, c = plant(seed=3), plant(seed=3), plant(seed=4)
    for p in (a, b, c):
        run(p, 120.0, dt=1.0)
    assert a.load_kw == b.load_kw
    assert a.load_kw != c.load_kw


def test_pcs_first_order_lag_and_ramp():
    p = plant(pcs_lag_s=0.2, pcs_ramp_kw_per_s=10_000.0)
    p.command_pcs(400.0, True)
    run(p, 0.2, dt=0.001)
    assert p.pcs_p_kw == pytest.approx(400.0 * (1 - math.exp(-1.0)), rel=0.01)  # one time constant: 63 %
    slow = plant(pcs_lag_s=0.01, pcs_ramp_kw_per_s=100.0)
    slow.command_pcs(400.0, True)
    run(slow, 1.0, dt=0.01)
    assert slow.pcs_p_kw == pytest.approx(100.0, abs=1.0)  # ramp-limited: 100 kW/s for 1 s


def test_pcs_reverts_to_zero_when_not_refreshed():
    p = plant(pcs_reversion_s=5.0)
    p.command_pcs(300.0, True)
    run(p, 4.0, dt=0.1)
    assert p.pcs_p_kw == pytest.approx(300.0, abs=1.0) and not p.pcs_reverted
    run(p, 2.0, dt=0.1)
    assert p.pcs_reverted
    run(p, 2.0, dt=0.1)
    assert abs(p.pcs_p_kw) < 1.0


def test_soc_integrates_with_efficiency():
    p = plant(bess_kwh=1000.0, eff_discharge=0.95, eff_charge=0.95, initial_soc_pct=50.0,
              pcs_lag_s=0.001, pcs_ramp_kw_per_s=1e6, pcs_reversion_s=1e6)
    p.command_pcs(100.0, True)
    run(p, 3600.0, dt=1.0)  # 100 kWh delivered at the AC side costs 100 / 0.95 kWh from the cells
    assert p.soc_pct == pytest.approx(50.0 - 100.0 * (100.0 / 0.95) / 1000.0, abs=0.05)
    p.command_pcs(-100.0, True)
    run(p, 3600.0, dt=1.0)  # and 100 kWh taken from the grid stores 95 kWh
    assert p.soc_pct == pytest.approx(50.0 - 10.526 + 9.5, abs=0.05)


def test_current_limits_derate_with_temperature_and_soc():
    p = plant()
    charge, discharge = p.current_limits()
    assert charge > 0 and discharge > 0
    p.racks[2].temp_c = 50.0  # halfway between 45 and 55 C
    assert p.current_limits()[1] == pytest.approx(discharge * 0.5, rel=1e-6)
    p.racks[2].temp_c = 25.0
    p.soc_pct = 6.5  # halfway between 3 and 10 %
    assert p.current_limits()[1] == pytest.approx(discharge * 0.5, rel=1e-6)
    p.inject("contactor_fault")
    run(p, 0.1)
    assert p.current_limits() == (0.0, 0.0) and not p.bms_permissive


@pytest.mark.parametrize(("element", "kind", "value"), [
    ("UV2", "voltage", 0.40), ("UV1", "voltage", 0.60), ("OV2", "voltage", 1.25), ("OV1", "voltage", 1.15),
    ("UF2", "frequency", 56.0), ("OF2", "frequency", 62.5),
])
def test_relay_trips_at_the_ieee_1547_category_ii_clearing_time(element, kind, value):
    _pickup, clearing = TRIP_SETTINGS["II"][element]
    p = plant()
    event = "voltage_sag" if kind == "voltage" else "frequency_excursion"
    key = "pu" if kind == "voltage" else "hz"
    p.inject(event, **{key: value, "duration_s": clearing + 5.0})
    run(p, clearing - 0.05, dt=0.01)
    assert p.breaker_closed, f"{element} tripped before its clearing time"
    run(p, 0.1, dt=0.01)
    assert not p.breaker_closed and p.trip and p.lockout_86 and p.last_trip_cause == element


def test_a_sag_shorter_than_the_clearing_time_rides_through():
    p = plant()
    p.inject("voltage_sag", pu=0.6, duration_s=5.0)  # UV1 clears in 10 s
    run(p, 8.0, dt=0.05)
    assert p.breaker_closed and not p.trip


def test_close_is_supervised_by_the_relay_logic():
    p = plant()
    p.inject("relay_trip")
    assert not p.relay_close(permissive_input=True)  # tripped and locked out
    assert p.relay_reset()
    assert not p.relay_close(permissive_input=False)  # no close permissive
    assert p.relay_close(permissive_input=True)
    p.inject("relay_no_86")
    p.inject("relay_trip")
    assert p.trip and not p.lockout_86


def test_meter_secondary_matches_primary_and_ct_faults_show_as_in_the_field():
    p = plant(load_noise_pct=0.0)
    run(p, 1.0)
    truth = p.load_kw - p.pcs_p_kw
    m = p.meter_secondary()
    assert m["p_kw_primary_as_configured"] == pytest.approx(truth, rel=1e-6)
    assert m["phases"]["A"]["v"] == pytest.approx(277.0 / 4.0, rel=0.01)  # 69.3 V secondary
    p.inject("ct_polarity")
    assert p.meter_secondary()["p_kw_primary_as_configured"] == pytest.approx(-truth, rel=1e-6)
    p.clear("ct_polarity")
    p.inject("ct_ratio", actual_ratio=600.0)
    assert p.meter_secondary()["p_kw_primary_as_configured"] == pytest.approx(truth * 400 / 600, rel=1e-6)
    p.clear("ct_ratio")
    p.inject("pt_fuse", phase="B")
    assert p.meter_secondary()["phases"]["B"]["v"] == 0.0


def test_pv_follows_the_sun_in_local_time():
    p = plant(pv_kw_peak=200.0, start=datetime(2025, 7, 15, 20, 0, tzinfo=UTC))  # 12:00 Pacific standard
    run(p, 1.0)
    assert p.pv_kw == pytest.approx(200.0, rel=0.01)
    night = plant(pv_kw_peak=200.0, start=datetime(2025, 7, 15, 8, 0, tzinfo=UTC))  # 00:00 local
    run(night, 1.0)
    assert night.pv_kw == 0.0


def test_unknown_fault_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown plant fault 'melt'.*rack_overtemp"):
        plant().inject("melt")


@settings(max_examples=40, deadline=None, derandomize=True)
@given(setpoint=st.floats(-600.0, 600.0), seconds=st.floats(0.5, 30.0))
def test_pcs_never_exceeds_rating_or_bms_limits(setpoint, seconds):
    p = plant()
    p.command_pcs(setpoint, True)
    run(p, seconds, dt=0.5)
    charge_a, discharge_a = p.current_limits()
    v = p.dc_voltage
    assert -p.config.pcs_kw - 1e-6 <= p.pcs_p_kw <= p.config.pcs_kw + 1e-6
    assert p.pcs_p_kw <= discharge_a * v / 1000.0 + 1e-6
    assert p.pcs_p_kw >= -charge_a * v / 1000.0 - 1e-6
    assert 0.0 <= p.soc_pct <= 100.0


def test_bms_not_ready_drops_the_permissive_with_contactors_closed():
    p = plant()
    p.inject("bms_not_ready")
    assert p.contactors_closed and not p.bms_fault and not p.bms_permissive
    assert p.current_limits() == (0.0, 0.0)  # a BMS in standby allows no current
    p.clear("bms_not_ready")
    assert p.bms_permissive and p.current_limits()[1] > 0


def test_a_forced_soc_reading_changes_what_the_bms_reports_not_the_battery():
    p = plant(initial_soc_pct=50.0)
    p.inject("soc_reading", pct=9.0)
    assert p.reported_soc_pct == 9.0 and p.soc_pct == 50.0
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        p.inject("soc_reading", pct=120.0)
    p.clear("soc_reading")
    assert p.reported_soc_pct == 50.0
