"""The README's main job, end to end: `energizeos launch sim_site` with every node as its own
process, the plant's devices over real Modbus TCP, faults injected from the CLI, ordered shutdown."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.conftest import ENERGIZEOS, Proc, write_sim_site_config
from tests.test_launch_cli import cli

pytestmark = pytest.mark.integration


def echo_one(topic: str) -> dict:
    result = cli("topic", "echo", topic, "--count", "1", "--json", "--timeout", "10")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[0])


def test_sim_site_runs_every_node_and_survives_a_device_fault(router, procs, tmp_path):
    config = write_sim_site_config(tmp_path / "site.yaml", "simulation:\n  step_hz: 10\n")
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
    assert stopped[:3] == ["dispatcher", "safety_arbiter", "pcs_node"] and stopped[-1] == "sim_plant"
    assert stopped.index("historian") > stopped.index("pcs_node")  # it records the last 0 kW command

    # The historian kept it all in the embedded SQLite database, sealed on the audit chain.
    from sqlalchemy import func, select
    from sqlmodel import Session

    from energizeos.records.db import make_engine
    from energizeos.records.models import AlarmEvent, CommandRecord, Telemetry

    engine = make_engine(f"sqlite:///{tmp_path / 'home' / 'energizeos.db'}")
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(Telemetry)).scalar_one() > 1000
        last = session.execute(select(CommandRecord).order_by(CommandRecord.time.desc())).scalars().first()
        assert last is not None and last.p_kw == 0.0
        comms = session.execute(select(AlarmEvent).where(AlarmEvent.code == "METER_COMMS_LOSS")).scalars().all()
        assert [e.event for e in comms][:2] == [0, 1]  # raised during the outage, cleared after it
    verified = cli("audit", "verify", "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["checked"] > 5, verified.stdout


def test_multiprocess_dispatch_fail_safe_and_one_command_authority(router, procs, tmp_path):
    """Over real Modbus and Zenoh: manual dispatch reaches the PCS, a rogue command is refused by
    pcs_node, and meter comms loss during discharge drives the fail-safe within the watchdog."""
    from energizeos.runtime import Node
    from energizeos.runtime.zenoh_executor import ZenohExecutor
    from energizeos_msgs.msg import ArbiterDecision, PcsStatus

    config = write_sim_site_config(tmp_path / "site.yaml", "ems:\n  dispatch:\n    mode: standby\n  safety:\n"
                                   "    es_delay_s: 2\n    es_ramp_s: 2\nsimulation:\n  step_hz: 20\n")
    proc = Proc([ENERGIZEOS, "launch", "sim_site", f"site_config:={config}", "ui:=false", "--no-router"])
    procs.append(proc)
    proc.wait_for_line("enter-service delay complete", timeout=40)

    ex = ZenohExecutor()
    try:
        observer = Node("observer", executor=ex)
        pcs: list[tuple[float, float]] = []
        decisions: list[tuple[float, ArbiterDecision]] = []
        observer.create_subscription(PcsStatus, "/bess/pcs/status",
                                     lambda m: pcs.append((time.monotonic(), m.p_kw)), 100)
        observer.create_subscription(ArbiterDecision, "/ems/arbiter/decision",
                                     lambda d: decisions.append((time.monotonic(), d)), 1000)
        # a known load, so that 200 kW of discharge is well inside the zero-export limit at any hour
        assert cli("sim", "inject", "load_step", "-p", "kw=600").returncode == 0
        result = cli("service", "call", "/ems/dispatch/mode", "SetDispatchMode",
                     "{mode: 4, p_kw: 200.0, user: tester}", "--json")
        assert result.returncode == 0 and json.loads(result.stdout)["accepted"], result.stdout + result.stderr
        assert ex._wait_for(lambda: bool(pcs) and abs(pcs[-1][1] - 200.0) < 2.0, 15.0), pcs[-5:]

        rogue = cli("topic", "pub", "/bess/pcs/command", "PcsCommand", "{source: rogue, p_kw: 400.0, enable: true}")
        assert rogue.returncode == 0
        proc.wait_for_line("refused PCS command", timeout=10)
        ex.spin_for(1.0)
        assert abs(pcs[-1][1] - 200.0) < 2.0  # unchanged by the rogue command

        assert cli("sim", "inject", "comms_loss", "--device", "meter").returncode == 0
        t_loss = time.monotonic()
        assert ex._wait_for(lambda: any(t > t_loss and "STALE_METER_FAILSAFE" in d.reason_codes
                                        for t, d in decisions), 5.0)
        capped = next(t for t, d in decisions if t > t_loss and "STALE_METER_FAILSAFE" in d.reason_codes)
        assert ex._wait_for(lambda: bool(pcs) and pcs[-1][0] > capped and pcs[-1][1] <= 101.0, 5.0), pcs[-5:]
        assert ex._wait_for(lambda: any(t > t_loss and d.granted_kw == 0.0 and "STALE_METER" in d.reason_codes
                                        for t, d in decisions), 10.0)
        zero = next(t for t, d in decisions if t > t_loss and "STALE_METER" in d.reason_codes and d.granted_kw == 0)
        assert capped - t_loss <= 1.5  # noticed within the 1 s meter watchdog (+ one poll)
        assert zero - t_loss <= 1.0 + 5.0 + 1.5
    finally:
        ex.shutdown()
    assert proc.stop(signal.SIGINT, 40) == 0
