"""``energizeos plan --date D``: a day planned from the stored history, with the month's demand floor."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml
from sqlalchemy import insert
from typer.testing import CliRunner

from energizeos.cli.main import app
from energizeos.planning.day_ahead import PlannerSettings, plan_day
from energizeos.planning.demand_floor import holdable_level
from energizeos.planning.history import BESS_POINT, POI_POINT
from energizeos.planning.lp import Battery
from energizeos.records.db import init_db, make_engine
from energizeos.records.models import Telemetry

LA = ZoneInfo("America/Los_Angeles")
SITE_CONFIG = Path(__file__).resolve().parents[1] / "config" / "sim_site.yaml"
DAY = date(2025, 7, 16)  # a Wednesday
HEAVY = date(2025, 7, 11)  # the Friday before: 1.4 x the usual day


def usual_day() -> np.ndarray:
    """Office-like: 300 kW at night, up to 900 kW mid-afternoon."""
    h = np.arange(96) / 4.0 + 0.125
    return 300.0 + 600.0 * np.clip(np.sin((h - 6.0) / 13.0 * np.pi), 0.0, None)


@pytest.fixture
def records(tmp_path):
    url = f"sqlite:///{tmp_path / 'records.db'}"
    engine = make_engine(url)
    init_db(engine)
    rows = []
    for back in range(1, 22):  # three weeks of weekdays and weekends, one reading per interval
        day = DAY - timedelta(days=back)
        start = datetime(day.year, day.month, day.day, tzinfo=LA).astimezone(UTC)
        load = usual_day() * (1.4 if day == HEAVY else 1.0) if day.weekday() < 5 else np.full(96, 350.0)
        for i, kw in enumerate(load):
            t = start + timedelta(seconds=900 * i + 450)
            rows += [{"point": POI_POINT, "time": t, "value": float(kw), "quality": 0},
                     {"point": BESS_POINT, "time": t, "value": 0.0, "quality": 0}]
    with engine.begin() as conn:
        conn.execute(insert(Telemetry.__table__), rows)
    engine.dispose()
    return url


def plan(tmp_path, url: str, floor_days: int, margin_pct: float = 0.0, window_days: int = 1,
         week_days: int = 0) -> dict:
    config = yaml.safe_load(SITE_CONFIG.read_text())
    config["ems"]["planning"]["demand_floor_days"] = floor_days
    config["ems"]["planning"]["threshold_margin_pct"] = margin_pct
    config["ems"]["planning"]["demand_floor_window_days"] = window_days
    config["ems"]["planning"]["week_plan_days"] = week_days
    path = tmp_path / f"site_{floor_days}_{margin_pct}_{window_days}_{week_days}.yaml"
    path.write_text(yaml.safe_dump(config))
    run = CliRunner().invoke(app, ["plan", "--date", DAY.isoformat(), "--soc", "90", "--site-config", str(path),
                                   "--db", url, "--json"])
    assert run.exit_code == 0, run.output
    return json.loads(run.output)


def test_the_plan_is_floored_at_the_peak_the_day_plan_sets_on_the_heaviest_recent_day(tmp_path, records):
    from energizeos.tariffs import load_tariff

    floored, plain = plan(tmp_path, records, 14), plan(tmp_path, records, 0)
    # the reference battery (sim_site.yaml): 500 kW, 1000 kWh, SOC window 15-95 %; the Friday planned from
    # the SOC every plan ends at (50 %) on its own measured load
    battery = Battery(power_kw=500.0, energy_kwh=1000.0, soc_min_pct=10.0, soc_reserve_pct=5.0, soc_max_pct=95.0)
    heavy = plan_day(load_tariff("sdge-al-tou"), PlannerSettings(battery=battery), HEAVY, 1.4 * usual_day(), 50.0)
    floor = heavy.result.peak_kw["2025-07"]
    usable = 1000.0 * (95.0 - 15.0) / 100.0 * 0.95  # the SOC window, at the AC side
    assert holdable_level(1.4 * usual_day(), usable, 500.0, 900) < floor < max(1.4 * usual_day())
    assert any(n.startswith(f"demand floor {floor:.1f} kW") and str(HEAVY) in n for n in floored["notes"])
    assert not any("demand floor" in n for n in plain["notes"])
    # like the planner node, the LP also saw the next day's forecast from the same history
    for body in (floored, plain):
        assert "the LP looked 96 intervals into the next day's forecast; the plan keeps its own 96" in body["notes"]
        assert len(body["p_kw"]) == 96
    # without the floor the plan shaves the midday peak of an ordinary day; with it, the Friday's level
    # will be billed anyway, so the day's energy goes to the on-peak hours (and charging may use the
    # room under the floor, never above it)
    midday = int(np.argmax(usual_day()))
    assert plain["p_kw"][midday] > 20.0 and max(plain["grid_kw"]) < max(usual_day()) - 20.0
    assert floored["p_kw"][midday] <= 0.0 and max(floored["grid_kw"]) <= floor + 1.0
    on_peak = slice(64, 84)
    assert sum(floored["p_kw"][on_peak]) > sum(plain["p_kw"][on_peak])


def test_the_site_config_sets_the_floor_s_window_of_days(tmp_path, records):
    days, weeks = plan(tmp_path, records, 14), plan(tmp_path, records, 14, window_days=7)
    day_floor, = (n for n in days["notes"] if n.startswith("demand floor"))
    week_floor, = (n for n in weeks["notes"] if n.startswith("demand floor"))
    kw = lambda note: float(note.split()[2])  # noqa: E731 - "demand floor 1234.5 kW: ..."
    assert "the 7-day plan sets on the load of" in week_floor and "the day plan sets on" in day_floor
    # the heavy Friday is shaved with one full battery either way: what limits it is the battery, not the room to
    # recharge, so the 350 kW weekend before it stores nothing the Friday could use (the windows can only help)
    assert kw(week_floor) == pytest.approx(kw(day_floor), abs=0.2)


def test_the_site_config_s_default_window_is_chosen_from_the_battery_and_the_note_says_why(tmp_path, records):
    chosen, days = plan(tmp_path, records, 14, window_days=0), plan(tmp_path, records, 14)
    note, = (n for n in chosen["notes"] if n.startswith("demand floor"))
    # the reference battery gives 760 kWh at the AC side; the office history averages well over 5,067 kWh a day
    assert "the day plan sets on" in note and "(day windows: the battery's usable 760 kWh is 0." in note
    assert chosen["p_kw"] == days["p_kw"]  # the same plan as day windows set by hand


def test_the_plan_holds_the_thresholds_of_a_heavier_day_when_the_site_config_sets_a_margin(tmp_path, records):
    plain, wary = plan(tmp_path, records, 0), plan(tmp_path, records, 0, margin_pct=10.0)
    assert wary["p_kw"] == plain["p_kw"]  # the same power schedule...
    assert all(w >= p - 1e-3 for w, p in zip(wary["peak_threshold_kw"], plain["peak_threshold_kw"], strict=True))
    assert max(wary["peak_threshold_kw"]) > max(plain["peak_threshold_kw"]) + 10.0  # ...defending a higher level


def test_a_floor_window_longer_than_the_history_is_refused_by_the_site_config(tmp_path, records):
    config = yaml.safe_load(SITE_CONFIG.read_text())
    config["ems"]["planning"]["demand_floor_days"] = 60
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    run = CliRunner().invoke(app, ["plan", "--date", DAY.isoformat(), "--site-config", str(path), "--db", records])
    assert run.exit_code == 2 and "demand_floor_days" in run.output


def test_the_cli_plans_with_the_settings_the_planner_node_gets_from_the_same_site_config(tmp_path):
    from energizeos.cli.plan import planner_settings
    from energizeos.nodes.planner import Planner
    from energizeos.runtime import SimExecutor
    from energizeos.site_config import device_node_parameters, load_site_config

    config = yaml.safe_load(SITE_CONFIG.read_text())
    config["ems"]["planning"].update({  # what the planner takes from the config, each away from its default
        "bess_kwh": 800.0, "terminal_soc_pct": 60.0, "replan_deviation_pct": 4.0, "replan_soc_deviation_pct": 6.0,
        "bias_decay_intervals": 8.0, "threshold_margin_pct": 2.0, "on_peak_margin_pct": 3.0,
        "lookahead_intervals": 48})
    config["ems"]["safety"].update({"pcs_rated_kw": 400.0, "soc_min_pct": 12.0, "soc_max_pct": 90.0,
                                    "export_limit_kw": 25.0})
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(config))
    cfg = load_site_config(path)
    params = {**device_node_parameters(cfg)["planner"], "db_url": f"sqlite:///{tmp_path / 'r.db'}"}
    node = Planner(executor=SimExecutor(datetime(2025, 7, 1, tzinfo=UTC)), parameter_overrides=params)
    assert planner_settings(cfg) == node.settings
    assert node.settings.terminal_soc_pct == 60.0 and node.settings.battery.energy_kwh == 800.0


def test_the_site_config_s_week_plan_sets_where_the_day_ends(tmp_path, records):
    from energizeos.planning.day_ahead import local_day, plan_week
    from energizeos.planning.forecast import forecast_day
    from energizeos.planning.history import site_load_history
    from energizeos.tariffs import load_tariff

    plain, guided = plan(tmp_path, records, 0), plan(tmp_path, records, 0, week_days=3)
    assert not any("week plan" in note for note in plain["notes"])
    # the same week plan, made here from the same records: the day and the three after it, from --soc 90
    start, _n = local_day(DAY, "America/Los_Angeles")
    history = site_load_history(make_engine(records), start - timedelta(days=42), start)
    week = np.concatenate([forecast_day(history, DAY + timedelta(days=k)).values for k in range(4)])
    battery = Battery(power_kw=500.0, energy_kwh=1000.0, soc_min_pct=10.0, soc_reserve_pct=5.0, soc_max_pct=95.0)
    settings = PlannerSettings(battery=battery, lookahead_intervals=96)
    guide = plan_week(load_tariff("sdge-al-tou"), settings, start, week, 90.0, {}, {})
    soc, value = guide.at(start + timedelta(days=2))  # where the day's LP ends: the end of its look-ahead
    assert f"ends at week plan 0's SOC there, {soc:.1f} %, a kWh short costing ${value:.3f}" in guided["notes"]
