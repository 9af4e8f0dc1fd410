"""The bill a tariff gives for a POI power series: per tariff-local month, line items a reader can check.

Input is the average POI power per interval (+ import, - export) in kW. Energy is billed per period
from the interval's own resolution; demand always from 15-minute averages (finer data is averaged up
to clock-aligned quarter hours, coarser data cannot give demand and is refused for it). Missing data
(NaN) is counted and reported per month, never filled: a gap's energy is not billed and the month is
flagged ``incomplete``.
"""

from __future__ import annotations

import calendar
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime

import numpy as np

from energizeos.tariffs.model import Tariff

DEMAND_INTERVAL_S = 900


class BillError(ValueError):
    """Power data a bill cannot be computed from (wrong shape, interval, or resolution for demand)."""


@dataclass
class LineItem:
    name: str
    quantity: float
    unit: str  # kWh, kW, month, day
    rate: float  # $ per unit
    amount: float  # $; negative for a credit
    kind: str  # energy | export | max_demand | on_peak_demand | fixed
    period: str | None = None
    at: str | None = None  # tariff-local ISO time of a demand peak (start of its 15-minute interval)


@dataclass
class MonthBill:
    month_key: str
    season: str
    first_interval: str  # tariff-local ISO time of the first interval in the month
    days_covered: float  # wall-clock days the data spans in this month
    days_in_month: int
    intervals: int
    gap_intervals: int  # NaN intervals (at the input resolution)
    gap_hours: float
    demand_intervals_left_out: int  # 15-minute intervals with a gap or only partly in the data
    incomplete: bool  # the month has gaps: its energy and demand may be understated
    partial: bool  # the data covers only part of the month (fixed charges prorated)
    import_kwh: float
    export_kwh: float
    line_items: list[LineItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return float(sum(item.amount for item in self.line_items))

    def item(self, kind: str, period: str | None = None) -> LineItem:
        """The line item of a kind (and period); KeyError if the bill has none."""
        for it in self.line_items:
            if it.kind == kind and (period is None or it.period == period):
                return it
        raise KeyError(f"{self.month_key}: no {kind} line item{f' for {period}' if period else ''}")

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


@dataclass
class Bill:
    tariff: str
    rates_illustrative: bool
    rates_as_of: str
    start: str  # UTC ISO time of the first interval
    interval_s: int
    months: dict[str, MonthBill]
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return float(sum(m.total for m in self.months.values()))

    @property
    def incomplete(self) -> bool:
        return any(m.incomplete for m in self.months.values())

    def to_dict(self) -> dict:
        return {
            "tariff": self.tariff, "rates_illustrative": self.rates_illustrative, "rates_as_of": self.rates_as_of,
            "start": self.start, "interval_s": self.interval_s, "total": self.total,
            "incomplete": self.incomplete, "notes": list(self.notes),
            "months": {key: month.to_dict() for key, month in self.months.items()},
        }


def _local_iso(tariff: Tariff, epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).astimezone(tariff.tz).isoformat()


def _check(tariff: Tariff, start: datetime, kw: np.ndarray, interval_s: int, bill_demand: bool) -> None:
    if start.tzinfo is None or start.utcoffset() is None:
        raise BillError(f"start {start.isoformat()} is naive: pass an aware datetime")
    if kw.ndim != 1 or len(kw) == 0:
        raise BillError(f"kw must be a non-empty 1-D series of average kW per interval, got shape {kw.shape}")
    if interval_s <= 0 or (DEMAND_INTERVAL_S % interval_s and interval_s % DEMAND_INTERVAL_S):
        raise BillError(f"interval_s {interval_s}: must divide 900 s or be a multiple of it (60, 300, 900, 3600 ...)")
    if interval_s > DEMAND_INTERVAL_S and bill_demand and tariff.has_demand_charges:
        raise BillError(f"{interval_s} s data is coarser than the 15-minute demand interval: the tariff's demand "
                        "charges cannot be computed from it. Use 15-minute or finer meter data, or pass "
                        "bill_demand=False (CLI: --no-demand) to bill energy and fixed charges only.")


def compute_bill(tariff: Tariff, start: datetime, kw: np.ndarray, interval_s: int = 900, *,
                 bill_demand: bool = True) -> Bill:
    """The bill for ``kw`` (average POI kW per interval, + import / - export) starting at ``start``.

    Months are tariff-local calendar months. ``bill_demand=False`` leaves demand charges out (the
    only way to bill data coarser than 15 minutes)."""
    kw = np.asarray(kw, dtype=float)
    _check(tariff, start, kw, interval_s, bill_demand)
    # energy at <= 15-minute resolution: a coarser interval is split evenly into its quarter hours
    split = max(1, interval_s // DEMAND_INTERVAL_S)
    fine = np.repeat(kw, split) if split > 1 else kw
    step = interval_s // split
    prices = tariff.interval_prices(start, len(fine), step)
    grid = prices.grid
    assert grid is not None
    period = np.array(prices.period, dtype=object)
    valid = ~np.isnan(fine)
    hours = step / 3600.0
    import_kwh = np.where(valid & (fine > 0), fine, 0.0) * hours
    export_kwh = np.where(valid & (fine < 0), -fine, 0.0) * hours

    coarse = interval_s > DEMAND_INTERVAL_S  # only reached without demand charges to bill (see _check)
    demand = _demand_intervals(grid.epoch, kw, interval_s, prices) if bill_demand and not coarse else None
    bill_notes = []
    if tariff.rates_illustrative:
        bill_notes.append(f"Tariff rates are ILLUSTRATIVE (as of {tariff.rates_as_of}): replace them with the current "
                          "tariff sheet before treating this as a bill.")
    if not bill_demand:
        bill_notes.append("Demand charges not billed (bill_demand=False).")

    months: dict[str, MonthBill] = {}
    for key in dict.fromkeys(prices.month_key.tolist()):
        year, month = int(key[:4]), int(key[5:])
        here = prices.month_key == key
        first, last = np.flatnonzero(here)[[0, -1]]
        days_in_month = calendar.monthrange(year, month)[1]
        days_covered = (grid.local_s[last] + step - grid.local_s[first]) / 86400.0
        fraction = min(1.0, float(days_covered) / days_in_month)
        gaps = round(float(np.isnan(fine[here]).sum()) / split)
        mb = MonthBill(
            month_key=key, season=tariff.season_at(date(year, month, 1)),
            first_interval=_local_iso(tariff, float(grid.epoch[first])),
            days_covered=round(float(days_covered), 6), days_in_month=days_in_month,
            intervals=round(float(here.sum()) / split),
            gap_intervals=gaps, gap_hours=gaps * interval_s / 3600.0, demand_intervals_left_out=0,
            incomplete=gaps > 0, partial=bool(fraction < 1.0 - 1e-9),
            import_kwh=float(import_kwh[here].sum()), export_kwh=float(export_kwh[here].sum()),
        )
        if gaps:
            mb.notes.append(f"{gaps} of {mb.intervals} intervals have no data ({mb.gap_hours:g} h): their energy is "
                            "not billed and demand may be understated. The month is incomplete.")
        if mb.partial:
            mb.notes.append(f"Data covers {mb.days_covered:g} of {days_in_month} days: fixed charges prorated.")
        first_day = datetime.fromtimestamp(float(grid.epoch[first]), tz=UTC).astimezone(tariff.tz).date()
        if not tariff.is_effective(first_day):
            mb.notes.append(f"The tariff is effective {tariff.effective_from} to {tariff.effective_to or 'open'}; "
                            f"this month is outside it.")

        for p in tariff.period_names:
            in_p = here & (period == p)
            if in_p.any():
                kwh, rate = float(import_kwh[in_p].sum()), tariff.energy_rate(month, p)
                mb.line_items.append(LineItem(f"energy {p}", kwh, "kWh", rate, kwh * rate, "energy", p))
        for p in tariff.period_names:
            kwh = float(export_kwh[here & (period == p)].sum())
            if kwh > 0:
                rate = tariff.export_rate(p)
                name = f"export {p}" if rate else f"export {p} (no export credit)"
                mb.line_items.append(LineItem(name, kwh, "kWh", rate, -kwh * rate, "export", p))
        if demand is not None:
            _demand_items(tariff, mb, month, demand)
        for charge in tariff.fixed_charges:
            if charge.unit == "$/day":
                mb.line_items.append(LineItem(charge.name, mb.days_covered, "day", charge.amount,
                                              charge.amount * mb.days_covered, "fixed"))
            else:
                name = charge.name if not mb.partial else \
                    f"{charge.name} (prorated: {mb.days_covered:g} of {days_in_month} days)"
                mb.line_items.append(LineItem(name, fraction, "month", charge.amount, charge.amount * fraction,
                                              "fixed"))
        months[key] = mb
    return Bill(tariff=tariff.name, rates_illustrative=tariff.rates_illustrative,
                rates_as_of=tariff.rates_as_of.isoformat(),
                start=start.astimezone(UTC).isoformat(), interval_s=interval_s,
                months=months, notes=bill_notes)


@dataclass
class _DemandIntervals:
    kw: np.ndarray  # 15-minute average import (NaN when left out)
    complete: np.ndarray  # bool
    epoch: np.ndarray  # start of each 15-minute interval
    month_key: np.ndarray
    on_peak: np.ndarray  # bool


def _demand_intervals(epoch: np.ndarray, kw: np.ndarray, interval_s: int, prices) -> _DemandIntervals:
    """15-minute average power: the data itself at 900 s; finer data averaged into clock quarter hours,
    a quarter hour with any gap (or only partly inside the data) left out."""
    if interval_s == DEMAND_INTERVAL_S:
        return _DemandIntervals(kw, ~np.isnan(kw), epoch, prices.month_key, prices.on_peak_demand)
    per = DEMAND_INTERVAL_S // interval_s
    block = (np.floor(epoch / DEMAND_INTERVAL_S) - np.floor(epoch[0] / DEMAND_INTERVAL_S)).astype(np.intp)
    n = int(block[-1]) + 1
    valid = ~np.isnan(kw)
    count = np.bincount(block, minlength=n)
    good = np.bincount(block, weights=valid.astype(float), minlength=n)
    total = np.bincount(block, weights=np.where(valid, kw, 0.0), minlength=n)
    complete = (count == per) & (good == per)
    first = np.searchsorted(block, np.arange(n))
    first = np.minimum(first, len(block) - 1)
    average = np.where(complete, total / per, np.nan)
    return _DemandIntervals(average, complete, np.floor(epoch[first] / DEMAND_INTERVAL_S) * DEMAND_INTERVAL_S,
                            prices.month_key[first], prices.on_peak_demand[first])


def _demand_items(tariff: Tariff, mb: MonthBill, month: int, d: _DemandIntervals) -> None:
    here = d.month_key == mb.month_key
    mb.demand_intervals_left_out = int((here & ~d.complete).sum())
    if mb.demand_intervals_left_out and not mb.gap_intervals:
        mb.notes.append(f"{mb.demand_intervals_left_out} 15-minute demand interval(s) only partly inside the data "
                        "were left out of demand.")
    elif mb.demand_intervals_left_out:
        mb.notes.append(f"{mb.demand_intervals_left_out} 15-minute demand interval(s) with gaps were left out of "
                        "demand.")

    def peak(mask: np.ndarray) -> tuple[float, str | None]:
        usable = mask & d.complete
        if not usable.any():
            return 0.0, None
        i = int(np.argmax(np.where(usable, d.kw, -np.inf)))
        return max(0.0, float(d.kw[i])), _local_iso(tariff, float(d.epoch[i]))

    kw_max, at = peak(here)
    rate = tariff.max_demand_rate(month)
    if rate or tariff.demand.max_demand:
        mb.line_items.append(LineItem("max demand (non-coincident)", kw_max, "kW", rate, kw_max * rate,
                                      "max_demand", at=at))
    if tariff.demand.on_peak_periods:
        kw_on, at_on = peak(here & d.on_peak)
        rate = tariff.on_peak_demand_rate(month)
        mb.line_items.append(LineItem("on-peak demand", kw_on, "kW", rate, kw_on * rate, "on_peak_demand", at=at_on))
    if here.any() and not (here & d.complete).any():
        mb.notes.append("No complete 15-minute interval in the month: demand not billed.")
