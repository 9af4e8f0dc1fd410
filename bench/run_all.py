"""Run the three benchmarks (each in its own process), print a summary table, write var/bench/results.json.

    .venv/bin/python bench/run_all.py                 # about 1.5 minutes
    .venv/bin/python bench/run_all.py --seconds 5     # shorter latency run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

try:
    from bench import _common as common
except ImportError:  # run as a script: bench/ is on sys.path
    import _common as common

DEFAULT_OUT = common.REPO_ROOT / "var" / "bench" / "results.json"


def run_bench(script: str, args: list[str], timeout: float) -> tuple[dict | None, str | None]:
    """Run bench/<script> with --json into a temp file; its report goes to our stdout."""
    with tempfile.TemporaryDirectory(prefix="energizeos-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(common.BENCH_DIR / script), *args, "--json", str(out)]
        print(f"\n$ {' '.join([Path(cmd[0]).name, *cmd[1:-2]])}", flush=True)
        proc = subprocess.Popen(cmd, cwd=common.REPO_ROOT, stdin=subprocess.DEVNULL)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"{script} did not finish within {timeout:g} s"
        finally:
            common.stop_process(proc)
        if rc != 0 or not out.exists():
            return None, f"{script} exited with {rc}"
        return json.loads(out.read_text()), None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"


def _status(ok: bool | None) -> str:
    return {True: "[green]met[/]", False: "[red]NOT met[/]", None: ""}[ok]


def summary_rows(results: dict) -> list[tuple[str, str, str, bool | None]]:
    """(metric, measured, goal, goal met?) rows."""
    rows: list[tuple[str, str, str, bool | None]] = []
    lat = results.get("latency")
    if lat:
        t = lat["topic"]
        if t.get("count"):
            rows += [
                (f"topic latency median ({lat['serialized_bytes']} B @ {lat['rate_hz']:g} Hz)",
                 _ms(t["median_ms"]), "< 0.5 ms", t["median_ms"] < 0.5),
                ("topic latency p90", _ms(t["p90_ms"]), "", None),
                ("topic latency p99", _ms(t["p99_ms"]), "< 2 ms", t["p99_ms"] < 2.0),
                ("topic latency max", _ms(t["max_ms"]), "", None),
            ]
        rows.append(("topic messages received / published (lost)",
                     f"{t['received']} / {t['published']} ({t['lost']})", "0 lost", t["lost"] == 0))
        labels = {"call": "service RTT Client.call()", "call_async_wakeup": "service RTT call_async+callback"}
        for key, label in labels.items():
            s = lat["service"].get(key, {})
            if s.get("count"):
                rows.append((f"{label} median / p99 (n={s['count']})",
                             f"{_ms(s['median_ms'])} / {_ms(s['p99_ms'])}", "", None))
    sim = results.get("sim_throughput")
    if sim:
        tc, pc = sim["timers"]["callbacks_per_s"], sim["pubsub"]["callbacks_per_s"]
        rows.append((f"SimExecutor timer callbacks/s ({sim['timers']['nodes']} nodes x 10 ms)",
                     f"{tc['median']:,} ({tc['min']:,}-{tc['max']:,})", ">= 200,000", sim["goal"]["met"]))
        rows.append((f"SimExecutor pub+sub callbacks/s ({sim['pubsub']['pairs']} pairs, CDR)",
                     f"{pc['median']:,} ({pc['min']:,}-{pc['max']:,})", "", None))
    rss = results.get("idle_rss")
    if rss:
        node = rss["processes"]["idle node"]
        rows.append(("idle node RSS (USS)", f"{node['rss_mb']:.1f} MB ({node['uss_mb']} MB)", "< 60 MB",
                     rss["goal"]["met"]))
        zen = rss["processes"].get("python -c 'import zenoh'")
        if zen:
            rows.append(("python -c 'import zenoh' RSS (USS)", f"{zen['rss_mb']:.1f} MB ({zen['uss_mb']} MB)",
                         "", None))
    mb = results.get("modbus")
    if mb:
        for device, r in mb["rtt"].items():
            rows.append((f"Modbus poll RTT {device} ({r['requests_per_poll']} req, {r['registers']} regs) median / p99",
                         f"{_ms(r['median_ms'])} / {_ms(r['p99_ms'])}", "p99 <= 10 ms", r["p99_ms"] <= 10.0))
        s = mb["serve_10hz"]
        rows.append(("plant CPU serving 4 devices at 10 Hz (% of one core)",
                     f"{s['plant_cpu_pct_of_one_core']} %", "< 30 %", s["plant_cpu_pct_of_one_core"] < 30.0))
    lat2 = results.get("control_latency")
    if lat2:
        rows.append((f"meter at dispatcher -> PcsCommand out of arbiter median / p99 (n={lat2['samples']})",
                     f"{_ms(lat2['median_ms'])} / {_ms(lat2['p99_ms'])}", "p99 <= 20 ms", lat2["goal"]["met"]))
    day = results.get("sim_day")
    if day:
        for r in day.values():
            rows.append((f"fast-forward, devices polled at {r['poll_hz']:g} Hz: wall s per plant day",
                         f"{r['wall_s_per_plant_day']} s ({r['plant_seconds_per_wall_second']:,}x)", "", None))
    year = results.get("sim_year")
    if year:
        per_day = year["median_wall_s_per_day"]
        rows.append(("whole graph at a 60 s step: wall s per simulated day (365 days)",
                     f"{per_day:.2f} s ({365 * per_day:.0f} s)", "<= 0.33 s (120 s)", 365 * per_day <= 120))
    savings = results.get("savings")
    if savings:
        rows.append(("planned strategy, whole graph + re-plans: wall s per simulated day (365 days)",
                     f"{savings['s_per_sim_day']:.2f} s ({savings['projected_year_s']:.0f} s)", "<= 0.33 s (120 s)",
                     savings["projected_year_s"] <= 120))
        lp = savings["replan_lp"]
        rows.append(("re-plan LP (132 intervals): build + solve", f"median {lp['median_ms']} ms", "", None))
    fc = results.get("forecast")
    if fc:
        for name, r in (fc.get("accuracy", {}).get("profiles") or {}).items():
            rows.append((f"day-ahead forecast {name}: MAPE / peak error", f"{r.get('mape_pct')} % / "
                         f"{r.get('peak_error_pct')} %", "", None))
    hist = results.get("historian")
    if hist:
        for backend in ("sqlite", "postgresql"):
            w, n = hist[backend]["writer"], hist[backend]["node"]
            on_sqlite = backend == "sqlite"
            rows.append((f"historian ingest, {backend}: writer / through the node (rows/s)",
                         f"{w['sustained_rows_per_s']:,} / {n['sustained_rows_per_s']:,}",
                         ">= 50,000" if on_sqlite else "", hist["goal"]["met"] if on_sqlite else None))
    rep = results.get("report")
    if rep:
        rows.append((f"monthly report, {rep['telemetry_rows']:,} rows of 1 s telemetry: figures / with PDF+HTML+CSV",
                     f"{rep['compute_median_s']} s / {rep['with_pdf_html_csv_median_s']} s", f"< {rep['goal_s']:g} s",
                     rep["with_pdf_html_csv_median_s"] < rep["goal_s"]))
    ast = results.get("assistant")
    if ast:
        rows.append(("assistant: hit@3 hybrid (dense / bm25), fact recall, ungrounded answers",
                     f"{ast['hit_at_3']:.3f} ({ast['hit_at_3_dense']:.3f} / {ast['hit_at_3_bm25']:.3f}), "
                     f"{ast['fact_recall']:.3f}, {ast['ungrounded_answers']}", ">= 0.95, >= 0.9, 0",
                     ast["hit_at_3"] >= 0.95 and ast["fact_recall"] >= 0.9 and ast["ungrounded_answers"] == 0))
        rows.append(("assistant answer latency offline p50 / p95", f"{ast['latency_p50_ms']:.0f} ms / "
                     f"{ast['latency_p95_ms']:.0f} ms", "p95 < 1000 ms", ast["latency_p95_ms"] < 1000))
    fleet = results.get("fleet")
    if fleet:
        goal, runs = fleet["scenarios"][0], fleet["scenarios"]
        lag = goal["lag_db_s"]
        rows.append((f"fleet, {goal['sites']} sites x {goal['points']} pts x {goal['hz']:g} Hz: "
                     "pts/s stored, lag med / p99",
                     f"{goal['points_per_s_stored']:,.0f}, {lag['median_s']:.3f} / {goal['lag_worst_p99_s']:.3f} s",
                     ">= 1,000, p99 < 1 s", fleet["goal"]["met"]))
        rows.append(("fleet aggregator CPU (% of one core) / RSS at that load",
                     f"{goal['aggregator']['cpu_pct_of_one_core']} % / {goal['aggregator']['rss_mb_max']} MB", "",
                     None))
        kept = [r for r in runs if r["kept_up"] and r["backend"] == "postgresql"]
        if kept:
            top = max(kept, key=lambda r: r["points_per_s_offered"])
            failed = [r["label"] for r in runs if not r["kept_up"] and r["backend"] == "postgresql"]
            rows.append(("fleet: most pts/s kept up (all stored, lag p99 < 1 s)",
                         f"{top['points_per_s_offered']:,.0f} ({top['sites']} sites x {top['hz']:g} Hz)"
                         + (f"; not {', '.join(failed)}" if failed else ""), "", None))
    ui = results.get("ui")
    if ui:
        m = ui["median_s"]
        rows.append((f"app in chromium, median of {ui['sessions']}: login page / overview values after sign-in",
                     f"{m['login page']} s / {m['overview (after sign-in)']} s", f"< {ui['goal_s']:g} s",
                     ui["met"]))
        others = max(v for k, v in m.items() if k not in ("login page", "overview (after sign-in)"))
        rows.append(("app: slowest other page (median)", f"{others:.2f} s", f"< {ui['goal_s']:g} s", ui["met"]))
    return rows


def print_table(rows: list[tuple[str, str, str, bool | None]], errors: dict[str, str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="EnergizeOS benchmarks")
    table.add_column("metric")
    table.add_column("measured", justify="right")
    table.add_column("goal", justify="right")
    table.add_column("", justify="center")
    for metric, measured, goal, ok in rows:
        table.add_row(metric, measured, goal, _status(ok))
    console = Console()
    if console.width < 110:  # not a terminal (rich assumes 80 columns): keep one line per metric
        console = Console(width=110)
    console.print()
    console.print(table)
    for name, error in errors.items():
        console.print(f"[red]{name} failed:[/] {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="latency: measured seconds (default 20)")
    parser.add_argument("--calls", type=int, default=500,
                        help="latency: service calls per variant (default 500)")
    parser.add_argument("--repeat", type=int, default=5, help="sim throughput: runs per scenario (default 5)")
    parser.add_argument("--idle", type=float, default=3.0, help="idle RSS: seconds idle (default 3)")
    parser.add_argument("--modbus-seconds", type=float, default=20.0,
                        help="modbus: seconds serving all four devices at 10 Hz (default 20)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results JSON (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)

    started = time.monotonic()
    service_budget = 30.0
    benches = {
        "latency": ("bench_latency.py",
                    ["--seconds", str(args.seconds), "--calls", str(args.calls),
                     "--service-budget", str(service_budget)],
                    args.seconds + 2 * service_budget + 60),
        "sim_throughput": ("bench_sim_throughput.py", ["--repeat", str(args.repeat)], 30 + 10 * args.repeat),
        "idle_rss": ("bench_idle_rss.py", ["--idle", str(args.idle)], 60 + 8 * args.idle),
        "modbus": ("bench_modbus.py", ["--seconds", str(args.modbus_seconds)], 120 + args.modbus_seconds),
        "sim_day": ("bench_sim_day.py", ["--hours", "1"], 300),
        "control_latency": ("bench_control_latency.py", ["--seconds", "30"], 180),
        "historian": ("bench_historian.py", ["--rows", "300000"], 300),
        "sim_year": ("bench_sim_year.py", ["--days", "2", "--substep-s", "60"], 300),
        "savings": ("bench_savings.py", ["--days", "2"], 300),
        "forecast": ("bench_forecast.py", ["--skip-db", "--no-variants"], 300),
        "report": ("bench_report.py", ["--repeat", "3"], 600),
        "assistant": ("bench_assistant.py", [], 600),
        "ui": ("bench_ui.py", ["--sessions", "5"], 600),
        "fleet": ("bench_fleet.py", ["--seconds", "30", "--steps", "40x5,100x5"], 600),
    }
    results: dict = {}
    errors: dict[str, str] = {}
    for name, (script, bench_args, timeout) in benches.items():
        result, error = run_bench(script, bench_args, timeout)
        if result is not None:
            results[name] = result
        if error is not None:
            errors[name] = error

    rows = summary_rows(results)
    print_table(rows, errors)
    document = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "wall_s": round(time.monotonic() - started, 1),
        **results,
        "summary": [{"metric": m, "measured": v, "goal": g, "met": ok} for m, v, g, ok in rows],
        "errors": errors,
    }
    common.write_json(str(args.out), document)
    print(f"wrote {args.out} ({document['wall_s']} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
