"""The tariff model: a utility rate written as data, validated, and compiled to period matrices.

A tariff file names seasons (months), energy periods with $/kWh per season, time-of-use windows per
season and day type (weekday / weekend_holiday) with month-specific overrides, demand charges on
15-minute intervals and fixed charges. On load it is compiled into URDB-like period matrices
(12 months x 96 quarter-hour slots, for weekdays and for weekends/holidays), the same structure an
OpenEI URDB import fills, so the lookup code has one shape to serve. Mistakes are errors that name
the file and the field (``tariff x.yaml: periods.on_peak: no rate for season winter``).
"""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_pkg
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationError, model_validator

from energizeos.yaml_file import read_yaml

SLOT_MINUTES = 15
SLOTS_PER_DAY = 24 * 60 // SLOT_MINUTES
DAY_TYPES = ("weekday", "weekend_holiday")
SHIPPED_DIR = Path(__file__).resolve().parent
MONTH_ABBR = [m.lower() for m in calendar.month_abbr]  # ["", "jan", ...]

DayType = Literal["weekday", "weekend_holiday"]
Month = Annotated[int, Field(ge=1, le=12)]
Money = Annotated[float, Field(ge=0)]
_ONE, _BY_KEY = "<one value>", "<by key>"  # union tags, left out of error paths




def _branch(value: Any) -> str:
    """Which branch of a one-value-or-mapping field was written, so errors report only that one."""
    return _BY_KEY if isinstance(value, dict) else _ONE


# one value for every season, or one per season
SeasonalRate = Annotated[
    Annotated[Money, Tag(_ONE)] | Annotated[dict[str, Money], Tag(_BY_KEY)], Discriminator(_branch)]
PeriodOrBySeason = Annotated[
    Annotated[str, Tag(_ONE)] | Annotated[dict[str, str], Tag(_BY_KEY)], Discriminator(_branch)]
RateOrByPeriod = Annotated[
    Annotated[Money, Tag(_ONE)] | Annotated[dict[str, Money], Tag(_BY_KEY)], Discriminator(_branch)]


class TariffError(ValueError):
    """A tariff that cannot be loaded or used: the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # a misspelt key is an error, not a silent default


class DayWindows(_Strict):
    """Per day type: period name -> list of "HH:MM-HH:MM" local wall-clock ranges."""

    weekday: dict[str, list[str]] = {}
    weekend_holiday: dict[str, list[str]] = {}


class Override(_Strict):
    """Windows that replace the season's in the named months (SDG&E: Mar/Apr weekday 10-14 super off-peak)."""

    months: list[Month]
    day_types: list[DayType] = ["weekday", "weekend_holiday"]
    windows: dict[str, list[str]]
    note: str = ""


class Demand(_Strict):
    """Demand charges, $/kW on the highest 15-minute average import of the month."""

    max_demand: SeasonalRate = 0.0  # non-coincident: any interval of the month
    on_peak_demand: SeasonalRate = 0.0  # only intervals in on_peak_periods
    on_peak_periods: list[str] = []


class FixedCharge(_Strict):
    name: str
    amount: Money
    unit: Literal["$/month", "$/day"] = "$/month"


@dataclass(frozen=True, eq=False)
class LocalGrid:
    """Intervals on the tariff-local clock (what the bill calculator and the prices share)."""

    epoch: np.ndarray  # UTC seconds of each interval start
    local_s: np.ndarray  # local wall-clock seconds since 1970-01-01 (naive)
    period: np.ndarray  # period index into Tariff.period_names
    month: np.ndarray  # 1-12
    month_key: np.ndarray  # "YYYY-MM"

    def __len__(self) -> int:
        return len(self.epoch)


