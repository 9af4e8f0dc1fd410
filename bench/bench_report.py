"""Monthly report generation from a month of 1-second telemetry (goal: < 10 s on this machine).

The records: July 2025 (31 site days) of the points a report reads, one sample per second each — POI
power and the meter's two energy registers, PCS power, BMS SOC and the dispatcher's threshold —
2,678,400 samples per point, 16.1 M telemetry rows, plus the interlock changes and alarms of a
month. The site load follows the shipped LargeOffice profile (noise added); the battery shaves
above 700 kW and recharges at night. Rows go straight into the historian's table (generating them
through the graph would take hours); the report reads them exactly as it reads the historian's.

    .venv/bin/python bench/bench_report.py [--days 31] [--repeat 3] [--keep DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from energizeos.loads import read_profile
from energizeos.records.db import init_db, make_engine
from energizeos.reports.build import build_report
from energizeos.reports.data import BESS_KW, POI_EXPORT_REGISTER, POI_IMPORT_REGISTER, POI_KW, SOC_PCT, THRESHOLD_KW
from energizeos.reports.figures import ReportSettings
from energizeos.reports.render import FORMATS, render
from energizeos.sim.plant import DEFAULT_PROFILE

GOAL_S = 10.0
TZ = ZoneInfo("America/Los_Angeles")
START = datetime(2025, 7, 1, tzinfo=TZ)
THRESHOLD = 800.0


def synthesize(days: int, seed: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(epoch seconds, point -> values) at 1 s."""
    rng = np.random.default_rng(seed)
    t0 = START.timestamp()
    t = t0 + np.arange(days * 86400, dtype=float)
    hourly = read_profile(DEFAULT_PROFILE) * 4_000_000.0  # kWh per hour of a 4 GWh year = kW
    hour_of_year = (t - datetime(2025, 1, 1, tzinfo=TZ).timestamp()) / 3600.0
    load = np.interp(hour_of_year, np.arange(hourly.size), hourly) + rng.normal(0.0, 8.0, t.size)
    local_hour = ((t - t0) / 3600.0) % 24  # July: no DST change inside the month
    bess = np.where(load > THRESHOLD, np.minimum(load - THRESHOLD, 500.0), 0.0)
    bess = np.where((local_hour < 6) & (load < 400), -250.0, bess)
    soc = np.empty_like(bess)
    level = 50.0
    for i in range(0, t.size, 60):  # minute steps: fast enough and plenty for a SOC trace
        chunk = bess[i:i + 60]
        if (level <= 10 and chunk.mean() > 0) or (level >= 95 and chunk.mean() < 0):
            bess[i:i + 60] = 0.0
            chunk = bess[i:i + 60]
        level -= chunk.sum() / 3600.0 / 1000.0 * 100.0
        soc[i:i + 60] = level
    poi = load - bess
    return t, {POI_KW: poi, BESS_KW: bess, SOC_PCT: soc, THRESHOLD_KW: np.full(t.size, THRESHOLD),
               POI_IMPORT_REGISTER: np.cumsum(np.maximum(poi, 0)) / 3600.0,
               POI_EXPORT_REGISTER: np.cumsum(np.maximum(-poi, 0)) / 3600.0}


def write(db: Path, t: np.ndarray, points: dict[str, np.ndarray]) -> int:
    url = f"sqlite:///{db}"
    init_db(make_engine(url))
    stamps = np.datetime_as_string((t * 1e6).astype("datetime64[us]"), unit="us")
    text = [s.replace("T", " ") for s in stamps.tolist()]  # the historian's stored form for SQLite
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    rows = 0
    for point, values in points.items():
        con.executemany("INSERT INTO telemetry (point, time, value, quality) VALUES (?, ?, ?, 0)",
                        zip([point] * len(text), text, values.tolist(), strict=True))
        rows += len(text)
    con.execute("INSERT INTO events (key, time, source, kind, message, data_json) VALUES "
                "('interlock@0', ?, 'safety_arbiter', 'interlock', 'dispatch permitted', ?)",
                (text[0], json.dumps({"dispatch_permitted": True, "permissives": {"bms.permissive": {"ok": True}}})))
    con.commit()
    con.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=31)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", default="", help="keep (and reuse) the generated database in this directory")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="energizeos-bench-report-") as tmp:
        directory = Path(args.keep or tmp)
        directory.mkdir(parents=True, exist_ok=True)
        db = directory / f"report-{args.days}d.db"
        if not db.exists():
            started = time.perf_counter()
            t, points = synthesize(args.days)
            rows = write(db, t, points)
            print(f"wrote {rows:,} telemetry rows in {time.perf_counter() - started:.0f} s "
                  f"({db.stat().st_size / 1e9:.1f} GB)")
        engine = make_engine(f"sqlite:///{db}")
        settings = ReportSettings(site="bench-site")
        compute, total = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            doc = build_report(engine, "monthly", "2025-07", settings, datetime.now(UTC))
            computed = time.perf_counter()
            for fmt in FORMATS:
                render(doc, fmt, directory / f"report.{fmt}")
            compute.append(computed - started)
            total.append(time.perf_counter() - started)
        result = {"days": args.days, "telemetry_rows": int(args.days * 86400 * 6),
                  "compute_median_s": round(statistics.median(compute), 2),
                  "with_pdf_html_csv_median_s": round(statistics.median(total), 2),
                  "runs": [round(x, 2) for x in total], "goal_s": GOAL_S,
                  "poi_import_kwh": round(doc.figures["poi_import_kwh"], 1),
                  "peak_kw_without": round(doc.figures["peak_kw_without"], 1),
                  "peak_kw_with": round(doc.figures["peak_kw_with"], 1)}
        print(json.dumps(result))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
