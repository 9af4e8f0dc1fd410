"""Interface package: CDR round trips, byte compatibility with ROS 2, malformed payloads, codegen.

Every message type and every service Request/Response of ``energizeos_msgs`` is exercised with
non-default values in every field. Field types are read from a *fresh, independent* rosbags type
store built here from the ``.msg``/``.srv`` text (not from the package's own type store), so the
byte-compatibility checks compare the package against rosbags' own ROS 2 CDR codec.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import struct
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

import energizeos_msgs
from energizeos_msgs import MessageDecodeError, MessageEncodeError, deserialize, serialize
from energizeos_msgs import msg as msg_mod
from energizeos_msgs import srv as srv_mod

PKG_DIR = Path(energizeos_msgs.__file__).resolve().parent
ENCAP_LE = b"\x00\x01\x00\x00"


# --------------------------------------------------------------------------------------------
# An independent rosbags type store, built from the interface text alone
# --------------------------------------------------------------------------------------------
@cache
def fresh_store():
    """ROS 2 Jazzy store + our interfaces parsed here from the .msg/.srv files (not the package's)."""
    ts = get_typestore(Stores.ROS2_JAZZY)
    types: dict[str, Any] = {}
    for path in sorted((PKG_DIR / "msg").glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"energizeos_msgs/msg/{path.stem}"))
    for path in sorted((PKG_DIR / "srv").glob("*.srv")):
        lines = path.read_text().splitlines()
        sep = lines.index("---")
        for part, part_lines in (("Request", lines[:sep]), ("Response", lines[sep + 1 :])):
            name = f"energizeos_msgs/srv/{path.stem}_{part}"
            (fields,) = get_types_from_msg("\n".join(part_lines), name).values()
            types[name] = fields
    ts.register(types)
    return ts


def wire_types() -> list[str]:
    """Every type that goes on the wire: each message, and each service's Request and Response."""
    out = []
    for name in energizeos_msgs.interface_names():
        if "/srv/" in name:
            out += [f"{name}_Request", f"{name}_Response"]
        else:
            out.append(name)
    return out


WIRE_TYPES = wire_types()


def our_class(typename: str) -> type:
    """The generated class, looked up by hand (not through the package's own type store)."""
    _pkg, kind, short = typename.split("/")
    if kind == "srv":
        service, _, part = short.rpartition("_")
        return getattr(getattr(srv_mod, service), part)
    return getattr(msg_mod, short)


def rosbags_class(typename: str) -> type:
    return fresh_store().types[typename]


# --------------------------------------------------------------------------------------------
# Filling every field with a non-default value, by type
# --------------------------------------------------------------------------------------------
NP_DTYPES = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}


def primitive_value(ptype: str, seed: int) -> Any:
    """A distinct, non-default value of a ROS primitive type (exact in float32 too)."""
    if ptype == "bool":
        return True
    if ptype in ("byte", "char", "uint8"):
        return 1 + seed % 250
    if ptype == "int8":
        return -1 - seed % 120
    if ptype == "int16":
        return -1000 - seed
    if ptype == "uint16":
        return 1000 + seed
    if ptype == "int32":
        return -100_000 - seed
    if ptype == "uint32":
        return 2**31 + seed
    if ptype == "int64":
        return -(2**40) - seed
    if ptype == "uint64":
        return 2**63 + seed
    if ptype == "float32":
        return seed + 0.5
    if ptype == "float64":
        return -(seed * 1.1e10 + 0.123456789)
    if ptype == "string":
        return f"s{seed}-é✓"  # non-ASCII: UTF-8 both ways
    raise AssertionError(f"unhandled primitive type {ptype}")


def primitive_array(ptype: str, length: int, seed: int) -> np.ndarray:
    values = [primitive_value(ptype, seed + i) for i in range(length)]
    if ptype == "bool":
        values = [i % 2 == 0 for i in range(length)]  # mixed, not all-default
    return np.array(values, dtype=NP_DTYPES[ptype])


