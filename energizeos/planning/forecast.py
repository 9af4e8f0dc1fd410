"""Day-ahead site load forecast: similar days, recency weighted, with a level correction.

Days are compared on the local clock (America/Los_Angeles by default), since that is what occupancy
follows: a 15-minute slot is "08:00-08:15 local" on every day. DST days keep their real length (92
or 100 intervals; the repeated hour of a fall-back day is averaged when it serves as history).

Method, tuned with ``bench/bench_forecast.py`` on the four REopt reference buildings (docs/forecast.md):
the recency-weighted mean of the last ``n_similar`` days of the same type (weekday / Saturday /
Sunday or holiday), times a damped level factor (how far the most recent day was above or below what
the same method expected for it). When no similar day exists the mean of the most recent days of any
type is used, and ``notes`` say so; with no usable day at all ``ForecastError`` is raised so the
planner can fall back and say so itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holidays_lib
import numpy as np

from energizeos.planning.history import LoadHistory

DEFAULT_TZ = "America/Los_Angeles"
N_SIMILAR = 5  # similar days averaged
LOOKBACK_DAYS = 56  # 8 weeks: at least 8 Saturdays / Sundays, holidays included
DECAY = 0.8  # weight of the k-th most recent similar day: DECAY ** k
LEVEL_GAIN = 0.25  # share of the most recent day's level deviation carried into the forecast
LEVEL_MAX_AGE_DAYS = 3  # the level comes from a day at most this many days before the forecast day
LEVEL_LIMITS = (0.8, 1.25)  # a level factor outside this is a glitch, not a trend
MIN_DAY_COVERAGE = 0.5  # a history day with less data than this is not used
RECENT_DAYS = 7  # fallback: mean of the most recent days of any type

WEEKDAY, SATURDAY, OFF = "weekday", "Saturday", "Sunday/holiday"


class ForecastError(ValueError):
    """No usable history to forecast from; the caller falls back (and says so)."""


@dataclass
class Forecast:
    """Mean site load (kW) per interval of one local day, from ``start`` (aware UTC, local midnight)."""

    start: datetime
    interval_s: int
    values: np.ndarray = field(repr=False)
    method: str
    notes: list[str] = field(default_factory=list)
    used_days: list[date] = field(default_factory=list)
    day: date | None = None
    tz: str = DEFAULT_TZ

    @property
    def n_intervals(self) -> int:
        """96 on a normal day at 15 minutes, 92 on the spring-forward day, 100 on the fall-back day."""
        return len(self.values)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.interval_s * len(self.values))


@dataclass
class _Day:
    day: date
    kind: str
    profile: np.ndarray  # per local clock slot, NaN where no data
    coverage: float


# --- calendar ------------------------------------------------------------------------------------
@lru_cache(maxsize=8192)
def day_grid(day: date, tz: str, interval_s: int) -> tuple[datetime, np.ndarray]:
    """UTC start of the local ``day`` and the local clock slot (0 .. 86400/interval_s - 1) of each of its
    intervals: 96 slots 0..95 on a normal day, slots 8..11 missing on spring-forward, 4..7 twice on
    fall-back (at 15 minutes in Pacific time)."""
    if interval_s <= 0 or 3600 % interval_s:
        raise ValueError(f"interval_s {interval_s} must divide 3600 (DST moves the clock by an hour)")
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    n = int((end - start).total_seconds()) // interval_s
    slots = np.empty(n, dtype=np.int64)
    for i in range(n):
        local = (start + timedelta(seconds=i * interval_s)).astimezone(zone)
        slots[i] = (local.hour * 3600 + local.minute * 60 + local.second) // interval_s
    slots.setflags(write=False)
    return start, slots


@lru_cache(maxsize=64)
def _federal(years: tuple[int, ...]) -> frozenset[date]:
    return frozenset(holidays_lib.US(years=years).keys())


def federal_holidays(years: Iterable[int]) -> set[date]:
    """US federal holidays (and their observed weekdays) from the ``holidays`` package."""
    return set(_federal(tuple(sorted(set(years)))))


def day_kind(day: date, holidays: set[date] | frozenset[date], separate_saturday: bool = True) -> str:
    """Weekday, Saturday or Sunday/holiday: offices and warehouses run a short Saturday, so a Saturday
    looks like neither a weekday nor a Sunday (``separate_saturday=False``: weekday vs weekend/holiday)."""
    if day in holidays or day.weekday() == 6:
        return OFF
    if day.weekday() == 5:
        return SATURDAY if separate_saturday else OFF
    return WEEKDAY


# --- history ---------------------------------------------------------------------------------------
def _clock_profile(history: LoadHistory, day: date, tz: str) -> np.ndarray:
    """The day's values per local clock slot (the repeated fall-back hour averaged), NaN where missing."""
    interval = history.interval_s
    start, slots = day_grid(day, tz, interval)
    n_slots = 86400 // interval
    offset = (start - history.start).total_seconds() / interval
    i0 = round(offset)
    values = history.values
    lo, hi = max(i0, 0), min(i0 + len(slots), len(values))
    segment = np.full(len(slots), np.nan)
    if hi > lo:
        segment[lo - i0: hi - i0] = values[lo:hi]
    if len(slots) == n_slots:  # no DST change: slot i is interval i
        return segment
    valid = ~np.isnan(segment)
    sums = np.bincount(slots[valid], weights=segment[valid], minlength=n_slots)
    counts = np.bincount(slots[valid], minlength=n_slots)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _history_days(history: LoadHistory, day: date, tz: str, holidays: set[date] | frozenset[date],
                  separate_saturday: bool, lookback_days: int) -> tuple[list[_Day], int]:
    """Usable days before ``day``, most recent first, and how many were skipped for lack of data."""
    days: list[_Day] = []
    skipped = 0
    for k in range(1, lookback_days + 1):
        d = day - timedelta(days=k)
        start, slots = day_grid(d, tz, history.interval_s)
        if start + timedelta(seconds=len(slots) * history.interval_s) <= history.start:
            break
        if start >= history.end:
            continue
        profile = _clock_profile(history, d, tz)
        present = np.unique(slots)
        coverage = float(np.count_nonzero(~np.isnan(profile[present])) / len(present))
        if coverage < MIN_DAY_COVERAGE:
            skipped += 1
            continue
        days.append(_Day(d, day_kind(d, holidays, separate_saturday), profile, coverage))
    return days, skipped