@dataclass(frozen=True, eq=False)  # numpy fields: compare arrays explicitly
class IntervalPrices:
    """Prices for a run of intervals, as the LP planner consumes them.

    Arrays are per interval (period and flags at the interval's start, tariff-local wall clock);
    demand rates are per tariff-local month key ("2025-07").
    """

    start: datetime
    interval_s: int
    energy_rate: np.ndarray  # $/kWh imported
    export_rate: np.ndarray  # $/kWh exported (credit)
    period: list[str]
    on_peak_demand: np.ndarray  # bool: counts for the on-peak demand charge
    month_key: np.ndarray  # str, tariff-local "YYYY-MM"
    season: list[str]
    max_demand_rate: dict[str, float] = field(default_factory=dict)
    on_peak_demand_rate: dict[str, float] = field(default_factory=dict)
    grid: LocalGrid | None = field(default=None, repr=False)  # UTC and local seconds of each interval

    def __len__(self) -> int:
        return len(self.period)


@lru_cache(maxsize=1)
def known_holiday_names() -> frozenset[str]:
    """US federal holiday names as the ``holidays`` package spells them (without " (observed)")."""
    calendar_ = holidays_pkg.country_holidays("US", years=range(2000, 2041), observed=True)
    return frozenset(_strip_observed(name) for d in calendar_ for name in calendar_.get_list(d))


def _strip_observed(name: str) -> str:
    return re.sub(r"\s*\(observed\)$", "", name.strip())


_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_range(text: str, where: str) -> tuple[int, int]:
    """'HH:MM-HH:MM' -> (first slot, end slot exclusive); quarter hours only, no wrap past midnight."""
    m = _RANGE.match(str(text))
    if not m:
        raise ValueError(f"{where}: {text!r} is not a range like '16:00-21:00'")
    h0, m0, h1, m1 = (int(g) for g in m.groups())
    start, end = h0 * 60 + m0, h1 * 60 + m1
    if m0 % SLOT_MINUTES or m1 % SLOT_MINUTES or m0 >= 60 or m1 >= 60:
        raise ValueError(f"{where}: {text!r}: minutes must be :00, :15, :30 or :45")
    if end > 24 * 60 or start >= end:
        raise ValueError(f"{where}: {text!r}: start must be before end, end at most 24:00 "
                         "(split a range that wraps past midnight in two)")
    return start // SLOT_MINUTES, end // SLOT_MINUTES


def slot_label(slot: int) -> str:
    minutes = slot * SLOT_MINUTES
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def row_ranges(row: np.ndarray, names: list[str]) -> list[tuple[str, str]]:
    """A day's slot row as (period, "HH:MM-HH:MM") runs, in time order."""
    out: list[tuple[str, str]] = []
    start = 0
    for i in range(1, len(row) + 1):
        if i == len(row) or row[i] != row[start]:
            out.append((names[int(row[start])], f"{slot_label(start)}-{slot_label(i)}"))
            start = i
    return out


def month_span_name(months: list[int]) -> str:
    """[6,7,8,9,10] -> 'jun-oct'; [11,12,1,...,5] -> 'nov-may'; gaps join runs with '_'."""
    chosen = sorted(set(months))
    if len(chosen) == 12:
        return "all_year"
    runs: list[list[int]] = []
    for m in chosen:
        if runs and runs[-1][-1] == m - 1:
            runs[-1].append(m)
        else:
            runs.append([m])
    if len(runs) > 1 and runs[0][0] == 1 and runs[-1][-1] == 12:  # wraps over the new year
        runs[0] = runs.pop() + runs[0]
    return "_".join(MONTH_ABBR[r[0]] if len(r) == 1 else f"{MONTH_ABBR[r[0]]}-{MONTH_ABBR[r[-1]]}" for r in runs)