def fill(typename: str, make: Any, counter: itertools.count | None = None) -> Any:
    """Build a message of ``typename`` with every field set, recursing into nested types.

    ``make(typename)`` returns the class to instantiate (ours or rosbags'); the traversal is
    deterministic, so two calls with a fresh counter produce the same values.
    """
    counter = counter if counter is not None else itertools.count(1)
    _consts, fields = fresh_store().fielddefs[typename][:2]
    kwargs: dict[str, Any] = {}
    for fname, desc in fields:
        kind = desc[0]
        if kind == Nodetype.NAME:
            kwargs[fname] = fill(desc[1], make, counter)
        elif kind == Nodetype.BASE:
            kwargs[fname] = primitive_value(desc[1][0], next(counter))
        else:
            sub, length = desc[1]
            if kind == Nodetype.SEQUENCE:
                length = 3  # a few elements, never the empty default
            if sub[0] == Nodetype.NAME:
                kwargs[fname] = [fill(sub[1], make, counter) for _ in range(length)]
            elif sub[1][0] == "string":
                kwargs[fname] = [primitive_value("string", next(counter)) for _ in range(length - 1)] + [""]
            else:
                kwargs[fname] = primitive_array(sub[1][0], length, next(counter))
    return make(typename)(**kwargs)


def filled(typename: str) -> Any:
    return fill(typename, our_class)


def assert_typed(value: Any, typename: str) -> None:
    """The decoded object, and every nested message in it, is the generated class."""
    assert type(value) is our_class(typename), f"{typename}: got {type(value)!r}"
    for fname, desc in fresh_store().fielddefs[typename][1]:
        field = getattr(value, fname)
        if desc[0] == Nodetype.NAME:
            assert_typed(field, desc[1])
        elif desc[0] in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            sub = desc[1][0]
            if sub[0] == Nodetype.NAME:
                for item in field:
                    assert_typed(item, sub[1])
            elif sub[1][0] == "string":
                assert all(isinstance(s, str) for s in field)
            else:
                assert isinstance(field, np.ndarray), f"{typename}.{fname} is {type(field)!r}"
                assert field.dtype == NP_DTYPES[sub[1][0]]


# --------------------------------------------------------------------------------------------
# Inventory
# --------------------------------------------------------------------------------------------
def test_inventory_matches_interface_files():
    on_disk = sorted(f"energizeos_msgs/msg/{p.stem}" for p in (PKG_DIR / "msg").glob("*.msg"))
    on_disk += sorted(f"energizeos_msgs/srv/{p.stem}" for p in (PKG_DIR / "srv").glob("*.srv"))
    assert energizeos_msgs.interface_names() == on_disk
    n_srv = sum(1 for n in on_disk if "/srv/" in n)
    assert len(WIRE_TYPES) == len(on_disk) + n_srv  # a service is a Request and a Response


@pytest.mark.parametrize("typename", WIRE_TYPES)
def test_generated_fields_match_interface_definition(typename):
    cls = our_class(typename)
    assert cls.__msgtype__ == typename
    expected = [fname for fname, _ in fresh_store().fielddefs[typename][1]]
    assert [f.name for f in dataclasses.fields(cls)] == expected


def test_service_classes_carry_their_type():
    for name in energizeos_msgs.interface_names():
        if "/srv/" in name:
            service = getattr(srv_mod, name.rsplit("/", 1)[1])
            assert service.__srvtype__ == name
            assert service.Request.__msgtype__ == f"{name}_Request"
            assert service.Response.__msgtype__ == f"{name}_Response"


def test_constants_are_generated():
    assert msg_mod.Alarm.PRIORITY_CRITICAL == 1
    assert msg_mod.BmsStatus.STATE_FAULT == 99
    assert msg_mod.MeterReading.QUALITY_STALE == 2
    assert srv_mod.BreakerRequest.Request.ACTION_RESET_LOCKOUT == 2
    assert energizeos_msgs.message_class("energizeos_msgs/MeterReading") is msg_mod.MeterReading
    assert energizeos_msgs.message_class("energizeos_msgs::msg::dds_::MeterReading_") is msg_mod.MeterReading
    with pytest.raises(ValueError, match="Nope"):
        energizeos_msgs.message_class("energizeos_msgs/msg/Nope")


