"""The savings benchmark: the whole node graph in the deterministic executor against the plant, fed
by a real load profile, for days to a year; bills with and without the battery from the plant's
own truth; and the perfect-foresight limit (one LP over the whole period with the actual load).

Strategies: ``none`` (the dispatcher in standby), ``threshold`` (the OpenEMS-style fixed threshold,
set as an installer would: the period's peak minus half the PCS rating), ``planned`` (the planner:
forecast, LP, safety gate, automatic approval, rolling re-plans; the dispatcher follows the plan and
shaves what the forecast missed).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from energizeos.runtime.logging import node_logs_from

INTERVAL_S = 900
STRATEGIES = ("none", "threshold", "planned")
EXPORT_MARGIN_MIN_KW = 1.0  # the least import kept against export: twice the 0.5 kW counted as export


@dataclass(frozen=True)
class SavingsConfig:
    load: Path
    annual_kwh: float
    start: date = date(2025, 1, 1)
    days: int = 365
    step_s: float = 60.0
    strategy: str = "planned"
    bess_kw: float = 500.0
    bess_kwh: float = 1000.0
    tariff: str = "sdge-al-tou"
    tz: str = "America/Los_Angeles"
    history_days: int = 28  # utility interval data the site had before the EMS started (from the same profile)
    start_hour: float = 0.0  # site-local hour of ``start`` the run begins at (recorded runs of part of a day)
    initial_soc_pct: float = 50.0


def _start_utc(cfg: SavingsConfig) -> datetime:
    midnight = datetime(cfg.start.year, cfg.start.month, cfg.start.day, tzinfo=ZoneInfo(cfg.tz)).astimezone(UTC)
    return midnight + timedelta(hours=cfg.start_hour)


def build_graph(cfg: SavingsConfig, db_url: str, threshold_kw: float, record_dir: Path | None = None,
           approval: str = "auto", planner_overrides: dict | None = None):
    """The graph for ``cfg``; with ``record_dir`` the historian and alarm manager record the run into
    ``db_url`` as a site would (reports and their tests read those records). ``planner_overrides`` set
    planner parameters beyond the benchmark's."""
    from energizeos.nodes.bms_node import BmsNode
    from energizeos.nodes.device_link import InMemoryLink
    from energizeos.nodes.dispatcher import Dispatcher
    from energizeos.nodes.meter_node import MeterNode
    from energizeos.nodes.pcs_node import PcsNode
    from energizeos.nodes.relay_node import RelayNode
    from energizeos.nodes.safety_arbiter import SafetyArbiter
    from energizeos.nodes.sim_plant import SimPlant
    from energizeos.runtime import SimExecutor

    step, hz = cfg.step_s, 1.0 / cfg.step_s
    ex = SimExecutor(_start_utc(cfg))
    plant = SimPlant(executor=ex, parameter_overrides={
        "serve_modbus": False, "step_hz": hz, "max_substep_s": step, "load_profile": str(cfg.load),
        "annual_kwh": cfg.annual_kwh, "bess_kwh": cfg.bess_kwh, "pcs_kw": cfg.bess_kw, "align_weekdays": True,
        "initial_soc_pct": cfg.initial_soc_pct})
    images = plant.site.images
    nodes = [cls(executor=ex, link=InMemoryLink(images[name]),
                 parameter_overrides={"poll_hz": hz, **({"heartbeat_s": step} if cls is PcsNode else {})})
             for cls, name in ((MeterNode, "meter"), (RelayNode, "relay"), (BmsNode, "bms"), (PcsNode, "pcs"))]
    watchdog = 3 * step  # an input is stale after three missed steps (every input arrives once a step)
    nodes.append(SafetyArbiter(executor=ex, parameter_overrides={
        "watchdog_hz": hz, "meter_watchdog_s": watchdog, "bms_watchdog_s": watchdog, "relay_watchdog_s": watchdog,
        "pcs_watchdog_s": watchdog, "meter_failsafe_s": watchdog, "request_timeout_s": watchdog,
        "pcs_reversion_s": watchdog, "pcs_rated_kw": cfg.bess_kw,
        # no ramp limit (0): its budget is per elapsed second between decisions, and at a 60 s step the
        # decision on the meter reading and the one on the dispatcher's request share one instant, so any
        # finite rate held every increase back a whole step (measured: the PCS two steps behind the request).
        # A 1 s ramp is invisible at this resolution.
        "ramp_kw_per_s": 0.0,
        # the arbiter predicts the POI from one reading: its margin is the meter's noise; the dispatcher keeps
        # the margin the site's load swings call for (nodes/export_margin.py)
        "export_margin_kw": EXPORT_MARGIN_MIN_KW}))
    mode = {"none": "standby", "threshold": "threshold", "planned": "plan"}[cfg.strategy]
    nodes.append(Dispatcher(executor=ex, parameter_overrides={
        "mode": mode, "control_rate_hz": hz, "baseline_peak_shaving_kw": threshold_kw,
        "baseline_recharge_kw": max(0.0, threshold_kw - 0.5 * cfg.bess_kw), "peak_alarm_delay_s": 15 * 60.0,
        "export_margin_min_kw": EXPORT_MARGIN_MIN_KW}))
    planner = None
    if cfg.strategy == "planned":
        from energizeos.nodes.planner import Planner

        planner = Planner(executor=ex, parameter_overrides={
            "tariff": cfg.tariff, "timezone": cfg.tz, "db_url": db_url, "check_period_s": max(step, 1.0),
            "bess_kw": cfg.bess_kw, "bess_kwh": cfg.bess_kwh, "approval": approval,
            "charge_efficiency": plant.site.plant.config.eff_charge,
            "discharge_efficiency": plant.site.plant.config.eff_discharge,
            "holidays": ",".join(d.isoformat() for d in _profile_holidays(cfg)) or "none",
            **(planner_overrides or {})})
        nodes.append(planner)
    if record_dir is not None:
        from energizeos.nodes.alarm_manager import AlarmManager
        from energizeos.nodes.historian import Historian

        nodes.append(Historian(executor=ex, parameter_overrides={  # a batch per quarter hour: fewer commits
            "db_url": db_url, "spool_dir": str(record_dir / "spool"), "flush_period_s": 900.0,
            "retry_period_s": min(step, 300.0)}))
        nodes.append(AlarmManager(executor=ex, parameter_overrides={
            "db_url": db_url, "tick_period_s": min(step, 60.0),
            "catalogue": str(_coarse_step_catalogue(record_dir / "alarms.yaml", watchdog))}))
    for node in [plant, *nodes]:
        node.check_unused_overrides()  # a misspelt parameter must fail here, not be ignored
    return ex, plant, planner


