"""Executors: what a node is bound to. Each runs every callback of its nodes on one thread.

- ``SimExecutor``: single process, simulated clock, in-memory transport. Events (timer firings,
  message deliveries, service calls) run strictly in (time, sequence) order, so the same run gives
  the same result bit for bit. A day of plant time runs in seconds.
- ``ZenohExecutor`` (``energizeos.runtime.zenoh_executor``): one per process, wall clock, Eclipse
  Zenoh transport; what ``energizeos launch`` runs.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from energizeos.runtime.args import RosArgs
from energizeos.runtime.clock import Clock, SimClock, Time

if TYPE_CHECKING:
    from energizeos.runtime.node import (
        Client,
        EntityInfo,
        Future,
        Node,
        Publisher,
        Service,
        Subscription,
        Timer,
    )


class Executor:
    """Common part of both executors: node registry, graph queries, shutdown hooks."""

    clock: Clock

    def __init__(self, ros_args: RosArgs | None = None) -> None:
        self.ros_args = ros_args or RosArgs()
        self.nodes: list[Node] = []
        self._is_shutdown = False

    # --- node registry ----------------------------------------------------------------------
    def _add_node(self, node: Node) -> None:
        self.nodes.append(node)

    def _remove_node(self, node: Node) -> None:
        if node in self.nodes:
            self.nodes.remove(node)

    def ok(self) -> bool:
        return not self._is_shutdown

    def shutdown(self) -> None:
        """Run every node's on-shutdown hooks (transport still up), then destroy the nodes."""
        if self._is_shutdown:
            return
        for node in list(self.nodes):
            for hook in node._on_shutdown:
                hook()
        self._flush_before_close()
        for node in list(self.nodes):
            node.destroy_node()
        self._is_shutdown = True
        self._close_transport()

    def _flush_before_close(self) -> None:
        """Give the last publications (e.g. 0 kW on shutdown) a chance to leave."""

    def _close_transport(self) -> None:
        pass

    # --- graph ------------------------------------------------------------------------------
    def graph_entities(self) -> list[EntityInfo]:
        raise NotImplementedError

    def graph_nodes(self) -> list[tuple[str, str]]:
        return sorted({(e.node_name, e.namespace) for e in self.graph_entities() if e.kind == "NN"})

    def _names_and_types(self, kinds: tuple[str, ...]) -> list[tuple[str, list[str]]]:
        found: dict[str, set[str]] = {}
        for e in self.graph_entities():
            if e.kind in kinds:
                found.setdefault(e.name, set()).add(e.type_name)
        return sorted((name, sorted(types)) for name, types in found.items())

    def graph_topics(self) -> list[tuple[str, list[str]]]:
        return self._names_and_types(("MP", "MS"))

    def graph_services(self) -> list[tuple[str, list[str]]]:
        return self._names_and_types(("SS",))

    def graph_count(self, kind: str, name: str) -> int:
        return sum(1 for e in self.graph_entities() if e.kind == kind and e.name == name)

    # --- spinning ---------------------------------------------------------------------------
    def spin_once(self, timeout_sec: float | None = None) -> bool:
        raise NotImplementedError

    def spin_until_future_complete(self, future: Future, timeout_sec: float | None = None) -> None:
        raise NotImplementedError

    def _wait_for(self, predicate: Callable[[], bool], timeout_sec: float | None) -> bool:
        raise NotImplementedError

    # --- hooks the node entities call -------------------------------------------------------
    def _post(self, fn: Callable[[], Any]) -> None:
        raise NotImplementedError

    def _add_timer(self, timer: Timer) -> None:
        raise NotImplementedError

    def _advertise(self, pub: Publisher) -> Any:
        raise NotImplementedError

    def _subscribe(self, sub: Subscription) -> Any:
        raise NotImplementedError

    def _serve(self, srv: Service) -> Any:
        raise NotImplementedError

    def _connect_client(self, client: Client) -> Any:
        raise NotImplementedError


def _call(fn: Callable[[], Any]) -> None:
    fn()


class _SimTopic:
    def __init__(self) -> None:
        self.publishers: list[Publisher] = []
        self.subscriptions: list[Subscription] = []
        self.latched: dict[Publisher, list[bytes]] = {}


