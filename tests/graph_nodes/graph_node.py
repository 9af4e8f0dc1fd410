"""A node for the multi-process tests: publishes, latches, serves its counters, respawns."""

from __future__ import annotations

import json
import os

from energizeos import runtime
from energizeos.runtime import Node, qos_profile_latched
from energizeos_msgs.msg import MeterReading
from energizeos_msgs.srv import Trigger


class GraphNode(Node):

    def __init__(self, **kwargs) -> None:
        super().__init__("graph_node", **kwargs)
        rate = self.declare_parameter("rate_hz", 20.0).value
        self.topic = self.declare_parameter("topic", "/test/chatter").value
        self.pub = self.create_publisher(MeterReading, self.topic, 10)
        latched = self.create_publisher(MeterReading, "/test/latched", qos_profile_latched)
        latched.publish(MeterReading(source=f"latched-{os.getpid()}"))
        self.inbox = self.create_subscription(MeterReading, "/test/inbox", lambda _m: None, 100)
        self.create_service(Trigger, "~/stats", self.stats)
        self.seq = 0
        self.create_timer(1.0 / rate, self.tick)

    def tick(self) -> None:
        self.seq += 1
        self.pub.publish(MeterReading(source=f"talker-{os.getpid()}", p_kw=float(self.seq)))

    def stats(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success = True
        response.message = json.dumps({"pid": os.getpid(), "received": self.inbox.received,
                                       "decode_errors": self.inbox.decode_errors,
                                       "last_error": self.inbox.last_error, "published": self.seq})
        return response


def main(args: list[str] | None = None) -> None:
    runtime.init(args=args)
    node = GraphNode()
    try:
        runtime.spin(node)
    finally:
        runtime.shutdown()
