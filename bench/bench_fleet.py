"""Sustained telemetry from simulated sites into one fleet aggregator, source time to committed row.

Issue #11's load figure: ≥ 10 sites x 20 points x 5 Hz (1000 points/s) with < 1 s end-to-end lag.

- The aggregator is ``energizeos remote serve --config F`` in its own process: a Zenoh router on
  tls/127.0.0.1:<free port> with mutual TLS, user/password and the access-control list, writing the
  fleet tables into a real PostgreSQL (ScratchPostgres(durable=True): fsync and synchronous commit on).
- The sites are real ``EdgeLink``s (own outbox file, own Zenoh client session, own user and client
  certificate) spread over ``--site-procs`` processes. Each site adds one telemetry record of
  ``--points`` rows per tick at ``--hz`` (the body the uplink node sends), pumps, and publishes its
  status every second. Sites tick at evenly spread phases, as independent sites would.
- Lag, three ways: the aggregator's own ``Stats`` (clock after commit - newest record of the batch);
  the database (``fleet_records.received - time`` for every record; ``received`` is stamped as the
  writer takes the batch, just before its transaction); and the edge (arrival of the ack that covers
  a record - its source time: commit and the ack's way back included, an upper bound). The goal is
  judged on the worst p99 of the three.
- At the end the database is checked against what the sites sent: per site, fleet_records has
  exactly seq 1..N and fleet_telemetry exactly N x points rows (nothing lost, nothing twice).

A scenario "kept up" when every record was stored exactly once, the stored rate (over the window,
or until the last commit if that came later) is >= 98 % of the offered one, and the worst lag p99 is
under 1 s; the goal is the first scenario keeping up at >= 1000 points/s. After it, ``--steps``
(default ``40x5,100x5,150x5``: sites x Hz) go past it to find where the lag starts to grow (compare the median
lag of the first and the last fifth of the run), each with a fresh database and aggregator.
``--sqlite`` repeats the goal scenario with the aggregator on a SQLite file. The table also gives
the sites' own lateness (their ticks are late when the machine is saturated: the simulated sites
then limit the run, not the aggregator) and how busy the whole machine was (it may be shared).

    .venv/bin/python bench/bench_fleet.py [--seconds 60] [--steps 40x5,100x5,150x5] [--sqlite] [--json out.json]
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

try:
    from bench import _common as common
except ImportError:  # run as a script
    import _common as common

GOAL_SITES, GOAL_POINTS, GOAL_HZ = 10, 20, 5.0
GOAL_POINTS_PER_S = GOAL_SITES * GOAL_POINTS * GOAL_HZ
GOAL_LAG_P99_S = 1.0
TOPIC = "/bench/site/telemetry"
LISTENING = "fleet aggregator listening"


# --- site processes ------------------------------------------------------------------------------
def run_sites(plan_path: Path) -> None:
    """Child role: this process's share of the sites; READY once every link is up, RESULT at the end."""
    from energizeos.remote import protocol
    from energizeos.remote.config import TlsFiles, UplinkSettings
    from energizeos.remote.edge_link import EdgeLink

    plan = json.loads(plan_path.read_text())
    hz, points, seconds = plan["hz"], plan["points"], plan["seconds"]
    period_ns = int(1e9 / hz)
    links: list[EdgeLink] = []
    acks: list[list[tuple[int, bytes]]] = []
    for s in plan["sites"]:
        settings = UplinkSettings(
            site_id=s["site_id"], endpoint=plan["endpoint"], user=s["user"], password_file=Path(s["password_file"]),
            tls=TlsFiles(ca=Path(plan["ca"]), cert=Path(s["cert"]), key=Path(s["key"])))
        link = EdgeLink(settings, Path(s["outbox"]))
        heard: list[tuple[int, bytes]] = []
        # A second subscriber on the site's ack key, in the same session, stamps each ack as it
        # arrives (the link's own queue is only drained at the next pump, up to one tick later).
        link.session.declare_subscriber(protocol.key(link.site, "ack"),
                                        lambda sample, heard=heard: heard.append((time.time_ns(),
                                                                                  sample.payload.to_bytes())))
        links.append(link)
        acks.append(heard)

    deadline = time.monotonic() + 60
    while not all(link.forwarder.link_up for link in links):
        if time.monotonic() > deadline:
            down = [link.site for link in links if not link.forwarder.link_up]
            raise SystemExit(f"link(s) not up within 60 s: {', '.join(down)}")
        for link in links:
            link.pump(time.time_ns())
        time.sleep(0.05)
    common.emit(common.READY)

    go_file = Path(plan["go_file"])
    while not go_file.exists():
        time.sleep(0.01)
    start_ns = int(float(go_file.read_text()) * 1e9)
    ticks = round(seconds * hz)
    total = plan["total_sites"]
    # (due time, index in this process, tick number): sites spread evenly over the period
    due: list[tuple[int, int, int]] = [(start_ns + s["index"] * period_ns // total, i, 0)
                                       for i, s in enumerate(plan["sites"])]
    heapq.heapify(due)
    source_ns: list[list[int]] = [[] for _ in links]
    late_ms: list[float] = []
    cpu0 = time.process_time()
    while due:
        when, i, k = heapq.heappop(due)
        wait = (when - time.time_ns()) / 1e9
        if wait > 0:
            time.sleep(wait)
        link = links[i]
        t = time.time_ns()
        late_ms.append((t - when) / 1e6)
        link.add("telemetry", t, {"topic": TOPIC, "rows": [
            {"point": f"{TOPIC}/v{p:02d}", "time_ns": t, "value": round(20.0 + p + (k % 50) * 0.01, 3),
             "quality": 0} for p in range(points)]})
        source_ns[i].append(t)
        link.pump(t)
        if k % max(1, round(hz)) == 0:
            link.publish_status(t)
        if k + 1 < ticks:
            heapq.heappush(due, (when + period_ns, i, k + 1))
    window_cpu_s = time.process_time() - cpu0

    # Drain: keep pumping until the aggregator has acknowledged every record (or give up).
    drain_started = time.monotonic()
    while any(link.outbox.acked < link.outbox.head for link in links):
        if time.monotonic() - drain_started > plan["drain_s"]:
            break
        for link in links:
            link.pump(time.time_ns())
        time.sleep(0.02)
    drain_s = time.monotonic() - drain_started

    sites: dict[str, Any] = {}
    for link, heard, sent in zip(links, acks, source_ns, strict=True):
        sites[link.site] = {"records": len(sent), "rows": len(sent) * points, "head": link.outbox.head,
                            "acked": link.outbox.acked, "epoch": link.outbox.epoch,
                            "sent_records": link.forwarder.sent_records, "rewinds": link.forwarder.rewinds,
                            "bad_acks": link.bad_acks,
                            "ack_lag_us": ack_lags_us(sent, heard, link.outbox.epoch)}
    for link in links:
        link.close()
    late = sorted(late_ms)
    common.emit(common.RESULT, {"sites": sites, "window_cpu_s": round(window_cpu_s, 3), "drain_s": round(drain_s, 3),
                                "tick_late_ms": {"median": round(statistics.median(late), 3),
                                                 "p99": round(common.percentile(late, 99), 3),
                                                 "max": round(late[-1], 3)}})


def ack_lags_us(source_ns: list[int], heard: list[tuple[int, bytes]], epoch: str) -> list[int]:
    """Per record (seq = index + 1): first arrival of an ack covering it - its source time, in µs."""
    from energizeos.remote import protocol

    covered: list[tuple[int, int]] = []  # (arrival ns, have), have only rising
    for arrival, payload in sorted(heard):
        try:
            ack = protocol.decode_ack(payload)
        except protocol.ProtocolError:
            continue
        if ack.epoch == epoch and (not covered or ack.have > covered[-1][1]):
            covered.append((arrival, ack.have))
    out, j = [], 0
    for seq, t in enumerate(source_ns, 1):
        while j < len(covered) and covered[j][1] < seq:
            j += 1
        if j == len(covered):
            break  # never acknowledged: the count check reports it
        out.append((covered[j][0] - t) // 1000)
    return out


# --- the orchestrator ----------------------------------------------------------------------------
@dataclass
class Fleet:
    """The CA, the router's certificate and one user, password and client certificate per site."""

    root: Path
    ca: Any = None
    server: Any = None
    users: dict[str, tuple[str, Any, Path]] = field(default_factory=dict)  # site -> (password, cert, pw file)

    def ensure(self, sites: list[str]) -> None:
        from energizeos.remote import certs

        if self.ca is None:
            self.ca = certs.make_ca(self.root / "pki")
            self.server = certs.issue_server(self.ca, self.root / "pki", ["localhost", "127.0.0.1"])
        for site in sites:
            if site not in self.users:
                password = secrets.token_hex(12)
                pw_file = self.root / "pki" / f"{site}.password"
                pw_file.write_text(password + "\n")
                self.users[site] = (password, certs.issue_client(self.ca, self.root / "pki", site), pw_file)


def site_ids(n: int) -> list[str]:
    return [f"site-{i:03d}" for i in range(n)]


def server_file(fleet: Fleet, folder: Path, port: int, sites: list[str], db_url: str) -> Path:
    """The aggregator's fleet file, as an owner would write it (a viewer party too, as in production)."""
    import yaml

    creds = folder / "credentials"
    creds.write_text("".join(f"{s}:{fleet.users[s][0]}\n" for s in sites) + f"viewer:{secrets.token_hex(12)}\n")
    os.chmod(creds, 0o600)
    doc = {"listen": [f"tls/127.0.0.1:{port}"],
           "tls": {"ca": str(fleet.ca.cert), "cert": str(fleet.server.cert), "key": str(fleet.server.key)},
           "credentials_file": str(creds),
           "parties": [{"user": s, "role": "site", "sites": [s]} for s in sites]
           + [{"user": "viewer", "role": "viewer", "sites": ["*"]}],
           "db_url": db_url, "site_names": {s: f"Bench {s}" for s in sites}}
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Sampler(threading.Thread):
    """Samples the aggregator's RSS and inbox backlog (from its stats file) every half second."""

    def __init__(self, proc: psutil.Process, stats_file: Path) -> None:
        super().__init__(daemon=True)
        self.proc, self.stats_file = proc, stats_file
        self.stop = threading.Event()
        self.rss_max = 0
        self.backlog_max = 0

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                self.rss_max = max(self.rss_max, self.proc.memory_info().rss)
                self.backlog_max = max(self.backlog_max, json.loads(self.stats_file.read_text()).get("inbox", 0))
            except (OSError, ValueError, psutil.Error):
                pass


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def _tree_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of a process and each of its children (PostgreSQL: the postmaster and its backends)."""
    out: dict[int, float] = {}
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                out[p.pid] = _cpu_s(p)
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return out


def _lag_stats(values_s: list[float]) -> dict[str, float | int]:
    v = sorted(values_s)
    if not v:
        return {"count": 0}
    return {"count": len(v), "median_s": round(statistics.median(v), 4), "p99_s": round(common.percentile(v, 99), 4),
            "max_s": round(v[-1], 4)}


def check_database(db_url: str, sent: dict[str, dict], points: int) -> dict[str, Any]:
    """What the central database holds per site against what each site sent, and the lag per record."""
    from sqlalchemy import func
    from sqlmodel import Session, select

    from energizeos.records.db import make_engine
    from energizeos.records.models import FleetRecord, FleetSite, FleetTelemetry

    engine = make_engine(db_url)
    with Session(engine) as session:
        records = {site: (n, lo, hi, distinct) for site, n, lo, hi, distinct in session.exec(
            select(FleetRecord.site_id, func.count(), func.min(FleetRecord.seq), func.max(FleetRecord.seq),
                   func.count(func.distinct(FleetRecord.seq))).group_by(FleetRecord.site_id))}
        telemetry = {site: n for site, n in session.exec(
            select(FleetTelemetry.site_id, func.count()).group_by(FleetTelemetry.site_id))}
        have = {s.site_id: (s.epoch, s.have_seq) for s in session.exec(select(FleetSite))}
        times = session.exec(select(FleetRecord.site_id, FleetRecord.time, FleetRecord.received)).all()
    engine.dispose()
    problems = []
    for site, s in sent.items():
        n, lo, hi, distinct = records.get(site, (0, None, None, 0))
        if (n, lo, hi, distinct) != (s["records"], 1, s["records"], s["records"]):
            problems.append(f"{site}: fleet_records {n} rows, seq {lo}..{hi} ({distinct} distinct); "
                            f"sent {s['records']}")
        if telemetry.get(site, 0) != s["records"] * points:
            problems.append(f"{site}: fleet_telemetry {telemetry.get(site, 0)} rows; sent {s['records'] * points}")
        if have.get(site) != (s["epoch"], s["records"]):
            problems.append(f"{site}: fleet_sites epoch/have_seq {have.get(site)}; edge {s['epoch']}/{s['records']}")
    extra = sorted(set(records) - set(sent))
    if extra:
        problems.append(f"records for unknown site(s) {extra}")
    lags = [(received - when).total_seconds() for _site, when, received in times]
    return {"records": sum(r[0] for r in records.values()), "telemetry_rows": sum(telemetry.values()),
            "exact": not problems, "problems": problems[:10], "lag": _lag_stats(lags),
            "last_received": max((r for _s, _w, r in times), default=None), "_lags": lags, "_times": times}


def run_scenario(fleet: Fleet, work: Path, label: str, n_sites: int, hz: float, points: int, seconds: float,
                 site_procs: int, db_url: str, backend: str, pg_pid: int | None = None) -> dict[str, Any]:
    """One run: a fresh aggregator on ``db_url`` (an empty database) and ``n_sites`` sites for ``seconds``."""
    folder = work / label
    folder.mkdir(parents=True)
    sites = site_ids(n_sites)
    fleet.ensure(sites)
    port = common.free_loopback_port()
    config = server_file(fleet, folder, port, sites, db_url)
    stats_file = folder / "stats.json"
    go_file = folder / "go"
    drain_s = max(30.0, seconds)
    env = {"ENERGIZEOS_HOME": str(folder / "home")}
    with common.children() as started:
        aggregator = common.Child(f"aggregator-{label}", [
            "-m", "energizeos.cli.main", "remote", "serve", "--config", str(config), "--stats-every", "0",
            "--stats-file", str(stats_file)], env=env)
        started.append(aggregator)
        aggregator.wait_line(LISTENING, timeout=60)
        procs = max(1, min(site_procs or max(2, -(-n_sites // 20)), n_sites))
        shares = [sites[i::procs] for i in range(procs)]
        site_children = []
        for j, share in enumerate(shares):
            plan = {"endpoint": f"tls/127.0.0.1:{port}", "ca": str(fleet.ca.cert), "hz": hz, "points": points,
                    "seconds": seconds, "go_file": str(go_file), "total_sites": n_sites, "drain_s": drain_s,
                    "sites": [{"site_id": s, "index": sites.index(s), "user": s,
                               "password_file": str(fleet.users[s][2]), "cert": str(fleet.users[s][1].cert),
                               "key": str(fleet.users[s][1].key), "outbox": str(folder / f"outbox-{s}.db")}
                              for s in share]}
            plan_path = folder / f"plan-{j}.json"
            plan_path.write_text(json.dumps(plan))
            child = common.Child(f"sites-{label}-{j}",
                                 [str(Path(__file__).resolve()), "--role", "sites", "--plan", str(plan_path)], env=env)
            started.append(child)
            site_children.append(child)
        for child in site_children:
            child.wait_ready(timeout=90)

        agg_proc = psutil.Process(aggregator.pid)
        sampler = Sampler(agg_proc, stats_file)
        sampler.start()
        go = time.time() + 0.5
        load_before = os.getloadavg()[0]
        psutil.cpu_percent()  # starts the machine-wide busy measure (the machine may be shared)
        agg_cpu0, pg_cpu0 = _cpu_s(agg_proc), _tree_cpu_s(pg_pid) if pg_pid else {}
        go_file.with_suffix(".tmp").write_text(repr(go))
        go_file.with_suffix(".tmp").replace(go_file)  # whole, or not there: the sites poll for it
        time.sleep(max(0.0, go + seconds - time.time()))
        wall = time.time() - go
        agg_cpu, pg_cpu1 = _cpu_s(agg_proc) - agg_cpu0, _tree_cpu_s(pg_pid) if pg_pid else {}
        machine_busy = psutil.cpu_percent()
        results = [child.wait_result(timeout=drain_s + 60) for child in site_children]
        sampler.stop.set()
        sampler.join()
        rss_end = agg_proc.memory_info().rss
        aggregator.stop(timeout=15)  # SIGTERM: the serve loop stops and writes its final counters
        agg_stats = json.loads(stats_file.read_text())

    sent = {site: s for r in results for site, s in r["sites"].items()}
    db = check_database(db_url, sent, points)
    records_sent = sum(s["records"] for s in sent.values())
    # Stored rate over the window, or until the last record was stored if that came later (a backlog).
    last = db["last_received"].timestamp() if db["last_received"] else go
    stored_span = max(wall, last - go)
    ack_lags = [us / 1e6 for s in sent.values() for us in s["ack_lag_us"]]
    # Lag trend: median of the first and the last fifth of the run, by source time (growth = overload).
    timed = sorted((when, lag) for (_s, when, _r), lag in zip(db["_times"], db["_lags"], strict=True))
    fifth = max(1, len(timed) // 5)
    trend = (round(statistics.median(x[1] for x in timed[:fifth]), 4) if timed else 0.0,
             round(statistics.median(x[1] for x in timed[-fifth:]), 4) if timed else 0.0)
    pg_used = sum(v - pg_cpu0.get(pid, 0.0) for pid, v in pg_cpu1.items())
    lag_p99s = [db["lag"].get("p99_s", 0.0), _lag_stats(ack_lags).get("p99_s", 0.0), agg_stats["lag_p99_s"]]
    offered_pts = n_sites * points * hz
    result = {
        "label": label, "backend": backend, "sites": n_sites, "points": points, "hz": hz, "seconds": seconds,
        "site_procs": procs,
        "points_per_s_offered": offered_pts,
        "points_per_s_sent": round(records_sent * points / wall, 1),
        "points_per_s_stored": round(db["telemetry_rows"] / stored_span, 1),
        "records_per_s_stored": round(db["records"] / stored_span, 1),
        "records_sent": records_sent, "records_stored": db["records"], "telemetry_rows_stored": db["telemetry_rows"],
        "exact": db["exact"], "problems": db["problems"],
        "lag_db_s": db["lag"], "lag_ack_s": _lag_stats(ack_lags),
        "lag_aggregator_s": {"median_s": agg_stats["lag_median_s"], "p99_s": agg_stats["lag_p99_s"]},
        "lag_worst_p99_s": max(lag_p99s),
        "lag_db_median_first_last_fifth_s": list(trend),
        "aggregator": {"cpu_pct_of_one_core": round(100 * agg_cpu / wall, 1),
                       "rss_mb_max": round(max(sampler.rss_max, rss_end) / 2**20, 1),
                       "inbox_backlog_max": sampler.backlog_max, "batches": agg_stats["batches"],
                       "duplicates": agg_stats["duplicates"], "refused_gap": agg_stats["refused_gap"],
                       "rejected": agg_stats["rejected"], "db_errors": agg_stats["db_errors"]},
        "postgres_cpu_pct_of_one_core": round(100 * pg_used / wall, 1) if pg_pid else None,
        "sites_cpu_pct_of_one_core": round(100 * sum(r["window_cpu_s"] for r in results) / wall, 1),
        "site_tick_late_ms_max": max(r["tick_late_ms"]["max"] for r in results),
        "site_tick_late_ms_p99": max(r["tick_late_ms"]["p99"] for r in results),
        "resent_records": sum(s["sent_records"] for s in sent.values()) - records_sent,
        "drain_s": max(r["drain_s"] for r in results),
        # this bench's processes and anything else running: on a shared machine the rest is noise
        "machine_busy_pct_of_all_cores": machine_busy, "loadavg_1min_before": round(load_before, 2),
    }
    result["kept_up"] = bool(result["exact"] and result["points_per_s_stored"] >= 0.98 * offered_pts
                              and result["lag_worst_p99_s"] < GOAL_LAG_P99_S)
    return result


def parse_steps(text: str) -> list[tuple[int, float]]:
    """``20x5,40x5`` -> [(20, 5.0), (40, 5.0)] (sites x Hz)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        sites, _, hz = part.partition("x")
        out.append((int(sites), float(hz or GOAL_HZ)))
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'scenario':24s} {'pts/s offered':>13s} {'pts/s stored':>12s} {'rec/s':>7s} {'exact':>5s} "
            f"{'lag db med/p99/max s':>22s} {'ack p99':>8s} {'agg p99':>8s} {'first→last':>12s} "
            f"{'agg CPU%':>8s} {'RSS MB':>6s} {'pg CPU%':>7s} {'sites CPU%':>10s} {'late p99':>8s} {'busy%':>5s} "
            f"{'kept up':>7s}")
    print(head)
    for r in rows:
        d = r["lag_db_s"]
        pg = "-" if r["postgres_cpu_pct_of_one_core"] is None else f"{r['postgres_cpu_pct_of_one_core']:.0f}"
        print(f"{r['label']:24s} {r['points_per_s_offered']:>13,.0f} {r['points_per_s_stored']:>12,.0f} "
              f"{r['records_per_s_stored']:>7,.0f} {'yes' if r['exact'] else 'NO':>5s} "
              f"{d.get('median_s', 0):>7.3f}/{d.get('p99_s', 0):.3f}/{d.get('max_s', 0):.3f} "
              f"{r['lag_ack_s'].get('p99_s', 0):>8.3f} {r['lag_aggregator_s']['p99_s']:>8.3f} "
              f"{r['lag_db_median_first_last_fifth_s'][0]:>5.3f}→{r['lag_db_median_first_last_fifth_s'][1]:<6.3f} "
              f"{r['aggregator']['cpu_pct_of_one_core']:>8.0f} {r['aggregator']['rss_mb_max']:>6.0f} {pg:>7s} "
              f"{r['sites_cpu_pct_of_one_core']:>10.0f} {r['site_tick_late_ms_p99']:>6.0f}ms "
              f"{r['machine_busy_pct_of_all_cores']:>5.0f} {'yes' if r['kept_up'] else 'NO':>7s}")
        for problem in r["problems"]:
            print(f"    {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["main", "sites"], default="main")
    parser.add_argument("--plan", type=Path, help="sites role: the plan file the orchestrator wrote")
    parser.add_argument("--sites", type=int, default=GOAL_SITES)
    parser.add_argument("--points", type=int, default=GOAL_POINTS, help="points per telemetry record")
    parser.add_argument("--hz", type=float, default=GOAL_HZ)
    parser.add_argument("--seconds", type=float, default=60.0, help="sustained seconds per scenario")
    parser.add_argument("--site-procs", type=int, default=0,
                        help="processes the sites are spread over (default: one per 20 sites, at least 2)")
    parser.add_argument("--steps", default="40x5,100x5,150x5", help="scenarios past the goal, sites x Hz ('' for none)")
    parser.add_argument("--sqlite", action="store_true", help="also run the goal scenario on SQLite")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.role == "sites":
        run_sites(args.plan)
        return 0

    from energizeos.records.scratch_postgres import ScratchPostgres

    rows: list[dict[str, Any]] = []
    errors: dict[str, str] = {}

    def attempt(label: str, *scenario: Any) -> None:
        print(f"running {label} for {args.seconds:g} s ...", flush=True)
        try:
            rows.append(run_scenario(fleet, work, label, *scenario))
        except Exception as exc:  # one failed scenario is reported; the others still run
            errors[label] = f"{type(exc).__name__}: {exc}"
            print(f"{label} failed: {errors[label]}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        work = Path(tmp)
        fleet = Fleet(work)
        with ScratchPostgres(durable=True) as pg:
            for i, (n, hz) in enumerate([(args.sites, args.hz), *parse_steps(args.steps)]):
                label = f"pg-{n}x{args.points}x{hz:g}Hz"
                label += f"-{i}" if any(r["label"] == label for r in rows) or label in errors else ""
                url = pg.create_database(label.replace("-", "_").replace(".", "_").lower())
                attempt(label, n, hz, args.points, args.seconds, args.site_procs, url, "postgresql",
                        pg.proc.pid if pg.proc else None)
        if args.sqlite:
            label = f"sqlite-{args.sites}x{args.points}x{args.hz:g}Hz"
            attempt(label, args.sites, args.hz, args.points, args.seconds, args.site_procs,
                    f"sqlite:///{work}/{label}.db", "sqlite")
    print_table(rows)
    goal = rows[0] if rows and rows[0]["backend"] == "postgresql" and rows[0]["sites"] == args.sites else None
    met = bool(goal and goal["kept_up"] and goal["points_per_s_offered"] >= GOAL_POINTS_PER_S)
    print(f"RESULT goal ({GOAL_POINTS_PER_S:,.0f} points/s stored, lag p99 < {GOAL_LAG_P99_S:g} s, nothing lost or "
          f"doubled) on PostgreSQL: {'met' if met else 'NOT met'}")
    for label, error in errors.items():
        print(f"{label} failed: {error}")
    result = {"goal": {"points_per_s": GOAL_POINTS_PER_S, "lag_p99_s": GOAL_LAG_P99_S, "met": met},
              "cpus": os.cpu_count(), "scenarios": rows, "errors": errors}
    common.write_json(args.json, result)
    return 0 if rows and not errors and all(r["exact"] for r in rows) else 1

if __name__ == "__main__":
    sys.exit(main())