def _coarse_step_catalogue(path: Path, min_age_s: float) -> Path:
    """The alarm catalogue with every staleness limit at least ``min_age_s``: at a simulation step of
    many seconds each topic arrives once a step, which is not a silent node."""
    import yaml

    from energizeos.knowledge.catalogue import DEFAULT_PATH

    data = yaml.safe_load(Path(DEFAULT_PATH).read_text())
    for alarm in data["alarms"]:
        condition = alarm.get("condition") or {}
        if condition.get("kind") == "stale":
            condition["max_age_s"] = max(float(condition["max_age_s"]), min_age_s)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _profile_holidays(cfg: SavingsConfig) -> list[date]:
    """The simulated year's days that fall on the profile's own holidays: the site is closed on those,
    whatever the calendar says, and its operator would have told the planner so."""
    from energizeos.loads import PROFILE_HOLIDAYS, profile_date

    first = cfg.start - timedelta(days=cfg.history_days + 7)
    return [d for d in (first + timedelta(days=i) for i in range(cfg.days + cfg.history_days + 14))
            if profile_date(d, align_weekday=True) in PROFILE_HOLIDAYS]


def seed_history(planner, plant, cfg: SavingsConfig) -> None:
    """The site's utility interval data before the EMS started: the same profile, without noise."""
    from energizeos.planning.history import LoadHistory

    n = cfg.history_days * 96
    begin = _start_utc(cfg) - timedelta(days=cfg.history_days)
    model = plant.site.plant
    values = [model.expected_load_kw((i + 0.5) * INTERVAL_S - n * INTERVAL_S) for i in range(n)]
    planner.tracker.seed(LoadHistory(begin, INTERVAL_S, np.asarray(values, dtype=float)))


