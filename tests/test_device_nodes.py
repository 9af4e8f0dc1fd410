"""Device nodes (meter, relay, BMS, PCS) against the simulated plant over REAL Modbus TCP on loopback.

Every graph lives in one SimExecutor: ``sim_plant`` steps the physics on simulated time and its
DeviceServers answer from their own threads on free 127.0.0.1 ports; the device nodes use their
default ModbusTcpLink. Assertions compare what the nodes publish with the plant's truth, within the
resolution of the registers (float32 for the meter, 0.001 pu / Hz for the relay, SunSpec scale
factors for the BMS and PCS).
"""

from __future__ import annotations

import math
import re
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator

import pytest
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from energizeos.nodes.device_link import InMemoryLink, ModbusTcpLink
from energizeos.nodes.device_node import COMMS_LOSS_AFTER
from energizeos.nodes.meter_node import MeterNode
from energizeos.nodes.pcs_node import PcsNode
from energizeos.nodes.relay_node import RelayNode
from energizeos.sim.plant import TRIP_SETTINGS
from energizeos.sim.site import DEVICES
from energizeos_msgs.msg import Alarm, BmsStatus, BreakerCommand, PcsStatus, RelayStatus
from tests.device_fixtures import (
    NODE_CLASSES,
    SiteGraph,
    Tap,
    WriteTap,
    build_site,
    evidence,
    float_fields,
    plain,
    port_refuses,
    t_s,
)

GOOD, INVALID, STALE = 0, 1, 2
PREFIX = {"meter": "METER", "relay": "RELAY", "bms": "BMS", "pcs": "PCS"}
# Half a register step: the largest error a correct decode can have.
SUNSPEC_0_1 = 0.05 + 1e-9  # SF -1 (0.1 units) or W_SF 2 read as kW (100 W = 0.1 kW)
MILLI = 0.0005 + 1e-9  # relay pu / Hz (scale 0.001), SunSpec Hz_SF -3, CellV_SF -3
F32 = 1e-6  # relative error of a float32 register (2^-24 ~ 6e-8, with margin for the CTR x PTR product)
MBPOLL = "/usr/bin/mbpoll"


@pytest.fixture
def make_site() -> Iterator[Callable[..., SiteGraph]]:
    """Build graphs; at teardown shut each executor down and check its Modbus servers are gone."""
    graphs: list[SiteGraph] = []

    def make(devices=DEVICES, **kwargs) -> SiteGraph:
        graph = build_site(devices, **kwargs)
        graphs.append(graph)
        return graph

    yield make
    for graph in graphs:
        graph.shutdown()  # runs sim_plant's on-shutdown hook: stop_servers
        assert not any(server.running for server in graph.sim.servers)
        assert all(port_refuses(port) for port in graph.ports.values()), "a Modbus server still listens"


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


# ------------------------------------------------------------------------------------------------
# plant truth, as the physics defines it (not as the registers encode it)
# ------------------------------------------------------------------------------------------------
def meter_truth(g: SiteGraph) -> Callable[[], dict]:
    def truth() -> dict:
        p = g.plant
        cfg = p.config
        closed = p.breaker_closed
        p_kw = p.load_kw - p.pv_kw - p.pcs_p_kw if closed else 0.0
        q_kvar = p.load_kw * math.tan(math.acos(cfg.load_pf)) - p.pcs_q_kvar if closed else 0.0
        v_ln = cfg.v_nominal_ln * p.v_pu
        return {"p_kw": p_kw, "q_kvar": q_kvar, "v_ln": v_ln, "f_hz": p.f_hz,
                "i_a": math.hypot(p_kw, q_kvar) * 1000.0 / (3.0 * v_ln),
                "phi_deg": math.degrees(math.atan2(q_kvar, p_kw)),
                "kwh_delivered": p.energy_delivered_kwh, "kwh_received": p.energy_received_kwh}
    return truth


def relay_truth(g: SiteGraph) -> Callable[[], dict]:
    def truth() -> dict:
        p = g.plant
        return {"closed": p.breaker_closed, "trip": p.trip, "lockout": p.lockout_86, "v_pu": p.v_pu,
                "f_hz": p.f_hz, "permissive": p.bms_permissive}
    return truth


def bms_truth(g: SiteGraph) -> Callable[[], dict]:
    def truth() -> dict:
        p = g.plant
        current = p.dc_current
        cells = [p.cell_voltage(s, current) for s in p.rack_soc]
        return {"soc": p.soc_pct, "racks": list(p.rack_soc), "soh": p.soh_pct, "v": p.dc_voltage, "a": current,
                "temp_max": max(r.temp_c for r in p.racks) + 1.0, "cell_max": max(cells) + 0.004,
                "rack_temp_max": [r.temp_c + 1.0 for r in p.racks], "p_kw": p.pcs_p_kw}
    return truth


def pcs_truth(g: SiteGraph) -> Callable[[], dict]:
    def truth() -> dict:
        p = g.plant
        return {"p_kw": p.pcs_p_kw, "setpoint": p.pcs_setpoint_kw, "enabled": p.pcs_enabled,
                "reversion_s": p.pcs_reversion_s, "f_hz": p.f_hz,
                "v_ll": p.config.v_nominal_ln * math.sqrt(3) * p.v_pu, "state": p.pcs_state}
    return truth


