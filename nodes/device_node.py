"""Common behaviour of the four device nodes: poll at a fixed rate, back off on failure,
publish STALE (with NaN, never invented values) when no fresh sample exists, recover by itself."""

from __future__ import annotations

import math

from energizeos.nodes.conditions import DEVICE_ALARMS_TOPIC, ConditionReporter
from energizeos.nodes.device_link import InMemoryLink, LinkError, ModbusTcpLink, RegisterLink
from energizeos.runtime import MIN_RATE_HZ, Node, ParameterDescriptor
from energizeos_msgs.msg import Alarm, Header

QUALITY_GOOD, QUALITY_INVALID, QUALITY_STALE = 0, 1, 2
NAN = math.nan
COMMS_LOSS_AFTER = 3  # consecutive failed polls before the comms-loss alarm
__all__ = ["DEVICE_ALARMS_TOPIC", "DeviceNode"]


class DeviceNode(Node):
    """Subclasses implement ``poll_device()`` (read, decode, validate, publish) and
    ``publish_stale(reason)``; this class owns timing, back-off and the link."""

    alarm_prefix = "DEVICE"

    def __init__(self, name: str, *, default_port: int, default_poll_hz: float, link: RegisterLink | None = None,
                 **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.conditions = ConditionReporter(self)
        host = self.declare_parameter("host", "127.0.0.1", ParameterDescriptor("device IP address")).value
        port = self.declare_parameter("port", default_port, ParameterDescriptor(
            "Modbus TCP port", min_value=1, max_value=65535)).value
        device_id = self.declare_parameter("device_id", 1, ParameterDescriptor(
            "Modbus unit id", min_value=0, max_value=247)).value
        self.poll_hz = self.declare_parameter("poll_hz", default_poll_hz, ParameterDescriptor(
            "poll rate", min_value=MIN_RATE_HZ, max_value=50.0)).value
        timeout = self.declare_parameter("timeout_s", 0.25, ParameterDescriptor(
            "Modbus reply timeout (bounds every I/O wait)", min_value=0.02, max_value=2.0)).value
        self.max_backoff_s = self.declare_parameter("max_backoff_s", 8.0, ParameterDescriptor(
            "longest wait between reconnection attempts", min_value=0.5, max_value=60.0)).value
        self.link: RegisterLink = link or ModbusTcpLink(host, port, device_id, timeout)
        self.device = f"{host}:{port}" if not isinstance(self.link, InMemoryLink) else self.link.image.name
        self.failures = 0  # consecutive failed polls
        self.polls = 0
        self._backoff_s = 0.0
        self._next_attempt_ns = 0
        self.create_timer(1.0 / self.poll_hz, self._poll)

    def _poll(self) -> None:
        now = self.get_clock().now().nanoseconds
        if now < self._next_attempt_ns:
            self.publish_stale(f"waiting {self._backoff_s:.1f} s before retrying {self.device}")
            return
        try:
            self.poll_device()
        except LinkError as exc:
            self.failures += 1
            self._backoff_s = min(self.max_backoff_s, max(1.0 / self.poll_hz, self._backoff_s * 2 or 0.5))
            self._next_attempt_ns = now + round(self._backoff_s * 1e9)
            # stable text, so the throttle works while the back-off grows
            self.get_logger().warning(f"{self.device}: {exc}; retrying with back-off (up to {self.max_backoff_s:g} s)",
                                      throttle_duration_sec=10.0)
            self.publish_stale(str(exc))
            if self.failures >= COMMS_LOSS_AFTER:
                self.set_condition(f"{self.alarm_prefix}_COMMS_LOSS", True, Alarm.PRIORITY_HIGH,
                                   f"no answer from {self.device} for {self.failures} polls: {exc}",
                                   {"failed_polls": self.failures, "error": str(exc)})
            return
        self.polls += 1
        if self.failures:
            self.get_logger().info(f"{self.device}: answering again after {self.failures} failed poll(s)")
        self.failures = 0
        self._backoff_s = 0.0
        self.set_condition(f"{self.alarm_prefix}_COMMS_LOSS", False)

    def destroy_node(self) -> None:
        super().destroy_node()  # after the on-shutdown hooks, which may still write (PCS to 0 kW)
        self.link.close()

    def header(self, frame_id: str) -> Header:
        return Header(stamp=self.get_clock().now().to_msg(), frame_id=frame_id)

    def set_condition(self, code: str, active: bool, priority: int = Alarm.PRIORITY_MEDIUM, message: str = "",
                      evidence: dict | None = None) -> None:
        """Publish a raise when a condition starts and a clear when it ends (never a flood)."""
        self.conditions.set(code, active, priority, message, evidence)

    def poll_device(self) -> None:
        raise NotImplementedError

    def publish_stale(self, reason: str) -> None:
        raise NotImplementedError
