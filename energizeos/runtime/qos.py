"""Quality-of-service profiles, shaped like rclpy.qos."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ReliabilityPolicy(Enum):
    RELIABLE = "reliable"        # never dropped by the transport (publisher blocks under congestion)
    BEST_EFFORT = "best_effort"  # may be dropped under congestion: sensor streams


class DurabilityPolicy(Enum):
    VOLATILE = "volatile"                # only subscribers present at publish time get a sample
    TRANSIENT_LOCAL = "transient_local"  # "latched": late joiners get the last `depth` samples


class HistoryPolicy(Enum):
    KEEP_LAST = "keep_last"  # queue holds `depth` samples; older ones are dropped (and counted)
    KEEP_ALL = "keep_all"


@dataclass(frozen=True)
class QoSProfile:
    depth: int = 10
    reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE
    durability: DurabilityPolicy = DurabilityPolicy.VOLATILE
    history: HistoryPolicy = HistoryPolicy.KEEP_LAST

    def __post_init__(self) -> None:
        if self.history is HistoryPolicy.KEEP_LAST and self.depth < 1:
            raise ValueError(f"QoS depth must be >= 1 with KEEP_LAST, got {self.depth}")

    @property
    def latched(self) -> bool:
        return self.durability is DurabilityPolicy.TRANSIENT_LOCAL

    def to_keyexpr(self) -> str:
        """Compact QoS text for liveliness tokens (reliability:durability:history,depth)."""
        rel = "1" if self.reliability is ReliabilityPolicy.RELIABLE else "2"
        dur = "1" if self.durability is DurabilityPolicy.TRANSIENT_LOCAL else "2"
        hist = "1" if self.history is HistoryPolicy.KEEP_LAST else "2"
        return f"{rel}:{dur}:{hist},{self.depth}"


def as_qos(qos: QoSProfile | int) -> QoSProfile:
    """rclpy accepts a bare history depth wherever a profile is expected."""
    if isinstance(qos, QoSProfile):
        return qos
    if isinstance(qos, int) and not isinstance(qos, bool):
        return QoSProfile(depth=qos)
    raise TypeError(f"expected a QoSProfile or a history depth (int), got {type(qos).__name__}")


qos_profile_default = QoSProfile()
# Device telemetry: newest sample matters, an old one is worthless.
qos_profile_sensor_data = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
# State that late joiners need at once (active plan, interlock state, site config).
qos_profile_latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
qos_profile_services_default = QoSProfile(depth=10)
