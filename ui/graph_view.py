"""A background graph connection for the Streamlit app: one Zenoh node spinning in a thread.

Streamlit reruns the script on every interaction; the connection lives across reruns in
st.cache_resource and the latest message per topic is kept for the page to show.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from energizeos.runtime.node import Client, Node, ServiceCallError
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
    _clients: dict[str, Client] = field(default_factory=dict)
    _streams: dict[int, tuple[Callable[[str], None], threading.Event]] = field(default_factory=dict)

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

    def _on_executor(self, fn: Callable[[], Any], timeout_s: float = 5.0) -> Any:
        """Run ``fn`` on the spinning thread (where the node's entities are made) and return its result."""
        done, box = threading.Event(), {}

        def run() -> None:
            box["value"] = fn()
            done.set()
        self.executor._post(run)
        if not done.wait(timeout_s):
            raise ServiceCallError("the app's graph connection is not spinning")
        return box["value"]

    def call(self, srv_type: type, name: str, request: Any, timeout_s: float = 5.0) -> Any:
        """A service call from a page's thread: waits for the answer, ServiceCallError when none comes."""
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self._on_executor(lambda: self.node.create_client(srv_type, name))
        end = time.monotonic() + min(timeout_s, 3.0)  # a server just started may take a moment to be seen
        while not client.service_is_ready():
            if time.monotonic() > end:
                raise ServiceCallError(f"no {name} service on the graph (is its node running?)")
            time.sleep(0.05)
        future = client.call_async(request, timeout_s)
        if not future.wait(timeout_s + 1.0):
            raise ServiceCallError(f"service {name} did not answer within {timeout_s:.0f} s")
        return future.result()

    def follow_stream(self, topic: str, stream_id: int, on_text: Callable[[str], None]) -> threading.Event:
        """Pass the text pieces of one assistant answer to ``on_text`` (from the spinning thread); the
        event is set when the stream's last message has come."""
        from energizeos_msgs.msg import AssistantText

        complete = threading.Event()
        with self._lock:
            self._streams[stream_id] = (on_text, complete)
        if not any(s.topic_name == topic for s in self.node.subscriptions):
            def route(msg: AssistantText) -> None:
                with self._lock:
                    target = self._streams.get(msg.stream_id)
                if target is None:
                    return
                if msg.text:
                    target[0](msg.text)
                if msg.last:
                    target[1].set()
            self._on_executor(lambda: self.node.create_subscription(AssistantText, topic, route, 100))
        return complete

    def unfollow_stream(self, stream_id: int) -> None:
        with self._lock:
            self._streams.pop(stream_id, None)


def open_graph_view() -> GraphView:
    executor = ZenohExecutor()
    node = Node("ui", executor=executor)
    view = GraphView(executor, node)
    threading.Thread(target=executor.spin, name="graph-view", daemon=True).start()
    return view
