"""Zenoh key expressions, following rmw_zenoh's conventions (ROS 2 Jazzy).

- data:     ``<domain>/<topic without leading '/'>/<pkg::msg::dds_::Name_>/<RIHS01_hash>``
- services: ``<domain>/<service>/<pkg::srv::dds_::Name_>/<RIHS01_hash>`` (queryable)
- graph:    ``@ros2_lv/<domain>/<zid>/<nid>/<eid>/<kind>/<enclave>/<namespace>/<node>
             [/<topic>/<type>/<hash>/<qos>]`` liveliness tokens, '/' in names mangled to '%'.
"""

from __future__ import annotations

from energizeos.runtime.node import EntityInfo
from energizeos.runtime.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from energizeos_msgs import type_hash

LIVELINESS_PREFIX = "@ros2_lv"


def dds_type_name(type_name: str) -> str:
    """'energizeos_msgs/msg/MeterReading' -> 'energizeos_msgs::msg::dds_::MeterReading_'."""
    pkg, kind, name = type_name.split("/")
    return f"{pkg}::{kind}::dds_::{name}_"


def ros_type_name(dds_name: str) -> str:
    parts = [p for p in dds_name.split("::") if p != "dds_"]
    if len(parts) != 3:
        return dds_name
    return f"{parts[0]}/{parts[1]}/{parts[2].removesuffix('_')}"


def _hash_for(type_name: str) -> str:
    # A service is hashed by its request type (rmw_zenoh hashes the service description; see README).
    return type_hash(f"{type_name}_Request" if "/srv/" in type_name else type_name)


def data_key(domain_id: int, name: str, type_name: str) -> str:
    return f"{domain_id}/{name.lstrip('/')}/{dds_type_name(type_name)}/{_hash_for(type_name)}"


def subscription_key(domain_id: int, name: str) -> str:
    """Match every type on the topic, so a publisher of the wrong type is seen and rejected."""
    return f"{domain_id}/{name.lstrip('/')}/*/*"


def split_data_key(key: str) -> tuple[str, str]:
    """(ROS type name, hash) from a data key."""
    parts = key.rsplit("/", 2)
    return ros_type_name(parts[-2]), parts[-1]


def sender_type(key: str, expected_type: str) -> str:
    """The publisher's type, read from the key; a different definition of the same type is named as such."""
    type_name, digest = split_data_key(key)
    if type_name == expected_type and digest != _hash_for(expected_type):
        return f"{type_name} with a different definition ({digest[:20]}...)"
    return type_name


def _mangle(name: str) -> str:
    return name.replace("/", "%") if name not in ("", "/") else "%"


def _unmangle(text: str) -> str:
    return "/" if text == "%" else text.replace("%", "/")


def qos_from_text(text: str) -> QoSProfile | None:
    try:
        rel, dur, rest = text.split(":", 2)
        hist, depth = rest.split(",")
        return QoSProfile(
            depth=int(depth),
            reliability=ReliabilityPolicy.RELIABLE if rel == "1" else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if dur == "1" else DurabilityPolicy.VOLATILE,
            history=HistoryPolicy.KEEP_LAST if hist == "1" else HistoryPolicy.KEEP_ALL,
        )
    except ValueError:
        return None


def liveliness_key(domain_id: int, zid: str, nid: int, eid: int, info: EntityInfo) -> str:
    key = (f"{LIVELINESS_PREFIX}/{domain_id}/{zid}/{nid}/{eid}/{info.kind}/%/"
           f"{_mangle(info.namespace)}/{info.node_name}")
    if info.kind != "NN":
        qos = info.qos.to_keyexpr() if info.qos else "::,"
        key += f"/{_mangle(info.name)}/{dds_type_name(info.type_name)}/{_hash_for(info.type_name)}/{qos}"
    return key


def parse_liveliness_key(key: str) -> EntityInfo | None:
    parts = key.split("/")
    if len(parts) < 9 or parts[0] != LIVELINESS_PREFIX:
        return None
    kind, namespace, node = parts[5], _unmangle(parts[7]), parts[8]
    if kind == "NN":
        return EntityInfo("NN", node, namespace)
    if len(parts) < 13:
        return None
    return EntityInfo(kind, node, namespace, _unmangle(parts[9]), ros_type_name(parts[10]),
                      qos_from_text(parts[12]))