# --------------------------------------------------------------------------------------------
# (a) round trip
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("typename", WIRE_TYPES)
def test_round_trip_every_type(typename):
    original = filled(typename)
    assert original != our_class(typename)(), "filler left the message at its defaults"
    data = serialize(original)
    assert isinstance(data, bytes)
    assert data[:4] == ENCAP_LE
    decoded = deserialize(data, our_class(typename))
    assert_typed(decoded, typename)
    assert decoded == original
    # the type may also be named by string, and memoryview/bytearray input works
    assert deserialize(memoryview(data), typename) == original
    assert deserialize(bytearray(data), typename) == original
    # re-encoding the decoded message gives the same bytes
    assert serialize(decoded) == data


@pytest.mark.parametrize("typename", WIRE_TYPES)
def test_round_trip_defaults(typename):
    cls = our_class(typename)
    assert deserialize(serialize(cls()), cls) == cls()


def test_equality_is_not_vacuous():
    a = filled("energizeos_msgs/msg/MeterReading")
    b = filled("energizeos_msgs/msg/MeterReading")
    assert a == b
    b.voltage_ln_v[1] += 1.0
    assert a != b
    c = filled("energizeos_msgs/msg/InterlockState")
    d = filled("energizeos_msgs/msg/InterlockState")
    d.permissives[2].value = "changed"
    assert c != d
    assert a != c


def test_lists_are_accepted_for_primitive_arrays_at_construction():
    m = msg_mod.MeterReading(voltage_ln_v=[1.0, 2.0, 3.0])
    assert isinstance(m.voltage_ln_v, np.ndarray) and m.voltage_ln_v.dtype == np.float64
    out = deserialize(serialize(m), msg_mod.MeterReading)
    assert out.voltage_ln_v.tolist() == [1.0, 2.0, 3.0]
    plan = msg_mod.DispatchPlan(p_kw=[1, -2, 3], gate_findings=["ok"])
    assert deserialize(serialize(plan), msg_mod.DispatchPlan).p_kw.tolist() == [1.0, -2.0, 3.0]


def test_extreme_values_round_trip():
    m = msg_mod.Alarm(alarm_id=2**64 - 1, cause_alarm_id=0, priority=255, message="x" * 10_000)
    assert deserialize(serialize(m), msg_mod.Alarm) == m
    t = msg_mod.Time(sec=-(2**31), nanosec=2**32 - 1)
    assert deserialize(serialize(t), msg_mod.Time) == t
    nan = msg_mod.PcsStatus(p_kw=float("inf"), q_kvar=float("-inf"), rated_kw=float("nan"))
    out = deserialize(serialize(nan), msg_mod.PcsStatus)
    assert out.p_kw == float("inf") and out.q_kvar == float("-inf") and np.isnan(out.rated_kw)


# --------------------------------------------------------------------------------------------
# (b) byte compatibility with an independent rosbags codec and with hand-built ROS 2 bytes
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("typename", WIRE_TYPES)
def test_bytes_identical_to_independent_rosbags(typename):
    ts = fresh_store()
    ours = filled(typename)
    theirs = fill(typename, rosbags_class)
    assert type(theirs).__module__.startswith("rosbags"), "must be rosbags' own dataclass"
    expected = bytes(ts.serialize_cdr(theirs, typename))
    assert serialize(ours) == expected
    # and rosbags reads our bytes back to the same thing it would have written
    assert bytes(ts.serialize_cdr(ts.deserialize_cdr(serialize(ours), typename), typename)) == expected


@pytest.mark.parametrize("typename", WIRE_TYPES)
def test_big_endian_payload_from_independent_writer_decodes(typename):
    ts = fresh_store()
    big = bytes(ts.serialize_cdr(fill(typename, rosbags_class), typename, little_endian=False))
    assert big[:2] == b"\x00\x00"
    decoded = deserialize(big, our_class(typename))
    assert_typed(decoded, typename)
    assert decoded == filled(typename)


