"""pcs_node: the power conversion system (SunSpec 701/702/704) -> /bess/pcs/status; carries out
/bess/pcs/command from the safety arbiter only.

The set-point is refreshed (heartbeat) only while the arbiter's commands are fresh, so the PCS's
own reversion timer means "EMS gone": if the arbiter or this node stops, the PCS goes to 0 kW by
itself. What the PCS reports back is checked against the command: accepted is not applied.
"""

from __future__ import annotations

import math

from energizeos import runtime
from energizeos.nodes.device_link import LinkError
from energizeos.nodes.device_node import NAN, QUALITY_GOOD, QUALITY_STALE
from energizeos.nodes.sunspec_device import SunSpecDeviceNode
from energizeos.runtime import MIN_RATE_HZ, ParameterDescriptor, Time
from energizeos_msgs.msg import Alarm, PcsCommand, PcsStatus

INV_STATES = {0: PcsStatus.STATE_OFF, 1: PcsStatus.STATE_STANDBY, 2: PcsStatus.STATE_STANDBY,
              3: PcsStatus.STATE_RUNNING, 4: PcsStatus.STATE_RUNNING, 5: PcsStatus.STATE_STANDBY,
              6: PcsStatus.STATE_FAULT, 7: PcsStatus.STATE_STANDBY}


def _num(value, scale: float = 1.0) -> float:
    return NAN if value is None else float(value) * scale


