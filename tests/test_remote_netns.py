"""Two hosts on one machine: an edge site and the fleet aggregator in their own network namespaces.

The test makes the namespaces itself, joins them with a veth pair and gives the two ends addresses
from 198.18.0.0/15 (reserved for network benchmarks; they exist only inside these namespaces). The
edge runs the whole simulated site (`energizeos launch sim_site`, its own Zenoh router on the edge's
own loopback) with an uplink to the aggregator (`energizeos remote serve`, mutual TLS, passwords,
ACL) writing into a real PostgreSQL reached through its Unix socket. Under live traffic the veth is
brought down for a while, then up again. Then:
- the aggregator holds exactly the edge outbox's records 1..N, same bodies, nothing twice;
- the edge's control ran on through the outage (arbiter decisions and meter samples without a gap);
- a party with a wrong password is refused, and a party whose ACL does not cover site-a hears nothing
  of it and cannot forge its records, while an authorised party on the same host hears it;
- the granted operator's alarm request crosses both hosts to the launched site's alarm manager and is
  answered; the viewer's is never heard.
If namespaces cannot be made here (not root, no CAP_NET_ADMIN), this file skips and says why.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session

from energizeos.records.db import init_db, make_engine
from energizeos.records.types import utc_from_ns
from energizeos.remote import certs
from energizeos.remote.fleet_queries import OFFLINE, ONLINE, fleet_overview
from tests.conftest import ENERGIZEOS, REPO, Proc

pytestmark = pytest.mark.integration
OUTAGE_S = 12.0  # several Zenoh leases (3 s): the edge sees the link die and keeps recording


class Namespaces:
    """Two namespaces joined by a veth pair, 198.18.a.b/30 on each end; removed at the end."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.edge, self.remote = f"eos-e-{tag}", f"eos-r-{tag}"
        self.veth_edge, self.veth_remote = f"ve{tag}", f"vr{tag}"  # interface names: 15 characters at most
        third, fourth = secrets.randbelow(256), 4 * secrets.randbelow(64)
        self.edge_ip, self.remote_ip = f"198.18.{third}.{fourth + 1}", f"198.18.{third}.{fourth + 2}"

    @staticmethod
    def ip(*args: str) -> None:
        done = subprocess.run(["ip", *args], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")

    def create(self) -> None:
        self.ip("netns", "add", self.edge)
        self.ip("netns", "add", self.remote)
        self.ip("link", "add", self.veth_edge, "type", "veth", "peer", "name", self.veth_remote)
        for ns, dev, addr in ((self.edge, self.veth_edge, self.edge_ip), (self.remote, self.veth_remote,
                                                                          self.remote_ip)):
            self.ip("link", "set", dev, "netns", ns)
            self.ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            self.ip("-n", ns, "link", "set", "lo", "up")
            self.ip("-n", ns, "link", "set", dev, "up")

    def set_link(self, up: bool) -> None:
        self.ip("-n", self.edge, "link", "set", self.veth_edge, "up" if up else "down")

    def delete(self) -> None:
        for ns in (self.edge, self.remote):  # the veth pair goes with its namespaces
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def run_in(self, ns: str, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *cmd]


@pytest.fixture
def namespaces():
    if shutil.which("ip") is None:
        pytest.skip("network namespaces: the `ip` command (iproute2) is not installed")
    net = Namespaces()
    try:
        net.create()
    except RuntimeError as exc:
        net.delete()
        pytest.skip(f"network namespaces cannot be created here: {exc}")
    yield net
    net.delete()


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENERGIZEOS_ZENOH")}
    return {**env, "ENERGIZEOS_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def fleet_files(root: Path, net: Namespaces, db_url: str) -> dict[str, Path]:
    pki = root / "pki"
    ca = certs.make_ca(pki)
    certs.issue_server(ca, pki, [net.remote_ip])
    users = {"edge-a": "site", "owner": "viewer", "noc": "operator"}
    for user in users:
        certs.issue_client(ca, pki, user)
    (pki / "credentials").write_text("".join(f"{u}:pw-{u}-{secrets.token_hex(8)}\n" for u in users))
    passwords = dict(line.split(":", 1) for line in (pki / "credentials").read_text().split())
    (root / "edge-a.password").write_text(passwords["edge-a"] + "\n")
    fleet = root / "fleet.yaml"
    fleet.write_text(
        f"listen: [tls/{net.remote_ip}:7450]\n"
        f"tls: {{ca: pki/ca.pem, cert: pki/server.pem, key: pki/server.key}}\n"
        "credentials_file: pki/credentials\n"
        f"db_url: '{db_url}'\n"
        "site_names: {site-a: Plant A}\n"
        "parties:\n"
        "  - {user: edge-a, role: site, sites: [site-a]}\n"
        "  - {user: owner, role: viewer, sites: [site-b]}\n"
        "  - {user: noc, role: operator, sites: ['*']}\n")
    site = root / "site.yaml"
    site.write_text(
        "site: site-a\nems:\n  safety:\n    es_delay_s: 5\n    es_ramp_s: 5\nsimulation:\n  step_hz: 10\n"
        "remote:\n  site_id: site-a\n"
        f"  endpoint: tls/{net.remote_ip}:7450\n"
        "  user: edge-a\n  password_file: edge-a.password\n"
        "  tls: {ca: pki/ca.pem, cert: pki/client-edge-a.pem, key: pki/client-edge-a.key}\n"
        "  telemetry_period_s: 0.2\n  resend_after_s: 2.0\n"
        "  grants:\n    - {party: noc, as_user: remote-noc, actions: [acknowledge]}\n")
    return {"fleet": fleet, "site": site, "pki": pki}


def fleet_have(engine) -> int:
    with Session(engine) as session:
        row = session.execute(text("SELECT have_seq FROM fleet_sites WHERE site_id = 'site-a'")).first()
        return int(row[0]) if row else 0


def outbox_rows(path: Path) -> list[tuple[int, str, int, str]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT seq, kind, time_ns, body FROM records ORDER BY seq").fetchall()


def outbox_head(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        return int(row[0]) if row else 0


def wait_for(condition, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, f"{what}: not within {timeout_s} s"
        time.sleep(0.25)


def test_an_edge_and_the_aggregator_on_two_hosts_survive_a_cut_link(namespaces, postgres, tmp_path):
    net = namespaces
    db_name = f"fleet_netns_{os.getpid()}_{secrets.token_hex(3)}"
    postgres.create_database(db_name)
    files = fleet_files(tmp_path, net, postgres.socket_url(db_name))
    central = make_engine(postgres.url(db_name))  # the test reads it from the host side
    init_db(central)
    edge_home = tmp_path / "edge-home"
    outbox = edge_home / "remote" / "outbox.db"
    procs: list[Proc] = []
    ui_port = 8501  # inside the remote namespace: its own loopback, nothing else listens there
    try:
        aggregator = Proc(net.run_in(net.remote, ENERGIZEOS, "remote", "serve", "--config", str(files["fleet"]),
                                     "--stats-every", "0", "--ui-port", str(ui_port)),
                          env=child_env(tmp_path / "remote-home"))
        procs.append(aggregator)
        aggregator.wait_for_line("fleet aggregator listening", timeout=30)
        aggregator.wait_for_line("password:  ", timeout=60)  # the fleet view's first start: its admin
        # the local account the site lets the fleet's NOC act as (remote.grants), made as an integrator would
        added = subprocess.run([ENERGIZEOS, "users", "add", "remote-noc", "--role", "operator", "--organisation",
                                "fleet NOC"], capture_output=True, text=True, timeout=60, env=child_env(edge_home))
        assert added.returncode == 0, added.stdout + added.stderr
        edge = Proc(net.run_in(net.edge, ENERGIZEOS, "launch", "sim_site", f"site_config:={files['site']}",
                               "ui:=false"), env=child_env(edge_home))
        procs.append(edge)
        edge.wait_for_line("remote link up", timeout=90)
        wait_for(lambda: fleet_have(central) > 100, 30, "live records at the aggregator")

        # --- parties on the edge's host: wrong password; an ACL that does not cover site-a ---
        probe = subprocess.run(net.run_in(net.edge, sys.executable, str(REPO / "tests" / "remote_party_probe.py"),
                                          str(files["pki"]), f"tls/{net.remote_ip}:7450"),
                               capture_output=True, text=True, timeout=60, env=child_env(tmp_path / "probe"))
        assert probe.returncode == 0, probe.stderr[-2000:]
        seen = json.loads(probe.stdout.strip().splitlines()[-1])
        assert seen["wrong_password"].startswith("refused"), seen
        assert seen["heard_site_a_batches"]["noc"] > 0, seen  # authorised: hears site-a live
        assert seen["heard_site_a_batches"]["owner"] == 0, seen  # site-a is not in its ACL
        # the NOC's request went through the router to the launched site's alarm manager and back: the
        # account passed the role check, and there is no alarm 1 to acknowledge
        assert seen["noc_request"] == {"ok": False, "message": "alarm 1 is not active (nothing to acknowledge)"}, seen
        assert seen["owner_request"] is None, seen  # a viewer's request never reaches the site

        # --- the fleet view: served on the aggregator's host; its figures come from what the link delivered ---
        health = subprocess.run(net.run_in(net.remote, sys.executable, "-c", "import urllib.request; print(urllib"
                                           f".request.urlopen('http://127.0.0.1:{ui_port}/_stcore/health').read())"),
                                capture_output=True, text=True, timeout=30)
        assert health.stdout.strip() == "b'ok'", health.stdout + health.stderr
        live = fleet_overview(central, datetime.now(UTC), offline_after_s=10.0)
        assert [(s.site_id, s.status) for s in live] == [("site-a", ONLINE)]
        assert live[0].import_kwh is not None and live[0].soc_pct is not None and live[0].lag_s < 5.0

        # --- cut the link under live traffic, then restore it ---
        mark = len(edge.lines)
        net.set_link(False)
        cut_ns = time.time_ns()
        edge.wait_for_line("remote link down", timeout=15, after=mark)
        have_during = fleet_have(central)
        time.sleep(OUTAGE_S)
        assert fleet_have(central) == have_during  # nothing crosses a link that is down
        assert fleet_overview(central, datetime.now(UTC), offline_after_s=10.0)[0].status == OFFLINE
        head_at_restore = outbox_head(outbox)
        assert head_at_restore > have_during + 50  # the edge kept recording for the aggregator
        net.set_link(True)
        restore_ns = time.time_ns()
        edge.wait_for_line("remote link up", timeout=30, after=mark)
        wait_for(lambda: fleet_have(central) >= head_at_restore, 60, "catch-up after the link came back")
        caught_up_s = (time.time_ns() - restore_ns) / 1e9

        # --- kill -9 the uplink: launch respawns it; it resumes from its outbox, nothing doubled ---
        started = re.compile(r"\[launch\] started uplink pid=(\d+)$")
        pids = [int(m.group(1)) for line in edge.lines if (m := started.match(line))]
        mark = len(edge.lines)
        os.kill(pids[-1], signal.SIGKILL)  # a child of our own launch, by its PID
        edge.wait_for_line("started uplink pid=", timeout=15, after=mark)
        edge.wait_for_line("remote link up", timeout=30, after=mark)
        have_after_kill = fleet_have(central)
        wait_for(lambda: fleet_have(central) > have_after_kill + 20, 30, "records flowing after the uplink's respawn")

        # --- stop the edge; send what its last seconds left in the outbox; compare both sides ---
        assert edge.stop(timeout=60) == 0
        flushed = subprocess.run(net.run_in(net.edge, ENERGIZEOS, "remote", "flush", "--site-config",
                                            str(files["site"]), "--timeout", "60"),
                                 capture_output=True, text=True, timeout=90, env=child_env(edge_home))
        assert flushed.returncode == 0, flushed.stdout + flushed.stderr
        edge_side = outbox_rows(outbox)
        with Session(central) as session:
            central_side = session.execute(text(
                "SELECT seq, kind, time, body FROM fleet_records WHERE site_id = 'site-a' ORDER BY seq")).all()
            forged = session.execute(text("SELECT count(*) FROM fleet_records WHERE epoch = 'forged'")).scalar()
        n = len(edge_side)
        assert [r[0] for r in edge_side] == list(range(1, n + 1))  # (retention is days: nothing pruned)
        assert [r[0] for r in central_side] == list(range(1, n + 1))  # exactly 1..N: nothing lost or doubled
        assert [(r[1], json.loads(r[3])) for r in edge_side] == [(r[1], json.loads(r[3])) for r in central_side]
        assert [r[2] for r in central_side] == [utc_from_ns(r[2]) for r in edge_side]
        assert forged == 0
        in_outage = [r for r in edge_side if cut_ns <= r[2] <= restore_ns]
        assert len(in_outage) > 50  # recorded during the outage, delivered after it

        # --- the edge's control ran on through the outage (its own historian's records) ---
        local = sqlite3.connect(f"file:{edge_home / 'energizeos.db'}?mode=ro", uri=True)
        window = tuple(utc_from_ns(t).strftime("%Y-%m-%d %H:%M:%S.%f") for t in (cut_ns, restore_ns))
        decisions = local.execute("SELECT count(*) FROM decisions WHERE time BETWEEN ? AND ?", window).fetchone()[0]
        meter_times = [row[0] for row in local.execute(
            "SELECT time FROM telemetry WHERE point = '/site/poi/meter/p_kw' AND time BETWEEN ? AND ? ORDER BY time",
            window)]
        link_events = [row[0] for row in local.execute(
            "SELECT message FROM events WHERE kind = 'remote-link' ORDER BY time")]
        request_events = [row[0] for row in local.execute("SELECT message FROM events WHERE kind = 'remote-request'")]
        local.close()
        assert decisions > OUTAGE_S  # the arbiter decided every second or more often
        assert len(meter_times) > 4 * OUTAGE_S  # the meter node polled at 5 Hz all along
        assert any("remote link down" in m for m in link_events) and any("remote link up" in m for m in link_events)
        assert request_events == ["remote request from noc: acknowledge alarm 1: refused — alarm 1 is not active "
                                  "(nothing to acknowledge)"]
        assert sum(r[1] == "events" and "remote-request" in r[3] for r in central_side) == 1

        kinds = {k: sum(1 for r in edge_side if r[1] == k) for k in sorted({r[1] for r in edge_side})}
        print(f"\nnetns: {n} records ({kinds}); {len(in_outage)} from the {OUTAGE_S:g} s outage; caught up "
              f"{caught_up_s:.1f} s after the link came back; {decisions} arbiter decisions during the outage")
    finally:
        for proc in reversed(procs):
            proc.stop(timeout=30)
        central.dispose()
