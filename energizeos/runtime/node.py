"""Node and its entities (publisher, subscription, timer, service, client), shaped like rclpy.

A node never touches the transport or the wall clock: it talks to the executor it is bound to
(the deterministic SimExecutor or the multi-process ZenohExecutor), which delivers every callback
on one thread, in order.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from energizeos.runtime.clock import Clock
from energizeos.runtime.logging import NodeLogger
from energizeos.runtime.names import expand_topic_name, normalize_namespace, validate_node_name
from energizeos.runtime.parameters import (
    Parameter,
    ParameterDescriptor,
    ParameterError,
    check_range,
    coerce,
)
from energizeos.runtime.qos import HistoryPolicy, QoSProfile, as_qos, qos_profile_services_default
from energizeos_msgs import Message, MessageDecodeError, deserialize, serialize

if TYPE_CHECKING:
    from energizeos.runtime.executor import Executor

MsgT = TypeVar("MsgT", bound=Message)


@dataclass(frozen=True)
class EntityInfo:
    """What the graph knows about one endpoint (as carried by liveliness tokens)."""

    kind: str  # "NN" node, "MP" publisher, "MS" subscription, "SS" service server, "SC" client
    node_name: str
    namespace: str
    name: str = ""  # fully qualified topic or service name ("" for a node)
    type_name: str = ""  # e.g. energizeos_msgs/msg/MeterReading or energizeos_msgs/srv/Ask
    qos: QoSProfile | None = None


class Publisher(Generic[MsgT]):
    def __init__(self, node: Node, msg_type: type[MsgT], topic: str, qos: QoSProfile) -> None:
        self.msg_type = msg_type
        self.topic_name = topic
        self.qos = qos
        self.info = EntityInfo("MP", node.get_name(), node.get_namespace(), topic, msg_type.__msgtype__, qos)
        self.published = 0
        self._link = node.executor._advertise(self)

    def publish(self, msg: MsgT) -> None:
        if not isinstance(msg, self.msg_type):
            raise TypeError(
                f"publisher on {self.topic_name} takes {self.msg_type.__msgtype__}, "
                f"got {type(msg).__name__}"
            )
        self._link.put(serialize(msg))
        self.published += 1

    def get_subscription_count(self) -> int:
        return self._link.matched()

    def destroy(self) -> None:
        self._link.close()


class Subscription(Generic[MsgT]):
    """Incoming payloads wait in a KEEP_LAST(depth) queue; the executor decodes and calls back.

    A payload that does not decode (truncated, garbage, another type) is counted in
    ``decode_errors``, logged with the reason, and dropped: the node keeps running.
    """

    def __init__(
        self,
        node: Node,
        msg_type: type[MsgT],
        topic: str,
        callback: Callable[[MsgT], Any],
        qos: QoSProfile,
        raw: bool = False,
    ) -> None:
        self.msg_type = msg_type
        self.topic_name = topic
        self.callback = callback
        self.qos = qos
        self.raw = raw  # deliver the CDR bytes undecoded (bag recording), as rclpy's raw=True
        self.info = EntityInfo("MS", node.get_name(), node.get_namespace(), topic, msg_type.__msgtype__, qos)
        self.received = 0
        self.dropped = 0  # overwritten in the KEEP_LAST queue before the executor took them
        self.decode_errors = 0
        self.last_error = ""
        self._node = node
        maxlen = qos.depth if qos.history is HistoryPolicy.KEEP_LAST else None
        self._queue: collections.deque[tuple[bytes, str]] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._link = node.executor._subscribe(self)

    def _deliver(self, payload: bytes, sender_type: str = "") -> None:
        """Transport side (any thread): queue the raw payload and wake the executor."""
        with self._lock:
            if self._queue.maxlen is not None and len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append((payload, sender_type))
        self._node.executor._post(self._execute_one)

    def _execute_one(self) -> None:
        with self._lock:
            if not self._queue:
                return  # its payload was overwritten in the KEEP_LAST queue
            payload, sender_type = self._queue.popleft()
        if sender_type and sender_type != self.msg_type.__msgtype__:
            self._reject(f"wrong type: publisher sends {sender_type}, subscription expects "
                         f"{self.msg_type.__msgtype__}")
            return
        if self.raw:
            self.received += 1
            self.callback(payload)
            return
        try:
            msg = deserialize(payload, self.msg_type)
        except MessageDecodeError as exc:
            self._reject(str(exc))
            return
        self.received += 1
        self.callback(msg)

    def _reject(self, reason: str) -> None:
        self.decode_errors += 1
        self.last_error = reason
        # First error and then every 100th: a flood of garbage must not flood the log.
        if self.decode_errors == 1 or self.decode_errors % 100 == 0:
            self._node.get_logger().error(
                f"rejected payload on {self.topic_name} ({self.decode_errors} so far): {reason}"
            )

    def destroy(self) -> None:
        self._link.close()


class Timer:
    """Periodic callback on the node clock (simulated or wall)."""

    def __init__(self, node: Node, period_sec: float, callback: Callable[[], Any]) -> None:
        if period_sec <= 0:
            raise ValueError(f"timer period must be > 0 s, got {period_sec}")
        self.period_ns = round(period_sec * 1e9)
        self.callback = callback
        self.calls = 0
        self._canceled = False
        self._executor = node.executor
        self._generation = 0
        self._executor._add_timer(self)

    @property
    def timer_period_ns(self) -> int:
        return self.period_ns

    def cancel(self) -> None:
        self._canceled = True
        self._generation += 1

    def is_canceled(self) -> bool:
        return self._canceled

    def reset(self) -> None:
        """Restart the period from now (and un-cancel)."""
        self._canceled = False
        self._generation += 1
        self._executor._add_timer(self)

    def _fire(self) -> None:
        self.calls += 1
        self.callback()

    def destroy(self) -> None:
        self.cancel()


class Future:
    """Result of an asynchronous service call (rclpy.task.Future shape)."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._done = threading.Event()
        self._result: Any = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[Future], Any]] = []

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_sec: float | None = None) -> bool:
        """Block a thread that is not the executor's until the result is in; False on timeout."""
        return self._done.wait(timeout_sec)

    def result(self) -> Any:
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self) -> BaseException | None:
        return self._exception

    def add_done_callback(self, fn: Callable[[Future], Any]) -> None:
        if self.done():
            self._executor._post(lambda: fn(self))
        else:
            self._callbacks.append(fn)

    def set_result(self, result: Any) -> None:
        self._finish(result, None)

    def set_exception(self, exc: BaseException) -> None:
        self._finish(None, exc)

    def _finish(self, result: Any, exc: BaseException | None) -> None:
        if self.done():
            return
        self._result, self._exception = result, exc
        self._done.set()
        self._executor._post(_noop)  # wake a thread waiting in spin_until_future_complete
        for fn in self._callbacks:
            self._executor._post(lambda fn=fn: fn(self))