def test_header_bytes_match_hand_built_ros2_cdr():
    header = msg_mod.Header(stamp=msg_mod.Time(sec=1_700_000_000, nanosec=123_456_789), frame_id="poi")
    expected = (
        b"\x00\x01\x00\x00"  # encapsulation: CDR_LE, options 0
        + struct.pack("<i", 1_700_000_000)  # stamp.sec (int32)
        + struct.pack("<I", 123_456_789)  # stamp.nanosec (uint32)
        + struct.pack("<I", 4)  # frame_id length, NUL included
        + b"poi\x00"
    )
    assert serialize(header) == expected
    assert deserialize(expected, msg_mod.Header) == header
    # and the same as rosbags' built-in std_msgs/msg/Header (the ROS 2 definition, not ours)
    ros = get_typestore(Stores.ROS2_JAZZY)
    ros_header = ros.types["std_msgs/msg/Header"](
        stamp=ros.types["builtin_interfaces/msg/Time"](sec=1_700_000_000, nanosec=123_456_789), frame_id="poi"
    )
    assert bytes(ros.serialize_cdr(ros_header, "std_msgs/msg/Header")) == expected


def test_alignment_bytes_match_hand_built_cdr():
    """Permissive: string, bool, string, string, float64 -- exercises 4- and 8-byte alignment."""
    p = msg_mod.Permissive(name="ab", ok=True, source="s", value="", age_s=1.5)
    expected = (
        ENCAP_LE
        + struct.pack("<I", 3)
        + b"ab\x00"  # offset 0..7
        + b"\x01"  # bool ok at offset 7
        + struct.pack("<I", 2)
        + b"s\x00"  # offset 8..14
        + b"\x00\x00"  # pad to 16
        + struct.pack("<I", 1)
        + b"\x00"  # empty string at 16..21
        + b"\x00\x00\x00"  # pad to 24 for float64
        + struct.pack("<d", 1.5)
    )
    assert serialize(p) == expected
    assert deserialize(expected, msg_mod.Permissive) == p


def test_empty_request_matches_ros2_placeholder_byte():
    """An empty ROS 2 structure carries one uint8 placeholder, exactly like std_msgs/msg/Empty."""
    ros = get_typestore(Stores.ROS2_JAZZY)
    empty = bytes(ros.serialize_cdr(ros.types["std_msgs/msg/Empty"](), "std_msgs/msg/Empty"))
    assert empty == ENCAP_LE + b"\x00"
    assert serialize(srv_mod.Trigger.Request()) == empty


# --------------------------------------------------------------------------------------------
# (c) malformed payloads: always MessageDecodeError, never anything else
# --------------------------------------------------------------------------------------------
ALL_CLASSES = [our_class(t) for t in WIRE_TYPES] + [msg_mod.Header, msg_mod.Time]


