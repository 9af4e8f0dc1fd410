"""meter_node: the POI revenue meter (SEL-735-class) -> /site/poi/meter, in primary units.

The meter reports secondary values; primary = secondary x PTR (voltage), x CTR (current),
x CTR x PTR (power). CT/PT validation runs at start-up and continuously (see ct_pt_validation).
"""

from __future__ import annotations

import math

from energizeos import runtime
from energizeos.nodes.ct_pt_validation import (
    Finding,
    PowerBalanceCheck,
    check_ratios,
    check_rotation,
    check_voltages,
)
from energizeos.nodes.device_node import NAN, QUALITY_GOOD, QUALITY_INVALID, QUALITY_STALE, DeviceNode
from energizeos.runtime import ParameterDescriptor
from energizeos.sim.maps.sel import load_map
from energizeos_msgs.msg import Alarm, MeterReading, PcsStatus

CONTINUOUS_CODES = ("METER_CT_RATIO_MISMATCH", "METER_PT_RATIO_MISMATCH", "METER_PT_FUSE_LOSS",
                    "METER_PT_RATIO_IMPLAUSIBLE", "METER_PHASE_ROTATION")
BALANCE_CODES = ("METER_CT_POLARITY_REVERSED", "METER_CT_RATIO_ERROR")


class MeterNode(DeviceNode):
    alarm_prefix = "METER"

    def __init__(self, **kwargs) -> None:
        super().__init__("meter_node", default_port=15021, default_poll_hz=5.0, **kwargs)
        self.nameplate_ctr = self.declare_parameter("nameplate_ctr", 400.0, ParameterDescriptor(
            "installed CT ratio from the single-line diagram", min_value=1.0)).value
        self.nameplate_ptr = self.declare_parameter("nameplate_ptr", 4.0, ParameterDescriptor(
            "installed PT ratio", min_value=1.0)).value
        self.nominal_ln = self.declare_parameter("nominal_ln_v", 277.0, ParameterDescriptor(
            "nominal primary line-to-neutral voltage", min_value=50.0)).value
        self.max_abs_kw = self.declare_parameter("max_abs_kw", 5000.0, ParameterDescriptor(
            "largest plausible POI power; beyond it a reading is invalid", min_value=1.0)).value
        self.stuck_polls = self.declare_parameter("stuck_polls", 5, ParameterDescriptor(
            "polls with an unchanged sequence counter before the values count as frozen", min_value=2)).value
        self.map = load_map("sel735")
        self.blocks = self.map.read_blocks()
        self.pub = self.create_publisher(MeterReading, "/site/poi/meter", 10)
        self.balance = PowerBalanceCheck()
        self.bess_kw: float | None = None
        self.grid_connected = False
        self.create_subscription(PcsStatus, "/bess/pcs/status", self.on_pcs, 10)
        self._last_sequence: int | None = None
        self._same_sequence = 0
        self.last: MeterReading | None = None

    def on_pcs(self, msg: PcsStatus) -> None:
        self.bess_kw = msg.p_kw if msg.quality == PcsStatus.QUALITY_GOOD else None
        self.grid_connected = bool(msg.grid_connected)

    def read_points(self) -> dict:
        values: dict = {}
        for address, count in self.blocks:
            values.update(self.map.decode(self.link.read(address, count), address))
        return values

    def poll_device(self) -> None:
        v = self.read_points()
        if self._frozen(v.get("sequence")):
            self.set_condition("METER_VALUES_FROZEN", True, Alarm.PRIORITY_HIGH,
                               f"meter sequence counter stuck at {v.get('sequence')} for {self._same_sequence} polls",
                               {"sequence": v.get("sequence"), "polls": self._same_sequence})
            self.publish_stale("meter values frozen")
            return
        self.set_condition("METER_VALUES_FROZEN", False)
        msg, problems = self.to_reading(v)
        if problems:
            msg.quality = MeterReading.QUALITY_INVALID
            self.get_logger().warning(f"invalid meter reading: {'; '.join(problems)}", throttle_duration_sec=10.0)
        self.pub.publish(msg)
        self.last = msg
        if msg.quality == QUALITY_GOOD:
            self.validate(msg, v)

    def _frozen(self, sequence: int | None) -> bool:
        if sequence is not None and sequence == self._last_sequence:
            self._same_sequence += 1
        else:
            self._same_sequence = 0
        self._last_sequence = sequence
        return self._same_sequence >= self.stuck_polls

    def to_reading(self, v: dict) -> tuple[MeterReading, list[str]]:
        """Secondary registers -> primary MeterReading, with the reasons it is invalid (if any)."""
        problems = [f"{name} not available" for name in ("ctr", "ptr", "p_total", "frequency") if v.get(name) is None]
        ctr = float(v.get("ctr") or NAN)
        ptr = float(v.get("ptr") or NAN)

        def num(name: str, scale: float = 1.0) -> float:
            value = v.get(name)
            return NAN if value is None else float(value) * scale

        power_scale = ctr * ptr / 1000.0
        msg = MeterReading(
            header=self.header("poi"), source=self.get_name(), quality=QUALITY_GOOD,
            voltage_ln_v=[num(f"v{p}_mag", ptr) for p in "abc"],
            voltage_angle_deg=[num(f"v{p}_ang") for p in "abc"],
            current_a=[num(f"i{p}_mag", ctr) for p in "abc"],
            current_angle_deg=[num(f"i{p}_ang") for p in "abc"],
            p_kw=num("p_total", power_scale), q_kvar=num("q_total", power_scale), s_kva=num("s_total", power_scale),
            power_factor=num("pf"), frequency_hz=num("frequency"),
            energy_delivered_kwh=num("kwh_delivered"), energy_received_kwh=num("kwh_received"),
            demand_15min_kw=num("demand_kw"), ct_ratio=ctr, pt_ratio=ptr,
        )
        if not math.isnan(msg.frequency_hz) and not 45.0 <= msg.frequency_hz <= 65.0:
            problems.append(f"frequency {msg.frequency_hz:.2f} Hz outside 45..65 Hz")
        if not math.isnan(msg.p_kw) and abs(msg.p_kw) > self.max_abs_kw:
            problems.append(f"P {msg.p_kw:.0f} kW beyond the plausible {self.max_abs_kw:.0f} kW")
        if any(not 0.0 <= x <= 2.0 * self.nominal_ln for x in msg.voltage_ln_v if not math.isnan(x)):
            problems.append("a phase voltage outside 0..2 x nominal")
        return msg, problems

    def validate(self, msg: MeterReading, v: dict) -> None:
        findings: list[Finding] = [*check_ratios(msg.ct_ratio, msg.pt_ratio, self.nameplate_ctr, self.nameplate_ptr),
                                   *check_voltages(list(msg.voltage_ln_v), self.nominal_ln)]
        if all(v.get(f"v{p}_mag") for p in "abc"):
            findings += check_rotation(list(msg.voltage_angle_deg))
        found = {f.code: f for f in findings}
        for code in CONTINUOUS_CODES:
            f = found.get(code)
            self.set_condition(code, f is not None, Alarm.PRIORITY_HIGH, f.message if f else "",
                               f.evidence if f else None)
        if self.bess_kw is None or not self.grid_connected:
            self.balance.reset()  # off the grid (breaker open, trip): the POI no longer sees the BESS
            return
        result = self.balance.add(self.get_clock().now().nanoseconds / 1e9, msg.p_kw, self.bess_kw)
        if isinstance(result, Finding):
            self.set_condition(result.code, True, Alarm.PRIORITY_HIGH, result.message, result.evidence)
        elif result is True:
            for code in BALANCE_CODES:
                self.set_condition(code, False)

    def publish_stale(self, reason: str) -> None:
        nan3 = [NAN, NAN, NAN]
        self.pub.publish(MeterReading(
            header=self.header("poi"), source=self.get_name(), quality=QUALITY_STALE,
            voltage_ln_v=nan3, voltage_angle_deg=nan3, current_a=nan3, current_angle_deg=nan3,
            p_kw=NAN, q_kvar=NAN, s_kva=NAN, power_factor=NAN, frequency_hz=NAN, energy_delivered_kwh=NAN,
            energy_received_kwh=NAN, demand_15min_kw=NAN, ct_ratio=NAN, pt_ratio=NAN))


QUALITY_NAMES = {QUALITY_GOOD: "good", QUALITY_INVALID: "invalid", QUALITY_STALE: "stale"}


def main(args: list[str] | None = None) -> None:
    runtime.run_node(MeterNode, args)