class Tariff(_Strict):
    """A utility tariff as data (see docs/tariffs.md); compiled to period matrices when validated."""

    name: str
    utility: str
    source: str = ""
    notes: list[str] = []
    effective_from: date
    effective_to: date | None = None  # last day in effect (inclusive); None: open-ended
    rates_illustrative: bool  # required: a tariff file must say whether its $ values are real
    rates_as_of: date
    timezone: str = "America/Los_Angeles"
    holidays: list[str] = []  # observed US federal holidays billed with weekend rules
    seasons: dict[str, list[Month]]
    periods: dict[str, SeasonalRate]  # energy, $/kWh
    default_period: PeriodOrBySeason | None = None  # period of slots no window names (per season if a dict)
    windows: dict[str, DayWindows] = {}  # season -> day type -> period -> ranges
    overrides: list[Override] = []
    demand: Demand = Demand()
    fixed_charges: list[FixedCharge] = []
    export_credit: RateOrByPeriod = 0.0  # $/kWh, one value or per period; 0: non-export site

    _tz: ZoneInfo = PrivateAttr()
    _period_names: list[str] = PrivateAttr()
    _season_of_month: list[str] = PrivateAttr()  # index 0..11
    _matrix: np.ndarray = PrivateAttr()  # (2 day types, 12 months, 96 slots) period index
    _energy: np.ndarray = PrivateAttr()  # (12, n_periods) $/kWh, NaN where a period is unused
    _export: np.ndarray = PrivateAttr()  # (n_periods,) $/kWh
    _on_peak: np.ndarray = PrivateAttr()  # (n_periods,) bool
    _max_demand: np.ndarray = PrivateAttr()  # (12,) $/kW
    _on_peak_demand: np.ndarray = PrivateAttr()  # (12,) $/kW
    _holiday_years: dict[int, frozenset[date]] = PrivateAttr(default_factory=dict)

    # --- validation and compilation ---------------------------------------------------------
    @model_validator(mode="after")
    def _compile(self) -> Tariff:
        """Check cross-field consistency and build the lookup matrices (errors name the field)."""
        try:
            self._tz = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: {self.timezone!r} is not an IANA time zone "
                             "(e.g. America/Los_Angeles)") from None
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError(f"effective_to: {self.effective_to} is before effective_from {self.effective_from}")
        unknown = [h for h in self.holidays if h not in known_holiday_names()]
        if unknown:
            raise ValueError(f"holidays: {unknown} not known to the holidays package; "
                             f"known US names: {sorted(known_holiday_names())}")

        season_of: dict[int, str] = {}
        for season, months in self.seasons.items():
            for m in months:
                if m in season_of:
                    raise ValueError(f"seasons.{season}: month {m} is also in season {season_of[m]}")
                season_of[m] = season
        missing = [m for m in range(1, 13) if m not in season_of]
        if missing:
            raise ValueError(f"seasons: months {missing} belong to no season (every month needs one)")
        self._season_of_month = [season_of[m] for m in range(1, 13)]
        if not self.periods:
            raise ValueError("periods: at least one energy period is needed")
        names = list(self.periods)
        self._period_names = names
        index = {p: i for i, p in enumerate(names)}

        def period_index(p: str, where: str) -> int:
            if p not in index:
                raise ValueError(f"{where}: unknown period {p!r} (periods: {names})")
            return index[p]

        def season_keys(value: Any, where: str, need_all: bool = True) -> None:
            if isinstance(value, dict):
                extra = [s for s in value if s not in self.seasons]
                if extra:
                    raise ValueError(f"{where}: unknown season(s) {extra} (seasons: {list(self.seasons)})")
                lacking = [s for s in self.seasons if s not in value]
                if need_all and lacking:
                    raise ValueError(f"{where}: no value for season(s) {lacking}")

        defaults: dict[str, int | None] = {}
        if isinstance(self.default_period, dict):
            season_keys(self.default_period, "default_period", need_all=False)
        for season in self.seasons:
            dp = self.default_period.get(season) if isinstance(self.default_period, dict) else self.default_period
            defaults[season] = None if dp is None else period_index(dp, "default_period")
        extra = [s for s in self.windows if s not in self.seasons]
        if extra:
            raise ValueError(f"windows: unknown season(s) {extra} (seasons: {list(self.seasons)})")

        def paint(row: np.ndarray, spec: dict[str, list[str]], where: str) -> None:
            painted: dict[int, str] = {}
            for p, ranges in spec.items():
                pi = period_index(p, f"{where}.{p}")
                for text in ranges:
                    a, b = parse_range(text, f"{where}.{p}")
                    for s in range(a, b):
                        if s in painted:
                            raise ValueError(f"{where}.{p}: {text} overlaps {painted[s]} at {slot_label(s)}")
                        painted[s] = p
                    row[a:b] = pi

        matrix = np.full((2, 12, SLOTS_PER_DAY), -1, dtype=np.int16)
        for mi in range(12):
            season = self._season_of_month[mi]
            for di, day_type in enumerate(DAY_TYPES):
                row = matrix[di, mi]
                if defaults[season] is not None:
                    row[:] = defaults[season]
                spec = getattr(self.windows.get(season, DayWindows()), day_type)
                paint(row, spec, f"windows.{season}.{day_type}")
                for k, ov in enumerate(self.overrides):
                    if mi + 1 in ov.months and day_type in ov.day_types:
                        paint(row, ov.windows, f"overrides[{k}].windows")
                if (row < 0).any():
                    hole = int(np.argmax(row < 0))
                    raise ValueError(f"windows.{season}.{day_type}: {calendar.month_abbr[mi + 1]} {slot_label(hole)} "
                                     f"is in no window and default_period gives no period for season {season}")
        self._matrix = matrix

        energy = np.full((12, len(names)), np.nan)
        for p, value in self.periods.items():
            season_keys(value, f"periods.{p}", need_all=False)
            pi = index[p]
            for mi in range(12):
                season = self._season_of_month[mi]
                used = bool((matrix[:, mi, :] == pi).any())
                rate = value.get(season) if isinstance(value, dict) else value
                if rate is None:
                    if used:
                        raise ValueError(f"periods.{p}: no rate for season {season} "
                                         f"(the period is used in {calendar.month_abbr[mi + 1]})")
                    continue
                energy[mi, pi] = rate
        self._energy = energy

        if isinstance(self.export_credit, dict):
            for p in self.export_credit:
                period_index(p, "export_credit")
            self._export = np.array([self.export_credit.get(p, 0.0) for p in names], dtype=float)
        else:
            self._export = np.full(len(names), float(self.export_credit))
        on_peak = np.zeros(len(names), dtype=bool)
        for p in self.demand.on_peak_periods:
            on_peak[period_index(p, "demand.on_peak_periods")] = True
        self._on_peak = on_peak
        season_keys(self.demand.max_demand, "demand.max_demand")
        season_keys(self.demand.on_peak_demand, "demand.on_peak_demand")
        self._max_demand = np.array([self._seasonal(self.demand.max_demand, s) for s in self._season_of_month])
        self._on_peak_demand = np.array([self._seasonal(self.demand.on_peak_demand, s)
                                         for s in self._season_of_month])
        if self._on_peak_demand.any() and not on_peak.any():
            raise ValueError("demand.on_peak_periods: an on-peak demand rate needs the periods it applies to")
        return self

    def __eq__(self, other: object) -> bool:
        """Equal when the tariff data is (the compiled numpy lookups follow from it)."""
        return isinstance(other, Tariff) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # mutable containers inside

    @staticmethod
    def _seasonal(value: float | dict[str, float], season: str) -> float:
        return float(value[season]) if isinstance(value, dict) else float(value)

    # --- lookups -----------------------------------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return self._tz

    @property
    def period_names(self) -> list[str]:
        return list(self._period_names)

    @property
    def has_demand_charges(self) -> bool:
        return bool(self._max_demand.any() or self._on_peak_demand.any())

    def period_matrix(self, day_type: DayType, slot_minutes: int = 60) -> np.ndarray:
        """12 x (1440/slot_minutes) period indices into ``period_names``, like URDB's 12x24 schedules.

        Raises TariffError when a window boundary falls inside a slot (e.g. 60-minute rows of a
        tariff with a 16:30 boundary)."""
        if slot_minutes % SLOT_MINUTES or (24 * 60) % slot_minutes:
            raise TariffError(f"slot_minutes must be a multiple of {SLOT_MINUTES} dividing a day, got {slot_minutes}")
        k = slot_minutes // SLOT_MINUTES
        full = self._matrix[DAY_TYPES.index(day_type)].reshape(12, -1, k)
        if (full != full[:, :, :1]).any():
            raise TariffError(f"tariff {self.name}: windows change inside a {slot_minutes}-minute slot")
        return full[:, :, 0].copy()

    def month_rows(self, month: int, day_type: DayType) -> list[tuple[str, str]]:
        """The day's (period, "HH:MM-HH:MM") runs in a month (1-12) for a day type."""
        return row_ranges(self._matrix[DAY_TYPES.index(day_type), month - 1], self._period_names)

    def energy_rate(self, month: int, period: str) -> float:
        return float(self._energy[month - 1, self._period_names.index(period)])

    def max_demand_rate(self, month: int) -> float:
        return float(self._max_demand[month - 1])

    def on_peak_demand_rate(self, month: int) -> float:
        return float(self._on_peak_demand[month - 1])

    def export_rate(self, period: str) -> float:
        return float(self._export[self._period_names.index(period)])

    def is_on_peak_period(self, period: str) -> bool:
        return bool(self._on_peak[self._period_names.index(period)])

    def is_effective(self, d: date) -> bool:
        return self.effective_from <= d and (self.effective_to is None or d <= self.effective_to)

    def is_holiday(self, d: date) -> bool:
        """True on the observed date of a holiday the tariff names (e.g. Fri 2021-12-24 for Christmas)."""
        if isinstance(d, datetime):
            d = d.date()
        if d.year not in self._holiday_years:
            wanted = set(self.holidays)
            cal = holidays_pkg.country_holidays("US", years=d.year, observed=True)
            self._holiday_years[d.year] = frozenset(
                day for day in cal if any(_strip_observed(n) in wanted for n in cal.get_list(day)))
        return d in self._holiday_years[d.year]

    def day_type(self, d: date) -> DayType:
        return "weekend_holiday" if d.weekday() >= 5 or self.is_holiday(d) else "weekday"

    def _local(self, t: datetime) -> datetime:
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"naive datetime {t.isoformat()}: pass an aware datetime (e.g. with tzinfo=UTC)")
        return t.astimezone(self._tz)

    def season_at(self, t: datetime | date) -> str:
        month = self._local(t).month if isinstance(t, datetime) else t.month
        return self._season_of_month[month - 1]

    def period_at(self, t: datetime) -> str:
        """The energy period at an instant, by the tariff-local wall clock and day type."""
        local = self._local(t)
        slot = (local.hour * 60 + local.minute) // SLOT_MINUTES
        di = DAY_TYPES.index(self.day_type(local.date()))
        return self._period_names[int(self._matrix[di, local.month - 1, slot])]

    def _offset_s(self, epoch_s: float) -> float:
        return datetime.fromtimestamp(epoch_s, tz=self._tz).utcoffset().total_seconds()  # type: ignore[union-attr]

    def _utc_offsets(self, epoch: np.ndarray) -> np.ndarray:
        """UTC offset (s) at each instant: evaluated per UTC day, and per quarter hour only on days
        with a transition (offsets and transition instants are whole quarter hours in practice)."""
        quarter = np.floor(epoch / 900).astype(np.int64)
        day = quarter // SLOTS_PER_DAY
        days = np.arange(day[0], day[-1] + 2)
        at_day_start = np.array([self._offset_s(float(d) * 86400) for d in days])
        offsets = at_day_start[day - days[0]]
        for c in np.nonzero(at_day_start[1:] != at_day_start[:-1])[0]:
            on_day = day == days[c]
            cache = {int(q): self._offset_s(float(q) * 900) for q in np.unique(quarter[on_day])}
            offsets[on_day] = [cache[int(q)] for q in quarter[on_day]]
        return offsets

    def local_grid(self, start: datetime, n: int, interval_s: int) -> LocalGrid:
        """Tariff-local fields of n intervals stepping in absolute (UTC) seconds from start.

        A spring-forward day therefore has 92 quarter hours and a fall-back day 100; each interval
        maps by its own local wall clock and day type (weekend or named holiday)."""
        if n < 0 or interval_s <= 0:
            raise ValueError(f"need n >= 0 and interval_s > 0, got n={n}, interval_s={interval_s}")
        t0 = self._local(start)
        if n == 0:
            empty = np.zeros(0)
            return LocalGrid(empty, empty, np.zeros(0, np.int16), np.zeros(0, np.int8), np.array([], "<U7"))
        epoch = t0.timestamp() + np.arange(n, dtype=np.float64) * interval_s
        local_s = epoch + self._utc_offsets(epoch)
        local_day = np.floor(local_s / 86400).astype(np.int64)
        days = local_day.astype("datetime64[D]")
        months = days.astype("datetime64[M]")
        month = (months.astype(np.int64) % 12 + 1).astype(np.int8)
        slot = ((local_s - local_day * 86400) // (SLOT_MINUTES * 60)).astype(np.intp)
        unique_days, inverse = np.unique(local_day, return_inverse=True)
        day_type = np.array([DAY_TYPES.index(self.day_type(d.astype(date)))
                             for d in unique_days.astype("datetime64[D]")], dtype=np.intp)[inverse]
        period = self._matrix[day_type, month.astype(np.intp) - 1, slot]
        return LocalGrid(epoch, local_s, period, month, np.datetime_as_string(months, unit="M"))

    def interval_prices(self, start: datetime, n: int, interval_s: int = 900) -> IntervalPrices:
        """Per-interval energy/export rates, periods and on-peak flags, plus per-month demand rates."""
        grid = self.local_grid(start, n, interval_s)
        period, month = grid.period, grid.month
        max_rate: dict[str, float] = {}
        on_rate: dict[str, float] = {}
        for key in dict.fromkeys(grid.month_key.tolist()):
            m = int(key[5:])
            max_rate[key] = self.max_demand_rate(m)
            on_rate[key] = self.on_peak_demand_rate(m)
        mi = month.astype(np.intp) - 1
        return IntervalPrices(
            start=start,
            interval_s=interval_s,
            energy_rate=self._energy[mi, period] if n else np.zeros(0),
            export_rate=self._export[period] if n else np.zeros(0),
            period=np.array(self._period_names, dtype=object)[period].tolist() if n else [],
            on_peak_demand=self._on_peak[period] if n else np.zeros(0, dtype=bool),
            month_key=grid.month_key,
            season=np.array(self._season_of_month, dtype=object)[mi].tolist() if n else [],
            max_demand_rate=max_rate,
            on_peak_demand_rate=on_rate,
            grid=grid,
        )

    # --- serialisation -----------------------------------------------------------------------
    def to_yaml(self) -> str:
        """The tariff as a YAML file that loads back to an equal tariff."""
        data = self.model_dump(mode="python")
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110, default_flow_style=None)


