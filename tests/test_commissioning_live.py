"""The same procedures over Zenoh against the launched simulated site (every node its own process, the
devices over real Modbus TCP): the runner node in the CLI's process, on the wall clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ENERGIZEOS, REPO, Proc, write_sim_site_config

pytestmark = pytest.mark.integration


def test_settings_trip_lockout_and_reversion_pass_over_zenoh_against_the_launched_site(router, procs, tmp_path):
    config = write_sim_site_config(tmp_path / "site.yaml", "ems:\n  dispatch:\n    mode: standby\n  safety:\n"
                                   "    es_delay_s: 3\n    es_ramp_s: 3\nsimulation:\n  step_hz: 20\n")
    site = Proc([ENERGIZEOS, "launch", "sim_site", f"site_config:={config}", "ui:=false", "--no-router"])
    procs.append(site)
    site.wait_for_line("enter-service delay complete", timeout=60)
    env = {**os.environ}  # the router fixture set the Zenoh endpoint and ENERGIZEOS_HOME for every process
    added = subprocess.run([ENERGIZEOS, "users", "add", "erin", "--role", "engineer"], capture_output=True,
                           text=True, env=env, cwd=REPO)
    assert added.returncode == 0, added.stderr
    # a known load: the site's own follows the wall clock, and at night it is too low for a 200 kW discharge
    # without export (the procedures refuse to start then)
    loaded = subprocess.run([ENERGIZEOS, "sim", "inject", "load_step", "-p", "kw=600"], capture_output=True,
                            text=True, env=env, cwd=REPO)
    assert loaded.returncode == 0, loaded.stderr
    started = time.monotonic()
    ran = subprocess.run([ENERGIZEOS, "commission", "run", "settings", "trip-lockout", "reversion", "--target", "live",
                          "--operator", "erin", "--json", "--site-config", str(config), "--limit-s", "240"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    wall = time.monotonic() - started
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    out = json.loads(ran.stdout)
    assert out["status"] == "passed" and out["site_mode"] == "simulated (fault injection)"
    m = {f"{s['procedure']}/{s['step']}": s["measured"] for s in out["steps"]}
    # the same acceptance, now on the wall clock with this site's 3 s enter-service delay
    assert 3.0 <= m["trip-lockout/enter-service"]["first_dispatch_after_close_s"] <= 8.0
    assert m["trip-lockout/enter-service"]["ramp_early_s"] <= 0.25
    assert m["trip-lockout/trip"]["lockout_86"] is True
    assert m["reversion/heartbeat-lost"]["reverted_after_s"] <= 7.0
    assert m["settings/relay"]["mismatch_count"] == 0
    print(f"live run: {len(out['steps'])} steps in {wall:.1f} s", file=sys.stderr)
