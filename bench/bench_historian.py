"""Historian ingest rate into SQLite (WAL, a file) and into a real PostgreSQL server on loopback.

Two measures per backend:
- writer: batches of telemetry rows (20,000 each) through RecordWriter (idempotent insert, one
  transaction per batch) — the database side alone;
- node: BMS status messages (16 racks, 95 points each) published on the SimExecutor to the
  historian node, CDR encode/decode and row building included, flushed every simulated second.

    .venv/bin/python bench/bench_historian.py [--rows 300000] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

try:
    from bench import _common as common
except ImportError:  # run as a script
    import _common as common

from energizeos.records.db import init_db, make_engine
from energizeos.records.scratch_postgres import ScratchPostgres
from energizeos.records.writer import Batch, RecordWriter

GOAL_ROWS_PER_S = 50_000
BATCH_ROWS = 20_000
T0 = 1_795_600_000_000_000_000


def writer_rate(url: str, total_rows: int) -> dict:
    engine = make_engine(url)
    init_db(engine)
    writer = RecordWriter(engine, actor="bench")
    per_batch: list[float] = []
    points = [f"/bess/bms/status/rack_temp_max_c[{i}]" for i in range(100)]
    started = time.perf_counter()
    for b in range(total_rows // BATCH_ROWS):
        batch = Batch(f"bench:{b}")
        base = T0 + b * 10**9
        batch.rows["telemetry"] = [{"point": points[i % 100], "time_ns": base + (i // 100) * 1_000_000,
                                    "value": 25.0 + (i % 7) * 0.1, "quality": 0} for i in range(BATCH_ROWS)]
        t = time.perf_counter()
        writer.write(batch)
        per_batch.append(BATCH_ROWS / (time.perf_counter() - t))
    wall = time.perf_counter() - started
    engine.dispose()
    return {"rows": len(per_batch) * BATCH_ROWS, "median_rows_per_s": round(statistics.median(per_batch)),
            "sustained_rows_per_s": round(len(per_batch) * BATCH_ROWS / wall)}


def node_rate(url: str, total_rows: int, spool: Path) -> dict:
    from energizeos.nodes.historian import Historian
    from energizeos.runtime import Node, SimExecutor, Time
    from energizeos_msgs.msg import BmsStatus, Header

    racks = 16
    points_per_msg = 15 + 5 * racks
    ex = SimExecutor(T0)
    hist = Historian(executor=ex, parameter_overrides={"db_url": url, "spool_dir": str(spool),
                                                       "max_batch_rows": 100_000})
    probe = Node("bench_probe", executor=ex)
    pub = probe.create_publisher(BmsStatus, "/bess/bms/status", 1000)
    msgs_per_tick = 50
    sent = 0

    def tick() -> None:
        nonlocal sent
        for _ in range(msgs_per_tick):
            sent += 1
            stamp = Time(T0 + sent * 1_000).to_msg()  # distinct stamps, 1 µs apart
            pub.publish(BmsStatus(header=Header(stamp=stamp), source="bms", soc_pct=50.0,
                                  rack_soc_pct=[50.0] * racks, rack_temp_max_c=[30.0 + sent % 5] * racks,
                                  rack_cell_voltage_max_v=[3.4] * racks, rack_cell_voltage_min_v=[3.3] * racks,
                                  rack_connected=[True] * racks))

    probe.create_timer(0.1, tick)
    hist.flush()  # create the schema before timing
    init_db(hist.engine)
    target_msgs = total_rows // points_per_msg
    started = time.perf_counter()
    while sent < target_msgs:
        ex.spin_until(ex.clock.nanoseconds + 10**9)
    hist.flush()
    wall = time.perf_counter() - started
    rows = sent * points_per_msg
    assert hist.rows_written == rows and len(hist.spool) == 0, "bench run lost rows or spooled"
    ex.shutdown()
    return {"rows": rows, "sustained_rows_per_s": round(rows / wall), "points_per_message": points_per_msg}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results: dict = {"goal_rows_per_s": GOAL_ROWS_PER_S}
    with tempfile.TemporaryDirectory(prefix="bench-historian-") as tmp:
        results["sqlite"] = {"writer": writer_rate(f"sqlite:///{tmp}/w.db", args.rows),
                             "node": node_rate(f"sqlite:///{tmp}/n.db", args.rows, Path(tmp) / "spool1")}
        with ScratchPostgres(durable=True) as pg:  # default fsync and synchronous commit
            results["postgresql"] = {"writer": writer_rate(pg.create_database("w"), args.rows),
                                     "node": node_rate(pg.create_database("n"), args.rows, Path(tmp) / "spool2")}
    for backend in ("sqlite", "postgresql"):
        w, n = results[backend]["writer"], results[backend]["node"]
        print(f"{backend:10s} writer: median {w['median_rows_per_s']:>9,} rows/s per batch, sustained "
              f"{w['sustained_rows_per_s']:>9,} rows/s ({w['rows']:,} rows); node (CDR + rows + write): "
              f"{n['sustained_rows_per_s']:>9,} rows/s")
    sqlite_rates = (results["sqlite"][m]["sustained_rows_per_s"] for m in ("writer", "node"))
    results["goal"] = {"met": min(sqlite_rates) >= GOAL_ROWS_PER_S}
    common.write_json(args.json, results)


if __name__ == "__main__":
    main()