# --- loading ---------------------------------------------------------------------------------
def _format_errors(exc: ValidationError) -> str:
    problems = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in (_ONE, _BY_KEY))
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (misspelt?)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        problems.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(problems)


def parse_tariff(data: Any, source: str) -> Tariff:
    """Validate a tariff document; TariffError names ``source`` and each bad field."""
    if not isinstance(data, dict):
        raise TariffError(f"tariff {source}: the document must be a mapping of fields, got {type(data).__name__}")
    try:
        return Tariff.model_validate(data)
    except ValidationError as exc:
        raise TariffError(f"tariff {source}: {_format_errors(exc)}") from exc


def shipped_tariffs() -> list[str]:
    """Short names of the tariff files shipped with EnergizeOS ("sdge-al-tou")."""
    return sorted(p.stem.replace("_", "-") for p in SHIPPED_DIR.glob("*.yaml"))


def load_tariff(name_or_path: str | Path) -> Tariff:
    """A shipped tariff by short name ("sdge-al-tou"), a YAML tariff file, or an OpenEI URDB JSON file."""
    path = Path(name_or_path)
    if isinstance(name_or_path, str) and not path.suffix and not path.exists():
        shipped = SHIPPED_DIR / f"{name_or_path.replace('-', '_')}.yaml"
        if not shipped.is_file():
            raise TariffError(f"tariff {name_or_path!r}: no such file and no shipped tariff of that name "
                              f"(shipped: {', '.join(shipped_tariffs())})")
        path = shipped
    if path.suffix.lower() == ".json":
        from energizeos.tariffs.urdb import tariff_from_urdb, urdb_item

        if not path.is_file():
            raise TariffError(f"tariff {path} does not exist")
        try:
            document = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TariffError(f"tariff {path} is not valid JSON: {exc}") from exc
        try:
            return tariff_from_urdb(urdb_item(document))
        except TariffError as exc:
            raise TariffError(f"{path}: {exc}") from exc
    return parse_tariff(read_yaml(path, "tariff", TariffError), str(path))
