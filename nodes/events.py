"""Publishing EMS events (``/ems/events``): setting and mode changes with who made them, injected
simulation faults. The historian stores and seals each one."""

from __future__ import annotations

import json
from typing import Any

from energizeos.runtime import Node
from energizeos_msgs.msg import EmsEvent, Header

EVENTS_TOPIC = "/ems/events"


class EventReporter:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.pub = node.create_publisher(EmsEvent, EVENTS_TOPIC, 50)

    def report(self, kind: str, message: str, user: str = "", **data: Any) -> None:
        self.pub.publish(EmsEvent(header=Header(stamp=self.node.get_clock().now().to_msg(),
                                                frame_id=self.node.get_name()),
                                  source=self.node.get_name(), kind=kind, user=user, message=message,
                                  data_json=json.dumps(data, sort_keys=True, default=str)))
