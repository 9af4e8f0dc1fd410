"""A restarted safety arbiter (issue #11): it begins in the safe state and rebuilds its view from
fresh data before granting anything.

The real nodes (device nodes on the plant's in-memory registers, arbiter, dispatcher) in the
deterministic executor, discharging under zero export. The arbiter is killed the way kill -9 kills
it (its node destroyed without its on-shutdown hooks: no farewell 0 kW command) and a new one is
started, as launch respawns it. What the new arbiter publishes is checked against what it received
after its own start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energizeos import scenarios
from energizeos.nodes.bms_node import BmsNode
from energizeos.nodes.device_link import InMemoryLink
from energizeos.nodes.device_node import DeviceNode
from energizeos.nodes.meter_node import MeterNode
from energizeos.nodes.pcs_node import PcsNode
from energizeos.nodes.relay_node import RelayNode
from energizeos.nodes.safety_arbiter import SafetyArbiter
from energizeos_msgs.msg import ArbiterDecision, BmsStatus, MeterReading, PcsCommand, PcsStatus, RelayStatus

LOAD_KW = 400.0
STEADY_KW = LOAD_KW - 10.0  # the dispatcher's export margin
INPUTS = {"meter": ("/site/poi/meter", MeterReading, MeterNode), "relay": ("/site/poi/relay", RelayStatus, RelayNode),
          "bms": ("/bess/bms/status", BmsStatus, BmsNode), "pcs": ("/bess/pcs/status", PcsStatus, PcsNode)}
GOOD = 0


@dataclass
class Restart:
    """What a new arbiter did after ``t_start`` (seconds of site time), and the inputs it had."""

    site: scenarios.Site
    arbiter: SafetyArbiter
    t_start: float
    first_good: dict[str, float] = field(default_factory=dict)  # input -> first good reading after the start
    commands: list[tuple[float, float, bool]] = field(default_factory=list)  # (t, p_kw, enable)
    decisions: list[tuple[float, ArbiterDecision]] = field(default_factory=list)

    def nonzero(self) -> list[tuple[float, float, bool]]:
        return [c for c in self.commands if c[1] != 0.0 or c[2]]

    def all_inputs_by(self, t: float) -> bool:
        return len(self.first_good) == len(INPUTS) and max(self.first_good.values()) <= t


def discharging_site(es_delay_s: float = 2.0, es_ramp_s: float = 2.0) -> tuple[scenarios.Site, dict]:
    params = {"es_delay_s": es_delay_s, "es_ramp_s": es_ramp_s}
    site = scenarios.build_site({"mode": "peak_shaving", "peak_threshold_kw": 0.0}, params, load_kw=LOAD_KW)
    took = site.run_until(lambda: abs(site.plant.site.plant.pcs_p_kw - STEADY_KW) < 1.0, 30.0)
    assert took < 30.0, "the site never reached its steady discharge"
    site.run(2.0)
    return site, params


def device_node(site: scenarios.Site, name: str) -> DeviceNode:
    cls = INPUTS[name][2]
    return next(n for n in site.ex.nodes if isinstance(n, cls))


def kill(node) -> None:
    """kill -9: the node vanishes with its timers and subscriptions; its on-shutdown hooks never run."""
    node.destroy_node()


def restart_arbiter(site: scenarios.Site, params: dict, down_s: float) -> Restart:
    """Kill the arbiter, leave it down for ``down_s``, start a new one; record from its start."""
    kill(site.arbiter)
    site.run(down_s)
    t_start = site.t
    arbiter = SafetyArbiter(executor=site.ex, parameter_overrides=params)
    r = Restart(site, arbiter, t_start)
    for name, (topic, msg_type, _cls) in INPUTS.items():
        def seen(msg, name: str = name) -> None:
            if msg.quality == GOOD:
                r.first_good.setdefault(name, site.t)
        site.probe.create_subscription(msg_type, topic, seen, 10)
    site.probe.create_subscription(PcsCommand, "/bess/pcs/command", lambda c: r.commands.append(
        (site.t, c.p_kw, c.enable)) if c.source == "safety_arbiter" else None, 100)
    site.probe.create_subscription(ArbiterDecision, "/ems/arbiter/decision",
                                   lambda d: r.decisions.append((site.t, d)), 1000)
    return r


def check_restart_invariants(r: Restart) -> None:
    """What a new arbiter must do whatever the timing: 0 kW first, nothing before fresh data from
    every input, and a ramp from 0 kW at its own start (not from what the PCS was doing)."""
    limits = r.arbiter.limits
    assert r.commands, "the new arbiter commanded nothing"
    t0, p0, enable0 = r.commands[0]
    assert (p0, enable0) == (0.0, False), "the first command of a new arbiter is 0 kW, disabled"
    assert t0 - r.t_start <= 0.5 + 1e-9, "the safe command goes out by the first watchdog tick (2 Hz) at the latest"
    for t, p_kw, _enable in r.nonzero():
        assert r.all_inputs_by(t), f"{p_kw:.1f} kW at +{t - r.t_start:.2f} s with only {sorted(r.first_good)} fresh"
        # enter service starts over: the grid must be seen inside the window for the whole delay
        assert t - r.first_good["relay"] >= limits.es_delay_s - 1e-9
        assert abs(p_kw) <= limits.ramp_kw_per_s * (t - r.t_start) + 1e-6, "ramped from 0 kW at the start"
    for t, d in r.decisions:
        if d.granted_kw != 0.0:
            assert r.all_inputs_by(t)


def test_restarted_arbiter_starts_safe_and_grants_only_on_fresh_data_from_every_input():
    site, params = discharging_site()
    assert site.plant.site.plant.pcs_p_kw == pytest.approx(STEADY_KW, abs=1.0)
    r = restart_arbiter(site, params, down_s=1.0)
    site.run(12.0)
    check_restart_invariants(r)
    assert r.commands[0][0] - r.t_start <= 0.5
    first_grant = r.nonzero()[0][0]
    # nothing for the whole enter-service delay after its first relay reading; then it dispatches again
    assert first_grant - r.first_good["relay"] >= params["es_delay_s"]
    assert site.plant.site.plant.pcs_p_kw == pytest.approx(STEADY_KW, abs=1.0)
    # the PCS was still at power on the dead arbiter's last set-point: the new one brought it to 0 kW first
    before = [pcs for t, _poi, pcs in site.truth if r.t_start <= t <= first_grant]
    assert before[0] == pytest.approx(STEADY_KW, abs=1.0) and min(before) < 1.0


@pytest.mark.parametrize("how", ["comms_loss", "node_dead"])
@pytest.mark.parametrize("missing", list(INPUTS))
def test_restarted_arbiter_grants_nothing_while_one_input_is_missing(missing, how):
    """One device gives no good data across the restart (its comms lost, or its node dead too):
    the new arbiter holds 0 kW however long, and dispatches once that device reports again."""
    site, params = discharging_site()
    node = device_node(site, missing)
    if how == "comms_loss":
        site.plant.site.inject("comms_loss", missing)
    else:
        kill(node)
    r = restart_arbiter(site, params, down_s=0.5)
    site.run(15.0)  # many times the watchdogs, the enter-service delay and its ramp
    assert missing not in r.first_good
    assert r.nonzero() == [] and all(d.granted_kw == 0.0 for _t, d in r.decisions)
    stale = f"STALE_{missing.upper()}"
    assert all(stale in d.reason_codes for _t, d in r.decisions[-10:]), [list(d.reason_codes) for _t, d in
                                                                         r.decisions[-3:]]
    if how == "comms_loss":
        site.plant.site.clear("comms_loss", missing)
    else:
        cls = INPUTS[missing][2]
        cls(executor=site.ex, link=InMemoryLink(site.plant.site.images[missing]))
    took = site.run_until(lambda: abs(site.plant.site.plant.pcs_p_kw - STEADY_KW) < 5.0, 30.0)
    assert took < 30.0, "the site never dispatched again once the device was back"
    check_restart_invariants(r)


def test_bms_permissive_lost_while_the_arbiter_was_down_is_seen_by_the_new_one():
    site, params = discharging_site()
    kill(site.arbiter)
    site.run(1.0)
    site.plant.site.inject("bms_not_ready")
    r = restart_arbiter(site, params, down_s=0.0)
    site.run(10.0)
    assert r.nonzero() == [] and all(d.granted_kw == 0.0 for _t, d in r.decisions)
    assert "BMS_NOT_READY" in r.decisions[-1][1].reason_codes
    site.plant.site.clear("bms_not_ready")
    t_clear = site.t
    took = site.run_until(lambda: abs(site.plant.site.plant.pcs_p_kw - STEADY_KW) < 5.0, 30.0)
    assert took < 30.0
    check_restart_invariants(r)
    assert r.nonzero()[0][0] >= t_clear  # granted only on a reading taken after the BMS was ready again


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(down_s=st.floats(0.0, 12.0), es=st.sampled_from([(0.0, 0.0), (0.0, 1.0), (0.5, 0.0), (2.0, 2.0)]),
       phase_s=st.floats(0.0, 0.5), missing=st.sampled_from([None, *INPUTS]),
       how=st.sampled_from(["comms_loss", "node_dead"]))
def test_property_a_new_arbiter_never_grants_before_fresh_data_whatever_the_timing(down_s, es, phase_s, missing, how):
    """Any down time (inside or beyond the PCS reversion), any restart phase against the device
    polls, any enter-service setting (even none), with or without one input missing."""
    site, params = discharging_site(*es)
    site.run(phase_s)
    if missing is not None:
        if how == "comms_loss":
            site.plant.site.inject("comms_loss", missing)
        else:
            kill(device_node(site, missing))
    r = restart_arbiter(site, params, down_s)
    site.run(8.0)
    check_restart_invariants(r)
    if missing is not None:
        assert r.nonzero() == []
    else:  # with everything healthy it dispatches again once enter service allows it
        assert r.nonzero() and site.plant.site.plant.pcs_p_kw > 0.0