class _SimPublisherLink:
    def __init__(self, executor: SimExecutor, topic: _SimTopic, pub: Publisher) -> None:
        self._executor, self._topic, self._pub = executor, topic, pub
        self._type = pub.msg_type.__msgtype__
        if pub.qos.latched:
            topic.latched[pub] = []

    def put(self, payload: bytes) -> None:
        cache = self._topic.latched.get(self._pub)
        if cache is not None:
            cache.append(payload)
            del cache[: -self._pub.qos.depth]
        latency = self._executor.latency_ns
        for sub in self._topic.subscriptions:
            if latency:
                self._executor._schedule(self._executor.clock.nanoseconds + latency, _call,
                                         functools.partial(sub._deliver, payload, self._type))
            else:
                sub._deliver(payload, self._type)

    def matched(self) -> int:
        return len(self._topic.subscriptions)

    def close(self) -> None:
        self._topic.publishers.remove(self._pub)
        self._topic.latched.pop(self._pub, None)


class _SimSubscriptionLink:
    def __init__(self, topic: _SimTopic, sub: Subscription) -> None:
        self._topic, self._sub = topic, sub

    def close(self) -> None:
        self._topic.subscriptions.remove(self._sub)


class _SimServiceLink:
    def __init__(self, executor: SimExecutor, srv: Service) -> None:
        self._executor, self._srv = executor, srv

    def close(self) -> None:
        self._executor._services.pop(self._srv.srv_name, None)


class _SimClientLink:
    def __init__(self, executor: SimExecutor, client: Client) -> None:
        self._executor, self._client = executor, client

    def server_count(self) -> int:
        return 1 if self._client.srv_name in self._executor._services else 0

    def request(self, payload: bytes, timeout_sec: float, on_reply: Callable[[bytes | None, str], None]) -> None:
        ex = self._executor

        def reply(data: bytes | None, error: str) -> None:
            ex._post(lambda: on_reply(data, error))

        def serve() -> None:
            srv = ex._services.get(self._client.srv_name)
            if srv is None:
                on_reply(None, "no service server is available")
            else:
                srv._handle(payload, reply)

        ex._post(serve)

    def close(self) -> None:
        pass