def _weighted_mean(days: list[_Day], decay: float) -> np.ndarray:
    """Per-slot recency-weighted mean; a NaN slot of one day drops out of that slot's weights."""
    stack = np.vstack([d.profile for d in days])
    weights = np.array([decay**k for k in range(len(days))])[:, None] * ~np.isnan(stack)
    total = weights.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.nansum(stack * weights, axis=0) / np.where(total > 0, total, 1), np.nan)


def _similar(days: list[_Day], kind: str, n: int, broad: bool = False) -> list[_Day]:
    if broad:  # Saturday <-> Sunday/holiday: both "not a working day"
        return [d for d in days if (d.kind == WEEKDAY) == (kind == WEEKDAY)][:n]
    return [d for d in days if d.kind == kind][:n]


def _fill_gaps(profile: np.ndarray, fallback: np.ndarray | None) -> tuple[int, int]:
    """Fill NaN slots in place from ``fallback``, the rest by circular linear interpolation between the
    neighbouring slots; how many were filled each way."""
    missing = np.isnan(profile)
    from_fallback = 0
    if missing.any() and fallback is not None:
        usable = missing & ~np.isnan(fallback)
        profile[usable] = fallback[usable]
        from_fallback = int(usable.sum())
        missing = np.isnan(profile)
    interpolated = int(missing.sum())
    if interpolated:
        n = len(profile)
        known = np.flatnonzero(~missing)
        x = np.concatenate([known - n, known, known + n])
        profile[missing] = np.interp(np.flatnonzero(missing), x, np.tile(profile[known], 3))
    return from_fallback, interpolated


