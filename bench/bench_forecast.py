"""Day-ahead load forecast error on the four shared reference buildings, and the time to aggregate a
month of 1-second telemetry into 15-minute site load.

Accuracy: each profile (NREL REopt CRB, Los Angeles: Hospital, LargeOffice, MediumOffice, Warehouse)
scaled to its annual kWh, laid on 2025 weekday-aligned (a profile Monday on a 2025 Monday, the
profile's own holidays moved with it and given to the forecaster), 15-minute, America/Los_Angeles.
Test days: every day from 1 March to 31 December 2025 (306 days, weekdays, weekends, holidays and
both DST days), each forecast only from the data before its local midnight (and, for the "day-ahead
14:00" column, before 14:00 the day before). A few variants of the method are scored the same way;
so is the simulator's day-of-year mapping (profile weekends on 2025 Tuesdays/Wednesdays).

Aggregation: 30 days x 86,400 s x 2 points (POI meter and PCS power) written to a SQLite file with
SQLAlchemy core executemany, then ``site_load_history`` over the month, checked against numpy.

    .venv/bin/python bench/bench_forecast.py [--profiles-dir ../shared/data/loads] [--db-days 30] [--skip-db]
                                             [--postgres] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import insert

try:
    from bench import _common as common
except ImportError:  # run as a script
    import _common as common

from energizeos.loads import PROFILE_HOLIDAYS, profile_date, scaled_series
from energizeos.planning.forecast import DEFAULT_TZ, day_grid, day_kind, evaluate, federal_holidays
from energizeos.planning.history import BESS_POINT, POI_POINT, site_load_history
from energizeos.records.db import init_db, make_engine
from energizeos.records.models import Telemetry
from energizeos.sim.plant import LOADS_DIR as SIM_LOADS_DIR

# the four shared profiles sit next to the repository (../shared/data/loads), not inside it
LOADS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "loads"
PROFILES = {"hospital": "Hospital", "largeoffice": "LargeOffice", "mediumoffice": "MediumOffice",
            "warehouse": "Warehouse"}
YEAR = 2025
TEST_FROM = date(YEAR, 3, 1)
INTERVAL_S = 900
BATCH_ROWS = 100_000
VARIANTS = {  # name -> forecast_day options (the default first)
    "default": {},
    "no level correction": {"level_gain": 0.0},
    "level gain 0.5": {"level_gain": 0.5},
    "weekday vs weekend only": {"separate_saturday": False},
    "equal weights": {"decay": 1.0},
    "3 similar days": {"n_similar": 3},
    "8 similar days": {"n_similar": 8},
    "blend last week 0.3": {"blend_last_week": 0.3},
}


def year_series(profiles_dir: Path, name: str, annual_kwh: float, align_weekday: bool) -> tuple[np.ndarray, datetime]:
    """15-minute kW from local midnight on 1 January 2025, for 366 days (a margin after the last test day)."""
    start = day_grid(date(YEAR, 1, 1), DEFAULT_TZ, INTERVAL_S)[0]
    path = profiles_dir / f"crb8760_norm_LosAngeles_{name}.dat"
    return scaled_series(path, annual_kwh, start, 366, INTERVAL_S, align_weekday=align_weekday), start


def _scores(result: dict) -> dict:
    return {"mape_pct": round(result["mape_pct"], 2), "peak_error_pct": round(result["peak_error_pct"], 2)}


def accuracy(profiles_dir: Path, variants: bool) -> dict:
    annual = json.loads((profiles_dir / "total_electric_annual_kwh.json").read_text())["LosAngeles"]
    days = [date(YEAR, 1, 1) + timedelta(days=k) for k in range(365)]
    test_days = [d for d in days if d >= TEST_FROM]
    mapped_holidays = {d for d in days if profile_date(d, align_weekday=True) in PROFILE_HOLIDAYS}
    federal = federal_holidays([YEAR - 1, YEAR])
    out: dict = {"test_days": len(test_days), "test_from": TEST_FROM.isoformat(), "interval_s": INTERVAL_S,
                 "holidays_given": sorted(d.isoformat() for d in mapped_holidays), "profiles": {}}
    variant_rows: dict[str, dict] = defaultdict(dict)
    for key, name in PROFILES.items():
        series, start = year_series(profiles_dir, name, annual[key], align_weekday=True)
        t = time.perf_counter()
        result = evaluate(series, start, INTERVAL_S, test_days, holidays=mapped_holidays)
        per_call_ms = (time.perf_counter() - t) / max(1, result["n_days"]) * 1e3
        ahead = evaluate(series, start, INTERVAL_S, test_days, holidays=mapped_holidays, lead_hours=10)
        by_kind: dict[str, list[dict]] = defaultdict(list)
        for d in result["days"]:
            by_kind[day_kind(date.fromisoformat(d["day"]), mapped_holidays)].append(d)
        sim_series, sim_start = year_series(profiles_dir, name, annual[key], align_weekday=False)
        sim = evaluate(sim_series, sim_start, INTERVAL_S, test_days, holidays=federal)
        out["profiles"][key] = {
            "annual_kwh": annual[key],
            "mean_kw": round(float(series.mean()), 1),
            "peak_kw": round(float(series.max()), 1),
            "mape_pct": round(result["mape_pct"], 2),
            "peak_error_kw": round(result["peak_error_kw"], 1),
            "peak_error_pct": round(result["peak_error_pct"], 2),
            "peak_bias_kw": round(result["peak_bias_kw"], 1),
            "worst_day": result["worst_day"],
            "worst_day_mape_pct": round(max(d["mape_pct"] for d in result["days"]), 1),
            "methods": result["methods"],
            "skipped": len(result["skipped"]),
            "by_day_kind": {kind: {"days": len(ds),
                                   "mape_pct": round(float(np.mean([d["mape_pct"] for d in ds])), 2),
                                   "peak_error_pct": round(float(np.mean([abs(d["peak_error_pct"]) for d in ds])),
                                                           2)}
                            for kind, ds in by_kind.items()},
            "day_ahead_1400": _scores(ahead),
            "simulator_mapping": _scores(sim),
            "forecast_ms_per_day": round(per_call_ms, 2),
        }
        if variants:
            for vname, options in VARIANTS.items():
                r = result if not options else evaluate(series, start, INTERVAL_S, test_days,
                                                         holidays=mapped_holidays, **options)
                variant_rows[vname][key] = _scores(r)
    if variants:
        out["variants"] = dict(variant_rows)
    return out


def telemetry_rows(t0: datetime, seconds: int, load_kw: np.ndarray, bess_kw: np.ndarray, gap: range):
    """Batches of row dicts for both points; the BESS rows in ``gap`` are stale (quality 2, no value)."""
    for lo in range(0, seconds, BATCH_ROWS):
        hi = min(seconds, lo + BATCH_ROWS)
        times = [t0 + timedelta(seconds=s) for s in range(lo, hi)]
        poi = (load_kw[lo:hi] - bess_kw[lo:hi]).tolist()
        bess = bess_kw[lo:hi].tolist()
        rows = [{"point": POI_POINT, "time": t, "value": v, "quality": 0} for t, v in zip(times, poi, strict=True)]
        rows += [{"point": BESS_POINT, "time": t, "value": None if lo + i in gap else v,
                  "quality": 2 if lo + i in gap else 0} for i, (t, v) in enumerate(zip(times, bess, strict=True))]
        yield rows


def aggregation(url: str, days: int) -> dict:
    """Write ``days`` of 1-second POI and BESS telemetry, then time the 15-minute site load query."""
    t0 = day_grid(date(YEAR, 7, 1), DEFAULT_TZ, INTERVAL_S)[0]
    seconds = days * 86400
    rng = np.random.default_rng(1)
    coarse, _ = year_series(SIM_LOADS_DIR, "LargeOffice", 6_642_784, align_weekday=True)  # ships with the simulator
    first = int((t0 - day_grid(date(YEAR, 1, 1), DEFAULT_TZ, INTERVAL_S)[0]).total_seconds() // INTERVAL_S)
    load = np.repeat(coarse[first: first + seconds // INTERVAL_S], INTERVAL_S)
    load *= 1 + 0.015 * rng.standard_normal(seconds)  # 1.5 % noise, like the simulated plant's
    bess = np.where((np.arange(seconds) // 3600) % 24 < 12, -250.0, 250.0)  # charge, then discharge
    middle = seconds // 2 // 3600 * 3600
    gap = range(middle, middle + 7200)  # two hours of stale BESS readings
    engine = make_engine(url)
    init_db(engine)
    t = time.perf_counter()
    for rows in telemetry_rows(t0, seconds, load, bess, gap):
        with engine.begin() as conn:
            conn.execute(insert(Telemetry.__table__), rows)
    write_s = time.perf_counter() - t
    timings = []
    for _ in range(3):
        t = time.perf_counter()
        history = site_load_history(engine, t0, t0 + timedelta(seconds=seconds))
        timings.append(time.perf_counter() - t)
    engine.dispose()
    expected = load.reshape(-1, INTERVAL_S).mean(axis=1)
    gap_intervals = np.arange(gap.start // INTERVAL_S, gap.stop // INTERVAL_S)
    expected[gap_intervals] = np.nan
    both = ~np.isnan(expected)
    return {
        "rows": 2 * seconds,
        "write_s": round(write_s, 1),
        "write_rows_per_s": round(2 * seconds / write_s),
        "query_s_first": round(timings[0], 2),
        "query_s_best": round(min(timings), 2),
        "intervals": len(history.values),
        "coverage": round(history.coverage, 4),
        "nan_where_expected": bool(np.array_equal(np.isnan(history.values), ~both)),
        "max_abs_error_kw": float(np.nanmax(np.abs(history.values[both] - expected[both]))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles-dir", type=Path, default=LOADS_DIR)
    parser.add_argument("--db-days", type=int, default=30, help="days of 1-second telemetry for the query timing")
    parser.add_argument("--skip-db", action="store_true", help="accuracy only")
    parser.add_argument("--no-variants", action="store_true", help="skip the method variants")
    parser.add_argument("--postgres", action="store_true", help="also time the query on a scratch PostgreSQL")
    parser.add_argument("--json", default="", help="write the result here")
    args = parser.parse_args(argv)
    if not (args.profiles_dir / "total_electric_annual_kwh.json").is_file():
        parser.error(f"no load profiles in {args.profiles_dir} (total_electric_annual_kwh.json is missing): "
                     "pass --profiles-dir, the folder of the shared crb8760_norm_LosAngeles_*.dat files")

    result: dict = {"accuracy": accuracy(args.profiles_dir, variants=not args.no_variants)}
    acc = result["accuracy"]
    print(f"forecast error, {acc['test_days']} test days from {acc['test_from']} (15-minute, pooled MAPE; "
          f"peak = mean |daily peak error|):")
    print(f"{'profile':13s} {'mean kW':>8s} {'peak kW':>8s} {'MAPE':>7s} {'peak err':>9s} {'peak err':>9s} "
          f"{'14:00 MAPE':>11s} {'sim-map MAPE':>13s} {'ms/day':>7s}")
    for key, p in acc["profiles"].items():
        print(f"{key:13s} {p['mean_kw']:8.1f} {p['peak_kw']:8.1f} {p['mape_pct']:6.2f}% {p['peak_error_kw']:7.1f}kW "
              f"{p['peak_error_pct']:8.2f}% {p['day_ahead_1400']['mape_pct']:10.2f}% "
              f"{p['simulator_mapping']['mape_pct']:12.2f}% {p['forecast_ms_per_day']:7.2f}")
    print("by day kind (MAPE / peak error %):")
    for key, p in acc["profiles"].items():
        print(f"  {key:13s} " + "  ".join(f"{k}: {v['mape_pct']:.2f} / {v['peak_error_pct']:.2f} ({v['days']} d)"
                                          for k, v in p["by_day_kind"].items()))
    if "variants" in acc:
        print("variants (MAPE / peak error %):")
        for vname, row in acc["variants"].items():
            print(f"  {vname:24s} " + "  ".join(f"{k}: {v['mape_pct']:5.2f} / {v['peak_error_pct']:5.2f}"
                                                for k, v in row.items()))
    if not args.skip_db:
        with tempfile.TemporaryDirectory(prefix="energizeos-bench-forecast-") as tmp:
            result["aggregation_sqlite"] = agg = aggregation(f"sqlite:///{Path(tmp) / 'records.db'}", args.db_days)
        print(f"SQLite: {agg['rows']:,} rows written in {agg['write_s']} s ({agg['write_rows_per_s']:,}/s); "
              f"site_load_history over {args.db_days} days: {agg['query_s_first']} s first, {agg['query_s_best']} s "
              f"best of 3; {agg['intervals']} intervals, coverage {agg['coverage']}, gaps right: "
              f"{agg['nan_where_expected']}, max error {agg['max_abs_error_kw']:.2e} kW")
        if args.postgres:
            from energizeos.records.scratch_postgres import ScratchPostgres

            server = ScratchPostgres().start()
            try:
                result["aggregation_postgresql"] = agg = aggregation(server.create_database("bench_forecast"),
                                                                     args.db_days)
            finally:
                server.stop()
            print(f"PostgreSQL: {agg['rows']:,} rows written in {agg['write_s']} s; query {agg['query_s_first']} s "
                  f"first, {agg['query_s_best']} s best of 3; gaps right: {agg['nan_where_expected']}, "
                  f"max error {agg['max_abs_error_kw']:.2e} kW")
    common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
