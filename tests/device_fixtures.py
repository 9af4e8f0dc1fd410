"""Helpers for the device-node tests: the simulated site served over real Modbus TCP on loopback.

One ``SimExecutor`` holds the ``sim_plant`` node (its ``DeviceServer``s answer on free loopback
ports from their own threads), the device nodes with their default ``ModbusTcpLink``, and a
``Probe`` node that publishes commands and records every topic. Time is simulated; only the
register I/O goes through real sockets.
"""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from energizeos.nodes.bms_node import BmsNode
from energizeos.nodes.device_node import DeviceNode
from energizeos.nodes.meter_node import MeterNode
from energizeos.nodes.pcs_node import PcsNode
from energizeos.nodes.relay_node import RelayNode
from energizeos.nodes.sim_plant import SimPlant
from energizeos.runtime import Node, SimExecutor, Time
from energizeos.sim.plant import Plant
from energizeos.sim.registers import RegisterImage
from energizeos.sim.site import DEVICES, SimSite
from energizeos_msgs.msg import Alarm, BmsStatus, BreakerCommand, MeterReading, PcsCommand, PcsStatus, RelayStatus

# A summer weekday at noon Pacific standard time (the plant's load profile runs on local time): the
# LargeOffice load is ~590 kW, so a 200 kW BESS step keeps the POI importing.
START = datetime(2025, 7, 15, 20, 0, tzinfo=UTC)
NODE_CLASSES: dict[str, type[DeviceNode]] = {"meter": MeterNode, "relay": RelayNode, "bms": BmsNode, "pcs": PcsNode}
TOPICS = {"meter": ("/site/poi/meter", MeterReading), "relay": ("/site/poi/relay", RelayStatus),
          "bms": ("/bess/bms/status", BmsStatus), "pcs": ("/bess/pcs/status", PcsStatus)}
TIMEOUT_S = 0.2  # Modbus reply timeout of every device node (wall time per unanswered request)


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (all bound at once so the kernel cannot repeat one)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def port_refuses(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port any more."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def t_s(stamp_ns: int) -> float:
    return stamp_ns / 1e9


class Probe(Node):
    """Publishes what the safety arbiter (or an intruder) would, and records every device topic."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("probe", **kwargs)
        self.received: dict[str, list[tuple[int, Any]]] = {device: [] for device in TOPICS}
        for device, (topic, msg_type) in TOPICS.items():
            self.create_subscription(msg_type, topic, lambda m, d=device: self._record(d, m), 100)
        self.alarms: list[Alarm] = []
        self.create_subscription(Alarm, "/ems/device_alarms", self.alarms.append, 100)
        self.pcs_pub = self.create_publisher(PcsCommand, "/bess/pcs/command", 10)
        self.breaker_pub = self.create_publisher(BreakerCommand, "/site/poi/relay/command", 10)
        self.pcs_commands: list[tuple[int, PcsCommand]] = []  # (publish time ns, command)
        self._pcs_timer = None
        self._decision = 0

    def _record(self, device: str, msg: Any) -> None:
        self.received[device].append((self.get_clock().now().nanoseconds, msg))

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # --- PCS commands ---------------------------------------------------------------------
    def command_pcs(self, p_kw: float, *, source: str = "safety_arbiter", age_s: float = 0.0, enable: bool = True,
                    reversion_s: float = 10.0) -> PcsCommand:
        self._decision += 1
        cmd = PcsCommand(source=source, decision_id=self._decision, enable=enable, p_kw=p_kw, q_kvar=0.0,
                         reversion_timeout_s=reversion_s)
        cmd.header.stamp = Time(self.now_ns() - round(age_s * 1e9)).to_msg()
        self.pcs_pub.publish(cmd)
        self.pcs_commands.append((self.now_ns(), cmd))
        return cmd

    def start_pcs_commands(self, p_kw: float, *, reversion_s: float = 10.0, period_s: float = 1.0) -> None:
        """The arbiter's 1 Hz command stream (first command now)."""
        self.stop_pcs_commands()
        self.command_pcs(p_kw, reversion_s=reversion_s)
        self._pcs_timer = self.create_timer(period_s, lambda: self.command_pcs(p_kw, reversion_s=reversion_s))

    def stop_pcs_commands(self) -> int | None:
        """Stop the stream; returns the time (ns) of the last command sent."""
        if self._pcs_timer is not None:
            self._pcs_timer.cancel()
            self._pcs_timer = None
        return self.pcs_commands[-1][0] if self.pcs_commands else None

    # --- breaker commands -----------------------------------------------------------------
    def breaker(self, action: int, *, source: str = "safety_arbiter", requested_by: str = "test") -> None:
        self._decision += 1
        cmd = BreakerCommand(source=source, decision_id=self._decision, action=action, requested_by=requested_by)
        cmd.header.stamp = self.get_clock().now().to_msg()
        self.breaker_pub.publish(cmd)

    # --- queries --------------------------------------------------------------------------
    def last(self, device: str) -> Any:
        return self.received[device][-1][1]

    def since(self, device: str, t_ns: int) -> list[tuple[int, Any]]:
        return [(t, m) for t, m in self.received[device] if t >= t_ns]

    def events(self, code: str, event: int | None = None) -> list[Alarm]:
        return [a for a in self.alarms if a.code == code and (event is None or a.event == event)]

    def raised(self, code: str) -> list[Alarm]:
        return self.events(code, Alarm.EVENT_RAISE)

    def cleared(self, code: str) -> list[Alarm]:
        return self.events(code, Alarm.EVENT_CLEAR)


class Tap:
    """Records every message a node publishes together with the plant truth at that very instant.

    Wrapping the node's publisher observes without changing behaviour: the poll reads the registers
    and publishes in one callback, so the plant cannot step between the read and the snapshot.
    """

    def __init__(self, node: DeviceNode, truth: Callable[[], dict] | None = None) -> None:
        self.records: list[tuple[int, Any, dict]] = []
        publish = node.pub.publish  # type: ignore[attr-defined]
        clock = node.get_clock()

        def tapped(msg: Any) -> None:
            self.records.append((clock.now().nanoseconds, msg, truth() if truth else {}))
            publish(msg)

        node.pub.publish = tapped  # type: ignore[attr-defined]


class WriteTap:
    """Records the simulated time of every register write a node makes through its link."""

    def __init__(self, node: DeviceNode) -> None:
        self.times_ns: list[int] = []
        write = node.link.write
        clock = node.get_clock()

        def tapped(address: int, words: list[int]) -> None:
            self.times_ns.append(clock.now().nanoseconds)
            write(address, words)

        node.link.write = tapped  # type: ignore[method-assign]


@dataclass
class SiteGraph:
    ex: SimExecutor
    sim: SimPlant
    ports: dict[str, int]
    nodes: dict[str, DeviceNode]
    probe: Probe
    extra: list[Node] = field(default_factory=list)

    @property
    def site(self) -> SimSite:
        return self.sim.site

    @property
    def plant(self) -> Plant:
        return self.sim.site.plant

    @property
    def now_ns(self) -> int:
        return self.ex.clock.nanoseconds

    def spin(self, seconds: float) -> None:
        self.ex.spin_for(seconds)

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.1) -> int:
        """Spin in ``step_s`` slices until ``predicate()``; returns the time (ns) it first held."""
        end = self.now_ns + round(timeout_s * 1e9)
        while self.now_ns < end:
            self.ex.spin_for(step_s)
            if predicate():
                return self.now_ns
        raise AssertionError(f"condition not met within {timeout_s} s of simulated time")

    def poke(self, device: str, address: int, words: list[int]) -> None:
        """Write words into a device's register image behind its back (bypasses ``frozen``)."""
        image: RegisterImage = self.site.images[device]
        offset = address - image.base
        with image._lock:
            image._words[offset:offset + len(words)] = words

    def peek(self, device: str, address: int, count: int) -> list[int]:
        """The words a device's image holds now, without the lazy refresh a client read triggers."""
        return self.site.images[device].peek(address, count)

    def shutdown(self) -> None:
        self.ex.shutdown()
        for node in self.nodes.values():
            node.link.close()
        for node in self.extra:
            link = getattr(node, "link", None)
            if link is not None:
                link.close()


