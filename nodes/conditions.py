"""Raise/clear reporting of conditions a node detects, on ``/ems/device_alarms`` for the alarm manager.

A condition is published when it starts and when it ends, never on every poll, so a node cannot
flood the alarm manager however often it checks."""

from __future__ import annotations

import json

from energizeos.runtime import Node
from energizeos_msgs.msg import Alarm, Header

DEVICE_ALARMS_TOPIC = "/ems/device_alarms"  # conditions detected by nodes; the alarm manager registers them


class ConditionReporter:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.pub = node.create_publisher(Alarm, DEVICE_ALARMS_TOPIC, 50)
        self.active: dict[str, Alarm] = {}

    def set(self, code: str, active: bool, priority: int = Alarm.PRIORITY_MEDIUM, message: str = "",
            evidence: dict | None = None) -> None:
        if active == (code in self.active):
            return
        name = self.node.get_name()
        header = Header(stamp=self.node.get_clock().now().to_msg(), frame_id=name)
        if active:
            alarm = Alarm(header=header, code=code, source=name, priority=priority, event=Alarm.EVENT_RAISE,
                          state=Alarm.STATE_ACTIVE_UNACKED, message=message,
                          evidence_json=json.dumps(evidence or {}, sort_keys=True))
            self.active[code] = alarm
            self.node.get_logger().warning(f"{code}: {message}")
        else:
            raised = self.active.pop(code)
            alarm = Alarm(header=header, code=code, source=name, priority=raised.priority, event=Alarm.EVENT_CLEAR,
                          state=Alarm.STATE_CLEARED_UNACKED, message=f"cleared: {raised.message}",
                          evidence_json=raised.evidence_json)
            self.node.get_logger().info(f"{code} cleared")
        self.pub.publish(alarm)