def _noop() -> None:
    pass


class Service:
    """Server side of a service; callback(request, response) -> response, as in rclpy."""

    def __init__(self, node: Node, srv_type: type, name: str, callback: Callable[[Any, Any], Any]) -> None:
        self.srv_type = srv_type
        self.srv_name = name
        self.callback = callback
        self.info = EntityInfo("SS", node.get_name(), node.get_namespace(), name, srv_type.__srvtype__,
                               qos_profile_services_default)
        self.handled = 0
        self.decode_errors = 0
        self._node = node
        self._link = node.executor._serve(self)

    def _handle(self, payload: bytes, reply: Callable[[bytes | None, str], None]) -> None:
        """Executor thread: decode, call back, encode; a bad request gets an error reply."""
        try:
            request = deserialize(payload, self.srv_type.Request)
        except MessageDecodeError as exc:
            self.decode_errors += 1
            self._node.get_logger().error(f"rejected request on {self.srv_name}: {exc}")
            reply(None, str(exc))
            return
        response = self.callback(request, self.srv_type.Response())
        if not isinstance(response, self.srv_type.Response):
            reply(None, f"service {self.srv_name} callback returned {type(response).__name__}")
            raise TypeError(f"service {self.srv_name} callback must return {self.srv_type.__srvtype__} Response")
        self.handled += 1
        reply(serialize(response), "")

    def destroy(self) -> None:
        self._link.close()


class ServiceCallError(RuntimeError):
    """The service answered with an error, or did not answer in time."""


