"""The node-graph runtime, shaped like rclpy.

    from energizeos import runtime
    from energizeos.runtime import Node

    class Talker(Node):
        def __init__(self, **kwargs):
            super().__init__("talker", **kwargs)
            self.pub = self.create_publisher(MeterReading, "/site/poi/meter", 10)
            self.create_timer(0.2, self.tick)

    def main(args=None):
        runtime.init(args=args)
        runtime.spin(Talker())
        runtime.shutdown()
"""

from energizeos.runtime.clock import Clock, Duration, SimClock, SystemClock, Time
from energizeos.runtime.executor import (
    Executor,
    SimExecutor,
    get_default_executor,
    init,
    run_node,
    shutdown,
    spin,
)
from energizeos.runtime.names import InvalidNameError
from energizeos.runtime.node import (
    Client,
    EntityInfo,
    Future,
    Node,
    Publisher,
    Service,
    ServiceCallError,
    Subscription,
    Timer,
)
from energizeos.runtime.parameters import MIN_RATE_HZ, Parameter, ParameterDescriptor, ParameterError
from energizeos.runtime.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_default,
    qos_profile_latched,
    qos_profile_sensor_data,
)

__all__ = [
    "MIN_RATE_HZ",
    "Client",
    "Clock",
    "DurabilityPolicy",
    "Duration",
    "EntityInfo",
    "Executor",
    "Future",
    "HistoryPolicy",
    "InvalidNameError",
    "Node",
    "Parameter",
    "ParameterDescriptor",
    "ParameterError",
    "Publisher",
    "QoSProfile",
    "ReliabilityPolicy",
    "Service",
    "ServiceCallError",
    "SimClock",
    "SimExecutor",
    "Subscription",
    "SystemClock",
    "Time",
    "Timer",
    "get_default_executor",
    "init",
    "qos_profile_default",
    "qos_profile_latched",
    "qos_profile_sensor_data",
    "run_node",
    "shutdown",
    "spin",
]
