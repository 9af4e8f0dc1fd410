"""The site configuration file and the launch file built from it."""

from __future__ import annotations

import pytest

from energizeos.launch.description import LaunchError
from energizeos.launch.loader import load_launch_file
from energizeos.site_config import SiteConfigError, device_node_parameters, load_site_config
from tests.conftest import REPO

SIM_SITE = REPO / "launch" / "sim_site.launch.py"


def test_shipped_config_gives_every_device_node_its_endpoint():
    params = device_node_parameters(load_site_config(REPO / "config" / "sim_site.yaml"))
    assert list(params) == ["sim_plant", "meter_node", "relay_node", "bms_node", "pcs_node", "safety_arbiter",
                            "dispatcher", "historian", "alarm_manager", "planner", "reporter", "assistant"]
    assert params["safety_arbiter"]["export_limit_kw"] == params["dispatcher"]["export_limit_kw"] == 0.0
    assert (params["dispatcher"]["export_margin_min_kw"], params["dispatcher"]["export_margin_kw"]) == (5.0, 10.0)
    assert params["meter_node"]["port"] == params["sim_plant"]["meter_port"] == 15021
    assert params["pcs_node"]["port"] == params["sim_plant"]["pcs_port"] == 15024
    assert params["meter_node"]["nameplate_ctr"] == 400.0
    assert params["reporter"]["formats"] == "pdf,html,csv" and params["reporter"]["max_hold_s"] == 5.0
    assert (params["planner"]["threshold_margin_pct"], params["planner"]["demand_floor_days"]) == (0.0, 14)
    assert params["planner"]["on_peak_margin_pct"] == 2.0
    assert params["planner"]["demand_floor_window_days"] == 0  # chosen from the battery next to the load
    assert params["planner"]["peak_noise_pct"] == 1.0
    assert params["planner"]["week_plan_days"] == 7


def test_a_report_format_the_reporter_cannot_write_is_refused(tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text("reports:\n  formats: [pdf, docx]\n")
    with pytest.raises(SiteConfigError, match=r"reports\.formats: .*unknown report format"):
        load_site_config(config)


def test_launch_builds_the_site_from_the_config(tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text("devices:\n  meter:\n    port: 25021\n    poll_hz: 10\nsimulation: null\n")
    specs = {s.name: s for s in load_launch_file(SIM_SITE, {"site_config": str(config)})}
    assert "sim_plant" not in specs  # a real site: no simulated plant
    assert specs["meter_node"].params["port"] == 25021 and specs["meter_node"].params["poll_hz"] == 10.0
    assert specs["pcs_node"].shutdown_order < specs["meter_node"].shutdown_order  # PCS path stops first
    assert "/sim_plant" not in specs["site_monitor"].params["expected_nodes"]


def test_the_planners_threshold_margin_comes_from_the_config(tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text("ems:\n  planning:\n    threshold_margin_pct: 3\n")
    specs = {s.name: s for s in load_launch_file(SIM_SITE, {"site_config": str(config)})}
    assert specs["planner"].params["threshold_margin_pct"] == 3.0  # thresholds for a day 3 % heavier
    config.write_text("ems:\n  planning:\n    on_peak_margin_pct: 3\n")
    specs = {s.name: s for s in load_launch_file(SIM_SITE, {"site_config": str(config)})}
    planner = specs["planner"].params
    assert (planner["on_peak_margin_pct"], planner["threshold_margin_pct"]) == (3.0, 0.0)  # the on-peak ones alone


@pytest.mark.parametrize(("text", "expected"), [
    ("devices:\n  meter:\n    port: 99999\n", "devices.meter.port: Input should be less than or equal to 65535"),
    ("devices:\n  meter:\n    port: 15021\n    nameplat_ctr: 3\n", "devices.meter.nameplat_ctr: Extra inputs"),
    ("devices: [1, 2\n", "not valid YAML"),
    ("simulation:\n  annual_kwh: -5\n", "simulation.annual_kwh: Input should be greater than 0"),
    ("ems:\n  planning:\n    threshold_margin_pct: 80\n",
     "ems.planning.threshold_margin_pct: Input should be less than or equal to 50"),
    ("ems:\n  planning:\n    on_peak_margin_pct: -1\n",
     "ems.planning.on_peak_margin_pct: Input should be greater than or equal to 0"),
    ("ems:\n  planning:\n    demand_floor_window_days: 9\n",
     "ems.planning.demand_floor_window_days: Input should be less than or equal to 7"),
    ("ems:\n  planning:\n    peak_noise_pct: 6\n",
     "ems.planning.peak_noise_pct: Input should be less than or equal to 5"),
    ("ems:\n  planning:\n    week_plan_days: -1\n",
     "ems.planning.week_plan_days: Input should be greater than or equal to 0"),
    ("ems:\n  dispatch:\n    export_margin_kw: 4\n",
     "ems.dispatch: Value error, export_margin_min_kw (5) is above export_margin_kw (4)"),
])
def test_a_broken_config_fails_the_launch_naming_file_and_field(tmp_path, text, expected):
    config = tmp_path / "site.yaml"
    config.write_text(text)
    with pytest.raises(LaunchError) as info:
        load_launch_file(SIM_SITE, {"site_config": str(config)})
    assert str(config) in str(info.value) and expected in str(info.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(SiteConfigError, match=r"nope\.yaml does not exist"):
        load_site_config(tmp_path / "nope.yaml")
