"""OpenEI Utility Rate Database (URDB) import: a URDB rate item becomes a Tariff.

URDB describes a rate with anonymous period indices and 12x24 month-by-hour schedules. The import
groups months into seasons (months sharing the same energy periods and demand rates), writes each
season's most common day as its windows and the months that differ as overrides, so the result
reads like a hand-written tariff file and compiles back to exactly the URDB schedules. What the
model cannot express is either said in the tariff's notes (tiers: first tier used) or refused with
a TariffError naming the field (e.g. two different TOU demand charges in one month).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from energizeos.tariffs.model import (
    DAY_TYPES,
    SLOTS_PER_DAY,
    Tariff,
    TariffError,
    month_span_name,
    parse_tariff,
    row_ranges,
)

HOURS = 24
_NOT_MODELLED = {  # field -> what it would have charged; said in the notes when non-empty/non-zero
    "mincharge": "minimum charge",
    "minmonthlycharge": "minimum monthly charge",
    "annualmincharge": "annual minimum charge",
    "demandratchetpercentage": "demand ratchet",
    "lookbackpercent": "demand look-back ratchet",
    "coincidentratestructure": "coincident demand charge",
    "fixedchargeeaaddl": "fixed charge for additional meters",
    "energyattrs": "energy attributes (free-text extra charges)",
    "demandattrs": "demand attributes (free-text extra charges)",
    "fixedattrs": "fixed-charge attributes (free-text extra charges)",
}


def urdb_item(document: Any) -> dict:
    """The rate item of a URDB API answer: a bare item, or ``{"items": [item]}`` with exactly one."""
    if isinstance(document, dict) and "items" in document:
        items = document["items"]
        if not isinstance(items, list) or len(items) != 1:
            count = len(items) if isinstance(items, list) else type(items).__name__
            raise TariffError(f"URDB document: items must hold exactly one rate item, found {count} "
                              "(fetch a single rate by its label)")
        document = items[0]
    if not isinstance(document, dict):
        raise TariffError(f"URDB document: expected a rate item object, got {type(document).__name__}")
    return document


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TariffError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _structure(item: dict, key: str, notes: list[str]) -> list[tuple[float, float]]:
    """Per period (rate + adj of the first tier, sell of the first tier); tiers beyond the first are noted."""
    raw = item.get(key)
    if not isinstance(raw, list) or not raw:
        raise TariffError(f"{key}: expected a non-empty list of periods, got {raw!r}")
    out = []
    tiered = []
    for i, tiers in enumerate(raw):
        if not isinstance(tiers, list) or not tiers or not all(isinstance(t, dict) for t in tiers):
            raise TariffError(f"{key}[{i}]: expected a non-empty list of tier objects, got {tiers!r}")
        first = tiers[0]
        if "rate" not in first and "adj" not in first:
            raise TariffError(f"{key}[{i}][0]: tier has neither rate nor adj")
        rate = _number(first.get("rate", 0.0), f"{key}[{i}][0].rate") + _number(first.get("adj", 0.0),
                                                                               f"{key}[{i}][0].adj")
        sell = _number(first.get("sell", 0.0), f"{key}[{i}][0].sell")
        out.append((round(rate, 10), sell))
        if len(tiers) > 1:
            tiered.append(f"period {i}: {len(tiers)} tiers, first tier {rate:g} up to {first.get('max', '?')}")
    if tiered:
        notes.append(f"WARNING: {key} is tiered; EnergizeOS bills the FIRST tier only ({'; '.join(tiered)}).")
    return out


def _schedule(item: dict, key: str, n_periods: int, of: str) -> list[list[int]]:
    raw = item.get(key)
    if not isinstance(raw, list) or len(raw) != 12:
        raise TariffError(f"{key}: expected 12 month rows of 24 hourly period indices")
    for m, row in enumerate(raw):
        if not isinstance(row, list) or len(row) != HOURS:
            raise TariffError(f"{key}[{m}]: expected 24 hourly period indices, got {row!r}")
        for h, p in enumerate(row):
            if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < n_periods:
                raise TariffError(f"{key}[{m}][{h}]: period {p!r} is not an index into {of} "
                                  f"({n_periods} periods)")
    return raw


def _units(item: dict) -> None:
    for key in ("demandunits", "demandrateunit", "flatdemandunit"):
        unit = item.get(key)
        if unit not in (None, "") and str(unit).lower() != "kw":
            raise TariffError(f"{key}: {unit!r} demand is not supported (EnergizeOS bills kW)")
    window = item.get("demandwindow")
    if window not in (None, "", 0, 15, 15.0):
        raise TariffError(f"demandwindow: {window!r} minutes; EnergizeOS bills demand on 15-minute intervals")


def _utc_date(value: Any, key: str) -> date | None:
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(_number(value, key), tz=UTC).date()


def _period_names(item: dict, n: int) -> list[str]:
    labels = item.get("energytoulabels")
    if isinstance(labels, list) and len(labels) == n:
        names = [re.sub(r"[^a-z0-9]+", "_", str(label).lower()).strip("_") for label in labels]
        if all(names) and len(set(names)) == n:
            return names
    return [f"p{i}" for i in range(n)]


def _fixed_charges(item: dict, notes: list[str]) -> list[dict]:
    amount = item.get("fixedchargefirstmeter")
    unit = item.get("fixedchargeunits") or "$/month"
    if amount in (None, "") and item.get("fixedmonthlycharge") not in (None, ""):
        amount, unit = item["fixedmonthlycharge"], "$/month"  # the field older records use
    if amount in (None, ""):
        return []
    value = _number(amount, "fixedchargefirstmeter")
    if unit not in ("$/month", "$/day"):
        raise TariffError(f"fixedchargeunits: {unit!r} is not supported ($/month or $/day)")
    return [{"name": "fixed charge", "amount": value, "unit": unit}] if value else []


def _demand(item: dict, notes: list[str]) -> tuple[list[float], list[float], list[list[list[bool]]] | None]:
    """Per month: flat (non-coincident) $/kW, TOU $/kW, and per day type the 24 hours that TOU demand charges."""
    flat = [0.0] * 12
    if item.get("flatdemandstructure"):
        structure = _structure(item, "flatdemandstructure", notes)
        months = item.get("flatdemandmonths", [0] * 12)
        if not isinstance(months, list) or len(months) != 12:
            raise TariffError("flatdemandmonths: expected 12 period indices (one per month)")
        for m, p in enumerate(months):
            if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < len(structure):
                raise TariffError(f"flatdemandmonths[{m}]: {p!r} is not an index into flatdemandstructure")
            flat[m] = structure[p][0]
    tou = [0.0] * 12
    if not item.get("demandratestructure"):
        return flat, tou, None
    structure = _structure(item, "demandratestructure", notes)
    schedules = [_schedule(item, f"demand{d}schedule", len(structure), "demandratestructure")
                 for d in ("weekday", "weekend")]
    charged: list[list[list[bool]]] = [[[False] * HOURS for _ in range(12)] for _ in DAY_TYPES]
    for m in range(12):
        rates = {structure[schedules[d][m][h]][0] for d in range(2) for h in range(HOURS)} - {0.0}
        if len(rates) > 1:
            raise TariffError(f"demandratestructure: month {m + 1} has {len(rates)} different TOU demand charges "
                              f"({sorted(rates)} $/kW); EnergizeOS models one on-peak demand charge per month")
        tou[m] = rates.pop() if rates else 0.0
        for d in range(2):
            charged[d][m] = [structure[schedules[d][m][h]][0] > 0 for h in range(HOURS)]
    return flat, tou, charged


def _on_peak_periods(energy: list[list[list[int]]], charged: list[list[list[bool]]] | None,
                     tou: list[float], names: list[str]) -> list[str]:
    """Energy periods whose hours are exactly the TOU-demand-charged hours (the model bills on-peak
    demand on energy periods); a TOU demand window that cuts through an energy period is refused."""
    if charged is None:
        return []
    chosen: set[int] = set()
    seen_uncharged: dict[int, int] = {}
    for m in range(12):
        if not tou[m]:
            continue
        status: dict[int, set[bool]] = {}
        for d in range(2):
            for h in range(HOURS):
                status.setdefault(energy[d][m][h], set()).add(charged[d][m][h])
        for p, flags in status.items():
            if len(flags) > 1:
                raise TariffError(f"demandweekdayschedule/demandweekendschedule: in month {m + 1} the TOU demand "
                                  f"hours cut through energy period {p}; EnergizeOS needs the on-peak demand "
                                  "window to be whole energy periods")
            if True in flags:
                chosen.add(p)
            else:
                seen_uncharged.setdefault(p, m)
    both = chosen & set(seen_uncharged)
    if both:
        p = min(both)
        raise TariffError(f"demandratestructure: energy period {p} is charged for TOU demand in some months but "
                          f"not in month {seen_uncharged[p] + 1}, which also has a TOU demand charge")
    return [names[p] for p in sorted(chosen)]


def _most_common(rows: dict[int, tuple[int, ...]]) -> tuple[int, ...]:
    counts = Counter(rows.values())
    best = max(counts.values())
    return next(row for row in rows.values() if counts[row] == best)  # ties: the earliest month in the season


def _slots(row: tuple[int, ...] | list[int]) -> np.ndarray:
    """A 24-hour URDB row as the model's quarter-hour slots."""
    return np.repeat(np.asarray(row, dtype=np.int16), SLOTS_PER_DAY // HOURS)


def tariff_from_urdb(item: dict, timezone: str = "America/Los_Angeles") -> Tariff:
    """A Tariff from one URDB rate item (API v7/v8 field names); ``timezone`` is the site's (URDB has none)."""
    label = item.get("label") or item.get("name") or "?"
    try:
        return _convert(item, timezone)
    except TariffError as exc:
        raise TariffError(f"URDB item {label!r}: {exc}") from exc


def _convert(item: dict, tz: str) -> Tariff:
    if not isinstance(item, dict):
        raise TariffError(f"expected a rate item object, got {type(item).__name__}")
    for key in ("name", "utility", "energyratestructure", "energyweekdayschedule", "energyweekendschedule"):
        if key not in item:
            raise TariffError(f"{key}: missing (a URDB rate item needs it)")
    notes: list[str] = []
    _units(item)
    energy_structure = _structure(item, "energyratestructure", notes)
    n = len(energy_structure)
    names = _period_names(item, n)
    energy = [_schedule(item, f"energy{d}schedule", n, "energyratestructure") for d in ("weekday", "weekend")]
    flat, tou, charged = _demand(item, notes)
    on_peak_periods = _on_peak_periods(energy, charged, tou, names)

    # seasons: months sharing the same set of energy periods and the same demand rates
    groups: dict[tuple, list[int]] = {}
    for m in range(12):
        used = frozenset(p for d in range(2) for p in energy[d][m])
        groups.setdefault((used, flat[m], tou[m]), []).append(m + 1)
    seasons: dict[str, list[int]] = {}
    for months in groups.values():
        name = month_span_name(months)
        seasons[name if name not in seasons else f"{name}_{len(seasons)}"] = months

    default_period: dict[str, str] = {}
    windows: dict[str, dict[str, dict[str, list[str]]]] = {}
    overrides: list[dict] = []
    for season, months in seasons.items():
        windows[season] = {}
        for d, day_type in enumerate(DAY_TYPES):
            rows = {m: tuple(energy[d][m - 1]) for m in months}
            base = _most_common(rows)
            if d == 0:
                default_period[season] = names[Counter(base).most_common(1)[0][0]]
            spec: dict[str, list[str]] = {}
            for period, rng in row_ranges(_slots(base), names):
                if period != default_period[season]:
                    spec.setdefault(period, []).append(rng)
            windows[season][day_type] = spec
            differing: dict[tuple[int, ...], list[int]] = {}
            for m, row in rows.items():
                if row != base:
                    differing.setdefault(row, []).append(m)
            for row, ov_months in differing.items():
                same = len(names)  # a marker index for hours equal to the base row
                marked = [p if p != b else same for p, b in zip(row, base, strict=True)]
                ov: dict[str, list[str]] = {}
                for period, rng in row_ranges(_slots(marked), [*names, ""]):
                    if period:
                        ov.setdefault(period, []).append(rng)
                overrides.append({"months": ov_months, "day_types": [day_type], "windows": ov,
                                  "note": f"URDB {('weekday', 'weekend')[d]} schedule of these months differs "
                                          f"from the rest of {season}"})

    sells = {names[i]: sell for i, (_, sell) in enumerate(energy_structure)}
    export_credit: float | dict[str, float] = 0.0
    if any(sells.values()):
        export_credit = {p: s for p, s in sells.items() if s}
        notes.append("Export credit from the URDB 'sell' rates; check it applies to this site's export arrangement.")

    for key, what in _NOT_MODELLED.items():
        value = item.get(key)
        if value not in (None, "", 0, 0.0, [], {}) and not (isinstance(value, list) and not any(value)):
            notes.append(f"WARNING: URDB {key} ({what}) is present but not modelled: {value!r}")
    notes.append("URDB has no holiday calendar: holidays bill as weekdays until `holidays:` lists them.")
    label = item.get("label", "")
    notes.insert(0, f"Imported from OpenEI URDB{f' rate {label}' if label else ''}; "
                    "check the rates against the current tariff sheet.")

    start = _utc_date(item.get("startdate"), "startdate")
    if start is None:
        notes.append("URDB startdate missing: effective_from set to 1970-01-01.")
        start = date(1970, 1, 1)
    end = _utc_date(item.get("enddate"), "enddate")
    as_of = _utc_date(item.get("latest_update"), "latest_update") or start
    data = {
        "name": str(item["name"]),
        "utility": str(item["utility"]),
        "source": str(item.get("uri") or item.get("source") or "OpenEI URDB"),
        "notes": notes,
        "effective_from": start,
        "effective_to": end - timedelta(days=1) if end else None,  # URDB enddate: the successor's first day
        "rates_illustrative": False,
        "rates_as_of": as_of,
        "timezone": tz,
        "holidays": [],
        "seasons": seasons,
        "periods": {names[i]: rate for i, (rate, _) in enumerate(energy_structure)},
        "default_period": default_period,
        "windows": windows,
        "overrides": overrides,
        "demand": {
            "max_demand": _by_season(flat, seasons),
            "on_peak_demand": _by_season(tou, seasons),
            "on_peak_periods": on_peak_periods,
        },
        "fixed_charges": _fixed_charges(item, notes),
        "export_credit": export_credit,
    }
    return parse_tariff(data, f"URDB item {label or item['name']!r}")


def _by_season(per_month: list[float], seasons: dict[str, list[int]]) -> float | dict[str, float]:
    values = {s: per_month[months[0] - 1] for s, months in seasons.items()}
    return next(iter(values.values())) if len(set(values.values())) == 1 else values
