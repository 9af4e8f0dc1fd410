"""The safety arbiter node pairs the POI reading with the PCS reading sampled with it (export limit).

A POI reading sampled after the PCS took a new set-point, with only an older PCS reading at hand, is
not the site load minus that PCS reading: the arbiter keeps its last command (the POI shows no
export) and decides again when the PCS reading that pairs with it arrives. Real node, deterministic
executor, readings published with their sample times.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from energizeos.nodes.safety_arbiter import SafetyArbiter
from energizeos.runtime import Node, SimExecutor, Time
from energizeos_msgs.msg import (
    ArbiterDecision,
    BmsStatus,
    DispatchRequest,
    Header,
    MeterReading,
    PcsCommand,
    PcsStatus,
    RelayStatus,
)

START = datetime(2025, 7, 2, 23, tzinfo=UTC)
S = 1_000_000_000


class Bench:
    """An arbiter in service, and a probe that publishes its inputs stamped with their sample times."""

    def __init__(self) -> None:
        self.ex = SimExecutor(START)
        self.t0 = self.ex.clock.nanoseconds
        SafetyArbiter(executor=self.ex, parameter_overrides={"es_delay_s": 0.0, "es_ramp_s": 0.0,
                                                             "ramp_kw_per_s": 0.0, "watchdog_hz": 0.1})
        probe = Node("probe", executor=self.ex)
        self.pubs = {t: probe.create_publisher(m, topic, 10) for t, m, topic in (
            ("meter", MeterReading, "/site/poi/meter"), ("pcs", PcsStatus, "/bess/pcs/status"),
            ("relay", RelayStatus, "/site/poi/relay"), ("bms", BmsStatus, "/bess/bms/status"),
            ("request", DispatchRequest, "/ems/dispatch/request"))}
        self.commands: list[float] = []
        self.decisions: list[ArbiterDecision] = []
        probe.create_subscription(PcsCommand, "/bess/pcs/command", lambda m: self.commands.append(m.p_kw), 10)
        probe.create_subscription(ArbiterDecision, "/ems/arbiter/decision", self.decisions.append, 10)

    def at(self, t_s: float) -> Header:
        self.ex.spin_until(self.t0 + round(t_s * S))
        return Header(stamp=Time(self.t0 + round(t_s * S)).to_msg())

    def publish(self, kind: str, msg) -> None:
        self.pubs[kind].publish(msg)
        self.ex.run_pending()

    def healthy(self, t_s: float) -> None:
        h = self.at(t_s)
        self.publish("relay", RelayStatus(header=h, breaker_state=RelayStatus.BREAKER_CLOSED, close_permissive=True,
                                          self_test_ok=True, voltage_pu=1.0, frequency_hz=60.0))
        self.publish("bms", BmsStatus(header=h, state=BmsStatus.STATE_CONNECTED, permissive=True,
                                      contactors_closed=True, soc_pct=50.0, dc_voltage_v=800.0,
                                      max_charge_current_a=1000.0, max_discharge_current_a=1000.0))

    def meter(self, t_s: float, p_kw: float) -> None:
        self.publish("meter", MeterReading(header=self.at(t_s), p_kw=p_kw))

    def pcs(self, t_s: float, p_kw: float) -> None:
        self.publish("pcs", PcsStatus(header=self.at(t_s), state=PcsStatus.STATE_RUNNING, p_kw=p_kw))


def test_the_arbiter_keeps_its_command_until_the_pcs_reading_that_pairs_with_the_poi_reading_arrives():
    b = Bench()
    b.healthy(0.0)
    b.pcs(0.0, 0.0)
    b.meter(0.0, 300.0)
    b.publish("request", DispatchRequest(header=b.at(0.0), source="dispatcher", request_id=1, p_kw=290.0))
    assert b.commands[-1] == 290.0  # site load 300 kW, 5 kW margin: 290 kW as asked
    b.healthy(0.5)
    b.meter(0.5, 12.0)  # the PCS now gives 288 kW; its reading (sampled at 0 s) still says 0 kW
    assert b.commands[-1] == 290.0, "POI + the old PCS reading (12 kW) read as a load drop"
    decided = len(b.decisions)
    b.pcs(0.5, 288.0)  # the pair: site load 300 kW
    assert len(b.decisions) == decided + 1 and b.commands[-1] == 290.0
    assert b.decisions[-1].outcome == ArbiterDecision.OUTCOME_GRANTED
    # a real load drop shows in the next pair, and is cut from it
    b.healthy(1.0)
    b.meter(1.0, -40.0)  # exporting 40 kW: the arbiter cuts without waiting for the PCS reading
    assert b.commands[-1] == pytest.approx(288.0 - 40.0 - 5.0)
    decided = len(b.decisions)
    b.pcs(1.0, 288.0)  # the pair confirms: site load 248 kW
    assert len(b.decisions) == decided + 1 and b.commands[-1] == pytest.approx(243.0)
