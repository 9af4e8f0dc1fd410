"""CDR serialisation for the interface package, through rosbags' ROS 2 type store.

The ``.msg``/``.srv`` files are parsed by rosbags, so the bytes are the ones ROS 2 (and Cyclone
DDS) produce for the same definition. The deserialiser builds our generated classes directly
(rosbags constructs ``typestore.types[name](*fields)``), so decoded messages are typed objects.
"""

from __future__ import annotations

import importlib
import sys
from functools import cache
from pathlib import Path

from rosbags.interfaces import Msgdef
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from energizeos_msgs._message import Message, MessageDecodeError, MessageEncodeError

PACKAGE = "energizeos_msgs"
INTERFACE_DIR = Path(__file__).resolve().parent
# Types from the standard ROS 2 store that our interfaces use; generated in msg/ as well.
STANDARD_TYPES = ("builtin_interfaces/msg/Time", "std_msgs/msg/Header")


def interface_files() -> list[tuple[str, Path]]:
    """(type name, file) for every .msg and .srv of the package, sorted for stable output."""
    found = []
    for kind, suffix in (("msg", ".msg"), ("srv", ".srv")):
        for path in sorted((INTERFACE_DIR / kind).glob(f"*{suffix}")):
            found.append((f"{PACKAGE}/{kind}/{path.stem}", path))
    return found


def parse_interfaces() -> dict[str, tuple]:
    """rosbags field definitions for every interface; a service yields _Request and _Response."""
    types: dict[str, tuple] = {}
    for name, path in interface_files():
        text = path.read_text()
        if name.split("/")[1] == "srv":
            request, sep, response = text.partition("\n---")
            if not sep and not text.startswith("---"):
                raise ValueError(f"{path}: a .srv file needs a '---' line between request and response")
            if text.startswith("---"):
                request, response = "", text[3:]
            for part, part_text in (("Request", request), ("Response", response)):
                # rosbags would file it as pkg/srv/msg/Name_Part; ROS 2 names it pkg/srv/Name_Part.
                (fields,) = get_types_from_msg(part_text, f"{name}_{part}").values()
                types[f"{name}_{part}"] = fields
        else:
            types.update(get_types_from_msg(text, name))
    return types


@cache
def typestore() -> Typestore:
    """The ROS 2 Jazzy type store with our interfaces registered and our classes plugged in."""
    store = get_typestore(Stores.ROS2_JAZZY)
    ours = parse_interfaces()
    store.register(ours)
    for name in [*STANDARD_TYPES, *ours]:
        store.types[name] = _generated_class(name)
    return store


def _generated_class(typename: str) -> type[Message]:
    _pkg, kind, short = typename.split("/")
    if typename in STANDARD_TYPES:
        return getattr(importlib.import_module(f"{PACKAGE}.msg"), short)
    module = importlib.import_module(f"{PACKAGE}.{kind}")
    if kind == "srv":
        service, _, part = short.rpartition("_")
        return getattr(getattr(module, service), part)
    return getattr(module, short)


def message_class(typename: str) -> type[Message]:
    """The Python class for 'energizeos_msgs/msg/Name' (or 'energizeos_msgs/msg/Name' without /msg/)."""
    name = normalize_type_name(typename)
    if name not in interface_names() and name not in STANDARD_TYPES:
        raise ValueError(f"unknown message type {typename!r}; known: {', '.join(interface_names())}")
    return _generated_class(name)


def normalize_type_name(typename: str) -> str:
    """Accept 'pkg/msg/Name', 'pkg/Name' and 'pkg::msg::dds_::Name_' spellings."""
    name = typename.strip()
    if "::" in name:
        parts = [p for p in name.split("::") if p != "dds_"]
        name = "/".join(parts).rstrip("_") if len(parts) == 3 else name
    parts = name.split("/")
    if len(parts) == 1:  # a bare name means one of ours: "MeterReading"
        return f"{PACKAGE}/msg/{name}"
    if len(parts) == 2:
        name = f"{parts[0]}/msg/{parts[1]}"
    return name


def interface_names() -> list[str]:
    return [name for name, _ in interface_files()]


_LITTLE_ENDIAN = sys.byteorder == "little"  # Typestore.serialize_cdr's default
_msgdefs: dict[str, Msgdef] = {}


def _serialize_cdr(message: Message, typename: str) -> bytes:
    """``bytes(typestore().serialize_cdr(message, typename))`` with the type's generated functions
    looked up once (serialize runs on every publish, even in the deterministic executor)."""
    store = typestore()
    msgdef = _msgdefs.get(typename)
    if msgdef is None:
        msgdef = _msgdefs[typename] = store.get_msgdef(typename)
    size = 4 + msgdef.getsize_cdr(0, message, store)
    raw = bytearray(size)
    raw[1] = _LITTLE_ENDIAN  # encapsulation header: 00 01 = CDR_LE, 00 00 = CDR_BE
    func = msgdef.serialize_cdr_le if _LITTLE_ENDIAN else msgdef.serialize_cdr_be
    pos = func(memoryview(raw)[4:], 0, message, store)
    assert pos + 4 == size
    return bytes(raw)


def serialize(message: Message) -> bytes:
    """CDR (little endian, with the 4-byte encapsulation header), as ROS 2 puts it on the wire."""
    typename = getattr(message, "__msgtype__", None)
    if typename is None:
        raise MessageEncodeError(f"{type(message).__name__} is not a message type")
    typestore()  # build outside the try: a broken interface file is not an encode error
    try:
        message.check_fields()  # type: ignore[attr-defined]
        return _serialize_cdr(message, typename)
    except (SerdeError, AttributeError, TypeError, ValueError, OverflowError) as exc:
        raise MessageEncodeError(f"cannot encode {typename}: {exc}") from exc
    except Exception as exc:  # struct.error and friends: name the type, never crash the caller
        raise MessageEncodeError(f"cannot encode {typename}: {type(exc).__name__}: {exc}") from exc


def deserialize(data: bytes | memoryview, msg_type: type[Message] | str) -> Message:
    """Decode CDR bytes; any malformed payload raises MessageDecodeError naming the type."""
    typename = msg_type if isinstance(msg_type, str) else msg_type.__msgtype__
    try:
        return typestore().deserialize_cdr(bytes(data), typename)  # type: ignore[return-value]
    except SerdeError as exc:
        raise MessageDecodeError(f"malformed {typename} payload ({len(data)} bytes): {exc}") from exc
    except Exception as exc:
        raise MessageDecodeError(
            f"malformed {typename} payload ({len(data)} bytes): {type(exc).__name__}: {exc}"
        ) from exc


@cache
def type_hash(typename: str) -> str:
    """ROS 2 type description hash (RIHS01), as rmw_zenoh puts in key expressions."""
    return typestore().hash_rihs01(typename)
