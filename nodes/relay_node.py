"""relay_node: the POI protection relay (SEL-700G-class) -> /site/poi/relay.

Breaker commands are written as remote-bit pulses, and only when they come from the safety
arbiter; the relay's own logic still supervises a close (refused while tripped, locked out or
without its close permissive), so the status that follows is the truth, not the command.
"""

from __future__ import annotations

from energizeos import runtime
from energizeos.nodes.device_link import LinkError
from energizeos.nodes.device_node import NAN, QUALITY_GOOD, QUALITY_STALE, DeviceNode
from energizeos.runtime import ParameterDescriptor
from energizeos.sim.maps.sel import load_map
from energizeos_msgs.msg import Alarm, BreakerCommand, RelayStatus

ELEMENT_NAMES = {"27P1": "UV1", "27P2": "UV2", "59P1": "OV1", "59P2": "OV2",
                 "81U1": "UF1", "81U2": "UF2", "81O1": "OF1", "81O2": "OF2"}
REMOTE_BITS = {BreakerCommand.ACTION_CLOSE: "RB01", BreakerCommand.ACTION_OPEN: "RB02",
               BreakerCommand.ACTION_RESET_LOCKOUT: "RB03"}


class RelayNode(DeviceNode):
    alarm_prefix = "RELAY"

    def __init__(self, **kwargs) -> None:
        super().__init__("relay_node", default_port=15022, default_poll_hz=5.0, **kwargs)
        self.command_source = self.declare_parameter("command_source", "safety_arbiter", ParameterDescriptor(
            "the only publisher whose breaker commands are carried out")).value
        self.map = load_map("sel700g")
        self.blocks = self.map.read_blocks()
        self.pub = self.create_publisher(RelayStatus, "/site/poi/relay", 10)
        self.create_subscription(BreakerCommand, "/site/poi/relay/command", self.on_command, 10)
        self.refused_commands = 0
        self.settings: dict = {}

    def poll_device(self) -> None:
        v: dict = {}
        for address, count in self.blocks:
            v.update(self.map.decode(self.link.read(address, count), address))
        status = v.get("relay_status") or {}
        closed, opened = status.get("52A"), status.get("52B")
        if closed is None or closed == opened:
            breaker = RelayStatus.BREAKER_UNKNOWN  # 52a and 52b disagree: trust neither
        else:
            breaker = RelayStatus.BREAKER_CLOSED if closed else RelayStatus.BREAKER_OPEN
        picked = v.get("element_pickup") or {}
        cause_point = self.map.point("last_trip_cause")
        cause = v.get("last_trip_cause")
        self.settings = {k: v[k] for k in v if k.endswith(("_pickup", "_clear_time")) or k in (
            "ieee1547_category", "settings_crc")}
        volts = [v.get(f"v{p}_pu") for p in "abc"]
        good_volts = [x for x in volts if x is not None]
        msg = RelayStatus(
            header=self.header("poi_breaker"), source=self.get_name(), quality=QUALITY_GOOD,
            breaker_state=breaker, trip=bool(status.get("TRIP")), lockout_86=bool(status.get("86")),
            alarm=bool(status.get("ALARM")), self_test_ok=bool(status.get("SELF_TEST_OK")),
            close_permissive=bool(status.get("IN101")),
            active_elements=[ELEMENT_NAMES[e] for e, on in picked.items() if on and e in ELEMENT_NAMES],
            last_trip_cause="" if not cause else cause_point.label(cause),
            voltage_pu=sum(good_volts) / len(good_volts) if good_volts else NAN,
            frequency_hz=NAN if v.get("frequency") is None else float(v["frequency"]),
        )
        if breaker == RelayStatus.BREAKER_UNKNOWN:
            msg.quality = RelayStatus.QUALITY_INVALID
        self.pub.publish(msg)
        self.set_condition("RELAY_TRIP", msg.trip, Alarm.PRIORITY_CRITICAL,
                           f"POI relay tripped ({msg.last_trip_cause or 'cause unknown'})",
                           {"last_trip_cause": msg.last_trip_cause, "voltage_pu": msg.voltage_pu,
                            "frequency_hz": msg.frequency_hz})
        self.set_condition("RELAY_86_LOCKOUT", msg.lockout_86, Alarm.PRIORITY_CRITICAL,
                           "86 lockout latched: breaker close refused until an authorised reset",
                           {"last_trip_cause": msg.last_trip_cause})
        self.set_condition("RELAY_SELF_TEST_FAIL", not msg.self_test_ok, Alarm.PRIORITY_HIGH,
                           "relay self-test failed", {})

    def on_command(self, cmd: BreakerCommand) -> None:
        if cmd.source != self.command_source:
            self.refused_commands += 1
            self.get_logger().error(f"refused breaker command from {cmd.source!r} (requested by "
                                    f"{cmd.requested_by!r}): only {self.command_source!r} may command the breaker")
            return
        bit = REMOTE_BITS.get(cmd.action)
        if bit is None:
            self.refused_commands += 1
            self.get_logger().error(f"refused breaker command with unknown action {cmd.action}")
            return
        address, words = self.map.encode_write("remote_bits", {bit: True})
        try:
            self.link.write(address, words)
        except LinkError as exc:
            self.get_logger().error(f"breaker command {bit} (decision {cmd.decision_id}) not delivered: {exc}")
            return
        self.get_logger().info(f"breaker command {bit} written (decision {cmd.decision_id}, "
                               f"requested by {cmd.requested_by!r})")

    def publish_stale(self, reason: str) -> None:
        self.pub.publish(RelayStatus(header=self.header("poi_breaker"), source=self.get_name(),
                                     quality=QUALITY_STALE, breaker_state=RelayStatus.BREAKER_UNKNOWN,
                                     voltage_pu=NAN, frequency_hz=NAN))


def main(args: list[str] | None = None) -> None:
    runtime.run_node(RelayNode, args)