class Client:
    def __init__(self, node: Node, srv_type: type, name: str) -> None:
        self.srv_type = srv_type
        self.srv_name = name
        self.info = EntityInfo("SC", node.get_name(), node.get_namespace(), name, srv_type.__srvtype__,
                               qos_profile_services_default)
        self._node = node
        self._link = node.executor._connect_client(self)

    def service_is_ready(self) -> bool:
        return self._link.server_count() > 0

    def wait_for_service(self, timeout_sec: float | None = None) -> bool:
        return self._node.executor._wait_for(self.service_is_ready, timeout_sec)

    def call_async(self, request: Any, timeout_sec: float = 5.0) -> Future:
        if not isinstance(request, self.srv_type.Request):
            raise TypeError(f"{self.srv_name} takes {self.srv_type.__srvtype__} Request, got {type(request).__name__}")
        future = Future(self._node.executor)
        payload = serialize(request)

        def on_reply(data: bytes | None, error: str) -> None:
            if data is None:
                future.set_exception(ServiceCallError(f"service {self.srv_name}: {error}"))
                return
            try:
                future.set_result(deserialize(data, self.srv_type.Response))
            except MessageDecodeError as exc:
                future.set_exception(ServiceCallError(f"service {self.srv_name}: bad response: {exc}"))

        self._link.request(payload, timeout_sec, on_reply)
        return future

    def call(self, request: Any, timeout_sec: float = 5.0) -> Any:
        """Blocking call; never from inside a callback of the same executor (it would deadlock)."""
        future = self.call_async(request, timeout_sec)
        self._node.executor.spin_until_future_complete(future, timeout_sec + 1.0)
        if not future.done():
            raise ServiceCallError(f"service {self.srv_name} did not answer within {timeout_sec} s")
        return future.result()

    def destroy(self) -> None:
        self._link.close()


