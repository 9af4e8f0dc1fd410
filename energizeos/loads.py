"""The shared hourly load profiles (NREL REopt CRB, 8,760 values normalised to sum 1) as kW series.

The files are in local standard time on a 2017 calendar (1 January a Sunday, the eight weekday federal
holidays of 2017 with low load, DST already folded into the building schedules). ``scaled_series``
maps a date to a profile day by day of year, the way the simulator (``sim/plant.py``) does, or, with
``align_weekday=True``, to the nearest profile day with the same weekday so weekends stay weekends in
any year (what a forecast benchmark needs).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

HOURS = 8760
PROFILE_YEAR = 2017
# The holidays the CRB schedules keep on the 2017 calendar: the federal holidays on their own dates (found
# in the data: days under 80 % of the median energy of their weekday), not the observed weekdays (2 Jan,
# 10 Nov 2017 are ordinary days). 1 Jan is a Sunday anyway; 11 Nov a Saturday run like a Sunday.
PROFILE_HOLIDAYS = frozenset({
    date(2017, 1, 1), date(2017, 1, 16), date(2017, 2, 20), date(2017, 5, 29), date(2017, 7, 4),
    date(2017, 9, 4), date(2017, 10, 9), date(2017, 11, 11), date(2017, 11, 23), date(2017, 12, 25),
})
_SUM_TOLERANCE = 1e-4


def read_profile(path: str | Path) -> np.ndarray:
    """8,760 hourly shares summing to 1, validated so a truncated or corrupted file fails loudly, naming
    the file and line, instead of silently scaling a wrong year."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load profile {path} does not exist")
    values: list[float] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{path}:{number}: {text[:40]!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{path}:{number}: {text[:40]!r} is not finite")
        if value < 0:
            raise ValueError(f"{path}:{number}: {value} is negative (a load share cannot be)")
        values.append(value)
    if len(values) != HOURS:
        raise ValueError(f"{path}: {len(values)} values, expected {HOURS} hourly values")
    array = np.asarray(values, dtype=float)
    total = float(array.sum())
    if abs(total - 1.0) > _SUM_TOLERANCE:
        raise ValueError(f"{path}: values sum to {total:.6f}, expected 1 (a normalised profile)")
    return array


def profile_day(day: date, align_weekday: bool = False) -> int:
    """Index (0..364) of the profile day used for ``day``.

    Day of year by default (29 February reuses 28 February). ``align_weekday`` moves up to three days
    to the profile day with the same weekday (wrapping by whole weeks at the ends of the year)."""
    ref = date(PROFILE_YEAR, day.month, 28 if (day.month, day.day) == (2, 29) else day.day)
    index = ref.timetuple().tm_yday - 1
    if align_weekday:
        shift = (day.weekday() - ref.weekday()) % 7
        index += shift - 7 if shift > 3 else shift
        if index < 0:
            index += 7
        elif index > 364:
            index -= 7
    return index


def profile_date(day: date, align_weekday: bool = False) -> date:
    """The 2017 calendar date whose profile ``day`` uses (e.g. to tell whether it is a profile holiday)."""
    return date(PROFILE_YEAR, 1, 1) + timedelta(days=profile_day(day, align_weekday))


def scaled_series(path: str | Path, annual_kwh: float, start: datetime, days: int, interval_s: int, *,
                  align_weekday: bool = False, utc_offset_h: float = -8.0) -> np.ndarray:
    """kW at ``interval_s`` from ``start`` (aware) for ``days`` days, the profile scaled to ``annual_kwh``.

    Each hourly value is that hour's mean kW (share x annual kWh). Within the hour the shape is the
    line through the neighbouring hour centres, rescaled so every hour keeps its mean: smooth enough
    for 15-minute peaks, and the energy of every hour (so of the year) is exact. Hours are on the local
    standard-time clock (``utc_offset_h``, Pacific by default) like the simulator's."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(f"start {start.isoformat()} is naive: give an aware datetime")
    if interval_s <= 0 or (3600 % interval_s and interval_s % 3600):
        raise ValueError(f"interval_s {interval_s} must divide 3600 or be a multiple of it")
    shares = read_profile(path)
    local0 = start.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=utc_offset_h)
    offset_s = local0.minute * 60 + local0.second + local0.microsecond / 1e6
    if offset_s % min(interval_s, 3600):
        raise ValueError(f"start {start.isoformat()} is not on the {interval_s} s grid of the local hour")
    n = round(days * 86400 / interval_s)
    hour0 = local0.replace(minute=0, second=0, microsecond=0)
    n_hours = math.ceil((offset_s + n * interval_s) / 3600)
    # one extra hour each side: the interpolation at the edges needs the neighbours
    kw = np.empty(n_hours + 2)
    for h in range(-1, n_hours + 1):
        when = hour0 + timedelta(hours=h)
        kw[h + 1] = shares[profile_day(when.date(), align_weekday) * 24 + when.hour] * annual_kwh
    hourly = kw[1:-1]
    if interval_s >= 3600:
        per = interval_s // 3600
        return hourly[: n * per].reshape(n, per).mean(axis=1)
    sub = 3600 // interval_s
    # exact interval means of the line through the hour centres (x: hours from the centre, -0.5..0.5)
    x0 = np.arange(sub) / sub - 0.5
    x1 = x0 + 1.0 / sub
    neg = (x0**2 - np.minimum(x1, 0.0) ** 2) / 2  # integral of -x over the part left of the centre
    pos = (x1**2 - np.maximum(x0, 0.0) ** 2) / 2  # integral of x over the part right of it
    slope_left = hourly - kw[:-2]  # kW per hour towards the previous hour centre, as x goes negative
    slope_right = kw[2:] - hourly
    fine = hourly[:, None] + (slope_right[:, None] * pos - slope_left[:, None] * neg) * sub
    mean = fine.mean(axis=1, keepdims=True)
    safe = np.where(mean > 0, mean, 1.0)
    fine = np.where(mean > 0, fine * (hourly[:, None] / safe), hourly[:, None])
    first = int(offset_s // interval_s)
    return fine.reshape(-1)[first: first + n].copy()
