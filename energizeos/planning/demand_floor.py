"""The month's demand floor: the non-coincident peak the month is likely to end with anyway.

A day-ahead plan knows one day. Left to itself it defends the peak set so far this month (worth the
max-demand rate per kW) on every day, and on a heavy day that costs the energy the evening's on-peak
needed; the next heavy day then lifts the month's peak regardless, and the defence bought nothing. The
floor is the highest level a full battery could have held the load under on any recent day: the
month will most likely see such a day again, so shaving below it is not worth the energy. Pure.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from energizeos.planning.history import LoadHistory
from energizeos.planning.lp import Battery

MIN_DAY_COVERAGE = 0.9  # a day with fewer measured intervals says too little about its peak


def holdable_level(load_kw: np.ndarray, energy_kwh: float, power_kw: float, interval_s: int) -> float:
    """The lowest POI import a battery with ``energy_kwh`` to give (AC) and ``power_kw`` of PCS could
    hold ``load_kw`` under: the level where the energy above it equals the energy, or the peak less
    the PCS rating when power binds first."""
    load = np.asarray(load_kw, dtype=float)
    load = load[np.isfinite(load)]
    if load.size == 0:
        raise ValueError("no measured interval to find a level in")
    dt = interval_s / 3600.0
    top = np.sort(load)[::-1]
    # energy above level top[j] when the j highest intervals are above it: dt * (sum(top[:j]) - j * top[j])
    above = dt * (np.cumsum(top) - np.arange(1, top.size + 1) * top)
    j = int(np.searchsorted(above, energy_kwh, side="right"))  # intervals above the level
    if j >= top.size:
        level = (float(np.sum(top)) * dt - energy_kwh) / (top.size * dt)  # the whole day above it
    else:
        level = (float(np.sum(top[:j])) * dt - energy_kwh) / (j * dt)
    return max(level, float(top[0]) - power_kw, 0.0)


def demand_floor(history: LoadHistory, battery: Battery, tz: str) -> dict:
    """The highest holdable level over the whole local days in ``history`` and the day that set it
    ({"kw": ..., "day": date}); {} when no day has enough measured intervals. Each day starts with
    the battery full (the night refills it)."""
    per_day = 86400 // history.interval_s
    usable_kwh = battery.kwh(battery.soc_max_pct - battery.floor_pct) * battery.discharge_efficiency
    zone = ZoneInfo(tz)
    day = history.start.astimezone(zone).date()
    best: dict = {}
    while True:
        start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
        i0 = round((start - history.start).total_seconds() / history.interval_s)
        if i0 + per_day > history.values.size:
            return best
        values = history.values[i0:i0 + per_day] if i0 >= 0 else np.empty(0)
        if values.size and np.mean(np.isfinite(values)) >= MIN_DAY_COVERAGE:
            level = holdable_level(values, usable_kwh, battery.power_kw, history.interval_s)
            if not best or level > best["kw"]:
                best = {"kw": level, "day": day}
        day += timedelta(days=1)


def history_tail(history: LoadHistory, days: int) -> LoadHistory:
    """The last ``days`` days of ``history`` (all of it when shorter)."""
    n = min(history.values.size, days * 86400 // history.interval_s)
    start = history.start + timedelta(seconds=(history.values.size - n) * history.interval_s)
    return LoadHistory(start, history.interval_s, history.values[history.values.size - n:])