class SimExecutor(Executor):
    """Deterministic single-process executor with a simulated clock.

    Node code is identical to the multi-process case; messages are CDR-encoded and decoded
    exactly as on the wire. ``latency_sec`` delays every delivery (0 = same instant, after the
    publishing callback returns).
    """

    def __init__(
        self,
        start: Time | datetime | int = 0,
        *,
        ros_args: RosArgs | None = None,
        latency_sec: float = 0.0,
    ) -> None:
        super().__init__(ros_args)
        if isinstance(start, datetime):
            start = Time.from_datetime(start)
        self.clock = SimClock(start)
        self.latency_ns = round(latency_sec * 1e9)
        self._events: list[tuple[int, int, Callable[[Any], Any], Any]] = []
        self._seq = itertools.count()
        self._topics: dict[str, _SimTopic] = {}
        self._services: dict[str, Service] = {}
        self.events_processed = 0

    # --- scheduling -------------------------------------------------------------------------
    def _schedule(self, t_ns: int, fn: Callable[..., Any], arg: Any) -> None:
        heapq.heappush(self._events, (t_ns, next(self._seq), fn, arg))

    def _post(self, fn: Callable[[], Any]) -> None:
        heapq.heappush(self._events, (self.clock.nanoseconds, next(self._seq), _call, fn))

    def _add_timer(self, timer: Timer) -> None:
        due = self.clock.nanoseconds + timer.period_ns
        heapq.heappush(self._events, (due, next(self._seq), self._timer_due, (timer, timer._generation, due)))

    def _timer_due(self, entry: tuple[Timer, int, int]) -> None:
        timer, generation, due = entry
        if generation != timer._generation:
            return  # canceled or reset since this firing was scheduled
        next_due = due + timer.period_ns
        heapq.heappush(self._events, (next_due, next(self._seq), self._timer_due, (timer, generation, next_due)))
        timer._fire()

    def next_event_time(self) -> int | None:
        return self._events[0][0] if self._events else None

    # --- spinning ---------------------------------------------------------------------------
    def spin_once(self, timeout_sec: float | None = None) -> bool:
        """Run the next event (advancing simulated time to it); False when none is due in time."""
        if not self._events:
            return False
        if timeout_sec is not None and self._events[0][0] > self.clock.nanoseconds + timeout_sec * 1e9:
            return False
        t_ns, _seq, fn, arg = heapq.heappop(self._events)
        self.clock.set(t_ns)
        self.events_processed += 1
        fn(arg)
        return True

    def spin_until(self, until: Time | int) -> None:
        """Run every event up to and including ``until``; the clock ends at ``until``."""
        end = until.nanoseconds if isinstance(until, Time) else int(until)
        events, clock, pop = self._events, self.clock, heapq.heappop
        count = 0
        while events and events[0][0] <= end:
            t_ns, _seq, fn, arg = pop(events)
            clock._ns = t_ns  # monotonic by heap order; set() would re-check on the hot path
            count += 1
            fn(arg)
        self.events_processed += count
        if end > clock.nanoseconds:
            clock.set(end)

    def spin_for(self, seconds: float) -> None:
        self.spin_until(self.clock.nanoseconds + round(seconds * 1e9))

    def run_pending(self) -> None:
        """Run everything due now (including what those callbacks post for now)."""
        self.spin_until(self.clock.nanoseconds)

    def spin(self) -> None:
        raise RuntimeError("SimExecutor has no end: use spin_for(seconds) or spin_until(time)")

    def spin_until_future_complete(self, future: Future, timeout_sec: float | None = None) -> None:
        end = None if timeout_sec is None else self.clock.nanoseconds + round(timeout_sec * 1e9)
        while not future.done() and self._events and (end is None or self._events[0][0] <= end):
            self.spin_once()

    def _wait_for(self, predicate: Callable[[], bool], timeout_sec: float | None) -> bool:
        self.run_pending()
        return predicate()

    # --- in-memory transport ----------------------------------------------------------------
    def _topic(self, name: str) -> _SimTopic:
        return self._topics.setdefault(name, _SimTopic())

    def _advertise(self, pub: Publisher) -> _SimPublisherLink:
        topic = self._topic(pub.topic_name)
        topic.publishers.append(pub)
        return _SimPublisherLink(self, topic, pub)

    def _subscribe(self, sub: Subscription) -> _SimSubscriptionLink:
        topic = self._topic(sub.topic_name)
        topic.subscriptions.append(sub)
        if sub.qos.latched:  # late joiner: replay what latched publishers hold
            for pub, cache in topic.latched.items():
                for payload in cache:
                    sub._deliver(payload, pub.msg_type.__msgtype__)
        return _SimSubscriptionLink(topic, sub)

    def _serve(self, srv: Service) -> _SimServiceLink:
        if srv.srv_name in self._services:
            raise ValueError(f"service {srv.srv_name} already has a server")
        self._services[srv.srv_name] = srv
        return _SimServiceLink(self, srv)

    def _connect_client(self, client: Client) -> _SimClientLink:
        return _SimClientLink(self, client)

    def graph_entities(self) -> list[EntityInfo]:
        found: list[EntityInfo] = []
        for node in self.nodes:
            found.append(node.info)
            found.extend(e.info for e in node._entities if hasattr(e, "info"))
        return found


# --- the process-wide default executor, as rclpy.init() / rclpy.spin() --------------------------
_default: Executor | None = None


def init(args: list[str] | None = None, *, executor: Executor | None = None) -> Executor:
    """Parse ``--ros-args`` and open the default executor (Zenoh unless one is given)."""
    global _default
    from energizeos.runtime.args import parse_ros_args
    from energizeos.runtime.logging import configure_process_logging

    ros_args = parse_ros_args(args)
    if executor is None:
        from energizeos.runtime.zenoh_executor import ZenohExecutor

        configure_process_logging(ros_args.log_level)
        executor = ZenohExecutor(ros_args=ros_args)
    else:
        executor.ros_args = ros_args if args else executor.ros_args
    _default = executor
    return executor


def get_default_executor() -> Executor:
    if _default is None:
        raise RuntimeError("no executor: call energizeos.runtime.init() first, or pass executor=")
    return _default


def spin(node: Node | None = None) -> None:
    """Spin the default executor until shutdown (Ctrl-C / SIGTERM)."""
    executor = node.executor if node is not None else get_default_executor()
    for n in executor.nodes:
        n.check_unused_overrides()
    executor.spin()  # type: ignore[attr-defined]


def run_node(node_class: Callable[[], Node], args: list[str] | None = None) -> None:
    """The ``main`` of a node process: init from the command line, spin the node until shutdown, and
    shut down (the transport session closes) even when the node refuses its configuration."""
    init(args=args)
    try:
        spin(node_class())
    finally:
        shutdown()


def shutdown() -> None:
    global _default
    if _default is not None:
        _default.shutdown()
        _default = None