# --- forecast ---------------------------------------------------------------------------------------
def forecast_day(history: LoadHistory, day: date, tz: str = DEFAULT_TZ, holidays: set[date] | None = None, *,
                 n_similar: int = N_SIMILAR, lookback_days: int = LOOKBACK_DAYS, decay: float = DECAY,
                 level_gain: float = LEVEL_GAIN, separate_saturday: bool = True,
                 blend_last_week: float = 0.0) -> Forecast:
    """Forecast the mean site load of each interval of the local ``day`` from ``history`` before it.

    ``holidays``: days run like a Sunday; None = US federal holidays. Only history before the local
    midnight that starts ``day`` is used, so the same call works for back-testing. ``blend_last_week``
    mixes in the same weekday a week earlier (0 = off; measured, it did not help on the reference
    buildings)."""
    interval = history.interval_s
    start, slots = day_grid(day, tz, interval)
    if ((start - history.start).total_seconds()) % interval:
        raise ValueError(f"history start {history.start.isoformat()} is not on the {interval} s grid of "
                         f"local midnight {start.isoformat()}")
    if holidays is None:
        holidays = federal_holidays(range(day.year - 1 - lookback_days // 365, day.year + 1))
    kind = day_kind(day, holidays, separate_saturday)
    days, skipped = _history_days(history, day, tz, holidays, separate_saturday, lookback_days)
    notes: list[str] = []
    if len(slots) != 86400 // interval:
        notes.append(f"DST day: {len(slots)} intervals of {interval} s (local clock "
                     f"{'skips' if len(slots) < 86400 // interval else 'repeats'} an hour)")
    if skipped:
        notes.append(f"skipped {skipped} day(s) with less than {MIN_DAY_COVERAGE:.0%} of intervals in history")
    if not days:
        raise ForecastError(
            f"no usable load history for {day.isoformat()}: need at least one day with "
            f"{MIN_DAY_COVERAGE:.0%} of its intervals in the {lookback_days} days before it (history "
            f"{history.start.isoformat()} .. {history.end.isoformat()}, coverage {history.coverage:.1%})")
    recent = days[:RECENT_DAYS]
    recent_mean = _weighted_mean(recent, 1.0)

    similar = _similar(days, kind, n_similar)
    if not similar:
        similar = _similar(days, kind, n_similar, broad=True)
        if similar:
            notes.append(f"no {kind} in the last {lookback_days} days: used the most recent non-working days")
    if similar:
        method = "similar-day"
        if len(similar) < n_similar:
            notes.append(f"only {len(similar)} similar day(s) ({kind}) in the last {lookback_days} days "
                         f"(wanted {n_similar})")
        profile = _weighted_mean(similar, decay)
        used = [d.day for d in similar]
        if blend_last_week > 0:
            week = next((d for d in days if d.day == day - timedelta(days=7) and d.kind == kind), None)
            if week is not None:
                blended = (1 - blend_last_week) * profile + blend_last_week * week.profile
                profile = np.where(np.isnan(week.profile), profile, blended)
                if week.day not in used:
                    used.append(week.day)
        factor = _level_factor(days, day, n_similar, decay, level_gain)
        if factor is not None:
            profile = profile * factor[0]
            notes.append(f"level x{factor[0]:.3f} from {factor[1].isoformat()}")
    else:
        method = "recent-mean"
        profile = recent_mean.copy()
        used = [d.day for d in recent]
        notes.append(f"fell back to the mean profile of the last {len(recent)} usable day(s): "
                     f"no similar day ({kind}) in the last {lookback_days} days")
    profile = profile.copy()
    from_recent, interpolated = _fill_gaps(profile, recent_mean if method != "recent-mean" else None)
    if from_recent:
        notes.append(f"{from_recent} interval(s) had no data in the days used: filled from the last "
                     f"{len(recent)} usable day(s)")
    if interpolated:
        notes.append(f"{interpolated} interval(s) had no data in any recent day: interpolated between neighbours")
    return Forecast(start=start, interval_s=interval, values=profile[slots], method=method, notes=notes,
                    used_days=sorted(used), day=day, tz=tz)


def _level_factor(days: list[_Day], day: date, n_similar: int, decay: float,
                  gain: float) -> tuple[float, date] | None:
    """Damped ratio of the most recent day's mean to what the similar-day mean expected for it: a hot
    spell or a slow week carries into tomorrow, partly. None when the latest day is older than
    ``LEVEL_MAX_AGE_DAYS`` (its level says little about tomorrow) or has nothing to compare with."""
    if gain <= 0 or not days or (day - days[0].day).days > LEVEL_MAX_AGE_DAYS:
        return None
    last = days[0]
    expected_from = _similar(days[1:], last.kind, n_similar)
    if not expected_from:
        return None
    expected = _weighted_mean(expected_from, decay)
    both = ~np.isnan(last.profile) & ~np.isnan(expected)
    if not both.any():
        return None
    denominator = float(expected[both].mean())
    if denominator <= 0:
        return None
    ratio = float(last.profile[both].mean()) / denominator
    lo, hi = LEVEL_LIMITS
    return min(hi, max(lo, 1.0 + gain * (ratio - 1.0))), last.day


# --- evaluation -------------------------------------------------------------------------------------
def evaluate(series_kw: np.ndarray, start: datetime, interval_s: int, test_days: list[date], tz: str = DEFAULT_TZ,
             *, holidays: set[date] | None = None, lead_hours: float = 0.0, **options) -> dict:
    """Back-test: forecast each test day from the data before it only and compare with the series.

    ``lead_hours``: also hide that much data before the day's midnight (a plan made at 14:00 the day
    before has ``lead_hours=10``). MAPE is pooled over all test intervals (intervals whose actual is
    missing or zero are left out and counted); the daily peak error is forecast peak minus actual peak.
    ``options`` go to ``forecast_day``."""
    series = np.asarray(series_kw, dtype=float)
    if start.tzinfo is None:
        raise ValueError("evaluate needs an aware start")
    start = start.astimezone(UTC)
    abs_pct: list[np.ndarray] = []
    per_day: list[dict] = []
    skipped: list[dict] = []
    methods: dict[str, int] = {}
    excluded = 0
    for day in test_days:
        day_start, slots = day_grid(day, tz, interval_s)
        i0 = (day_start - start).total_seconds() / interval_s
        if i0 != int(i0) or i0 < 0 or i0 + len(slots) > len(series):
            skipped.append({"day": day.isoformat(), "reason": "not inside the series on its interval grid"})
            continue
        i0 = int(i0)
        cut = max(0, i0 - math.ceil(lead_hours * 3600 / interval_s))
        actual = series[i0: i0 + len(slots)]
        if np.isnan(actual).all():
            skipped.append({"day": day.isoformat(), "reason": "no actual data"})
            continue
        try:
            fc = forecast_day(LoadHistory(start, interval_s, series[:cut]), day, tz, holidays, **options)
        except ForecastError as exc:
            skipped.append({"day": day.isoformat(), "reason": str(exc)})
            continue
        methods[fc.method] = methods.get(fc.method, 0) + 1
        ok = ~np.isnan(actual) & (np.abs(actual) > 1e-9)
        excluded += int(len(actual) - ok.sum())
        pct = np.abs(fc.values[ok] - actual[ok]) / np.abs(actual[ok]) * 100
        abs_pct.append(pct)
        actual_peak, forecast_peak = float(np.nanmax(actual)), float(fc.values.max())
        per_day.append({
            "day": day.isoformat(), "intervals": len(slots), "method": fc.method, "notes": fc.notes,
            "mape_pct": float(pct.mean()) if len(pct) else float("nan"),
            "actual_peak_kw": actual_peak, "forecast_peak_kw": forecast_peak,
            "peak_error_kw": forecast_peak - actual_peak,
            "peak_error_pct": (forecast_peak - actual_peak) / actual_peak * 100 if actual_peak > 0 else float("nan"),
        })
    pooled = np.concatenate(abs_pct) if abs_pct else np.array([])
    peak_kw = np.array([d["peak_error_kw"] for d in per_day])
    peak_pct = np.array([d["peak_error_pct"] for d in per_day])
    return {
        "n_days": len(per_day),
        "n_intervals": len(pooled),
        "excluded_intervals": excluded,
        "mape_pct": float(pooled.mean()) if len(pooled) else float("nan"),
        "peak_error_kw": float(np.abs(peak_kw).mean()) if len(peak_kw) else float("nan"),
        "peak_error_pct": float(np.nanmean(np.abs(peak_pct))) if len(peak_pct) else float("nan"),
        "peak_bias_kw": float(peak_kw.mean()) if len(peak_kw) else float("nan"),
        "worst_day": max(per_day, key=lambda d: d["mape_pct"])["day"] if per_day else None,
        "methods": methods,
        "skipped": skipped,
        "days": per_day,
    }
