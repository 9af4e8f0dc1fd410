"""``energizeos simulate``: fast-forward runs in the deterministic executor."""

from __future__ import annotations

import json
import logging
import time

import typer

app = typer.Typer(help="Deterministic fast-forward simulations of the site.", no_args_is_help=True)


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
