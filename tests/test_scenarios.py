"""Safety scenarios in the deterministic executor with the real plant model and the real nodes
(issue goals: export cleared within 2 s; refusal within one control cycle; enter service respected;
fail-safe on meter loss; one command authority)."""

from __future__ import annotations

import json
import subprocess

import pytest

from energizeos import scenarios
from energizeos_msgs.msg import Header, PcsCommand
from tests.conftest import ENERGIZEOS, REPO


def test_load_drop_under_zero_export_clears_export_within_2_s():
    r = scenarios.load_drop()
    assert r["pcs_before_kw"] == pytest.approx(500.0, abs=2.0)  # really discharging 500 kW before the step
    assert 0.0 < r["max_export_kw"] <= 355.0  # 500 kW discharge over a 150 kW load, for a moment
    assert r["export_cleared_after_s"] <= 2.0
    assert r["exported_kwh"] < 0.1
    assert r["poi_after_kw"] >= 0.0 and r["goal_met"]


def test_bms_overtemp_refuses_dispatch_within_one_control_cycle_with_the_reason():
    r = scenarios.bms_overtemp()
    assert r["first_derating_after_s"] is not None  # derated (BMS current limit) before the alarm
    assert r["refused_after_alarm_s"] is not None and r["refused_after_alarm_s"] <= r["control_cycle_s"]
    assert "BMS permissive is off" in r["refusal_reason"]
    assert r["pcs_kw_2s_after_alarm"] == pytest.approx(0.0, abs=1.0)


def test_relay_trip_pcs_to_zero_86_blocks_close_and_enter_service_is_respected():
    r = scenarios.relay_trip()
    assert r["pcs_before_trip_kw"] > 300.0 and r["pcs_after_trip_kw"] == pytest.approx(0.0, abs=0.5)
    assert r["command_zero_after_s"] <= 1.0
    assert not r["close_while_86_accepted"]
    assert {"RELAY_NO_TRIP", "RELAY_NO_86_LOCKOUT"} <= set(r["close_refusal_reasons"])
    assert r["reset_accepted"] and r["close_after_reset_accepted"] and r["breaker_closed"]
    assert r["enter_service_delay_s"] <= r["first_dispatch_after_close_s"] <= r["enter_service_delay_s"] + 1.0
    assert r["ramp_violations"] == 0


def test_meter_loss_during_discharge_fails_safe_within_the_watchdog():
    r = scenarios.meter_loss()
    assert r["capped_after_s"] <= r["meter_watchdog_s"]
    assert r["granted_when_capped_kw"] <= r["failsafe_cap_kw"]
    assert r["zero_after_s"] <= r["meter_watchdog_s"] + 5.0 + 0.6
    assert r["pcs_kw_at_end"] == pytest.approx(0.0, abs=0.5) and r["export_kwh"] == 0.0


def test_a_rogue_pcs_command_is_refused_in_the_full_graph():
    site = scenarios.build_site({"mode": "standby"}, load_kw=500.0)
    site.run(5.0)
    rogue = site.probe.create_publisher(PcsCommand, "/bess/pcs/command", 10)
    for _ in range(5):
        rogue.publish(PcsCommand(header=Header(stamp=site.probe.get_clock().now().to_msg()), source="dispatcher",
                                 enable=True, p_kw=300.0, reversion_timeout_s=5.0))
        site.run(0.2)
    site.run(3.0)
    pcs = next(n for n in site.ex.nodes if n.get_name() == "pcs_node")
    assert pcs.refused_commands == 5
    assert site.plant.site.plant.pcs_p_kw == pytest.approx(0.0, abs=0.1)


def test_simulate_scenario_command_prints_one_json_object():
    result = subprocess.run([ENERGIZEOS, "simulate", "scenario", "meter-loss", "--json"], capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["scenario"] == "meter-loss" and data["goal_met"] is True and data["zero_after_s"] > 0
    bad = subprocess.run([ENERGIZEOS, "simulate", "scenario", "nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "unknown scenario 'nope'" in " ".join(bad.stderr.split())


def test_a_pcs_fault_on_the_plant_makes_the_arbiter_refuse_dispatch():
    """Over the device nodes: the PCS reports FAULT (SunSpec 701), the arbiter drops pcs.no_fault."""
    from energizeos.scenarios import _ramp_in, build_site

    site = build_site({"mode": "peak_shaving", "peak_threshold_kw": 300.0}, load_kw=700.0)
    _ramp_in(site, 400.0)
    site.plant.site.inject("pcs_fault")
    site.run(3.0)
    last = site.decisions[-1][1]
    assert last.granted_kw == 0.0 and "PCS_FAULT" in last.reason_codes
    assert "PCS reports a fault" in " ".join(last.reason_texts)