# ------------------------------------------------------------------------------------------------
# 1. decoding equals the plant truth
# ------------------------------------------------------------------------------------------------
def test_decoded_values_equal_plant_truth(make_site):
    g = make_site()
    taps = {"meter": Tap(g.nodes["meter"], meter_truth(g)), "relay": Tap(g.nodes["relay"], relay_truth(g)),
            "bms": Tap(g.nodes["bms"], bms_truth(g)), "pcs": Tap(g.nodes["pcs"], pcs_truth(g))}
    g.spin(1.0)
    g.probe.start_pcs_commands(150.0)  # discharge, so currents and the PCS ramp are exercised too
    g.spin(6.0)

    meter_records = taps["meter"].records
    assert len(meter_records) >= 30
    for _t, m, truth in meter_records:
        assert m.quality == GOOD and m.source == "meter_node"
        # PRIMARY units: ~277 V line-to-neutral and the POI power in kW, not the 69 V / W secondary.
        assert m.ct_ratio == 400.0 and m.pt_ratio == 4.0
        assert list(m.voltage_ln_v) == pytest.approx([truth["v_ln"]] * 3, rel=F32)
        assert 270.0 < m.voltage_ln_v[0] < 285.0
        assert m.p_kw == pytest.approx(truth["p_kw"], rel=F32)
        assert m.q_kvar == pytest.approx(truth["q_kvar"], rel=F32)
        assert m.s_kva == pytest.approx(math.hypot(truth["p_kw"], truth["q_kvar"]), rel=F32)
        assert m.power_factor == pytest.approx(truth["p_kw"] / math.hypot(truth["p_kw"], truth["q_kvar"]), rel=F32)
        assert list(m.current_a) == pytest.approx([truth["i_a"]] * 3, rel=F32)
        assert list(m.voltage_angle_deg) == [0.0, -120.0, 120.0]
        assert m.current_angle_deg[0] == pytest.approx(-truth["phi_deg"], abs=1e-4)
        assert m.frequency_hz == pytest.approx(truth["f_hz"], rel=F32)
        assert m.energy_delivered_kwh == pytest.approx(truth["kwh_delivered"], abs=0.05 + 1e-9)
        assert m.energy_received_kwh == pytest.approx(truth["kwh_received"], abs=0.05 + 1e-9)
    # the PCS step is visible at the POI: ~150 kW less import at the end than at the start
    assert meter_records[0][2]["p_kw"] - meter_records[-1][2]["p_kw"] == pytest.approx(150.0, abs=10.0)
    assert meter_records[-1][1].p_kw > 300.0  # still importing: ~590 kW of load at noon

    for _t, r, truth in taps["relay"].records:
        assert r.quality == GOOD
        assert r.breaker_state == (RelayStatus.BREAKER_CLOSED if truth["closed"] else RelayStatus.BREAKER_OPEN)
        assert (r.trip, r.lockout_86, r.close_permissive) == (truth["trip"], truth["lockout"], truth["permissive"])
        assert r.self_test_ok and r.active_elements == [] and r.last_trip_cause == ""
        assert r.voltage_pu == pytest.approx(truth["v_pu"], abs=MILLI)
        assert r.frequency_hz == pytest.approx(truth["f_hz"], abs=MILLI)
    assert len(taps["relay"].records) >= 30

    for _t, b, truth in taps["bms"].records:
        assert b.quality == GOOD and b.permissive and b.contactors_closed
        assert b.state == BmsStatus.STATE_CONNECTED
        assert b.soc_pct == pytest.approx(truth["soc"], abs=SUNSPEC_0_1)
        assert len(b.rack_soc_pct) == g.plant.config.n_racks == 8
        assert list(b.rack_soc_pct) == pytest.approx(truth["racks"], abs=SUNSPEC_0_1)
        assert list(b.rack_temp_max_c) == pytest.approx(truth["rack_temp_max"], abs=SUNSPEC_0_1)
        assert list(b.rack_connected) == [True] * 8
        assert b.soh_pct == pytest.approx(truth["soh"], abs=SUNSPEC_0_1)
        assert b.dc_voltage_v == pytest.approx(truth["v"], abs=SUNSPEC_0_1)
        assert b.dc_current_a == pytest.approx(truth["a"], abs=SUNSPEC_0_1)
        assert b.module_temp_max_c == pytest.approx(truth["temp_max"], abs=SUNSPEC_0_1)
        assert b.cell_voltage_max_v == pytest.approx(truth["cell_max"], abs=MILLI)
    assert len(taps["bms"].records) >= 12
    assert taps["bms"].records[-1][1].charge_status == 3  # discharging at 150 kW

    for _t, s, truth in taps["pcs"].records:
        assert s.quality == GOOD and s.grid_connected and s.rated_kw == 500.0
        assert s.p_kw == pytest.approx(truth["p_kw"], abs=SUNSPEC_0_1)
        assert s.p_setpoint_kw == truth["setpoint"]  # integer watts, scale factor 0: exact
        assert s.setpoint_enabled == truth["enabled"]
        assert s.reversion_timeout_s == truth["reversion_s"]
        assert s.frequency_hz == pytest.approx(truth["f_hz"], abs=MILLI)
        assert s.ac_voltage_v == pytest.approx(truth["v_ll"], abs=SUNSPEC_0_1)
        assert s.state == {"standby": PcsStatus.STATE_STANDBY, "running": PcsStatus.STATE_RUNNING}[truth["state"]]
    last_pcs = taps["pcs"].records[-1][1]
    assert last_pcs.p_kw == pytest.approx(150.0, abs=SUNSPEC_0_1) and last_pcs.state == PcsStatus.STATE_RUNNING

    # every node answered every poll over TCP, and what the probe received is what was published
    assert [m for _t, m in g.probe.received["meter"]] == [m for _t, m, _ in meter_records]
    assert g.probe.alarms == []