class Node:
    """A ROS 2-style node: declare its interface in __init__, do the work in callbacks.

    Subclasses forward ``**kwargs`` so a test can bind the node to a SimExecutor:

        class Talker(Node):
            def __init__(self, **kwargs):
                super().__init__("talker", **kwargs)
    """

    def __init__(
        self,
        node_name: str,
        *,
        namespace: str | None = None,
        executor: Executor | None = None,
        parameter_overrides: dict[str, Any] | None = None,
    ) -> None:
        from energizeos.runtime.executor import get_default_executor

        self.executor = executor or get_default_executor()
        args = self.executor.ros_args
        self._name = validate_node_name(args.node_name or node_name)
        self._namespace = normalize_namespace(args.namespace if args.namespace is not None else namespace)
        self._overrides = args.params_for(self._name, self._namespace)
        self._overrides.update(parameter_overrides or {})
        # Wildcard ('/**') sections may serve several nodes; only this node's own must all be used.
        self._strict_overrides = set(args.params_for(self._name, self._namespace, wildcard=False))
        self._strict_overrides |= set(parameter_overrides or {})
        self._parameters: dict[str, Parameter] = {}
        self._logger = NodeLogger(self.get_fully_qualified_name(), self.executor.clock, args.log_level)
        self._entities: list[Any] = []
        self._on_shutdown: list[Callable[[], Any]] = []
        self.info = EntityInfo("NN", self._name, self._namespace)
        self.executor._add_node(self)

    # --- identity -------------------------------------------------------------------------
    def get_name(self) -> str:
        return self._name

    def get_namespace(self) -> str:
        return self._namespace

    def get_fully_qualified_name(self) -> str:
        return f"{self._namespace.rstrip('/')}/{self._name}"

    def get_logger(self) -> NodeLogger:
        return self._logger

    def get_clock(self) -> Clock:
        return self.executor.clock

    def resolve_name(self, name: str) -> str:
        """Expand relative to this node, then apply a --ros-args remap (itself expanded)."""
        full = expand_topic_name(name, self._name, self._namespace)
        remaps = self.executor.ros_args.remaps
        target = remaps.get(full, remaps.get(name))
        return full if target is None else expand_topic_name(target, self._name, self._namespace)

    # --- entities -------------------------------------------------------------------------
    def create_publisher(self, msg_type: type[MsgT], topic: str, qos_profile: QoSProfile | int) -> Publisher[MsgT]:
        pub = Publisher(self, msg_type, self.resolve_name(topic), as_qos(qos_profile))
        self._entities.append(pub)
        return pub

    def create_subscription(
        self,
        msg_type: type[MsgT],
        topic: str,
        callback: Callable[[MsgT], Any],
        qos_profile: QoSProfile | int,
        *,
        raw: bool = False,
    ) -> Subscription[MsgT]:
        sub = Subscription(self, msg_type, self.resolve_name(topic), callback, as_qos(qos_profile), raw)
        self._entities.append(sub)
        return sub

    def create_timer(self, timer_period_sec: float, callback: Callable[[], Any]) -> Timer:
        timer = Timer(self, timer_period_sec, callback)
        self._entities.append(timer)
        return timer

    def create_service(self, srv_type: type, srv_name: str, callback: Callable[[Any, Any], Any]) -> Service:
        srv = Service(self, srv_type, self.resolve_name(srv_name), callback)
        self._entities.append(srv)
        return srv

    def create_client(self, srv_type: type, srv_name: str) -> Client:
        client = Client(self, srv_type, self.resolve_name(srv_name))
        self._entities.append(client)
        return client

    @property
    def publishers(self) -> list[Publisher]:
        return [e for e in self._entities if isinstance(e, Publisher)]

    @property
    def subscriptions(self) -> list[Subscription]:
        return [e for e in self._entities if isinstance(e, Subscription)]

    @property
    def timers(self) -> list[Timer]:
        return [e for e in self._entities if isinstance(e, Timer)]

    # --- parameters -----------------------------------------------------------------------
    def declare_parameter(
        self, name: str, value: Any = None, descriptor: ParameterDescriptor | None = None
    ) -> Parameter:
        if name in self._parameters:
            raise ParameterError(f"node {self._name!r}: parameter {name!r} declared twice")
        descriptor = descriptor or ParameterDescriptor()
        if name in self._overrides:
            value = coerce(self._name, name, value, self._overrides[name])
        if value is None:
            raise ParameterError(f"node {self._name!r}: parameter {name!r} has no default and no value was given")
        check_range(self._name, name, value, descriptor)
        param = Parameter(name, value, descriptor)
        self._parameters[name] = param
        return param

    def declare_parameters(self, namespace: str, parameters: list[tuple]) -> list[Parameter]:
        prefix = f"{namespace}." if namespace else ""
        return [self.declare_parameter(prefix + p[0], *p[1:]) for p in parameters]

    def has_parameter(self, name: str) -> bool:
        return name in self._parameters

    def get_parameter(self, name: str) -> Parameter:
        try:
            return self._parameters[name]
        except KeyError:
            raise ParameterError(f"node {self._name!r}: parameter {name!r} was never declared") from None

    def get_parameters(self, names: list[str]) -> list[Parameter]:
        return [self.get_parameter(n) for n in names]

    def set_parameters(self, parameters: list[Parameter]) -> None:
        for new in parameters:
            old = self.get_parameter(new.name)
            if old.descriptor.read_only:
                raise ParameterError(f"node {self._name!r}: parameter {new.name!r} is read-only")
            value = coerce(self._name, new.name, old.value, new.value)
            check_range(self._name, new.name, value, old.descriptor)
            old.value = value

    def check_unused_overrides(self) -> None:
        """Fail fast on a parameter given for this node that it never declares (a typo in launch)."""
        unused = sorted(self._strict_overrides - set(self._parameters))
        if unused:
            raise ParameterError(
                f"node {self._name!r}: unknown parameter(s) {', '.join(unused)}; "
                f"declared: {', '.join(sorted(self._parameters)) or 'none'}"
            )

    # --- graph ----------------------------------------------------------------------------
    def get_node_names_and_namespaces(self) -> list[tuple[str, str]]:
        return self.executor.graph_nodes()

    def get_node_names(self) -> list[str]:
        return [n for n, _ in self.executor.graph_nodes()]

    def get_topic_names_and_types(self) -> list[tuple[str, list[str]]]:
        return self.executor.graph_topics()

    def get_service_names_and_types(self) -> list[tuple[str, list[str]]]:
        return self.executor.graph_services()

    def count_publishers(self, topic: str) -> int:
        return self.executor.graph_count("MP", self.resolve_name(topic))

    def count_subscribers(self, topic: str) -> int:
        return self.executor.graph_count("MS", self.resolve_name(topic))

    # --- lifecycle ------------------------------------------------------------------------
    def add_on_shutdown(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on shutdown while the transport is still up (e.g. command 0 kW)."""
        self._on_shutdown.append(fn)

    def destroy_node(self) -> None:
        for entity in self._entities:
            entity.destroy()
        self._entities.clear()
        self.executor._remove_node(self)
