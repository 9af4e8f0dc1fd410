"""The README's main job, end to end: `energizeos launch sim_site` with every node as its own
process, the plant's devices over real Modbus TCP, faults injected from the CLI, ordered shutdown."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.conftest import ENERGIZEOS, Proc, free_port
from tests.test_launch_cli import cli

pytestmark = pytest.mark.integration


def echo_one(topic: str) -> dict:
    result = cli("topic", "echo", topic, "--count", "1", "--json", "--timeout", "10")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[0])


def test_sim_site_runs_every_node_and_survives_a_device_fault(router, procs, tmp_path):
    ports = {d: free_port() for d in ("meter", "relay", "bms", "pcs")}
    config = tmp_path / "site.yaml"
    config.write_text("devices:\n" + "".join(f"  {d}:\n    port: {p}\n" for d, p in ports.items())
                      + "simulation:\n  step_hz: 10\n")
    proc = Proc([ENERGIZEOS, "launch", "sim_site", f"site_config:={config}", "ui:=false", "--no-router"])
    procs.append(proc)
    proc.wait_for_line("SunSpec models [1, 701, 702, 703, 704, 705, 713]", timeout=30)

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        health = echo_one("/ems/graph/health")
        if health["healthy"]:
            break
    assert health["healthy"], health
    assert set(health["alive_nodes"]) >= {"/sim_plant", "/meter_node", "/relay_node", "/bms_node", "/pcs_node"}

    meter = echo_one("/site/poi/meter")
    assert meter["quality"] == 0 and 250.0 < meter["voltage_ln_v"][0] < 300.0 and meter["p_kw"] > 0.0
    bms = echo_one("/bess/bms/status")
    assert bms["permissive"] and len(bms["rack_soc_pct"]) == 8

    assert cli("sim", "inject", "comms_loss", "--device", "meter").returncode == 0
    time.sleep(1.5)
    assert echo_one("/site/poi/meter")["quality"] == 2  # stale, with no invented values
    assert cli("sim", "inject", "comms_loss", "--device", "meter", "--clear").returncode == 0
    deadline = time.monotonic() + 15
    while echo_one("/site/poi/meter")["quality"] != 0:
        assert time.monotonic() < deadline, "meter_node did not reconnect by itself"

    bad = cli("sim", "inject", "melt_down")
    assert bad.returncode != 0 and "unknown plant fault 'melt_down'" in " ".join((bad.stdout + bad.stderr).split())

    mark = len(proc.lines)
    assert proc.stop(signal.SIGINT, 40) == 0
    tail = proc.lines[mark:]
    assert any("shutdown: PCS commanded to 0 kW" in line for line in tail)
    stopped = [line.split()[2] for line in tail if line.startswith("[launch] stopped")]
    assert stopped[0] == "pcs_node" and stopped[-1] == "sim_plant"