def build_site(devices: Iterable[str] = DEVICES, *, plant_params: dict | None = None,
               node_params: dict[str, dict] | None = None) -> SiteGraph:
    """sim_plant serving all four devices on free ports, the chosen device nodes over Modbus TCP, a probe."""
    ex = SimExecutor(start=START)
    ports = dict(zip(DEVICES, free_ports(len(DEVICES)), strict=True))
    # Device nodes first (their links connect lazily, on the first poll): shutdown hooks run in node
    # order, so the PCS node's "0 kW on shutdown" reaches the PCS before sim_plant stops its servers.
    nodes = {}
    for device in devices:
        params = {"port": ports[device], "timeout_s": TIMEOUT_S, **(node_params or {}).get(device, {})}
        nodes[device] = NODE_CLASSES[device](executor=ex, parameter_overrides=params)
    sim = SimPlant(executor=ex, parameter_overrides={**{f"{d}_port": p for d, p in ports.items()},
                                                     **(plant_params or {})})
    assert [s.port for s in sim.servers] == [ports[d] for d in DEVICES] and all(s.running for s in sim.servers)
    for node in [sim, *nodes.values()]:
        node.check_unused_overrides()
    return SiteGraph(ex, sim, ports, nodes, Probe(executor=ex))


def evidence(alarm: Alarm) -> dict:
    return json.loads(alarm.evidence_json)


def plain(value: Any) -> Any:
    """A message's plain data with NaN made comparable (NaN != NaN)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def float_fields(msg: Any) -> dict[str, float]:
    """Every float in a message (arrays flattened as name[i]), header excluded."""
    out: dict[str, float] = {}
    for name, value in msg.to_dict().items():
        if name == "header":
            continue
        if isinstance(value, float):
            out[name] = value
        elif isinstance(value, list):
            out.update({f"{name}[{i}]": v for i, v in enumerate(value) if isinstance(v, float)})
    return out