# Deterministic fuzzing (same examples every run) and no example database written to the repo.
FUZZ = dict(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def decode_or_decode_error(data: bytes, cls: type) -> None:
    """Random bytes may happen to be valid CDR; otherwise it must be MessageDecodeError."""
    try:
        out = deserialize(data, cls)
    except MessageDecodeError as exc:
        assert cls.__msgtype__ in str(exc)
    else:
        assert type(out) is cls


@pytest.mark.parametrize("typename", WIRE_TYPES)
def test_truncated_at_every_length(typename):
    cls = our_class(typename)
    data = serialize(filled(typename))
    for cut in range(len(data)):
        with pytest.raises(MessageDecodeError) as info:
            deserialize(data[:cut], cls)
        assert typename in str(info.value)
        assert f"({cut} bytes)" in str(info.value)


@pytest.mark.parametrize(
    "header", [b"\x00\x02", b"\x01\x01", b"\x01\x00", b"\xff\xff", b"\x00\x07", b"\x00\x0b"]
)
def test_wrong_encapsulation_header(header):
    data = serialize(filled("energizeos_msgs/msg/MeterReading"))
    with pytest.raises(MessageDecodeError, match="MeterReading"):
        deserialize(header + data[2:], msg_mod.MeterReading)


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x01", b"\x00\x01\x00", b"garbage", b"\x00" * 3])
def test_tiny_payloads(data):
    for cls in ALL_CLASSES:
        with pytest.raises(MessageDecodeError):
            deserialize(data, cls)


def test_trailing_bytes_beyond_padding_rejected():
    data = serialize(filled("energizeos_msgs/msg/PcsCommand"))
    with pytest.raises(MessageDecodeError, match="PcsCommand"):
        deserialize(data + b"\x00" * 16, msg_mod.PcsCommand)


def test_invalid_utf8_string_rejected():
    payload = ENCAP_LE + struct.pack("<I", 3) + b"\xff\xfe\x00" + b"\x01"
    payload += struct.pack("<I", 1) + b"\x00" + b"\x00\x00\x00" + struct.pack("<I", 1) + b"\x00"
    with pytest.raises(MessageDecodeError, match="Permissive"):
        deserialize(payload, msg_mod.Permissive)


def test_huge_sequence_length_rejected_quickly():
    # InterlockState: Header, bool, bool, Permissive[] -- claim 2**31 permissives in a tiny buffer
    good = serialize(msg_mod.InterlockState())
    bad = good[:-4] + struct.pack("<I", 2**31)
    with pytest.raises(MessageDecodeError):
        deserialize(bad, msg_mod.InterlockState)
    plan = serialize(msg_mod.DispatchPlan())
    # first float64[] length field follows the header/plan_id/site/start/interval/status block
    for offset in range(4, len(plan) - 3, 4):
        mutated = plan[:offset] + struct.pack("<I", 0xFFFFFFF0) + plan[offset + 4 :]
        decode_or_decode_error(mutated, msg_mod.DispatchPlan)


def test_payload_of_another_type_rejected():
    """Each of these message types, filled, decoded as any other of them, fails.

    (A fixed list, so a future type that happens to share a CDR layout cannot break this test;
    the next test covers every pair of every type for "never another exception".)
    """
    msg_types = [
        f"energizeos_msgs/msg/{name}"
        for name in (
            "Alarm",
            "ArbiterDecision",
            "BmsStatus",
            "BreakerCommand",
            "DispatchPlan",
            "DispatchRequest",
            "InterlockState",
            "MeterReading",
            "PcsCommand",
            "PcsStatus",
            "Permissive",
            "RelayStatus",
        )
    ]
    for a, b in itertools.permutations(msg_types, 2):
        data = serialize(filled(a))
        with pytest.raises(MessageDecodeError):
            deserialize(data, our_class(b))
    header = serialize(msg_mod.Header(frame_id="poi"))
    with pytest.raises(MessageDecodeError):
        deserialize(header, msg_mod.MeterReading)


def test_payload_of_another_type_any_pair_never_crashes():
    for a, b in itertools.product(WIRE_TYPES, WIRE_TYPES):
        decode_or_decode_error(serialize(filled(a)), our_class(b))


def test_unknown_type_name_is_a_decode_error():
    with pytest.raises(MessageDecodeError):
        deserialize(serialize(msg_mod.Header()), "energizeos_msgs/msg/DoesNotExist")


@settings(**FUZZ)
@given(cls=st.sampled_from(ALL_CLASSES), data=st.binary(max_size=300))
def test_random_garbage(cls, data):
    decode_or_decode_error(data, cls)


@settings(**FUZZ)
@given(cls=st.sampled_from(ALL_CLASSES), data=st.binary(max_size=300))
def test_random_garbage_behind_valid_header(cls, data):
    decode_or_decode_error(ENCAP_LE + data, cls)
    decode_or_decode_error(b"\x00\x00\x00\x00" + data, cls)


@settings(**FUZZ)
@given(typename=st.sampled_from(WIRE_TYPES), data=st.data())
def test_mutated_valid_payloads(typename, data):
    payload = bytearray(serialize(filled(typename)))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(4, len(payload) - 1))
        payload[index] = data.draw(st.integers(0, 255))
    decode_or_decode_error(bytes(payload), our_class(typename))


