"""A background graph connection for the Streamlit app: one Zenoh node spinning in a thread.

Streamlit reruns the script on every interaction; the connection lives across reruns in
st.cache_resource and the latest message per topic is kept for the page to show.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from energizeos.runtime.node import Node
from energizeos.runtime.qos import qos_profile_latched
from energizeos.runtime.zenoh_executor import ZenohExecutor
from energizeos_msgs import message_class


@dataclass
class TopicSample:
    data: dict[str, Any]
    received_at: float
    count: int = 0


@dataclass
class GraphView:
    executor: ZenohExecutor
    node: Node
    latest: dict[str, TopicSample] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(self, topic: str, type_name: str, latched: bool = False) -> None:
        """Keep the newest message of a topic (subscribing once)."""
        if topic in self.latest or any(s.topic_name == topic for s in self.node.subscriptions):
            return

        def keep(msg: Any) -> None:
            with self._lock:
                old = self.latest.get(topic)
                self.latest[topic] = TopicSample(msg.to_dict(), time.time(), (old.count if old else 0) + 1)

        qos = qos_profile_latched if latched else 10
        self.executor._post(lambda: self.node.create_subscription(message_class(type_name), topic, keep, qos))

    def sample(self, topic: str) -> TopicSample | None:
        with self._lock:
            return self.latest.get(topic)


def open_graph_view() -> GraphView:
    executor = ZenohExecutor()
    node = Node("ui", executor=executor)
    view = GraphView(executor, node)
    threading.Thread(target=executor.spin, name="graph-view", daemon=True).start()
    return view