# ------------------------------------------------------------------------------------------------
# 2. comms loss and recovery, per device
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_comms_loss_publishes_stale_nan_raises_alarm_and_recovers(make_site, device):
    g = make_site([device])
    node = g.nodes[device]
    period_s = 1.0 / node.poll_hz
    code = f"{PREFIX[device]}_COMMS_LOSS"
    g.spin(2.0)
    assert g.probe.last(device).quality == GOOD
    good_floats = float_fields(g.probe.last(device))

    t_loss = g.now_ns
    g.site.inject("comms_loss", device)
    t_alarm = g.spin_until(lambda: g.probe.raised(code), timeout_s=10.0)
    # three failed polls: the first on the next tick, then back-offs of 0.5 s and 1 s (on the poll grid)
    assert t_s(t_alarm - t_loss) <= 3 * period_s + 0.5 + 1.0 + 1e-9
    (alarm,) = g.probe.raised(code)
    assert alarm.source == node.get_name() and alarm.priority == Alarm.PRIORITY_HIGH
    assert evidence(alarm)["failed_polls"] == COMMS_LOSS_AFTER == 3
    assert f"for {COMMS_LOSS_AFTER} polls" in alarm.message and str(g.ports[device]) in alarm.message

    g.spin(4.0)  # let the back-off grow
    stale = g.probe.since(device, t_loss + 1)
    assert len(stale) >= 4 * node.poll_hz
    for _t, msg in stale:
        assert msg.quality == STALE
        floats = float_fields(msg)
        assert all(math.isnan(v) for v in floats.values()), {k: v for k, v in floats.items() if not math.isnan(v)}
        assert not set(good_floats.items()) & set(floats.items())  # never the old values
    last_stale = stale[-1][1]
    if device == "relay":
        assert last_stale.breaker_state == RelayStatus.BREAKER_UNKNOWN
    if device == "bms":
        assert not last_stale.permissive and not last_stale.contactors_closed
    assert len(g.probe.raised(code)) == 1  # one raise, never a flood

    backoff_s = node._backoff_s
    assert 0 < backoff_s <= node.max_backoff_s
    t_clear = g.now_ns
    g.site.clear("comms_loss", device)
    t_good = g.spin_until(lambda: g.probe.last(device).quality == GOOD, timeout_s=node.max_backoff_s + 1.0,
                          step_s=0.05)
    # it reconnects by itself, on the first poll tick after the back-off expires
    first_good_t = next(t for t, m in g.probe.since(device, t_clear) if m.quality == GOOD)
    assert t_s(first_good_t - t_clear) <= backoff_s + period_s + 1e-9
    assert t_good >= first_good_t
    (cleared,) = g.probe.cleared(code)
    assert stamp_ns(cleared) == first_good_t  # cleared by the poll that answered
    assert node.failures == 0
    g.spin(1.0)
    assert all(m.quality == GOOD for _t, m in g.probe.since(device, first_good_t))