class PcsNode(SunSpecDeviceNode):
    alarm_prefix = "PCS"
    required_models = (701, 702, 704)

    def __init__(self, **kwargs) -> None:
        super().__init__("pcs_node", default_port=15024, default_poll_hz=5.0, **kwargs)
        self.command_source = self.declare_parameter("command_source", "safety_arbiter", ParameterDescriptor(
            "the only publisher whose commands are carried out")).value
        self.max_command_age_s = self.declare_parameter("max_command_age_s", 2.0, ParameterDescriptor(
            "a command older than this is refused", min_value=0.1, max_value=30.0)).value
        self.heartbeat_s = self.declare_parameter("heartbeat_s", 1.0, ParameterDescriptor(
            "set-point refresh period while commands are fresh", min_value=0.1, max_value=1.0 / MIN_RATE_HZ)).value
        self.follow_tolerance_kw = self.declare_parameter("follow_tolerance_kw", 25.0).value
        self.follow_timeout_s = self.declare_parameter("follow_timeout_s", 5.0).value
        self.pub = self.create_publisher(PcsStatus, "/bess/pcs/status", 10)
        self.create_subscription(PcsCommand, "/bess/pcs/command", self.on_command, 10)
        self.create_timer(self.heartbeat_s, self.heartbeat)
        self.add_on_shutdown(self.to_zero)
        self.refused_commands = 0
        self.rated_kw = NAN
        self.last_command: PcsCommand | None = None
        self._last_write_ns = 0
        self._written_reversion_s: float | None = None
        self._off_target_since_ns: int | None = None

    # --- status -------------------------------------------------------------------------------
    def poll_device(self) -> None:
        models = self.read_models(701, 702, 704)
        meas, rating, ctl = models[701], models[702], models[704]
        self.rated_kw = _num(rating.get("WMaxRtg"), 1e-3)
        msg = PcsStatus(
            header=self.header("pcs"), source=self.get_name(), quality=QUALITY_GOOD,
            state=INV_STATES.get(int(meas.get("InvSt") if meas.get("InvSt") is not None else 0), PcsStatus.STATE_OFF),
            grid_connected=meas.get("ConnSt") == 1, setpoint_enabled=ctl.get("WSetEna") == 1,
            p_kw=_num(meas.get("W"), 1e-3), q_kvar=_num(meas.get("Var"), 1e-3),
            p_setpoint_kw=_num(ctl.get("WSet"), 1e-3), rated_kw=self.rated_kw,
            ramp_rate_kw_per_s=NAN, reversion_timeout_s=_num(ctl.get("WSetRvrtTms")),
            ac_voltage_v=_num(meas.get("LLV")), frequency_hz=_num(meas.get("Hz")), dc_voltage_v=NAN,
            alarm_bits=int(meas.get("Alrm") or 0),
        )
        self.pub.publish(msg)
        self.set_condition("PCS_FAULT", msg.state == PcsStatus.STATE_FAULT, Alarm.PRIORITY_CRITICAL,
                           "PCS reports FAULT", {"alarm_bits": msg.alarm_bits})
        self._check_following(msg)

    def _check_following(self, msg: PcsStatus) -> None:
        """Alarm when the PCS does not do what it was told (OpenEMS #3752: accepted is not applied).

        While commands are fresh the target is the command; once they stop, the PCS must revert to
        0 kW within its reversion time after our last refresh (a PCS that never reverts is alarmed).
        """
        cmd = self.last_command
        now = self.get_clock().now().nanoseconds
        if cmd is None or msg.state == PcsStatus.STATE_FAULT:
            self._off_target_since_ns = None
            return
        fresh = self._command_fresh(cmd, now)
        if fresh:
            target = cmd.p_kw if cmd.enable else 0.0
        else:
            reverted_by = self._last_write_ns + (self._written_reversion_s or cmd.reversion_timeout_s) * 1e9
            if now < reverted_by:
                self._off_target_since_ns = None
                return  # still inside the reversion time the PCS was given
            target = 0.0
        if abs(msg.p_kw - target) <= self.follow_tolerance_kw:
            self._off_target_since_ns = None
            self.set_condition("PCS_NOT_FOLLOWING", False)
            return
        self._off_target_since_ns = self._off_target_since_ns or now
        if now - self._off_target_since_ns >= self.follow_timeout_s * 1e9:
            why = (f"while commanded {target:.1f} kW" if fresh else
                   f"although the EMS stopped refreshing {(now - self._last_write_ns) / 1e9:.0f} s ago: "
                   "it did not revert to 0 kW")
            self.set_condition("PCS_NOT_FOLLOWING", True, Alarm.PRIORITY_HIGH,
                               f"PCS delivers {msg.p_kw:.1f} kW for {self.follow_timeout_s:.0f} s {why}",
                               {"commanded_kw": target, "measured_kw": msg.p_kw, "decision_id": cmd.decision_id})

    def publish_stale(self, reason: str) -> None:
        self.pub.publish(PcsStatus(header=self.header("pcs"), source=self.get_name(), quality=QUALITY_STALE,
                                   p_kw=NAN, q_kvar=NAN, p_setpoint_kw=NAN, rated_kw=NAN, ramp_rate_kw_per_s=NAN,
                                   reversion_timeout_s=NAN, ac_voltage_v=NAN, frequency_hz=NAN, dc_voltage_v=NAN))

    # --- commands -----------------------------------------------------------------------------
    def _command_fresh(self, cmd: PcsCommand, now_ns: int) -> bool:
        """Fresh as long as a new command would be accepted; after that the heartbeat stops."""
        age_s = (now_ns - Time.from_msg(cmd.header.stamp).nanoseconds) / 1e9
        return age_s <= self.max_command_age_s

    def on_command(self, cmd: PcsCommand) -> None:
        now = self.get_clock().now().nanoseconds
        age_s = (now - Time.from_msg(cmd.header.stamp).nanoseconds) / 1e9
        reason = None
        if cmd.source != self.command_source:
            reason = f"source {cmd.source!r} is not {self.command_source!r}, the only command authority"
        elif age_s > self.max_command_age_s:
            reason = f"command is {age_s:.2f} s old (limit {self.max_command_age_s} s)"
        elif cmd.p_kw != 0.0 and (math.isnan(self.rated_kw) or abs(cmd.p_kw) > self.rated_kw):  # 0 kW: always
            reason = f"{cmd.p_kw:.1f} kW is outside the PCS rating ±{self.rated_kw} kW"
        if reason:
            self.refused_commands += 1
            self.get_logger().error(f"refused PCS command (decision {cmd.decision_id}): {reason}")
            return
        self.last_command = cmd
        self.write_setpoint(cmd.p_kw if cmd.enable else 0.0, cmd.enable, cmd.reversion_timeout_s)

    def heartbeat(self) -> None:
        """Refresh the set-point only while the arbiter keeps commanding; silence lets the PCS revert."""
        cmd = self.last_command
        now = self.get_clock().now().nanoseconds
        if cmd is None or not self._command_fresh(cmd, now) or now - self._last_write_ns < self.heartbeat_s * 1e9 / 2:
            return
        self.write_setpoint(cmd.p_kw if cmd.enable else 0.0, cmd.enable, cmd.reversion_timeout_s)

    def write_setpoint(self, p_kw: float, enable: bool, reversion_s: float) -> bool:
        if self.layout is None:
            self.get_logger().warning("cannot write a set-point yet: the PCS has not been read",
                                      throttle_duration_sec=10.0)
            return False
        writes = []
        if reversion_s > 0 and reversion_s != self._written_reversion_s:
            writes.append(self.layout.encode_write(704, "WSetRvrtTms", round(reversion_s)))
        writes.append(self.layout.encode_write(704, "WSet", round(p_kw * 1000.0), current_sf=0))
        writes.append(self.layout.encode_write(704, "WSetEna", 1 if enable else 0))
        try:
            for address, words in writes:
                self.link.write(address, words)
        except LinkError as exc:
            self.get_logger().error(f"set-point {p_kw:.1f} kW not delivered: {exc}")
            return False
        if reversion_s > 0:
            self._written_reversion_s = reversion_s
        self._last_write_ns = self.get_clock().now().nanoseconds
        return True

    def to_zero(self) -> None:
        """On shutdown: 0 kW and disabled, before the process exits (the launch stops the PCS path first)."""
        if self.layout is not None and self.write_setpoint(0.0, False, 0.0):
            self.get_logger().info("shutdown: PCS commanded to 0 kW, set-point disabled")


def main(args: list[str] | None = None) -> None:
    runtime.run_node(PcsNode, args)
