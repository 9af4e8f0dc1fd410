"""Kill tests on the edge graph (issue #11, fault tolerance on the edge).

One launched simulated site (no UI), discharging under a fixed 400 kW load with the peak shaver
asking for more than the load, so the zero-export limiter is what sets the battery power: the POI
sits 10 kW from the limit, where any misstep of a restarting node would show as export. Then,
one node at a time, ``kill -9`` of that node's PID (a child of our launch, checked) and its
respawn; then the arbiter and the dispatcher held down in a crash loop (every respawn killed
again) long enough for the PCS's own reversion timer and the arbiter's request timeout to act,
a BMS permissive lost while the arbiter is down, and a breaker trip while relay_node is down.

Ground truth is read from the plant itself, independently of the EMS, at 10 Hz: the revenue meter
and the relay over Modbus TCP with pymodbus (decoded from the documented register maps by hand),
the PCS and the BMS with pysunspec2's own SunSpec client. The EMS is only observed (its arbiter
decisions and dispatch requests over Zenoh), never mocked.

Run with ``-s`` to see the measured table (it is also in every assertion message).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import os
import re
import signal
import statistics
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sunspec2.modbus.client as sunspec_client
from pymodbus.client import ModbusTcpClient

from energizeos.runtime import Node
from energizeos.runtime.zenoh_executor import ZenohExecutor
from energizeos.sim.plant import PlantConfig
from energizeos.site_config import SiteConfig, load_site_config
from energizeos_msgs.msg import ArbiterDecision, DispatchRequest
from energizeos_msgs.srv import BreakerRequest, SimFault
from tests.conftest import ENERGIZEOS, SIM_DEVICES, Proc, write_sim_site_config

pytestmark = pytest.mark.integration

LOAD_KW = 400.0  # fixed facility load (no noise): any export is the EMS's doing, not a load step
EXPORT_LIMIT_KW = 0.0  # Rule 21 non-export, as the reference site
DISPATCH_MARGIN_KW = 10.0  # the dispatcher's export margin (site config default)
STEADY_KW = LOAD_KW - EXPORT_LIMIT_KW - DISPATCH_MARGIN_KW  # what the export limiter holds the BESS at
BAND_KW = 5.0  # "back to normal": PCS within this of STEADY_KW and the arbiter granting as much
ZERO_KW = 1.0  # PCS "at 0 kW": its W register has 100 W steps and the lag decays exponentially
SAMPLE_S = 0.1  # ground-truth sampling period
STEP_HZ = 10.0  # plant physics rate
ES_DELAY_S = ES_RAMP_S = 2.0  # IEEE 1547 enter service, shortened from 300 s so the test stays short
# Export tolerance: 0 kW beyond the limit, plus 1 kW for the resolution of what we read. The load
# is constant, and the plant's PCS follows its set-point through a 500 kW/s ramp and a first-order
# lag (0.2 s), neither of which overshoots: the plant can only export if the EMS commands more than
# the load. There is no load step here, so the 2 s export-clearing allowance does not apply.
EXPORT_TOLERANCE_KW = 1.0
KILL_ORDER = ["pcs_node", "bms_node", "meter_node", "relay_node", "safety_arbiter", "dispatcher", "planner",
              "alarm_manager", "historian", "site_monitor", "reporter", "assistant"]
PLANT = "sim_plant"  # stands for the physical hardware: never killed
CONTROL_PATH = {"pcs_node", "bms_node", "meter_node", "relay_node", "safety_arbiter", "dispatcher"}

_PLANT = PlantConfig()
# Longest the plant's PCS takes from its rating to under ZERO_KW once its target is 0: the ramp
# first, then the lag's exponential tail; plus one physics step and one sample.
PCS_STOP_S = (_PLANT.pcs_kw / _PLANT.pcs_ramp_kw_per_s + _PLANT.pcs_lag_s * math.log(_PLANT.pcs_kw / ZERO_KW)
              + 1.0 / STEP_HZ + SAMPLE_S)
DECISION_SLACK_S = 0.3  # the arbiter decides at least at 2 Hz and on every 5 Hz meter reading
PCS_COMMAND_AGE_S = 2.0  # pcs_node max_command_age_s (default): its heartbeat stops this long after the last command
REQUEST_TIMEOUT_S = 5.0  # safety_arbiter request_timeout_s (default): the last dispatch request counts this long


# --- ground truth ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    t: float
    poi_kw: float  # + import, - export
    pcs_kw: float  # + discharge
    pcs_running: bool  # 701 InvSt RUNNING: enabled and not reverted
    setpoint_enabled: bool  # 704 WSetEna, as the EMS last wrote it
    setpoint_kw: float  # 704 WSet
    reversion_s: float  # 704 WSetRvrtTms
    breaker_closed: bool
    trip: bool
    lockout_86: bool
    bms_ready: bool  # 802 State CONNECTED (contactors closed, no fault, not in standby)

    @property
    def relay_ok(self) -> bool:
        return self.breaker_closed and not self.trip and not self.lockout_86


class PlantTruth(threading.Thread):
    """Reads the plant's devices at 10 Hz with its own clients (nothing of the EMS's)."""

    def __init__(self, ports: dict[str, int]) -> None:
        super().__init__(name="plant-truth", daemon=True)
        self.ports = ports
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        meter = ModbusTcpClient("127.0.0.1", port=self.ports["meter"], timeout=1.0)
        relay = ModbusTcpClient("127.0.0.1", port=self.ports["relay"], timeout=1.0)
        pcs = sunspec_client.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1",
                                                          ipport=self.ports["pcs"], timeout=1.0)
        bms = sunspec_client.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1",
                                                          ipport=self.ports["bms"], timeout=1.0)
        try:
            meter.connect()
            relay.connect()
            pcs.scan()
            bms.scan()
            m701, m704, m802 = pcs.models[701][0], pcs.models[704][0], bms.models[802][0]
            next_t = time.monotonic()
            while not self._halt.is_set():
                try:
                    self.samples.append(self._read(meter, relay, m701, m704, m802))
                except Exception as exc:  # the plant is never killed: any failure here is a finding
                    self.errors.append(f"{time.monotonic():.2f}: {type(exc).__name__}: {exc}")
                next_t += SAMPLE_S
                self._halt.wait(max(0.0, next_t - time.monotonic()))
        finally:
            meter.close()
            relay.close()
            pcs.close()
            bms.close()

    @staticmethod
    def _read(meter: ModbusTcpClient, relay: ModbusTcpClient, m701, m704, m802) -> Sample:
        # sel735.yaml: CTR at 1003, PTR at 1004, p_total float32 (high word first) at 1032, secondary W
        regs = meter.read_holding_registers(1000, count=34, device_id=1).registers
        p_secondary_w = struct.unpack(">f", struct.pack(">HH", regs[32], regs[33]))[0]
        poi_kw = p_secondary_w * regs[3] * regs[4] / 1000.0
        # sel700g.yaml: relay_status bits at 2003: 52A (0), TRIP (2), 86 (3)
        bits = relay.read_holding_registers(2003, count=1, device_id=1).registers[0]
        m701.read()
        m704.read()
        m802.read()
        return Sample(time.monotonic(), poi_kw, m701.W.cvalue / 1000.0, m701.InvSt.value == 3,
                      m704.WSetEna.value == 1, m704.WSet.cvalue / 1000.0, float(m704.WSetRvrtTms.value),
                      bool(bits & 1), bool(bits & 4), bool(bits & 8), m802.State.value == 3)

    def stop(self) -> None:
        self._halt.set()
        self.join(5.0)

    def since(self, t: float, until: float = math.inf) -> list[Sample]:
        return [s for s in list(self.samples) if t <= s.t <= until]

    @property
    def last(self) -> Sample:
        return self.samples[-1]


# --- the launched site and what we do to it ------------------------------------------------------
@dataclass
class Outage:
    """One node killed (or held down): what the plant and the EMS did until the site was normal."""

    node: str
    kind: str  # "kill", "held down" (crash loop) or "kill+fault" (a plant fault during the outage)
    t_kill: float
    killed_pids: list[int]
    new_pid: int = 0
    spawned_s: float = math.nan  # launch started the replacement
    alive_s: float = math.nan  # the replacement is in the graph
    normal_s: float = math.nan  # the site dispatching normally again
    pcs_zero_s: float | None = None  # the PCS first at 0 kW (None: it never left normal dispatch)
    takeover_s: float | None = None  # first output of the replacement (arbiter decision / dispatch request)
    min_poi_kw: float = math.nan  # lowest POI with the breaker closed (open: 0 kW, nothing flows)
    notes: list[str] = field(default_factory=list)

    def row(self) -> str:
        def f(v: float | None) -> str:
            return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"
        return (f"{self.node:<15} {self.kind:<10} {len(self.killed_pids):>2} {f(self.spawned_s):>7} "
                f"{f(self.alive_s):>7} {f(self.normal_s):>7} {f(self.pcs_zero_s):>7} {f(self.takeover_s):>7} "
                f"{max(0.0, -self.min_poi_kw):>6.1f} {self.min_poi_kw:>7.1f}  {'; '.join(self.notes)}")


HEADER = ("node            kind       n spawn_s alive_s normal_s pcs0_s  takeov exp_kW minPOI  notes\n"
          "(n: PIDs killed; times in s after the first kill: launch started the replacement, it is in the graph,\n"
          " the site dispatches normally, the PCS first at 0 kW, the replacement's first output; exp_kW: max\n"
          " export; minPOI: lowest POI kW with the breaker closed)")


class KillHarness:
    def __init__(self, launch: Proc, ex: ZenohExecutor, observer: Node, truth: PlantTruth,
                 config: SiteConfig) -> None:
        self.launch, self.ex, self.observer, self.truth, self.config = launch, ex, observer, truth, config
        self.decisions: list[tuple[float, ArbiterDecision]] = []
        self.requests: list[tuple[float, DispatchRequest]] = []
        observer.create_subscription(ArbiterDecision, "/ems/arbiter/decision",
                                     lambda d: self.decisions.append((time.monotonic(), d)), 1000)
        observer.create_subscription(DispatchRequest, "/ems/dispatch/request",
                                     lambda r: self.requests.append((time.monotonic(), r)), 100)
        self.sim = observer.create_client(SimFault, "/sim/inject")
        self.breaker = observer.create_client(BreakerRequest, "/ems/breaker/request")

    # --- waiting (always spinning, so callbacks are timed when they arrive) ---------------------
    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        assert self.ex._wait_for(predicate, timeout), f"not {what} within {timeout} s; launch output:\n" + \
            "\n".join(self.launch.lines[-30:])
        return time.monotonic()

    def spin(self, seconds: float) -> None:
        self.ex._wait_for(lambda: False, seconds)

    def steady(self, hold_s: float = 1.0) -> bool:
        recent = self.truth.since(time.monotonic() - hold_s)
        return len(recent) >= hold_s / SAMPLE_S * 0.8 and all(abs(s.pcs_kw - STEADY_KW) <= BAND_KW for s in recent)

    def normal_since(self, t: float) -> bool:
        """The arbiter grants the steady discharge again (a decision after ``t``) and the PCS delivers it."""
        granted = [d for td, d in self.decisions[-20:] if td > t]
        return bool(granted) and granted[-1].granted_kw >= STEADY_KW - BAND_KW and self.truth.last.t > t \
            and abs(self.truth.last.pcs_kw - STEADY_KW) <= BAND_KW

    # --- processes ----------------------------------------------------------------------------
    def started_pid(self, name: str, after: int = 0) -> int | None:
        """PID of the last process launch started for ``name`` (from its log), None if none after ``after``."""
        pids = [int(m.group(1)) for line in self.launch.lines[after:]
                if (m := re.match(rf"\[launch\] started {name} pid=(\d+)$", line))]
        return pids[-1] if pids else None

    def kill(self, pid: int) -> float:
        """SIGKILL one node process, after checking it is a child of our launch (we started it)."""
        stat = Path(f"/proc/{pid}/stat").read_text()
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        assert ppid == self.launch.pid, f"pid {pid} is not a child of our launch ({ppid} != {self.launch.pid})"
        os.kill(pid, signal.SIGKILL)
        return time.monotonic()

    def in_graph(self, name: str) -> bool:
        return name in self.observer.get_node_names()

    def inject(self, fault: str, *, clear: bool = False, **params: float) -> None:
        reply = self.sim.call(SimFault.Request(fault=fault, params_json=json.dumps(params), clear=clear), 10.0)
        assert reply.success, reply.message

    def ask_breaker(self, action: int) -> BreakerRequest.Response:
        return self.breaker.call(BreakerRequest.Request(action=action, requested_by="kill-test",
                                                        reason="kill test: recover after a trip"), 10.0)

    # --- one outage ---------------------------------------------------------------------------
    def outage(self, name: str, hold_down_s: float = 0.0, during: Callable[[Outage], None] | None = None,
               recover: Callable[[Outage], None] | None = None, normal_timeout_s: float = 40.0) -> Outage:
        """Kill ``name`` (and, for ``hold_down_s``, every respawn of it), then wait for the site to be normal."""
        self.wait(self.steady, 30.0, "steady before the kill")
        old = self.started_pid(name)
        assert old is not None, f"launch never started {name}"
        mark = len(self.launch.lines)
        t_kill = self.kill(old)
        kind = "held down" if hold_down_s else "kill+fault" if during else "kill"
        out = Outage(name, kind, t_kill, [old])
        self.wait(lambda: not self.in_graph(name), 5.0, f"{name} gone from the graph")
        while time.monotonic() - t_kill < hold_down_s:  # crash loop: each respawn is killed at once
            pid = self.started_pid(name, mark)
            if pid is not None and pid not in out.killed_pids:
                out.killed_pids.append(pid)
                self.kill(pid)
            self.spin(0.01)
        if during is not None:
            during(out)
        t_spawn = self.wait(lambda: (p := self.started_pid(name, mark)) is not None and p not in out.killed_pids,
                            15.0, f"{name} respawned")
        out.new_pid = self.started_pid(name, mark) or 0
        out.spawned_s = t_spawn - t_kill
        out.alive_s = self.wait(lambda: self.in_graph(name), 30.0, f"{name} back in the graph") - t_kill
        if recover is not None:
            recover(out)
        t_alive = t_kill + out.alive_s
        # anything the arbiter or the dispatcher publishes after the kill (+ transit) is the replacement's
        outputs = {"safety_arbiter": self.decisions, "dispatcher": self.requests}.get(name)

        def back() -> bool:
            replaced = outputs is None or (bool(outputs) and outputs[-1][0] > t_alive)
            return replaced and self.normal_since(t_alive)

        out.normal_s = self.wait(back, normal_timeout_s, "dispatching normally") - t_kill
        window = self.truth.since(t_kill, t_kill + out.normal_s)
        out.min_poi_kw = min((s.poi_kw for s in window if s.breaker_closed), default=math.nan)
        out.pcs_zero_s = next((s.t - t_kill for s in window if abs(s.pcs_kw) <= ZERO_KW), None)
        out.takeover_s = next((t - t_kill for t, _ in outputs or [] if t > t_kill + 0.05), None)
        return out


# --- invariants over the whole record -----------------------------------------------------------
def false_since(samples: list[Sample], ok: Callable[[Sample], bool]) -> list[tuple[Sample, float | None]]:
    """Each sample with the time its permissive has been false since (None while it is true)."""
    since: float | None = None
    out = []
    for s in samples:
        since = None if ok(s) else (since if since is not None else s.t)
        out.append((s, since))
    return out


def permissive_findings(samples: list[Sample], decisions: list[tuple[float, ArbiterDecision]],
                        config: SiteConfig) -> tuple[list[str], dict[str, float]]:
    """(b): no PCS power, no enabled non-zero set-point running and no non-zero grant while a
    permissive (BMS ready, breaker closed, no trip, no 86) is false at the plant, beyond the time
    the EMS needs to see it: the arbiter may act on its last reading for its watchdog, the device
    node polls at its rate, the arbiter decides within DECISION_SLACK_S."""
    limits, devices = config.ems.safety, config.devices
    detect = {"BMS": limits.bms_watchdog_s + 1.0 / devices.bms.poll_hz + DECISION_SLACK_S,
              "relay": limits.relay_watchdog_s + 1.0 / devices.relay.poll_hz + DECISION_SLACK_S}
    checks = {"BMS": lambda s: s.bms_ready, "relay": lambda s: s.relay_ok}
    findings: list[str] = []
    worst = {"pcs_nonzero_s": 0.0, "grant_after_loss_s": 0.0, "permissive_false_s": 0.0}
    for kind, ok in checks.items():
        timeline = false_since(samples, ok)
        for s, since in timeline:
            if since is None:
                continue
            worst["permissive_false_s"] = max(worst["permissive_false_s"], s.t - since)
            if abs(s.pcs_kw) > ZERO_KW:
                worst["pcs_nonzero_s"] = max(worst["pcs_nonzero_s"], s.t - since)
                if s.t - since > PCS_STOP_S:
                    findings.append(f"PCS at {s.pcs_kw:.1f} kW {s.t - since:.2f} s after the {kind} permissive fell")
            if s.pcs_running and s.setpoint_enabled and s.setpoint_kw != 0.0 and s.t - since > detect[kind]:
                findings.append(f"PCS running on a {s.setpoint_kw:.1f} kW set-point {s.t - since:.2f} s after "
                                f"the {kind} permissive fell")
        times = [s.t for s, _since in timeline]
        for td, d in decisions:
            i = bisect.bisect_right(times, td) - 1  # the plant as last sampled when the decision arrived
            if d.granted_kw != 0.0 and i >= 0 and timeline[i][1] is not None:
                lag = td - timeline[i][1]
                worst["grant_after_loss_s"] = max(worst["grant_after_loss_s"], lag)
                if lag > detect[kind]:
                    findings.append(f"arbiter granted {d.granted_kw:.1f} kW {lag:.2f} s after the {kind} "
                                    f"permissive fell ({list(d.reason_codes)})")
    return findings, worst


def report(outages: list[Outage], extra: list[str]) -> str:
    kills = [o for o in outages if o.kind == "kill"]
    alive = [o.alive_s for o in kills]
    spawned = [o.spawned_s for o in kills]
    lines = [HEADER, *(o.row() for o in outages),
             f"respawn (launch started it): median {statistics.median(spawned):.2f} s, max {max(spawned):.2f} s",
             f"respawn (back in the graph): median {statistics.median(alive):.2f} s, max {max(alive):.2f} s",
             f"back to normal dispatch after a single kill: max {max(o.normal_s for o in kills):.2f} s "
             f"({max(kills, key=lambda o: o.normal_s).node})",
             f"lowest POI with the breaker closed: {min(o.min_poi_kw for o in outages):.1f} kW "
             f"(export limit {EXPORT_LIMIT_KW:g} kW, tolerance {EXPORT_TOLERANCE_KW:g} kW)", *extra]
    return "\n".join(lines)


# --- the test -------------------------------------------------------------------------------------
def write_site_config(path: Path) -> Path:
    return write_sim_site_config(
        path,
        "ems:\n"
          "  dispatch:\n"
          "    mode: peak_shaving\n"
          "    peak_threshold_kw: 0        # shave all import: the export limiter is what stops the discharge\n"
          f"    export_margin_kw: {DISPATCH_MARGIN_KW}\n"
          "  safety:\n"
          f"    export_limit_kw: {EXPORT_LIMIT_KW}\n"
          f"    es_delay_s: {ES_DELAY_S}\n"
          f"    es_ramp_s: {ES_RAMP_S}\n"
          f"simulation:\n  step_hz: {STEP_HZ}\n")


def test_kill_each_node_under_load_never_exports_nor_dispatches_without_permissives(router, procs, tmp_path):
    config_path = write_site_config(tmp_path / "site.yaml")
    config = load_site_config(config_path)
    ports = {d: getattr(config.devices, d).port for d in SIM_DEVICES}
    launch = Proc([ENERGIZEOS, "launch", "sim_site", f"site_config:={config_path}", "ui:=false", "--no-router"])
    procs.append(launch)
    launch.wait_for_line("enter-service delay complete", timeout=60)
    started = {m.group(1) for line in launch.lines if (m := re.match(r"\[launch\] started (\w+) pid=", line))}
    assert set(KILL_ORDER) | {PLANT} == started, f"the launch starts {sorted(started)}: update KILL_ORDER"

    ex = ZenohExecutor()
    truth = PlantTruth(ports)
    truth.start()
    outages: list[Outage] = []
    extra: list[str] = []
    try:
        observer = Node("kill_test_observer", executor=ex)
        h = KillHarness(launch, ex, observer, truth, config)
        assert h.sim.wait_for_service(10.0) and h.breaker.wait_for_service(10.0)
        h.inject("load_step", kw=LOAD_KW)
        h.wait(lambda: h.steady(2.0), 30.0, f"discharging {STEADY_KW:g} kW under the export limit")
        h.wait(lambda: all(h.in_graph(n) for n in KILL_ORDER), 30.0, "every node in the graph")
        reversion_s = truth.last.reversion_s  # what the EMS wrote into the PCS (WSetRvrtTms)
        assert truth.last.setpoint_enabled and truth.last.pcs_running and reversion_s > 0

        # 1. every node once, under load
        for name in KILL_ORDER:
            outages.append(h.outage(name))

        # 2. the arbiter held down past the PCS reversion: the PCS stops by its own timer. Just before
        # it comes back, the BMS drops its ready signal: the new arbiter must not grant anything.
        arbiter_down_s = PCS_COMMAND_AGE_S + reversion_s + PCS_STOP_S + 1.0

        def bms_drops(out: Outage) -> None:
            h.inject("bms_not_ready")
            out.notes.append("BMS not ready from the end of the hold")

        def bms_recovers(out: Outage) -> None:
            t_alive = out.t_kill + out.alive_s
            h.wait(lambda: sum(1 for t, _d in h.decisions if t > t_alive) >= 10, 15.0, "new arbiter deciding")
            h.spin(2.0)  # the new arbiter sees the BMS not ready on fresh data for a while
            new = [d for t, d in h.decisions if t > t_alive]
            assert all(d.granted_kw == 0.0 for d in new), [(d.granted_kw, list(d.reason_codes)) for d in new]
            assert any("BMS_NOT_READY" in d.reason_codes for d in new), [list(d.reason_codes) for d in new]
            h.inject("bms_not_ready", clear=True)

        held = h.outage("safety_arbiter", hold_down_s=arbiter_down_s, during=bms_drops, recover=bms_recovers)
        reverted = [s for s in truth.since(held.t_kill, held.t_kill + arbiter_down_s)
                    if s.setpoint_enabled and not s.pcs_running]
        held.notes.append(f"PCS reverted by itself (enabled set-point, not running) {reverted[0].t - held.t_kill:.2f} s"
                          if reverted else "PCS never reverted by itself")
        outages.append(held)

        # 3. the dispatcher held down past the arbiter's request timeout: the arbiter commands 0 kW.
        dispatcher_down_s = REQUEST_TIMEOUT_S + DECISION_SLACK_S + PCS_STOP_S + 1.0
        held_d = h.outage("dispatcher", hold_down_s=dispatcher_down_s)
        stale = [t - held_d.t_kill for t, d in h.decisions if t > held_d.t_kill and "REQUEST_STALE" in d.reason_codes]
        held_d.notes.append(f"arbiter: REQUEST_STALE 0 kW {stale[0]:.2f} s" if stale else "no REQUEST_STALE")
        outages.append(held_d)

        # 4. the breaker trips while relay_node is dead: it comes back to a tripped, locked-out relay;
        # reset and close go through the arbiter (as an operator would), then enter service again.
        def trip(out: Outage) -> None:
            h.inject("relay_trip")
            out.notes.append("breaker tripped (86) while relay_node was dead")

        def reset_and_close(out: Outage) -> None:
            t_alive = out.t_kill + out.alive_s
            h.wait(lambda: any(t > t_alive and "RELAY_TRIP" in d.reason_codes for t, d in h.decisions), 10.0,
                   "the trip seen on fresh relay data")
            assert h.ask_breaker(BreakerRequest.Request.ACTION_RESET_LOCKOUT).accepted
            h.wait(lambda: not truth.last.lockout_86, 5.0, "86 reset")
            h.spin(0.5)  # the arbiter's view of the relay refreshes (5 Hz) before it checks the close
            closed = h.ask_breaker(BreakerRequest.Request.ACTION_CLOSE)
            assert closed.accepted, list(closed.reason_texts)
            h.wait(lambda: truth.last.breaker_closed, 5.0, "breaker closed")

        outages.append(h.outage("relay_node", during=trip, recover=reset_and_close))

        # 5. the BMS drops its ready signal while bms_node is dead: the arbiter stops granting on its
        # BMS watchdog (its last reading is all it has), and refuses on the fresh reading after the respawn.
        def bms_drops_unseen(out: Outage) -> None:
            h.inject("bms_not_ready")
            out.notes.append("BMS not ready while bms_node was dead")

        def bms_seen_then_cleared(out: Outage) -> None:
            t_alive = out.t_kill + out.alive_s
            h.wait(lambda: any(t > t_alive and "BMS_NOT_READY" in d.reason_codes for t, d in h.decisions), 10.0,
                   "BMS not ready seen on fresh BMS data")
            h.inject("bms_not_ready", clear=True)

        outages.append(h.outage("bms_node", during=bms_drops_unseen, recover=bms_seen_then_cleared))

        # --- invariants over the whole record, from the plant's own readings ---------------------
        samples = truth.since(0.0)
        problems: list[str] = [f"ground-truth read failed: {e}" for e in truth.errors[:5]]
        gaps = [b.t - a.t for a, b in itertools.pairwise(samples)]
        extra.append(f"ground truth: {len(samples)} samples, longest gap {max(gaps):.2f} s; "
                     f"{len(h.decisions)} arbiter decisions observed")
        if max(gaps) > 1.0:
            problems.append(f"ground truth has a {max(gaps):.2f} s gap")

        # (a) export
        worst = min(samples, key=lambda s: s.poi_kw)
        if -worst.poi_kw > EXPORT_LIMIT_KW + EXPORT_TOLERANCE_KW:
            problems.append(f"(a) exported {-worst.poi_kw:.1f} kW at +{worst.t - samples[0].t:.1f} s "
                            f"(limit {EXPORT_LIMIT_KW:g} + {EXPORT_TOLERANCE_KW:g} kW)")

        # (b) permissives
        findings, worst_b = permissive_findings(samples, h.decisions, config)
        problems += [f"(b) {f}" for f in findings[:10]]
        extra.append(f"permissive lost: longest {worst_b['permissive_false_s']:.2f} s; PCS non-zero at most "
                     f"{worst_b['pcs_nonzero_s']:.2f} s after (bound {PCS_STOP_S:.2f} s); last non-zero grant "
                     f"{worst_b['grant_after_loss_s']:.2f} s after")

        # (c) respawn (new PID) and back to normal
        for o in outages:
            if o.new_pid in o.killed_pids or not o.new_pid:
                problems.append(f"(c) {o.node}: no new PID ({o.new_pid})")
            if o.kind == "kill":
                respawn_delay = 1.0  # launch Node(respawn_delay=1.0), then up to one 0.1 s supervise period
                if o.spawned_s > respawn_delay + 1.0:
                    problems.append(f"(c) {o.node}: started again only after {o.spawned_s:.2f} s")
                if o.alive_s > 15.0:
                    problems.append(f"(c) {o.node}: back in the graph only after {o.alive_s:.2f} s")
                # a restarted arbiter waits out enter service and its ramp; the rest only the 250 kW/s ramp
                bound = o.alive_s + ES_DELAY_S + ES_RAMP_S + STEADY_KW / config.ems.safety.ramp_kw_per_s + 3.0
                if o.normal_s > bound:
                    problems.append(f"(c) {o.node}: normal dispatch after {o.normal_s:.2f} s (bound {bound:.2f} s)")

        # (d) the arbiter or the dispatcher dead: the PCS reaches 0 kW within its reversion time
        arbiter_bound = PCS_COMMAND_AGE_S + reversion_s + PCS_STOP_S
        dispatcher_bound = REQUEST_TIMEOUT_S + DECISION_SLACK_S + PCS_STOP_S
        for o in outages:
            if o.node not in ("safety_arbiter", "dispatcher"):
                continue
            bound = arbiter_bound if o.node == "safety_arbiter" else dispatcher_bound
            # without a replacement the PCS must be at 0 kW by the bound; a replacement that takes over
            # sooner (fresh requests, or a new arbiter starting safe at 0 kW) ends the uncovered time
            uncovered = min(v for v in (o.pcs_zero_s, o.takeover_s, math.inf) if v is not None)
            o.notes.append(f"uncovered {uncovered:.2f} s (bound {bound:.2f} s)")
            if uncovered > bound:
                problems.append(f"(d) {o.node}: PCS non-zero {uncovered:.2f} s after the kill (bound {bound:.2f} s)")
            if o.kind == "held down" and (o.pcs_zero_s is None or o.pcs_zero_s > bound):
                problems.append(f"(d) {o.node} held down: PCS at 0 kW after {o.pcs_zero_s} s (bound {bound:.2f} s)")
        if not reverted:
            problems.append("(d) the PCS never reverted by its own timer while the arbiter was held down")
        if held.pcs_zero_s is not None and held.pcs_zero_s < reversion_s:
            problems.append(f"(d) PCS at 0 kW {held.pcs_zero_s:.2f} s after the arbiter died: before its "
                            f"{reversion_s:g} s reversion time, so not by its own timer")

        text = report(outages, extra)
        print("\n" + text)
        assert not problems, "\n".join(problems) + "\n\n" + text
    finally:
        truth.stop()
        ex.shutdown()
        (tmp_path / "launch.log").write_text("\n".join(launch.lines))  # every node's log, for a failure on CI
    assert launch.stop(signal.SIGINT, 60) == 0
