"""The month's demand floor: the non-coincident peak the month is likely to end with anyway.

A day-ahead plan knows one day. Left to itself it defends the peak set so far this month (worth the
max-demand rate per kW) on every day, and on a heavy day that costs the energy the evening's on-peak
needed; the next heavy day then lifts the month's peak regardless, and the defence bought nothing. The
floor is the highest non-coincident peak the planner's own day plan would have set on any recent day,
had it known that day's load: the month will most likely see such a day again, so shaving below it
is not worth the energy.

The day plan is the same LP the planner solves (both demand charges, energy), priced as the month being
planned and ending at the SOC it started from, so the floor weighs the on-peak against the max demand the
way this month will, on a day the site could repeat. An earlier floor, the lowest level a full battery
could have held the day under (``holdable_level``, kept as that day's lower bound), spent on the max
demand what the on-peak needed: measured on Hospital, June, the plan ended with max demand 35 kW below
perfect foresight and on-peak demand 219 kW above it. Pure.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from energizeos.planning.day_ahead import INTERVAL_S, PlannerSettings, local_day, tariff_prices
from energizeos.planning.history import LoadHistory
from energizeos.planning.lp import Battery, Problem, solve
from energizeos.tariffs.model import Tariff

MIN_DAY_COVERAGE = 0.9  # a day with fewer measured intervals says too little about its peak
# what each kWh the day ends short of its start SOC costs in the floor's LP: more than any demand charge could
# buy back (a kW more of peak lets at most 24 kWh more into the battery in a day), so the day ends where it
# began. A day that spends the stored energy sets a floor the site cannot repeat: on a Warehouse in January
# such day plans floored the month at 12.6 kW, where days that end as they began set 27 kW (perfect
# foresight: 29.1 kW), and the plan shaved the month's first days to 21 kW with the energy the on-peak needed
SUSTAINED_DAY_VALUE_PER_KWH = 100.0
# window_days 0 (auto) plans the floor over week-long windows when the battery's usable energy is at least this
# fraction of the site's mean daily energy: such a battery carries a weekend's energy into the week. Over 2025
# (7-day windows against day windows) Warehouse (usable energy 1.40-1.69 of a mean day over any 14 days) gained
# $215, MediumOffice (0.29-0.36) $77; on LargeOffice (0.036-0.047) and Hospital (0.030-0.035) the battery moves
# no energy between days, and the windows changed their year by +$180 and -$252 (0.1-0.2 %). 0.15 lies between
# the two groups, near their geometric middle
AUTO_WINDOW_FRACTION = 0.15
AUTO_WINDOW_DAYS = 7


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


def usable_kwh(battery: Battery) -> float:
    """The energy a full battery gives at the AC side over its SOC window (max down to min + reserve)."""
    return battery.kwh(battery.soc_max_pct - battery.floor_pct) * battery.discharge_efficiency


def auto_window_days(history: LoadHistory, battery: Battery) -> tuple[int, str]:
    """(window days, why) for ``window_days`` 0: ``AUTO_WINDOW_DAYS`` when the battery's usable energy (AC) is
    at least ``AUTO_WINDOW_FRACTION`` of the mean daily energy in ``history``, else 1 (each day alone)."""
    measured = history.values[np.isfinite(history.values)]
    usable = usable_kwh(battery)
    if measured.size == 0:
        return 1, "day windows: no measured load to size the battery against"
    daily = float(np.mean(measured)) * 24.0
    share = usable / daily if daily > 0 else float("inf")
    days = AUTO_WINDOW_DAYS if share >= AUTO_WINDOW_FRACTION else 1
    kind = f"{days}-day windows" if days > 1 else "day windows"
    return days, (f"{kind}: the battery's usable {usable:.0f} kWh is {share:.2f} of a mean day's {daily:.0f} kWh "
                  f"(windows from {AUTO_WINDOW_FRACTION:g})")


def priced_as(day: date, month_of: date) -> date:
    """The day whose tariff prices stand in for ``day``'s when the floor is found for ``month_of``'s month:
    ``day`` itself when in that month or later, else the first day of that month on the same weekday."""
    first = month_of.replace(day=1)
    if day >= first:
        return day
    return day + timedelta(days=7 * -(-(first - day).days // 7))


def demand_floor(history: LoadHistory, tariff: Tariff, settings: PlannerSettings, cache: dict | None = None,
                 month_of: date | None = None, window_days: int = 1) -> dict:
    """The highest non-coincident peak the day plan (``settings``: the planner's) sets on the measured load
    of a whole local day in ``history``, with the day that set it and the lower bound a full battery could
    hold that day under: {"kw": ..., "day": date, "days": window_days, "holdable_kw": ...}; {} when no day has
    enough measured intervals. Each day starts at the plan's terminal SOC target (where the planner ends every day) with
    no peak set yet, and ends there (``SUSTAINED_DAY_VALUE_PER_KWH``): a day the site could repeat. Missing
    intervals (at most 10 %) count as the day's mean. ``cache`` (any dict the caller keeps) remembers each
    day's answer at each pricing, so a planner pays one LP per new day, and one more per day of the month
    before when a month begins.

    With ``month_of``, a day of an earlier month is priced as the same weekday in ``month_of``'s month
    (``priced_as``): the floor is what that month's tariff makes the day plan do. Priced at their own
    rates, the last days of May (winter: on-peak demand $5/kW) floored a Hospital's June at 1,324 kW where
    June's rates ($25/kW) make the same loads' day plans set 1,390 kW; the plan defended the lower peak
    with the energy June's on-peak needed.

    With ``window_days`` above 1 each plan spans that many consecutive days (``day`` is the first) and ends
    where it began only at the window's end: a battery large next to its site's load carries the energy
    of light days (a weekend) into heavy ones, which a day plan alone cannot credit. Measured on
    Warehouse, August: day plans floored the month at 31-36 kW, seven-day windows at 28-29.5 kW (perfect
    foresight held 26.6 kW); on the large sites the two differ by less than 1 %. ``window_days`` 0 picks the
    window from the battery's size next to the load (``auto_window_days``), and the answer says why ("window")."""
    if history.interval_s != INTERVAL_S:
        raise ValueError(f"the demand floor needs {INTERVAL_S} s intervals, the history has {history.interval_s} s")
    if window_days < 0:
        raise ValueError(f"the demand floor's window is at least one day (0: chosen from the battery), "
                         f"not {window_days}")
    battery = settings.battery
    why = ""
    if window_days == 0:
        window_days, why = auto_window_days(history, battery)
    soc = settings.terminal_soc_pct if settings.terminal_soc_pct is not None else battery.soc_max_pct
    cache = {} if cache is None else cache
    best: dict = {}
    day = history.start.astimezone(ZoneInfo(settings.tz)).date()
    while True:
        start, n = local_span(day, window_days, settings.tz)
        i0 = round((start - history.start).total_seconds() / INTERVAL_S)
        if i0 + n > history.values.size:
            return best
        values = history.values[i0:i0 + n] if i0 >= 0 else np.empty(0)
        if values.size and np.mean(np.isfinite(values)) >= MIN_DAY_COVERAGE:
            load = np.where(np.isfinite(values), values, np.nanmean(values))
            price_day = priced_as(day, month_of) if month_of is not None else day
            price_start, price_n = local_span(price_day, window_days, settings.tz)
            if price_n != n:  # a DST change on one of the two days: the day's own prices
                price_day, price_start = day, start
            key = (day, window_days, load.tobytes(), price_day)
            if key not in cache:
                result = solve(Problem(
                    load_kw=load, prices=tariff_prices(tariff, price_start, n), battery=battery, soc_start_pct=soc,
                    interval_s=INTERVAL_S, export_limit_kw=settings.export_limit_kw, terminal_soc_pct=soc,
                    terminal_value_per_kwh=SUSTAINED_DAY_VALUE_PER_KWH))
                cache[key] = max(result.peak_kw.values()) if result.ok and result.peak_kw else None
            kw = cache[key]
            if kw is not None and (not best or kw > best["kw"]):
                best = {"kw": kw, "day": day, "days": window_days,
                        "holdable_kw": holdable_level(load, usable_kwh(battery), battery.power_kw, INTERVAL_S)}
                if why:
                    best["window"] = why
        day += timedelta(days=1)


def describe(floor: dict) -> str:
    """What set ``floor`` (a ``demand_floor`` answer), for a log line or a plan's notes."""
    days = floor.get("days", 1)
    why = f" ({floor['window']})" if floor.get("window") else ""
    if days == 1:
        return f"demand floor {floor['kw']:.1f} kW: the peak the day plan sets on {floor['day']}'s load{why}"
    last = floor["day"] + timedelta(days=days - 1)
    return (f"demand floor {floor['kw']:.1f} kW: the peak the {days}-day plan sets on the load of {floor['day']} "
            f"to {last}{why}")


def local_span(day: date, days: int, tz: str) -> tuple[datetime, int]:
    """(UTC start, number of 15-minute intervals) of ``days`` local days from ``day``."""
    start, _ = local_day(day, tz)
    end, _ = local_day(day + timedelta(days=days), tz)
    return start, round((end - start).total_seconds() / INTERVAL_S)


def history_tail(history: LoadHistory, days: int) -> LoadHistory:
    """The last ``days`` days of ``history`` (all of it when shorter)."""
    n = min(history.values.size, days * 86400 // history.interval_s)
    start = history.start + timedelta(seconds=(history.values.size - n) * history.interval_s)
    return LoadHistory(start, history.interval_s, history.values[history.values.size - n:])