# --------------------------------------------------------------------------------------------
# (d) encode errors
# --------------------------------------------------------------------------------------------
def wrong_values(typename: str):
    """(field, wrong value) for every non-bool field of a type: wrong Python type or out of range."""
    for fname, desc in fresh_store().fielddefs[typename][1]:
        kind = desc[0]
        if kind == Nodetype.NAME:
            yield fname, None
            yield (
                fname,
                msg_mod.Permissive() if desc[1] != "energizeos_msgs/msg/Permissive" else msg_mod.Time(),
            )
        elif kind == Nodetype.BASE:
            ptype = desc[1][0]
            if ptype == "string":
                yield fname, 5
                yield fname, b"bytes"
                yield fname, None
            elif ptype.startswith(("float",)):
                yield fname, "1.5"
                yield fname, None
            elif ptype != "bool":
                yield fname, "1"
                yield fname, 1.5
                yield fname, None
                if ptype.startswith("u") or ptype in ("byte", "char"):
                    yield fname, -1
                bits = {
                    "int8": 8,
                    "uint8": 8,
                    "byte": 8,
                    "char": 8,
                    "int16": 16,
                    "uint16": 16,
                    "int32": 32,
                    "uint32": 32,
                    "int64": 64,
                    "uint64": 64,
                }[ptype]
                yield fname, 2**bits
        else:
            sub = desc[1][0]
            if sub[0] == Nodetype.NAME:
                yield fname, [None]
                yield fname, None
            elif sub[1][0] == "string":
                yield fname, [1, 2]
                yield fname, None
            else:
                yield fname, ["x", "y", "z"]
                yield fname, None


ENCODE_CASES = [(t, f, v) for t in WIRE_TYPES for f, v in wrong_values(t)]


@pytest.mark.parametrize(
    ("typename", "fname", "value"),
    ENCODE_CASES,
    ids=[f"{t.split('/')[-1]}.{f}={v!r}" for t, f, v in ENCODE_CASES],
)
def test_wrong_field_value_raises_encode_error(typename, fname, value):
    m = filled(typename)
    object.__setattr__(m, fname, value)  # after construction, as node code would assign it
    with pytest.raises(MessageEncodeError) as info:
        serialize(m)
    assert typename in str(info.value)


@pytest.mark.parametrize("values", [[1.0, 2.0], [1.0, 2.0, 3.0, 4.0], []])
def test_wrong_fixed_array_length(values):
    m = msg_mod.MeterReading(voltage_ln_v=values)
    with pytest.raises(MessageEncodeError, match="MeterReading"):
        serialize(m)
    m = filled("energizeos_msgs/msg/MeterReading")
    m.current_a = np.zeros(len(values))
    with pytest.raises(MessageEncodeError, match="MeterReading"):
        serialize(m)


def test_nested_wrong_value_raises_encode_error():
    m = filled("energizeos_msgs/msg/InterlockState")
    m.permissives[1].age_s = "old"
    with pytest.raises(MessageEncodeError, match="InterlockState"):
        serialize(m)
    m = filled("energizeos_msgs/msg/Alarm")
    m.header.stamp.nanosec = -1
    with pytest.raises(MessageEncodeError, match="Alarm"):
        serialize(m)


def test_non_message_raises_encode_error():
    with pytest.raises(MessageEncodeError):
        serialize(object())  # type: ignore[arg-type]
    with pytest.raises(MessageEncodeError):
        serialize({"p_kw": 1.0})  # type: ignore[arg-type]


# --- silent coercions: a wrong-typed value is encoded as something else instead of an error -----
# These are product bugs (reported): each should raise MessageEncodeError.
def test_bool_field_given_a_string_is_an_encode_error():
    m = msg_mod.BmsStatus(permissive="false")  # type: ignore[arg-type]
    with pytest.raises(MessageEncodeError):
        data = serialize(m)
        decoded = deserialize(data, msg_mod.BmsStatus)
        raise AssertionError(
            f"BmsStatus(permissive='false') was encoded without error and decodes as "
            f"permissive={decoded.permissive!r}"
        )


def test_string_sequence_given_a_string_is_an_encode_error():
    m = msg_mod.ArbiterDecision(reason_codes="STALE_METER")  # type: ignore[arg-type]
    with pytest.raises(MessageEncodeError):
        data = serialize(m)
        decoded = deserialize(data, msg_mod.ArbiterDecision)
        raise AssertionError(
            f"reason_codes='STALE_METER' was encoded without error and decodes as {decoded.reason_codes!r}"
        )