# ------------------------------------------------------------------------------------------------
# 3. sentinels, out-of-range values, stuck meter
# ------------------------------------------------------------------------------------------------
def float32_words(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


@pytest.mark.parametrize(("words", "expected_hz"), [
    (float32_words(math.nan), math.nan),  # float32 "not available" sentinel
    (float32_words(80.0), 80.0),  # decodes, but outside 45..65 Hz
], ids=["nan-sentinel", "80Hz"])
def test_meter_frequency_sentinel_or_out_of_range_is_invalid(make_site, words, expected_hz):
    g = make_site(["meter"])
    g.spin(1.0)
    assert g.probe.last("meter").quality == GOOD
    t0 = g.now_ns
    g.site.inject("stuck", "meter")  # frozen: the plant no longer rewrites the image
    g.poke("meter", g.site.meter_map.point("frequency").address, words)
    g.spin(0.4)
    got = g.probe.since("meter", t0 + 1)
    assert len(got) == 2
    for _t, m in got:
        assert m.quality == INVALID
        if math.isnan(expected_hz):
            assert math.isnan(m.frequency_hz)
        else:
            assert m.frequency_hz == expected_hz
        assert 270.0 < m.voltage_ln_v[0] < 285.0  # the rest still decodes
    assert not [a for a in g.probe.alarms if a.code.startswith("METER_CT") or a.code.startswith("METER_PT")]


@pytest.mark.parametrize(("raw", "expected_soc"), [(1500, 150.0), (0xFFFF, math.nan)], ids=["150pct", "sentinel"])
def test_bms_soc_out_of_range_or_sentinel_is_invalid_and_drops_permissive(make_site, raw, expected_soc):
    g = make_site(["bms"])
    g.spin(1.5)
    assert g.probe.last("bms").quality == GOOD and g.probe.last("bms").permissive
    assert g.site.bms.get(802, "SoC_SF") == -1
    address, count = g.site.bms.address(802, "SoC")
    assert count == 1
    t0 = g.now_ns
    g.site.inject("stuck", "bms")
    g.poke("bms", address, [raw])
    g.spin(1.0)
    got = g.probe.since("bms", t0 + 1)
    assert len(got) == 2
    for _t, b in got:
        assert b.quality == INVALID and b.permissive is False
        if math.isnan(expected_soc):
            assert math.isnan(b.soc_pct)
        else:
            assert b.soc_pct == expected_soc
        assert b.contactors_closed  # the rest of the data still decodes
    g.site.clear("stuck", "bms")
    g.spin(1.0)
    assert g.probe.last("bms").quality == GOOD and g.probe.last("bms").permissive


def test_stuck_meter_goes_stale_with_frozen_alarm_and_recovers(make_site):
    g = make_site(["meter"])
    node: MeterNode = g.nodes["meter"]
    g.spin(1.0)
    assert g.probe.last("meter").quality == GOOD
    sequence = g.site.meter_map.point("sequence")
    frozen_at = sequence.decode(g.peek("meter", sequence.address, 1))  # peek: a read would refresh the image
    t0 = g.now_ns
    g.site.inject("stuck", "meter")
    t_alarm = g.spin_until(lambda: g.probe.raised("METER_VALUES_FROZEN"), timeout_s=5.0, step_s=0.2)
    # the counter is unchanged on poll 1..N after the freeze; the alarm comes on poll N = stuck_polls
    assert t_s(t_alarm - t0) == pytest.approx(node.stuck_polls / node.poll_hz)
    (alarm,) = g.probe.raised("METER_VALUES_FROZEN")
    assert evidence(alarm) == {"sequence": frozen_at, "polls": node.stuck_polls}
    assert alarm.priority == Alarm.PRIORITY_HIGH and str(frozen_at) in alarm.message
    before = g.probe.since("meter", t0 + 1)
    assert [m.quality for _t, m in before] == [GOOD] * (node.stuck_polls - 1) + [STALE]
    g.spin(1.0)
    for _t, m in g.probe.since("meter", t_alarm):
        assert m.quality == STALE and math.isnan(m.p_kw) and all(math.isnan(v) for v in m.voltage_ln_v)
    g.site.clear("stuck", "meter")
    g.spin(0.4)
    assert g.probe.last("meter").quality == GOOD
    assert len(g.probe.cleared("METER_VALUES_FROZEN")) == 1


# ------------------------------------------------------------------------------------------------
# 4. PCS: commands, heartbeat, reversion
# ------------------------------------------------------------------------------------------------
R_S = 5.0  # reversion time the arbiter asks for (WSetRvrtTms is whole seconds)


def pcs_graph(make_site, **pcs_params) -> SiteGraph:
    g = make_site(["pcs"], node_params={"pcs": pcs_params})
    g.spin(0.5)  # first poll: SunSpec discovery and the PCS rating (commands are refused before)
    return g


def test_pcs_follows_arbiter_and_reverts_when_commands_stop(make_site):
    # The node refreshes the set-point only while the arbiter's last command is fresh
    # (max_command_age_s); here 1 s, with commands half a period off the heartbeat timer, so the
    # last refresh is at most 0.5 s after the last command. Budget after that: R, one plant step
    # (0.1 s), the PCS lag/ramp bringing 200 kW below half a register step (~1.8 s), one poll (0.2 s).
    g = pcs_graph(make_site, max_command_age_s=1.0)
    node: PcsNode = g.nodes["pcs"]
    writes = WriteTap(node)
    g.probe.start_pcs_commands(200.0, reversion_s=R_S)  # at t = 0.5 s, 1.5 s, ...
    g.spin(6.0)
    status = g.probe.last("pcs")
    assert status.p_kw == pytest.approx(200.0, abs=SUNSPEC_0_1)
    assert status.p_setpoint_kw == 200.0 and status.setpoint_enabled and status.state == PcsStatus.STATE_RUNNING
    assert status.reversion_timeout_s == R_S  # written by the node, read back from 704
    assert node.refused_commands == 0 and not g.probe.raised("PCS_NOT_FOLLOWING")

    t_last = g.probe.stop_pcs_commands()
    t_zero = g.spin_until(lambda: g.probe.last("pcs").p_kw == 0.0, timeout_s=30.0, step_s=0.2)
    first_zero = next(t for t, m in g.probe.since("pcs", t_last) if m.p_kw == 0.0)
    assert t_zero >= first_zero
    elapsed = t_s(first_zero - t_last)
    refresh_tail = t_s(max(writes.times_ns) - t_last)
    assert R_S <= elapsed <= R_S + 3.0, (f"PCS reached 0 kW {elapsed:.1f} s after the last command (R = {R_S} s); "
                                         f"the node refreshed the set-point until {refresh_tail:.1f} s after it")
    # the heartbeat stops with the commands: no set-point refresh beyond the command freshness
    assert refresh_tail <= node.max_command_age_s
    assert g.plant.pcs_reverted and g.probe.last("pcs").state == PcsStatus.STATE_STANDBY


def test_pcs_refuses_foreign_stale_and_out_of_rating_commands(make_site):
    g = pcs_graph(make_site)
    node: PcsNode = g.nodes["pcs"]
    g.probe.start_pcs_commands(100.0)
    g.spin(4.0)
    assert g.probe.last("pcs").p_kw == pytest.approx(100.0, abs=SUNSPEC_0_1)
    g.probe.stop_pcs_commands()
    writes = WriteTap(node)
    accepted = node.last_command

    g.probe.command_pcs(300.0, source="dispatcher")  # not the command authority
    g.probe.command_pcs(300.0, age_s=5.0)  # from the arbiter, but 5 s old (limit 2 s)
    g.probe.command_pcs(600.0)  # beyond the 500 kW rating
    g.ex.run_pending()
    assert node.refused_commands == 3
    assert writes.times_ns == []  # nothing reached the PCS
    assert node.last_command is accepted
    assert g.plant.pcs_setpoint_kw == 100.0
    g.spin(1.0)
    assert g.probe.last("pcs").p_setpoint_kw == 100.0
    assert g.probe.last("pcs").p_kw == pytest.approx(100.0, abs=SUNSPEC_0_1)


def test_pcs_not_following_is_raised_while_commands_are_fresh(make_site):
    g = pcs_graph(make_site)
    node: PcsNode = g.nodes["pcs"]
    g.site.inject("contactor_fault")  # DC contactors open: the PCS cannot deliver what it accepts
    t0 = g.now_ns
    g.probe.start_pcs_commands(200.0)
    t_alarm = g.spin_until(lambda: g.probe.raised("PCS_NOT_FOLLOWING"), timeout_s=10.0)
    assert node.follow_timeout_s <= t_s(t_alarm - t0) <= node.follow_timeout_s + 2 / node.poll_hz + 0.1
    (alarm,) = g.probe.raised("PCS_NOT_FOLLOWING")
    ev = evidence(alarm)
    assert ev["commanded_kw"] == 200.0 and ev["measured_kw"] == 0.0
    assert "0.0 kW" in alarm.message and "200.0 kW" in alarm.message
    g.site.clear("contactor_fault")
    g.spin_until(lambda: g.probe.cleared("PCS_NOT_FOLLOWING"), timeout_s=5.0)
    assert g.probe.last("pcs").p_kw == pytest.approx(200.0, abs=node.follow_tolerance_kw)


def test_pcs_ignoring_reversion_keeps_power(make_site):
    g = pcs_graph(make_site)
    g.site.inject("pcs_ignores_reversion")
    g.probe.start_pcs_commands(200.0, reversion_s=R_S)
    g.spin(5.0)
    t_last = g.probe.stop_pcs_commands()
    g.spin(4 * R_S)
    after = [m.p_kw for _t, m in g.probe.since("pcs", t_last)]
    assert after and all(p == pytest.approx(200.0, abs=SUNSPEC_0_1) for p in after)
    assert not g.plant.pcs_reverted
    # while the commands were fresh the PCS followed them: no PCS_NOT_FOLLOWING from that period
    assert not [a for a in g.probe.raised("PCS_NOT_FOLLOWING")
                if t_s(stamp_ns(a) - t_last) <= R_S]


def test_pcs_that_does_not_revert_is_alarmed(make_site):
    """The reversion is the last thing the node told the PCS: 0 kW once WSetRvrtTms has passed with no
    refresh. A PCS still delivering 200 kW long after that is not following, and the pcs_node is the
    only component that can see it (the arbiter has gone quiet)."""
    g = pcs_graph(make_site)
    node: PcsNode = g.nodes["pcs"]
    writes = WriteTap(node)
    g.site.inject("pcs_ignores_reversion")
    g.probe.start_pcs_commands(200.0, reversion_s=R_S)
    g.spin(5.0)
    g.probe.stop_pcs_commands()
    g.spin(4 * R_S)
    deadline = max(writes.times_ns) + round((R_S + node.follow_timeout_s + 1.0) * 1e9)
    raised = g.probe.raised("PCS_NOT_FOLLOWING")
    assert raised, "a PCS holding 200 kW with no refresh for 4 x WSetRvrtTms raised no alarm"
    assert stamp_ns(raised[0]) <= deadline
    assert evidence(raised[0])["commanded_kw"] == 0.0


def test_shutdown_brings_pcs_to_zero_then_stops_the_servers(make_site):
    g = pcs_graph(make_site)
    g.probe.start_pcs_commands(200.0)
    g.spin(3.0)
    assert g.plant.pcs_enabled and g.plant.pcs_setpoint_kw == 200.0
    servers = list(g.sim.servers)
    g.shutdown()  # the fixture's teardown shuts down again: idempotent
    assert not g.plant.pcs_enabled and g.plant.pcs_setpoint_kw == 0.0  # pcs_node's on-shutdown hook
    assert not any(server.running for server in servers)
    assert all(port_refuses(port) for port in g.ports.values())


# ------------------------------------------------------------------------------------------------
# 5. relay: trip, 86 lockout, supervised close
# ------------------------------------------------------------------------------------------------
def relay_graph(make_site) -> SiteGraph:
    # 50 Hz plant steps resolve the 0.16 s clearing time (10 Hz steps would quantise it to 0.2 s)
    g = make_site(["relay", "bms"], plant_params={"step_hz": 50.0})
    g.spin(1.0)
    status = g.probe.last("relay")
    assert status.quality == GOOD and status.breaker_state == RelayStatus.BREAKER_CLOSED
    assert status.close_permissive and not status.trip and not status.lockout_86
    return g


def sag_and_wait_for_trip(g: SiteGraph) -> tuple[int, RelayStatus]:
    node: RelayNode = g.nodes["relay"]
    t0 = g.now_ns
    g.site.inject("voltage_sag", pu=0.4, duration_s=1.0)
    t_trip = g.spin_until(lambda: g.probe.last("relay").trip, timeout_s=2.0, step_s=0.02)
    pickup, clearing = TRIP_SETTINGS["II"]["UV2"]
    assert pickup > 0.4
    # not before the clearing time, and seen within the clearing time plus one poll
    assert clearing <= t_s(t_trip - t0) <= clearing + 1.0 / node.poll_hz + 1e-9
    return t0, g.probe.last("relay")


def test_relay_uv2_trip_latches_86_and_supervises_close(make_site):
    g = relay_graph(make_site)
    node: RelayNode = g.nodes["relay"]
    _t0, status = sag_and_wait_for_trip(g)
    assert status.breaker_state == RelayStatus.BREAKER_OPEN and status.lockout_86 and status.alarm
    assert status.last_trip_cause == "UV2" and {"UV1", "UV2"} <= set(status.active_elements)
    assert status.voltage_pu == pytest.approx(g.plant.v_pu, abs=MILLI) and status.voltage_pu < 0.45
    assert g.plant.last_trip_cause == "UV2"
    (trip,) = g.probe.raised("RELAY_TRIP")
    assert trip.priority == Alarm.PRIORITY_CRITICAL and "UV2" in trip.message
    assert evidence(trip)["last_trip_cause"] == "UV2" and evidence(trip)["voltage_pu"] < 0.45
    (lockout,) = g.probe.raised("RELAY_86_LOCKOUT")
    assert evidence(lockout) == {"last_trip_cause": "UV2"}

    g.spin(1.5)  # the sag is over; the breaker stays open
    status = g.probe.last("relay")
    assert status.active_elements == [] and status.voltage_pu > 0.99
    assert status.breaker_state == RelayStatus.BREAKER_OPEN and status.lockout_86

    g.probe.breaker(BreakerCommand.ACTION_CLOSE)  # from the arbiter, but the 86 is latched
    g.spin(0.4)
    assert g.probe.last("relay").breaker_state == RelayStatus.BREAKER_OPEN and not g.plant.breaker_closed

    g.probe.breaker(BreakerCommand.ACTION_RESET_LOCKOUT, source="dispatcher")  # not the authority
    g.spin(0.4)
    assert node.refused_commands == 1 and g.probe.last("relay").lockout_86

    g.probe.breaker(BreakerCommand.ACTION_RESET_LOCKOUT)
    g.spin(0.4)
    status = g.probe.last("relay")
    assert not status.lockout_86 and not status.trip and status.breaker_state == RelayStatus.BREAKER_OPEN
    assert len(g.probe.cleared("RELAY_86_LOCKOUT")) == 1 and len(g.probe.cleared("RELAY_TRIP")) == 1

    g.probe.breaker(BreakerCommand.ACTION_CLOSE)
    g.spin(0.4)
    assert g.probe.last("relay").breaker_state == RelayStatus.BREAKER_CLOSED and g.plant.breaker_closed


def test_relay_refuses_close_without_bms_permissive(make_site):
    g = relay_graph(make_site)
    g.probe.breaker(BreakerCommand.ACTION_OPEN)
    g.spin(0.4)
    assert g.probe.last("relay").breaker_state == RelayStatus.BREAKER_OPEN
    g.site.inject("contactor_fault")
    g.spin(1.0)
    assert not g.probe.last("bms").permissive and not g.probe.last("bms").contactors_closed
    assert not g.probe.last("relay").close_permissive  # IN101 follows the BMS permissive

    g.probe.breaker(BreakerCommand.ACTION_CLOSE)
    g.spin(0.4)
    assert g.probe.last("relay").breaker_state == RelayStatus.BREAKER_OPEN and not g.plant.breaker_closed
    assert g.nodes["relay"].refused_commands == 0  # the node delivered it; the relay's logic refused it

    g.site.clear("contactor_fault")
    g.spin(1.0)
    assert g.probe.last("relay").close_permissive
    g.probe.breaker(BreakerCommand.ACTION_CLOSE)
    g.spin(0.4)
    assert g.probe.last("relay").breaker_state == RelayStatus.BREAKER_CLOSED


def test_relay_without_86_trips_without_lockout(make_site):
    g = relay_graph(make_site)
    g.site.inject("relay_no_86")
    _t0, status = sag_and_wait_for_trip(g)
    assert status.breaker_state == RelayStatus.BREAKER_OPEN and status.last_trip_cause == "UV2"
    assert not status.lockout_86
    g.spin(1.5)
    assert not g.probe.last("relay").lockout_86
    assert len(g.probe.raised("RELAY_TRIP")) == 1 and "UV2" in g.probe.raised("RELAY_TRIP")[0].message
    assert g.probe.raised("RELAY_86_LOCKOUT") == []


# ------------------------------------------------------------------------------------------------
# 6. CT/PT validation
# ------------------------------------------------------------------------------------------------
NUMBER = r"([+-]?\d+(?:\.\d+)?)"


def ct_step(make_site, fault: tuple[str, dict] | None) -> SiteGraph:
    g = make_site(["meter", "pcs"])
    if fault:
        g.site.inject(fault[0], **fault[1])
    g.spin(4.0)  # history before the step
    g.probe.start_pcs_commands(200.0)  # 0 -> 200 kW, from the arbiter
    g.spin(6.0)  # step detected, settle 3 s, judged
    return g


@pytest.mark.parametrize(("fault", "code", "ratio"), [
    (("ct_polarity", {}), "METER_CT_POLARITY_REVERSED", -1.0),
    (("ct_ratio", {"actual_ratio": 600.0}), "METER_CT_RATIO_ERROR", 400.0 / 600.0),
], ids=["ct_polarity", "ct_ratio"])
def test_ct_wiring_faults_found_by_power_balance(make_site, fault, code, ratio):
    g = ct_step(make_site, fault)
    (alarm,) = g.probe.raised(code)
    assert alarm.source == "meter_node" and alarm.priority == Alarm.PRIORITY_HIGH
    ev = evidence(alarm)
    assert ev["ratio"] == pytest.approx(ratio, abs=0.02)
    assert ev["bess_step_kw"] == pytest.approx(200.0, abs=1.0)
    assert ev["bess_before_kw"] == pytest.approx(0.0, abs=0.1)
    assert ev["bess_after_kw"] == pytest.approx(200.0, abs=1.0)
    # POI import changes by -ratio x the BESS step (load wander over a few seconds: a few kW)
    assert ev["poi_change_kw"] == pytest.approx(-ratio * ev["bess_step_kw"], abs=5.0)
    assert ev["poi_after_kw"] - ev["poi_before_kw"] == pytest.approx(ev["poi_change_kw"], abs=0.11)
    assert ev["ratio"] == pytest.approx(-ev["poi_change_kw"] / ev["bess_step_kw"], abs=1e-3)
    # the message states the same numbers as the evidence
    bess, poi, msg_ratio = (float(x) for x in re.search(
        rf"BESS output changed by {NUMBER} kW (?:and|but) POI import changed by {NUMBER} kW \(ratio {NUMBER}",
        alarm.message).groups())
    assert (bess, poi) == (ev["bess_step_kw"], ev["poi_change_kw"])
    assert msg_ratio == pytest.approx(ev["ratio"], abs=0.005)
    assert g.nodes["meter"].balance.last_ratio == pytest.approx(ev["ratio"], abs=1e-3)
    other = {"METER_CT_POLARITY_REVERSED", "METER_CT_RATIO_ERROR"} - {code}
    assert not [a for a in g.probe.alarms if a.code in other or a.code.startswith("METER_PT")]


def test_healthy_ct_wiring_balances(make_site):
    g = ct_step(make_site, None)
    assert g.nodes["meter"].balance.last_ratio == pytest.approx(1.0, abs=0.02)
    assert not [a for a in g.probe.alarms if a.code.startswith(("METER_CT", "METER_PT", "METER_PHASE"))]
    assert g.probe.last("pcs").p_kw == pytest.approx(200.0, abs=SUNSPEC_0_1)
    ev_poi = [m.p_kw for _t, m in g.probe.received["meter"]]
    assert min(ev_poi) > 300.0  # the site imports throughout: the balance is judged on real POI flow


def test_pt_fuse_loss_on_phase_b(make_site):
    g = make_site(["meter"])
    g.spin(1.0)
    g.site.inject("pt_fuse", phase="B")
    g.spin(0.4)
    (alarm,) = g.probe.raised("METER_PT_FUSE_LOSS")
    ev = evidence(alarm)
    (reading,) = [m for _t, m in g.probe.received["meter"] if stamp_ns(m) == stamp_ns(alarm)]
    assert reading.quality == GOOD
    assert ev["v_primary"] == list(reading.voltage_ln_v)  # the evidence is the reading that fired it
    assert ev["v_primary"][1] == 0.0 and 270.0 < ev["v_primary"][0] == ev["v_primary"][2] < 285.0
    assert ev["nominal_ln"] == 277.0 and "phase B" in alarm.message
    assert f"{ev['v_primary'][0]:.1f}, 0.0, {ev['v_primary'][2]:.1f} V" in alarm.message
    m = g.probe.last("meter")
    assert m.quality == GOOD and m.voltage_ln_v[1] == 0.0
    assert m.voltage_ln_v[0] == pytest.approx(g.plant.config.v_nominal_ln * g.plant.v_pu, abs=0.01)
    assert not [a for a in g.probe.alarms if a.code in ("METER_PT_RATIO_IMPLAUSIBLE", "METER_PHASE_ROTATION")]
    g.site.clear("pt_fuse")
    g.spin(0.4)
    assert len(g.probe.cleared("METER_PT_FUSE_LOSS")) == 1


# ------------------------------------------------------------------------------------------------
# 7. Modbus TCP and in-memory links decode identically
# ------------------------------------------------------------------------------------------------
def test_tcp_and_in_memory_links_publish_identical_messages(make_site):
    g = make_site()
    twins = {d: NODE_CLASSES[d](executor=g.ex, namespace="/twin", link=InMemoryLink(g.site.images[d]))
             for d in DEVICES}
    g.extra.extend(twins.values())
    assert all(isinstance(n.link, ModbusTcpLink) for n in g.nodes.values())
    assert {n.get_fully_qualified_name() for n in twins.values()} == {f"/twin/{d}_node" for d in DEVICES}
    taps = {d: (Tap(g.nodes[d]), Tap(twins[d])) for d in DEVICES}
    g.spin(1.0)
    g.probe.start_pcs_commands(120.0)
    g.spin(4.0)
    g.site.inject("pt_fuse", phase="C")  # a wiring fault decodes the same both ways too
    g.spin(1.0)
    for device, (tcp, mem) in taps.items():
        assert len(tcp.records) == len(mem.records) >= 10, device
        for (t_tcp, m_tcp, _), (t_mem, m_mem, _) in zip(tcp.records, mem.records, strict=True):
            assert t_tcp == t_mem  # the same simulated instant
            a, b = m_tcp.to_dict(), m_mem.to_dict()
            for d in (a, b):
                d.pop("header")
                d.pop("source")
            assert plain(a) == plain(b), device
    assert taps["pcs"][0].records[-1][1].p_kw == pytest.approx(120.0, abs=SUNSPEC_0_1)
    assert taps["meter"][0].records[-1][1].voltage_ln_v[2] == 0.0


# ------------------------------------------------------------------------------------------------
# 8. an independent SunSpec client (pysunspec2) scans the simulated PCS and BMS
# ------------------------------------------------------------------------------------------------
def test_pysunspec2_scans_pcs_and_bms_served_by_sim_plant(make_site):
    g = make_site(["pcs"])
    g.spin(0.5)
    g.probe.start_pcs_commands(250.0)
    g.spin(5.0)
    pcs = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=g.ports["pcs"], timeout=2)
    bms = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=g.ports["bms"], timeout=2)
    try:
        pcs.scan()
        bms.scan()
        assert sorted(k for k in pcs.models if isinstance(k, int)) == [1, 701, 702, 703, 704, 705, 713]
        assert sorted(k for k in bms.models if isinstance(k, int)) == [1, 802, 803]
        plant = g.plant
        assert pcs.models[701][0].W.cvalue == pytest.approx(plant.pcs_p_kw * 1000.0, abs=50.0 + 1e-6)
        assert pcs.models[701][0].W.cvalue == pytest.approx(250_000.0, abs=100.0)
        assert pcs.models[704][0].WSet.cvalue == 250_000 and pcs.models[704][0].WSetEna.value == 1
        assert pcs.models[702][0].WMaxRtg.cvalue == 500_000
        battery, bank = bms.models[802][0], bms.models[803][0]
        assert battery.SoC.cvalue == pytest.approx(plant.soc_pct, abs=SUNSPEC_0_1)
        assert battery.W.cvalue == pytest.approx(plant.pcs_p_kw * 1000.0, abs=50.0 + 1e-6)
        assert bank.NStr.value == len(bank.string) == plant.config.n_racks
        assert [s.StrSoC.cvalue for s in bank.string] == pytest.approx(plant.rack_soc, abs=SUNSPEC_0_1)
        assert all(s.StrSt.value & 0b10 for s in bank.string)  # contactor closed on every string

        soc_before = plant.soc_pct
        g.spin(30.0)  # the plant steps on; the client reads the live registers
        assert plant.soc_pct < soc_before - 0.1  # discharging 250 kW into a 1 MWh battery
        pcs.models[701][0].read()
        bms.models[802][0].read()
        bms.models[803][0].read()
        assert battery.SoC.cvalue == pytest.approx(plant.soc_pct, abs=SUNSPEC_0_1)
        assert [s.StrSoC.cvalue for s in bank.string] == pytest.approx(plant.rack_soc, abs=SUNSPEC_0_1)
        assert pcs.models[701][0].W.cvalue == pytest.approx(plant.pcs_p_kw * 1000.0, abs=50.0 + 1e-6)
        # and the node's view agrees with the independent client's
        assert g.probe.last("pcs").p_kw * 1000.0 == pytest.approx(pcs.models[701][0].W.cvalue, abs=1e-6)
    finally:
        pcs.close()
        bms.close()


