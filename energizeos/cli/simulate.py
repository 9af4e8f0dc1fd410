"""``energizeos simulate``: fast-forward runs in the deterministic executor."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import typer

app = typer.Typer(help="Deterministic fast-forward simulations of the site: the savings benchmark "
                       "(options below) and safety scenarios (``simulate scenario NAME``).",
                  invoke_without_command=True, no_args_is_help=True)


@app.callback()
def savings(
    ctx: typer.Context,
    load: Path = typer.Option(None, "--load", help="8,760 hourly values normalised to sum 1 (.dat)."),
    annual_kwh: float = typer.Option(0.0, "--annual-kwh", help="Annual consumption the profile is scaled to."),
    start: str = typer.Option("2025-01-01", "--start", help="First local day (YYYY-MM-DD)."),
    days: int = typer.Option(365, "--days", min=1, max=3660),
    step: float = typer.Option(60.0, "--step", help="Seconds per step of the plant and every node."),
    strategy: str = typer.Option("planned", "--strategy", help="none | threshold | planned"),
    bess_kw: float = typer.Option(500.0, "--bess-kw"),
    bess_kwh: float = typer.Option(1000.0, "--bess-kwh"),
    tariff: str = typer.Option("sdge-al-tou", "--tariff", help="Shipped tariff name or a YAML / URDB JSON file."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object with the figures."),
) -> None:
    """Run the whole node graph against the plant with a real load profile and bill it with and without
    the battery; compare with the perfect-foresight limit."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import date

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from energizeos.savings import STRATEGIES, SavingsConfig, run

    if load is None or annual_kwh <= 0:
        raise typer.BadParameter("--load PATH.dat and --annual-kwh N are required")
    if strategy not in STRATEGIES:
        raise typer.BadParameter(f"--strategy {strategy!r}: one of {', '.join(STRATEGIES)}")
    if not 1.0 <= step <= 900.0:
        raise typer.BadParameter(f"--step {step:g}: between 1 and 900 s")
    try:
        first = date.fromisoformat(start)
    except ValueError as exc:
        raise typer.BadParameter(f"--start {start!r} is not YYYY-MM-DD") from exc
    cfg = SavingsConfig(load=load, annual_kwh=annual_kwh, start=first, days=days, step_s=step, strategy=strategy,
                        bess_kw=bess_kw, bess_kwh=bess_kwh, tariff=tariff)
    if sys.stderr.isatty():
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} "
                      "days"), TimeElapsedColumn(), TimeRemainingColumn(), transient=True) as bar:
            task = bar.add_task(f"{strategy} on {load.name}", total=days)
            result = run(cfg, lambda done, _total: bar.update(task, completed=done))
    else:
        result = run(cfg)
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28s} {value}")




@app.command()
def scenario(
    name: str = typer.Argument(..., help="load-drop | bms-overtemp | relay-trip | meter-loss"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object with the measured figures."),
) -> None:
    """Run a safety scenario against the plant model and print what was measured."""
    from energizeos.scenarios import SCENARIOS

    if name not in SCENARIOS:
        raise typer.BadParameter(f"unknown scenario {name!r}; scenarios: {', '.join(SCENARIOS)}")
    logging.getLogger("energizeos").setLevel(logging.ERROR)  # node logs would drown the figures
    started = time.perf_counter()
    result = SCENARIOS[name]()
    result["wall_s"] = round(time.perf_counter() - started, 2)
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32s} {value}")
