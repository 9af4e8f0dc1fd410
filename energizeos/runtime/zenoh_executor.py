"""Multi-process executor over Eclipse Zenoh, on the wall clock.

Zenoh threads only queue raw payloads; every callback (decode included) runs on the thread that
spins, in arrival order, so node code needs no locks. Peer mode on loopback by default: each
process connects to the launch's router (``tcp/127.0.0.1:7447``, as rmw_zenoh's ``rmw_zenohd``)
for discovery and then talks to the other peers directly. Multicast scouting is off.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import zenoh
import zenoh.ext as zext

from energizeos.runtime import zenoh_keys as keys
from energizeos.runtime.args import RosArgs
from energizeos.runtime.clock import SystemClock
from energizeos.runtime.executor import Executor
from energizeos.runtime.qos import ReliabilityPolicy

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

DEFAULT_ROUTER = "tcp/127.0.0.1:7447"


def _split_env(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    return [v.strip() for v in value.split(",") if v.strip()] if value else list(default)


@dataclass
class ZenohSettings:
    """Where the session connects and listens; TLS, auth and ACLs come in through config_file."""

    connect: list[str] = field(default_factory=lambda: [DEFAULT_ROUTER])
    listen: list[str] = field(default_factory=lambda: ["tcp/127.0.0.1:0"])
    domain_id: int = 0
    config_file: str | None = None

    @classmethod
    def from_env(cls) -> ZenohSettings:
        domain = os.environ.get("ENERGIZEOS_DOMAIN_ID", "0")
        if not domain.isdigit():
            raise ValueError(f"ENERGIZEOS_DOMAIN_ID must be a number, got {domain!r}")
        return cls(
            connect=_split_env("ENERGIZEOS_ZENOH_CONNECT", [DEFAULT_ROUTER]),
            listen=_split_env("ENERGIZEOS_ZENOH_LISTEN", ["tcp/127.0.0.1:0"]),
            domain_id=int(domain),
            config_file=os.environ.get("ENERGIZEOS_ZENOH_CONFIG") or None,
        )

    def to_config(self, mode: str = "peer") -> zenoh.Config:
        config = zenoh.Config.from_file(self.config_file) if self.config_file else zenoh.Config()
        config.insert_json5("mode", json.dumps(mode))
        config.insert_json5("scouting/multicast/enabled", "false")
        # Advanced (latched) publishers need timestamps.
        config.insert_json5("timestamping/enabled", "true")
        if mode != "router":
            config.insert_json5("connect/endpoints", json.dumps(self.connect))
        config.insert_json5("listen/endpoints", json.dumps(self.listen))
        return config


def _direct(fn: Callable[[Any], Any], drop: Callable[[], Any] | None = None) -> zenoh.handlers.Callback:
    """Run a Zenoh callback on Zenoh's own thread. Our callbacks only queue work and return; the
    default (indirect) handler starts a non-daemon Python thread per entity that can outlive the
    session and keep the process from exiting."""
    return zenoh.handlers.Callback(fn, drop, indirect=False)


def open_router(listen: list[str] | None = None, config_file: str | None = None) -> zenoh.Session:
    """A Zenoh router in this process (what rmw_zenohd is to ROS 2)."""
    settings = ZenohSettings(listen=listen or [DEFAULT_ROUTER], config_file=config_file)
    return zenoh.open(settings.to_config("router"))


class _PublisherLink:
    def __init__(self, ex: ZenohExecutor, pub: Publisher) -> None:
        self._ex, self._pub = ex, pub
        key = keys.data_key(ex.settings.domain_id, pub.topic_name, pub.msg_type.__msgtype__)
        reliable = pub.qos.reliability is ReliabilityPolicy.RELIABLE
        if pub.qos.latched:
            self._z = zext.declare_advanced_publisher(
                ex.session, key, cache=zext.CacheConfig(max_samples=pub.qos.depth), publisher_detection=True
            )
        else:
            self._z = ex.session.declare_publisher(
                key,
                congestion_control=zenoh.CongestionControl.BLOCK if reliable else zenoh.CongestionControl.DROP,
                reliability=zenoh.Reliability.RELIABLE if reliable else zenoh.Reliability.BEST_EFFORT,
            )
        self._token = ex._declare_token(pub.info)

    def put(self, payload: bytes) -> None:
        self._z.put(payload)

    def matched(self) -> int:
        return self._ex.graph_count("MS", self._pub.topic_name)

    def close(self) -> None:
        self._token.undeclare()
        self._z.undeclare()


class _SubscriptionLink:
    def __init__(self, ex: ZenohExecutor, sub: Subscription) -> None:
        key = keys.subscription_key(ex.settings.domain_id, sub.topic_name)
        expected = sub.msg_type.__msgtype__

        def on_sample(sample: zenoh.Sample) -> None:
            sub._deliver(sample.payload.to_bytes(), keys.sender_type(str(sample.key_expr), expected))

        if sub.qos.latched:
            history = zext.HistoryConfig(detect_late_publishers=True, max_samples=sub.qos.depth)
            self._z = zext.declare_advanced_subscriber(ex.session, key, _direct(on_sample), history=history)
        else:
            self._z = ex.session.declare_subscriber(key, _direct(on_sample))
        self._token = ex._declare_token(sub.info)

    def close(self) -> None:
        self._token.undeclare()
        self._z.undeclare()


class _ServiceLink:
    def __init__(self, ex: ZenohExecutor, srv: Service) -> None:
        key = keys.data_key(ex.settings.domain_id, srv.srv_name, srv.srv_type.__srvtype__)

        def on_query(query: zenoh.Query) -> None:
            payload = query.payload.to_bytes() if query.payload is not None else b""

            def reply(data: bytes | None, error: str) -> None:
                if data is None:
                    query.reply_err(error.encode())
                else:
                    query.reply(query.key_expr, data)
                query.drop()  # final: tells the caller no more replies are coming

            ex._post(lambda: srv._handle(payload, reply))

        self._z = ex.session.declare_queryable(key, _direct(on_query))
        self._token = ex._declare_token(srv.info)

    def close(self) -> None:
        self._token.undeclare()
        self._z.undeclare()


class _ClientLink:
    def __init__(self, ex: ZenohExecutor, client: Client) -> None:
        self._ex, self._client = ex, client
        self._key = keys.data_key(ex.settings.domain_id, client.srv_name, client.srv_type.__srvtype__)
        self._token = ex._declare_token(client.info)

    def server_count(self) -> int:
        return self._ex.graph_count("SS", self._client.srv_name)

    def request(self, payload: bytes, timeout_sec: float, on_reply: Callable[[bytes | None, str], None]) -> None:
        answered = threading.Event()

        def on_zenoh_reply(reply: zenoh.Reply) -> None:
            if answered.is_set():
                return
            answered.set()
            if reply.ok is not None:
                on_reply(reply.ok.payload.to_bytes(), "")
            else:
                on_reply(None, reply.err.payload.to_string() if reply.err else "error reply")

        def on_done() -> None:
            if not answered.is_set():
                answered.set()
                on_reply(None, f"no answer within {timeout_sec} s (is the service running?)")

        self._ex.session.get(
            self._key,
            _direct(on_zenoh_reply, on_done),
            payload=payload,
            timeout=timeout_sec,
        )

    def close(self) -> None:
        self._token.undeclare()


class ZenohExecutor(Executor):
    """One Zenoh session per process; all callbacks on the spinning thread."""

    def __init__(self, ros_args: RosArgs | None = None, *, settings: ZenohSettings | None = None) -> None:
        super().__init__(ros_args)
        self.clock = SystemClock()
        self.settings = settings or ZenohSettings.from_env()
        self.session = zenoh.open(self.settings.to_config())
        self.zid = str(self.session.info.zid())
        self._queue: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
        self._timers: list[tuple[int, int, Timer, int]] = []
        self._timer_seq = itertools.count()
        self._ids = itertools.count(1)
        self._node_ids: dict[tuple[str, str], int] = {}
        self._graph: dict[str, EntityInfo] = {}
        self._graph_lock = threading.Lock()
        self._stop = threading.Event()
        self._graph_sub = self.session.liveliness().declare_subscriber(
            f"{keys.LIVELINESS_PREFIX}/{self.settings.domain_id}/**", _direct(self._on_liveliness), history=True
        )

    # --- graph cache from liveliness tokens -------------------------------------------------
    def _on_liveliness(self, sample: zenoh.Sample) -> None:
        key = str(sample.key_expr)
        with self._graph_lock:
            if sample.kind == zenoh.SampleKind.DELETE:
                self._graph.pop(key, None)
            else:
                info = keys.parse_liveliness_key(key)
                if info is not None:
                    self._graph[key] = info

    def graph_entities(self) -> list[EntityInfo]:
        with self._graph_lock:
            return list(self._graph.values())

    def _declare_token(self, info: EntityInfo) -> zenoh.LivelinessToken:
        node_key = (info.node_name, info.namespace)
        nid = self._node_ids.setdefault(node_key, next(self._ids))
        key = keys.liveliness_key(self.settings.domain_id, self.zid, nid, next(self._ids), info)
        with self._graph_lock:  # our own entities are in the graph at once
            self._graph[key] = info
        return self.session.liveliness().declare_token(key)

    def _add_node(self, node: Node) -> None:
        super()._add_node(node)
        node._liveliness = self._declare_token(node.info)  # type: ignore[attr-defined]

    def _remove_node(self, node: Node) -> None:
        token = getattr(node, "_liveliness", None)
        if token is not None:
            token.undeclare()
        super()._remove_node(node)

    # --- scheduling -------------------------------------------------------------------------
    def _post(self, fn: Callable[[], Any]) -> None:
        self._queue.put(fn)

    def _add_timer(self, timer: Timer) -> None:
        due = time.monotonic_ns() + timer.period_ns
        heapq.heappush(self._timers, (due, next(self._timer_seq), timer, timer._generation))
        self._queue.put(_noop)  # wake the spinning thread so it sees the new deadline

    def _run_due_timers(self) -> int | None:
        """Fire every due timer; return ns until the next one (None if there is none)."""
        while self._timers:
            due, _seq, timer, generation = self._timers[0]
            if generation != timer._generation:
                heapq.heappop(self._timers)
                continue
            now = time.monotonic_ns()
            if due > now:
                return due - now
            heapq.heappop(self._timers)
            next_due = due + timer.period_ns
            if next_due <= now:  # overran: skip the missed periods instead of bursting
                next_due = now + timer.period_ns
            heapq.heappush(self._timers, (next_due, next(self._timer_seq), timer, generation))
            timer._fire()
        return None

    # --- spinning ---------------------------------------------------------------------------
    def spin_once(self, timeout_sec: float | None = None) -> bool:
        wait_ns = self._run_due_timers()
        wait = None if wait_ns is None else wait_ns / 1e9
        if timeout_sec is not None:
            wait = timeout_sec if wait is None else min(wait, timeout_sec)
        try:
            fn = self._queue.get(timeout=wait)
        except queue.Empty:
            return False
        fn()
        return True

    def request_stop(self, *_args: Any) -> None:
        self._stop.set()
        self._queue.put(_noop)

    def spin(self) -> None:
        """Spin until Ctrl-C / SIGTERM (or request_stop())."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.request_stop)
            signal.signal(signal.SIGTERM, self.request_stop)
        while not self._stop.is_set() and self.ok():
            self.spin_once(0.5)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 and not self._stop.is_set():
            self.spin_once(left)

    def spin_until_future_complete(self, future: Future, timeout_sec: float | None = None) -> None:
        end = None if timeout_sec is None else time.monotonic() + timeout_sec
        while not future.done():
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return
            self.spin_once(0.05 if left is None else min(left, 0.05))

    def _wait_for(self, predicate: Callable[[], bool], timeout_sec: float | None) -> bool:
        end = None if timeout_sec is None else time.monotonic() + timeout_sec
        while not predicate():
            if end is not None and time.monotonic() >= end:
                return False
            self.spin_once(0.02)
        return True

    # --- transport --------------------------------------------------------------------------
    def _advertise(self, pub: Publisher) -> _PublisherLink:
        return _PublisherLink(self, pub)

    def _subscribe(self, sub: Subscription) -> _SubscriptionLink:
        return _SubscriptionLink(self, sub)

    def _serve(self, srv: Service) -> _ServiceLink:
        return _ServiceLink(self, srv)

    def _connect_client(self, client: Client) -> _ClientLink:
        return _ClientLink(self, client)

    def _flush_before_close(self) -> None:
        # Run what the shutdown hooks queued, then let the last samples leave the socket.
        while True:
            try:
                self._queue.get_nowait()()
            except queue.Empty:
                break
        time.sleep(0.05)

    def _close_transport(self) -> None:
        self._graph_sub.undeclare()
        self.session.close()


def _noop() -> None:
    pass
