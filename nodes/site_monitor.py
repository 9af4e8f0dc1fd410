"""site_monitor: watches the node graph and publishes which expected nodes are alive.

Liveness comes from the nodes' liveliness tokens (a node that dies loses its token within the
transport's lease), so an EMS node that is down is visible to operators, alarms and the UI.
"""

from __future__ import annotations

from energizeos import runtime
from energizeos.runtime import Node, ParameterDescriptor, qos_profile_latched
from energizeos_msgs.msg import GraphHealth, Header


class SiteMonitor(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("site_monitor", **kwargs)
        self.expected = sorted(self.declare_parameter(
            "expected_nodes", [], ParameterDescriptor("nodes that must be alive, e.g. /pcs_node")).value)
        period = self.declare_parameter(
            "period_s", 1.0, ParameterDescriptor("publish period", min_value=0.1, max_value=60.0)).value
        self.pub = self.create_publisher(GraphHealth, "/ems/graph/health", qos_profile_latched)
        self._missing: set[str] = set()
        self.create_timer(period, self.check)

    def check(self) -> None:
        alive = sorted(f"{ns.rstrip('/')}/{name}" for name, ns in self.get_node_names_and_namespaces())
        missing = [n for n in self.expected if n not in alive]
        for name in sorted(set(missing) - self._missing):
            self.get_logger().warning(f"expected node {name} is not alive")
        for name in sorted(self._missing - set(missing)):
            self.get_logger().info(f"node {name} is alive again")
        self._missing = set(missing)
        self.pub.publish(GraphHealth(
            header=Header(stamp=self.get_clock().now().to_msg(), frame_id="site"),
            healthy=not missing, expected_nodes=self.expected, alive_nodes=alive, missing_nodes=missing,
        ))


def main(args: list[str] | None = None) -> None:
    runtime.run_node(SiteMonitor, args)


if __name__ == "__main__":
    main()
