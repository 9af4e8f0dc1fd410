"""What a commissioning runner sees of and does to a site, through the public interface only:
the device and arbiter topics (latest value and a history, stamped with their arrival on the node
clock), the fault-injection, dispatch-mode and breaker-request services, and an independent
register link per device for read-backs (Modbus TCP on a site, the plant's registers in memory in
the deterministic executor). The same object works in both executors."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from energizeos.nodes.device_link import RegisterLink
from energizeos.runtime import Future, Node, qos_profile_latched
from energizeos_msgs.msg import (
    Alarm,
    ArbiterDecision,
    BmsStatus,
    InterlockState,
    MeterReading,
    PcsStatus,
    RelayStatus,
)
from energizeos_msgs.srv import BreakerRequest, SetDispatchMode, SimFault

GOOD = 0
TOPICS: dict[str, tuple[str, type, Any]] = {
    "meter": ("/site/poi/meter", MeterReading, 100),
    "relay": ("/site/poi/relay", RelayStatus, 100),
    "bms": ("/bess/bms/status", BmsStatus, 100),
    "pcs": ("/bess/pcs/status", PcsStatus, 100),
    "decision": ("/ems/arbiter/decision", ArbiterDecision, 1000),
    "interlocks": ("/ems/arbiter/interlocks", InterlockState, qos_profile_latched),
    "alarm": ("/ems/device_alarms", Alarm, 1000),
}
DEVICES = ("meter", "relay", "bms", "pcs")
MODES = {"standby": 0, "peak_shaving": 1, "export_limit": 2, "plan": 3, "manual": 4}  # DispatchRequest.MODE_*
SERVICE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Sample:
    t: float  # arrival, seconds on the node clock
    msg: Any


class SiteIO:
    def __init__(self, node: Node, links: Mapping[str, RegisterLink] | None = None, keep: int = 20_000) -> None:
        self.node = node
        self.links = dict(links or {})
        self._history: dict[str, deque[Sample]] = {name: deque(maxlen=keep) for name in TOPICS}
        for name, (topic, cls, qos) in TOPICS.items():
            node.create_subscription(cls, topic, partial(self._on, name), qos)
        self._inject = node.create_client(SimFault, "/sim/inject")
        self._mode = node.create_client(SetDispatchMode, "/ems/dispatch/mode")
        self._breaker = node.create_client(BreakerRequest, "/ems/breaker/request")

    def _on(self, name: str, msg: Any) -> None:
        self._history[name].append(Sample(self.now(), msg))

    # --- reading --------------------------------------------------------------------------------
    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds / 1e9

    def last(self, name: str) -> Sample | None:
        history = self._history[name]
        return history[-1] if history else None

    def since(self, name: str, t: float) -> list[Sample]:
        """Samples that arrived at or after ``t``, oldest first."""
        found = []
        for sample in reversed(self._history[name]):
            if sample.t < t:
                break
            found.append(sample)
        found.reverse()
        return found

    def between(self, name: str, start: float, end: float) -> list[Sample]:
        return [s for s in self.since(name, start) if s.t < end]

    def fresh(self, name: str, max_age_s: float) -> Any | None:
        """The latest message if it arrived within ``max_age_s`` and its quality is good."""
        sample = self.last(name)
        if sample is None or self.now() - sample.t > max_age_s:
            return None
        return sample.msg if getattr(sample.msg, "quality", GOOD) == GOOD else None

    def read(self, device: str, address: int, count: int) -> list[int]:
        """An independent read of the device's registers (raises LinkError when it does not answer)."""
        if device not in self.links:
            raise KeyError(f"no register link to the {device}")
        return self.links[device].read(address, count)

    # --- acting ---------------------------------------------------------------------------------
    def can_inject(self) -> bool:
        """A simulated site answers /sim/inject; on real equipment a person creates the conditions."""
        return self._inject.service_is_ready()

    def inject(self, fault: str, device: str, params_json: str, clear: bool) -> Future:
        return self._inject.call_async(SimFault.Request(fault=fault, device=device, params_json=params_json,
                                                        clear=clear), SERVICE_TIMEOUT_S)

    def set_mode(self, mode: str, p_kw: float, user: str) -> Future:
        return self._mode.call_async(SetDispatchMode.Request(mode=MODES[mode], p_kw=p_kw, user=user),
                                     SERVICE_TIMEOUT_S)

    def breaker(self, action: int, requested_by: str, reason: str) -> Future:
        return self._breaker.call_async(BreakerRequest.Request(action=action, requested_by=requested_by,
                                                               reason=reason), SERVICE_TIMEOUT_S)