# ------------------------------------------------------------------------------------------------
# 9. an independent Modbus client (Debian's mbpoll) reads the meter
# ------------------------------------------------------------------------------------------------
def mbpoll(port: int, ref: int, count: int) -> dict[int, int]:
    """Holding registers by mbpoll's 1-based reference (reference = PDU address + 1)."""
    out = subprocess.run([MBPOLL, "-m", "tcp", "-a", "1", "-t", "4", "-r", str(ref), "-c", str(count), "-1",
                          "-o", "2", "-p", str(port), "127.0.0.1"], capture_output=True, text=True, timeout=10,
                         check=True).stdout
    return {int(r): int(v) for r, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", out, re.MULTILINE)}


@pytest.mark.skipif(not shutil.which(MBPOLL), reason=f"{MBPOLL} is not installed (Debian package mbpoll; "
                                                      "`make debs` installs it)")
def test_mbpoll_reads_meter_ratios_and_a_moving_sequence(make_site):
    g = make_site(["meter"])
    g.spin(1.0)
    meter_map = g.site.meter_map
    ctr, ptr, seq = (meter_map.point(n).address for n in ("ctr", "ptr", "sequence"))
    assert (ctr, ptr, seq) == (1003, 1004, 1007)
    first = mbpoll(g.ports["meter"], ref=1001, count=8)  # references 1001..1008 = addresses 1000..1007
    assert first[1000 + 1] == 735  # model id
    assert first[ctr + 1] == 400 and first[ptr + 1] == 4
    g.spin(1.0)
    second = mbpoll(g.ports["meter"], ref=ctr + 1, count=seq - ctr + 1)
    assert second[ctr + 1] == 400 and second[ptr + 1] == 4
    assert second[seq + 1] != first[seq + 1]  # the meter is alive: its counter moves
    assert (second[seq + 1] - first[seq + 1]) % 65536 > 0
    assert g.probe.last("meter").quality == GOOD  # the node keeps polling alongside mbpoll