def test_float_array_assigned_an_int_array_is_not_silently_reinterpreted():
    m = msg_mod.MeterReading()
    m.voltage_ln_v = np.array([277, 278, 279])  # int64 array assigned after construction
    try:
        data = serialize(m)
    except MessageEncodeError:
        return  # acceptable: refused
    decoded = deserialize(data, msg_mod.MeterReading)
    assert decoded.voltage_ln_v.tolist() == [277.0, 278.0, 279.0], (
        f"int64 array in a float64[3] field was sent as raw bits: decodes as {decoded.voltage_ln_v.tolist()}"
    )


# --------------------------------------------------------------------------------------------
# (e) generated code is up to date
# --------------------------------------------------------------------------------------------
def test_codegen_check_passes(capsys):
    from energizeos_msgs import _codegen

    before = {p: p.stat().st_mtime_ns for p in (PKG_DIR / "msg/__init__.py", PKG_DIR / "srv/__init__.py")}
    assert _codegen.main(["--check"]) == 0, capsys.readouterr().err
    assert _codegen.stale_files() == []
    after = {p: p.stat().st_mtime_ns for p in before}
    assert before == after, "--check must not rewrite the generated files"


# --------------------------------------------------------------------------------------------
# (f) to_dict / from_dict
# --------------------------------------------------------------------------------------------
def _assert_plain(value: Any) -> None:
    if isinstance(value, dict):
        for v in value.values():
            _assert_plain(v)
    elif isinstance(value, list):
        for v in value:
            _assert_plain(v)
    else:
        assert type(value) in (bool, int, float, str), f"not plain data: {type(value)!r}"


@pytest.mark.parametrize("typename", WIRE_TYPES)
def test_dict_round_trip(typename):
    cls = our_class(typename)
    original = filled(typename)
    plain = original.to_dict()
    field_names = [f.name for f in dataclasses.fields(cls)]
    assert list(plain) == field_names, (
        f"to_dict() must hold exactly the message fields; extra keys: {sorted(set(plain) - set(field_names))}"
    )
    _assert_plain(plain)
    assert json.loads(json.dumps(plain)) == plain
    rebuilt = cls.from_dict(json.loads(json.dumps(plain)))
    assert_typed(rebuilt, typename)
    assert rebuilt == original
    assert serialize(rebuilt) == serialize(original)


def test_from_dict_partial_and_empty():
    m = msg_mod.MeterReading.from_dict({"p_kw": 12.5, "header": {"frame_id": "poi"}})
    assert m.p_kw == 12.5 and m.header.frame_id == "poi" and m.header.stamp == msg_mod.Time()
    assert msg_mod.MeterReading.from_dict(None) == msg_mod.MeterReading()
    assert msg_mod.MeterReading.from_dict({}) == msg_mod.MeterReading()


def test_from_dict_unknown_field_named():
    with pytest.raises(ValueError, match="bogus_field") as info:
        msg_mod.MeterReading.from_dict({"p_kw": 1.0, "bogus_field": 2})
    assert "MeterReading" in str(info.value)


@pytest.mark.parametrize("key", ["QUALITY_GOOD", "__msgtype__", "_NESTED"])
def test_from_dict_class_attribute_is_an_unknown_field(key):
    """Constants and class attributes are not fields: a ValueError naming them, not a TypeError."""
    with pytest.raises(ValueError, match=key):
        msg_mod.MeterReading.from_dict({key: 1})


def test_from_dict_unknown_nested_field_named():
    with pytest.raises(ValueError, match="stampp"):
        msg_mod.Alarm.from_dict({"header": {"stampp": {"sec": 1}}})
    with pytest.raises(ValueError, match="agee_s"):
        msg_mod.InterlockState.from_dict({"permissives": [{"name": "a"}, {"agee_s": 1.0}]})


def test_from_dict_rejects_non_mapping():
    with pytest.raises(ValueError, match="mapping"):
        msg_mod.MeterReading.from_dict([1, 2, 3])  # type: ignore[arg-type]
