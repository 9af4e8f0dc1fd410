"""``energizeos plan --date D``: forecast the day from the records, solve the LP, run the safety gate."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from energizeos.planning.day_ahead import PlannerSettings
    from energizeos.site_config import SiteConfig


def planner_settings(cfg: SiteConfig) -> PlannerSettings:
    """The settings the planner node runs with on this site config (what its launch file gives it), so
    that ``energizeos plan`` shows the plan the node would make."""
    from energizeos.planning.day_ahead import PlannerSettings
    from energizeos.planning.lp import Battery

    s, pl = cfg.ems.safety, cfg.ems.planning
    return PlannerSettings(
        site=cfg.site, tz=cfg.timezone, export_limit_kw=s.export_limit_kw,
        battery=Battery(power_kw=s.pcs_rated_kw, energy_kwh=pl.bess_kwh, soc_min_pct=s.soc_min_pct,
                        soc_reserve_pct=s.soc_reserve_pct, soc_max_pct=s.soc_max_pct),
        terminal_soc_pct=pl.terminal_soc_pct, replan_deviation_pct=pl.replan_deviation_pct,
        replan_soc_deviation_pct=pl.replan_soc_deviation_pct, bias_decay_intervals=pl.bias_decay_intervals,
        threshold_margin_pct=pl.threshold_margin_pct, on_peak_margin_pct=pl.on_peak_margin_pct,
        lookahead_intervals=pl.lookahead_intervals)


def plan(
    day: str = typer.Option("", "--date", help="Local date to plan (YYYY-MM-DD; default tomorrow)."),
    soc: float = typer.Option(50.0, "--soc", help="SOC at the start of the day, %."),
    site_config: str = typer.Option("config/sim_site.yaml", "--site-config", help="Battery, limits and tariff."),
    db: str = typer.Option("", "--db", help="Records database with the load history (default: the site's)."),
    history_days: int = typer.Option(42, "--history-days"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object: the plan, its gate findings, notes."),
) -> None:
    """Plan a day from the stored history against the tariff; show the plan and the gate's verdict.
    Nothing is approved or sent: approval happens in the planner node (policy or a user)."""
    from zoneinfo import ZoneInfo

    import numpy as np

    from energizeos.planning.day_ahead import local_day, plan_day, plan_week
    from energizeos.planning.demand_floor import demand_floor, describe, history_tail
    from energizeos.planning.forecast import ForecastError, forecast_day
    from energizeos.planning.history import site_load_history
    from energizeos.records.db import init_db, make_engine
    from energizeos.site_config import SiteConfigError, load_site_config
    from energizeos.tariffs import TariffError, load_tariff

    try:
        cfg = load_site_config(site_config)
        tariff = load_tariff(cfg.ems.planning.tariff)
    except (SiteConfigError, TariffError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    tz = cfg.timezone
    try:
        target = date.fromisoformat(day) if day else (date.today() + timedelta(days=1))
    except ValueError as exc:
        typer.echo(f"error: --date {day!r} is not YYYY-MM-DD", err=True)
        raise typer.Exit(2) from exc
    engine = make_engine(db or cfg.records.db_url or None)
    init_db(engine)
    start, n = local_day(target, tz)
    history = site_load_history(engine, start - timedelta(days=history_days), start)
    try:
        fc = forecast_day(history, target, tz=tz)
    except ForecastError as exc:
        typer.echo(f"no plan for {target}: {exc}", err=True)
        raise typer.Exit(1) from exc
    settings = planner_settings(cfg)
    ahead = None  # the day after, as the planner node looks into it
    if settings.lookahead_intervals:
        try:
            ahead = forecast_day(history, target + timedelta(days=1), tz=tz).values
        except ForecastError as exc:
            fc.notes.append(f"no look-ahead into the next day: {exc}")
    floor_days = cfg.ems.planning.demand_floor_days
    floor = demand_floor(history_tail(history, floor_days), tariff, settings, month_of=target,
                         window_days=cfg.ems.planning.demand_floor_window_days) if floor_days else {}
    notes = list(fc.notes)
    prior_peak = {}
    if floor:
        prior_peak = {tariff.interval_prices(start, 1, 900).month_key[0]: floor["kw"]}
        notes.append(describe(floor))
    guide = None  # the week plan from the day's start and --soc, as the planner node makes one a day
    if cfg.ems.planning.week_plan_days:
        try:
            week = [fc.values, *(forecast_day(history, target + timedelta(days=k), tz=tz).values
                                 for k in range(1, cfg.ems.planning.week_plan_days + 1))]
        except ForecastError as exc:
            notes.append(f"no week plan: {exc}")
        else:
            guide = plan_week(tariff, settings, start, np.concatenate(week), soc, prior_peak, {})
            if guide is None:
                notes.append("no week plan: its LP could not be solved")
    result = plan_day(tariff, settings, target, fc.values, soc, prior_peak=prior_peak, plan_id=0, method=fc.method,
                      notes=notes, lookahead_kw=ahead, guide=guide)
    if as_json:
        print(json.dumps({"date": target.isoformat(), "gate_passed": result.gate.passed,
                          "gate_findings": result.gate.findings, **result.body()}))
    else:
        zone = ZoneInfo(tz)
        console = Console(width=120)
        console.print(f"[bold]Plan for {target}[/] ({n} intervals, forecast: {fc.method}, history coverage "
                      f"{100 * history.coverage:.0f} %), LP {result.result.status}, cost ${result.result.cost:,.0f}")
        for note in result.notes:
            console.print(f"  note: {note}")
        table = Table("local time", "period", "load kW", "BESS kW", "POI kW", "SOC %")
        for i in range(0, n, 4):
            t = (start + timedelta(seconds=900 * i)).astimezone(zone)
            table.add_row(t.strftime("%H:%M"), tariff.period_at(t), f"{result.load_kw[i]:.0f}",
                          f"{result.p_kw[i]:+.0f}", f"{result.grid_kw[i]:.0f}", f"{result.soc_pct[i]:.1f}")
        console.print(table)
        for finding in result.gate.findings:
            console.print(("[green]" if finding.startswith("PASS") else "[red]") + finding + "[/]")
    raise typer.Exit(0 if result.gate.passed else 1)
