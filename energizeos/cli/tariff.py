"""``energizeos tariff show|import-urdb|bill``: read a tariff, import an OpenEI URDB rate, bill a meter series."""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from energizeos.tariffs.model import Tariff

app = typer.Typer(help="Tariffs as data: show one, import an OpenEI URDB rate, compute a bill.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)
TARIFF = typer.Argument(..., help="Shipped tariff name (e.g. sdge-al-tou), a tariff YAML or a URDB JSON file.")


def _fail(exc: Exception) -> typer.Exit:
    errors.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
    return typer.Exit(2)


def _load(name: str) -> Tariff:
    from energizeos.tariffs.model import TariffError, load_tariff

    try:
        return load_tariff(name)
    except TariffError as exc:
        raise _fail(exc) from None


def _months(months: list[int]) -> str:
    """[6, 7, 8, 9, 10] -> "Jun-Oct"; [11, 12, 1, ..., 5] -> "Nov-May"."""
    from energizeos.tariffs.model import month_span_name

    if len(set(months)) == 12:
        return "all year"
    return ", ".join(part.title() for part in month_span_name(months).split("_"))


def _by_season(value: float | dict[str, float], unit: str) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{season} {rate:g} {unit}" for season, rate in value.items())
    return f"{value:g} {unit}"


@app.command()
def show(name: str = TARIFF,
         as_json: bool = typer.Option(False, "--json", help="The tariff data as JSON.")) -> None:
    """Seasons, periods with their hours, rates, demand and fixed charges, and whether the rates are real."""
    tariff = _load(name)
    if as_json:
        print(json.dumps(tariff.model_dump(mode="json"), indent=2))
        return
    console.print(f"[bold]{tariff.name}[/] - {tariff.utility}", highlight=False)
    if tariff.source:
        console.print(f"source: {tariff.source}", highlight=False)
    console.print(f"effective {tariff.effective_from} to {tariff.effective_to or 'open'}; "
                  f"time zone {tariff.timezone}", highlight=False)
    if tariff.rates_illustrative:
        console.print(f"[bold yellow]RATES ILLUSTRATIVE[/] (written {tariff.rates_as_of}): replace them with the "
                      "current tariff sheet before relying on a bill or a plan.", highlight=False)
    else:
        console.print(f"rates as of {tariff.rates_as_of}", highlight=False)

    seasons = list(tariff.seasons)
    rates = Table(title="Energy $/kWh", title_justify="left")
    rates.add_column("period")
    for season in seasons:
        rates.add_column(f"{season} ({_months(tariff.seasons[season])})", justify="right")
    for period, value in tariff.periods.items():
        cells = [value.get(s) if isinstance(value, dict) else value for s in seasons]
        rates.add_row(period, *("-" if c is None else f"{c:.5f}" for c in cells))
    console.print(rates)

    hours = Table(title="Periods by hour (local time)", title_justify="left")
    for column in ("months", "day type", "hours"):
        hours.add_column(column)
    groups: dict[tuple, list[int]] = {}
    for m in range(1, 13):
        key = tuple(tuple(tariff.month_rows(m, d)) for d in ("weekday", "weekend_holiday"))
        groups.setdefault(key, []).append(m)
    for (weekday, weekend), months in groups.items():
        for label, rows in (("weekday", weekday), ("weekend/holiday", weekend)):
            hours.add_row(_months(months), label, ", ".join(f"{p} {r}" for p, r in rows))
    console.print(hours)

    d = tariff.demand
    console.print("max demand (non-coincident, highest 15-min interval of the month): "
                  f"{_by_season(d.max_demand, '$/kW')}", highlight=False)
    if d.on_peak_periods:
        console.print(f"on-peak demand (highest 15-min interval in {', '.join(d.on_peak_periods)}): "
                      f"{_by_season(d.on_peak_demand, '$/kW')}", highlight=False)
    for charge in tariff.fixed_charges:
        console.print(f"fixed: {charge.name} {charge.amount:g} {charge.unit}", highlight=False)
    credit = tariff.export_credit
    console.print("export credit: " + (", ".join(f"{p} {v:g} $/kWh" for p, v in credit.items())
                                       if isinstance(credit, dict) else f"{credit:g} $/kWh"), highlight=False)
    console.print(f"holidays (weekend rules, observed dates): {', '.join(tariff.holidays) or 'none'}",
                  highlight=False)
    for note in tariff.notes:
        console.print(f"note: {note}", highlight=False)


@app.command("import-urdb")
def import_urdb(
    file: Path = typer.Argument(..., help="URDB JSON: one rate item, or an API answer with one item."),
    out: Path = typer.Option(..., "--out", "-o", help="Tariff YAML to write."),
    timezone: str = typer.Option("America/Los_Angeles", help="The site's IANA time zone (URDB has none)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """Convert an OpenEI URDB rate into a tariff YAML (what it cannot model is written into its notes)."""
    from energizeos.tariffs.model import TariffError
    from energizeos.tariffs.urdb import tariff_from_urdb, urdb_item

    if out.exists() and not force:
        raise _fail(FileExistsError(f"{out} exists; pass --force to overwrite it"))
    try:
        document = json.loads(file.read_text())
        tariff = tariff_from_urdb(urdb_item(document), timezone=timezone)
    except (OSError, json.JSONDecodeError) as exc:
        raise _fail(TariffError(f"{file}: {exc}")) from None
    except TariffError as exc:
        raise _fail(TariffError(f"{file}: {exc}")) from None
    header = (f"# Imported from OpenEI URDB file {file.name} by 'energizeos tariff import-urdb'.\n"
              "# Check every rate against the current tariff sheet; see notes below and docs/tariffs.md.\n")
    out.write_text(header + tariff.to_yaml())
    console.print(f"wrote {out}: {len(tariff.periods)} periods, seasons {', '.join(tariff.seasons)}", highlight=False)
    for note in tariff.notes:
        style = "yellow" if note.startswith("WARNING") else "dim"
        console.print(f"[{style}]{note}[/]", highlight=False)


def read_power_csv(path: Path, interval_s: int | None = None) -> tuple[datetime, np.ndarray, int, int]:
    """(start, kW per interval, interval_s, rows missing) from a CSV with columns time (ISO 8601 with
    offset) and kw. Missing rows become NaN gaps, never interpolated."""
    from energizeos.tariffs.bill import BillError

    times: list[datetime] = []
    values: list[float] = []
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            fields = {f.strip().lower(): f for f in reader.fieldnames or []}
            if "time" not in fields or "kw" not in fields:
                raise BillError(f"{path}: needs columns 'time' and 'kw', found {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                text = (row[fields["time"]] or "").strip()
                try:
                    t = datetime.fromisoformat(text)
                except ValueError:
                    raise BillError(f"{path}:{line}: time {text!r} is not ISO 8601") from None
                if t.utcoffset() is None:
                    raise BillError(f"{path}:{line}: time {text!r} has no UTC offset (write e.g. -07:00 or Z)")
                cell = (row[fields["kw"]] or "").strip()
                try:
                    values.append(float(cell) if cell else math.nan)
                except ValueError:
                    raise BillError(f"{path}:{line}: kw {cell!r} is not a number") from None
                times.append(t)
    except OSError as exc:
        raise BillError(f"{path}: {exc}") from exc
    if not times:
        raise BillError(f"{path}: no data rows")
    epoch = np.array([t.timestamp() for t in times])
    steps = np.diff(epoch)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0))
        raise BillError(f"{path}: times must increase; row {i + 3} ({times[i + 1].isoformat()}) does not")
    if interval_s is None:
        if not len(steps):
            raise BillError(f"{path}: one row cannot tell the interval; pass --interval-s")
        interval_s = round(float(steps.min()))
    slot = (epoch - epoch[0]) / interval_s
    if not np.allclose(slot, np.round(slot), atol=1e-6):
        raise BillError(f"{path}: times are not on a regular {interval_s} s grid")
    index = np.round(slot).astype(np.intp)
    kw = np.full(int(index[-1]) + 1, math.nan)
    kw[index] = values
    return times[0], kw, interval_s, len(kw) - len(values)


@app.command()
def bill(
    name: str = TARIFF,
    csv_file: Path = typer.Option(..., "--csv", help="CSV with columns time (ISO 8601 with offset) and kw (+import)."),
    interval_s: int = typer.Option(0, "--interval-s", help="Interval length in seconds (default: from the times)."),
    no_demand: bool = typer.Option(False, "--no-demand", help="Leave demand charges out (data coarser than 15 min)."),
    as_json: bool = typer.Option(False, "--json", help="The bill as JSON."),
) -> None:
    """The bill a tariff gives for a POI power series, per tariff-local month, with its line items."""
    from energizeos.tariffs.bill import BillError, compute_bill

    tariff = _load(name)
    try:
        start, kw, step, missing_rows = read_power_csv(csv_file, interval_s or None)
        result = compute_bill(tariff, start, kw, step, bill_demand=not no_demand)
    except BillError as exc:
        raise _fail(exc) from None
    if missing_rows:
        result.notes.append(f"{missing_rows} rows missing from the CSV were counted as gaps.")
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    for month in result.months.values():
        table = Table(title=f"{month.month_key} ({month.season}){' - INCOMPLETE' if month.incomplete else ''}",
                      title_justify="left")
        for column, justify in (("item", "left"), ("quantity", "right"), ("unit", "left"), ("rate $", "right"),
                                ("amount $", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for item in month.line_items:
            table.add_row(item.name + (f" at {item.at}" if item.at else ""), f"{item.quantity:,.2f}", item.unit,
                          f"{item.rate:g}", f"{item.amount:,.2f}")
        table.add_row("[bold]total[/]", "", "", "", f"[bold]{month.total:,.2f}[/]")
        console.print(table)
        for note in month.notes:
            console.print(f"[yellow]{note}[/]", highlight=False)
    console.print(f"[bold]total {result.total:,.2f} $[/] for {len(result.months)} month(s), tariff {result.tariff}",
                  highlight=False)
    for note in result.notes:
        console.print(f"[yellow]{note}[/]", highlight=False)