@node_logs_from(logging.ERROR)  # node logs would drown the figures; the caller's level comes back after
def run(cfg: SavingsConfig, progress: Callable[[int, int], None] | None = None, series: dict | None = None) -> dict:
    """Simulate, bill and compare; returns the figures as a plain dict."""
    from energizeos.loads import scaled_series
    from energizeos.tariffs import compute_bill, load_tariff

    if cfg.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {cfg.strategy!r}; one of {', '.join(STRATEGIES)}")
    tariff = load_tariff(cfg.tariff)
    start = _start_utc(cfg)
    expected = scaled_series(cfg.load, cfg.annual_kwh, start, cfg.days, INTERVAL_S, align_weekday=True)
    threshold_kw = float(np.max(expected)) - 0.5 * cfg.bess_kw  # an installer's fixed setting
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="energizeos-savings-") as tmp:
        ex, plant, planner = build_graph(cfg, f"sqlite:///{tmp}/records.db", threshold_kw)
        if planner is not None:
            seed_history(planner, plant, cfg)
        steps_per_interval = round(INTERVAL_S / cfg.step_s)
        n = cfg.days * 96 + 8  # room for a DST day
        load_sum, poi_sum, count = np.zeros(n), np.zeros(n), np.zeros(n)
        export_kwh, export_steps = 0.0, 0
        t0 = ex.clock.nanoseconds
        half_step_ns = round(cfg.step_s * 5e8)

        def sample() -> None:
            nonlocal export_kwh, export_steps
            p = plant.site.plant
            # a sample at t stands for the step that just ended, [t - step, t)
            k = int((ex.clock.nanoseconds - t0 - half_step_ns) // (INTERVAL_S * 1_000_000_000))
            if k < n:
                load_sum[k] += p.load_kw - p.pv_kw
                poi_sum[k] += p.poi_true_kw
                count[k] += 1
            if p.poi_true_kw < -0.5:  # below half a kW: meter noise, not export
                export_kwh += -p.poi_true_kw * cfg.step_s / 3600.0
                export_steps += 1

        from energizeos.runtime import Node

        Node("savings_probe", executor=ex).create_timer(cfg.step_s, sample)
        for day in range(cfg.days):
            ex.spin_for(86400.0)
            if progress:
                progress(day + 1, cfg.days)
        wall = time.perf_counter() - started
    end_k = int(np.max(np.flatnonzero(count))) + 1 if np.any(count) else 0
    load = load_sum[:end_k] / np.maximum(count[:end_k], 1)
    poi = poi_sum[:end_k] / np.maximum(count[:end_k], 1)
    if steps_per_interval and np.any(count[: end_k - 1] < steps_per_interval):
        raise RuntimeError("the probe missed samples: the figures would be wrong")
    if series is not None:  # for diagnostics and tests: the 15-minute series behind the bills
        series.update(start=start, load_kw=load, poi_kw=poi)
    without = compute_bill(tariff, start, load, INTERVAL_S)
    with_bess = compute_bill(tariff, start, poi, INTERVAL_S)
    pf_started = time.perf_counter()
    perfect = perfect_foresight(tariff, start, load, cfg, plant.site.plant.config)
    pf_bill = compute_bill(tariff, start, perfect.grid_kw, INTERVAL_S)
    if series is not None:
        series.update(perfect_grid_kw=perfect.grid_kw, perfect_p_kw=perfect.p_kw)
    def demand(bill) -> dict:
        """Billed demand per month: the kW behind the demand charges."""
        out = {}
        for month, mb in bill.months.items():
            kw = {}
            for kind in ("max_demand", "on_peak_demand"):
                try:
                    kw[kind + "_kw"] = round(mb.item(kind).quantity, 1)
                except KeyError:
                    pass
            out[month] = kw
        return out

    savings = without.total - with_bess.total
    pf_savings = without.total - pf_bill.total
    return {
        "strategy": cfg.strategy, "load": Path(cfg.load).name, "annual_kwh": cfg.annual_kwh,
        "start": cfg.start.isoformat(), "sim_days": cfg.days, "step_s": cfg.step_s, "tariff": cfg.tariff,
        "bess_kw": cfg.bess_kw, "bess_kwh": cfg.bess_kwh,
        "bill_without_bess": round(without.total, 2), "bill_with_bess": round(with_bess.total, 2),
        "savings": round(savings, 2), "perfect_foresight_savings": round(pf_savings, 2),
        "savings_ratio": round(savings / pf_savings, 4) if pf_savings > 0 else None,
        "peak_kw_without": round(float(np.max(load)), 1), "peak_kw_with": round(float(np.max(poi)), 1),
        "export_kwh": round(export_kwh, 2), "export_violations": export_steps,
        "threshold_kw": round(threshold_kw, 1) if cfg.strategy == "threshold" else None,
        "demand_kw": {"without": demand(without), "with": demand(with_bess), "perfect_foresight": demand(pf_bill)},
        "plans": len(planner.plans) if planner is not None else 0,
        "wall_s": round(wall, 1), "perfect_foresight_lp_s": round(time.perf_counter() - pf_started, 1),
    }


def perfect_foresight(tariff, start: datetime, load_kw: np.ndarray, cfg: SavingsConfig, plant_cfg):
    """The theoretical limit: one LP over the whole period with the load as it really was."""
    from energizeos.planning.day_ahead import tariff_prices
    from energizeos.planning.lp import Battery, Problem, solve

    battery = Battery(power_kw=cfg.bess_kw, energy_kwh=cfg.bess_kwh, charge_efficiency=plant_cfg.eff_charge,
                      discharge_efficiency=plant_cfg.eff_discharge)
    prices = tariff_prices(tariff, start, len(load_kw))
    result = solve(Problem(load_kw=np.asarray(load_kw, dtype=float), prices=prices, battery=battery,
                           soc_start_pct=plant_cfg.initial_soc_pct, interval_s=INTERVAL_S,
                           terminal_soc_pct=plant_cfg.initial_soc_pct))
    if not result.ok:
        raise RuntimeError(f"perfect-foresight LP: {result.status} {result.binding}")
    return result
