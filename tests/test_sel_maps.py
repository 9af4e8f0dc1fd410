"""SEL-class register maps (sim/maps/sel735.yaml, sel700g.yaml) and their codec (sim/maps/sel.py)."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU

from energizeos.sim.maps.sel import MAX_READ, DeviceMap, Point, available_maps, crc16_modbus, load_map
from energizeos.sim.registers import RegisterImage

MAPS = ["sel735", "sel700g"]

# DESIGN.md section 8, IEEE 1547-2018 default trip settings: (pickup, clearing time in s).
CATEGORY_II = {
    "ov2": (1.20, 0.16), "ov1": (1.10, 2.0), "uv1": (0.70, 10.0), "uv2": (0.45, 0.16),
    "of2": (62.0, 0.16), "of1": (61.2, 300.0), "uf1": (58.5, 300.0), "uf2": (56.5, 0.16),
}
CATEGORY_III = {**CATEGORY_II, "ov1": (1.10, 13.0), "uv1": (0.88, 21.0), "uv2": (0.50, 2.0)}

# A small synthetic map exercising the types the two device maps do not use (int16, int32).
SYNTHETIC: dict[str, Any] = {
    "device": "synthetic", "base": 100, "size": 20,
    "points": {
        "i16": {"address": 100, "type": "int16", "scale": 0.01, "unit": "kW"},
        "i32": {"address": 101, "type": "int32"},
        "u32": {"address": 103, "type": "uint32"},
        "f32": {"address": 105, "type": "float32"},
        "u16x10": {"address": 107, "type": "uint16", "scale": 10, "unit": "W"},
        "setpoint": {"address": 110, "type": "uint16", "access": "rw"},
        "count": {"address": 111, "type": "uint16", "nullable": False},
    },
}


def synthetic() -> DeviceMap:
    return DeviceMap.from_dict(SYNTHETIC)


def sample(point: Point) -> Any:
    """A valid, exactly representable, preferably negative / multi-word value for a point."""
    if point.type == "bits":
        return {name: i % 2 == 0 for i, name in enumerate(point.bits)}
    if point.enum:
        return max(point.enum)
    if point.type == "float32":
        if point.minimum is not None and point.minimum >= 0:
            return 1234.5
        low, high = point.minimum or -1e6, point.maximum or 1e6
        return -0.875 * min(-low, high)  # negative, inside the range, exact in float32
    raw = {"uint16": 12345, "int16": -12345, "uint32": 0x12345678, "int32": -0x12345678}[point.type]
    if point.minimum is not None and raw * point.scale < point.minimum:
        raw = -raw
    return raw * point.scale if point.scale >= 1 else raw / round(1 / point.scale)


def image_with(device: DeviceMap, values: dict[str, Any]) -> RegisterImage:
    image = RegisterImage(device.base, device.size, device.name)
    device.encode_into(image, values)
    return image


def read_all(device: DeviceMap, image: RegisterImage) -> dict[str, Any]:
    """What a client does: the read blocks, each decoded."""
    decoded: dict[str, Any] = {}
    for address, count in device.read_blocks():
        decoded.update(device.decode(image.read(address, count), address))
    return decoded


# --- loading and layout ---------------------------------------------------------------------------

def test_both_maps_ship_and_load() -> None:
    assert {"sel735", "sel700g"} <= set(available_maps())
    meter, relay = load_map("sel735"), load_map("sel700g")
    assert (meter.base, relay.base) == (1000, 2000)
    assert meter.defaults["model_id"] == 735 and relay.defaults["model_id"] == 700
    assert load_map("sel735") is meter  # cached: one parse per process


@pytest.mark.parametrize("name", MAPS)
def test_layout_points_inside_map_and_disjoint(name: str) -> None:
    device = load_map(name)
    used: set[int] = set()
    for point in device.points.values():
        registers = set(range(point.address, point.address + point.count))
        assert device.base <= point.address and point.end <= device.base + device.size, point.name
        assert not used & registers, point.name
        used |= registers


def test_meter_has_the_required_points() -> None:
    meter = load_map("sel735")
    required = {"model_id", "firmware_version", "ctr", "ptr", "vnom_secondary", "status", "sequence",
                "va_mag", "va_ang", "vb_mag", "vb_ang", "vc_mag", "vc_ang", "ia_mag", "ia_ang", "ib_mag",
                "ib_ang", "ic_mag", "ic_ang", "p_total", "q_total", "s_total", "pf", "frequency",
                "kwh_delivered", "kwh_received", "demand_kw"}
    assert required <= set(meter.points)
    assert set(meter.point("status").bits) == {"SELF_TEST_OK", "PT_FUSE_LOSS", "CONFIG_CHANGED"}
    assert (meter.defaults["ctr"], meter.defaults["ptr"]) == (400, 4)  # 2000:5 A, 480:120 V
    assert {p.type for n, p in meter.points.items() if n.endswith(("_mag", "_ang", "_total"))} == {"float32"}


def test_relay_has_the_required_bits_and_causes() -> None:
    relay = load_map("sel700g")
    assert set(relay.point("relay_status").bits) == {"52A", "52B", "TRIP", "86", "ALARM", "SELF_TEST_OK", "IN101"}
    elements = ["27P1", "27P2", "59P1", "59P2", "81U1", "81U2", "81O1", "81O2"]
    assert list(relay.point("element_pickup").bits) == elements
    assert list(relay.point("element_trip").bits) == [e + "T" for e in elements]
    assert list(relay.point("remote_bits").bits) == ["RB01", "RB02", "RB03"]
    labels = set(relay.point("last_trip_cause").enum.values())
    assert {"NONE", "UV1", "UV2", "OV1", "OV2", "UF1", "UF2", "OF1", "OF2", "REMOTE_OPEN", "EXTERNAL"} == labels
    assert relay.point("last_trip_cause").label(9) == "REMOTE_OPEN"
    assert relay.point("last_trip_cause").encode("REMOTE_OPEN") == [9]


# --- round trips ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MAPS)
def test_round_trip_every_point_through_an_image(name: str) -> None:
    device = load_map(name)
    values = {point.name: sample(point) for point in device.points.values()}
    decoded = read_all(device, image_with(device, values))
    for point in device.points.values():
        if point.readable:
            assert decoded[point.name] == values[point.name], point.name
        else:  # write-only: never in a read, but the codec round-trips it
            assert point.name not in decoded
            address, words = device.encode_write(point.name, values[point.name])
            assert address == point.address and point.decode(words) == values[point.name]


def test_round_trip_synthetic_types() -> None:
    device = synthetic()
    values = {"i16": -123.45, "i32": -2_000_000_000, "u32": 4_000_000_000, "f32": -0.15625,
              "u16x10": 655_000, "setpoint": 7, "count": 0xFFFF}
    assert device.decode(image_with(device, values).snapshot(), device.base) == values


@given(st.integers(-0x7FFF, 0x7FFF), st.integers(-0x7FFF_FFFF, 0x7FFF_FFFF), st.integers(0, 0xFFFF_FFFE),
       st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_round_trip_property(i16: int, i32: int, u32: int, f32: float) -> None:
    device = synthetic()
    values = {"i16": i16 / 100, "i32": i32, "u32": u32, "f32": f32}
    words = [0] * device.size
    for address, chunk in device.encode(values):
        words[address - device.base:address - device.base + len(chunk)] = chunk
    decoded = device.decode(words, device.base)
    assert {k: decoded[k] for k in values} == values


def test_32_bit_values_are_high_word_first() -> None:
    meter, relay, synth = load_map("sel735"), load_map("sel700g"), synthetic()
    assert meter.encode({"kwh_delivered": 0x12345678 / 10}) == [(1042, [0x1234, 0x5678])]
    assert meter.encode({"p_total": 1.0}) == [(1032, [0x3F80, 0x0000])]
    assert meter.encode({"p_total": -2.0}) == [(1032, [0xC000, 0x0000])]
    assert meter.point("q_total").encode(-1234.5) == list(struct.unpack(">HH", struct.pack(">f", -1234.5)))
    assert relay.encode({"of1_clear_time": 300.0}) == [(2050, [0x0004, 0x93E0])]  # 300000 ms
    assert synth.point("i32").encode(-2) == [0xFFFF, 0xFFFE]
    assert synth.point("i16").encode(-1.5) == [0xFF6A]  # -150 at scale 0.01
    assert meter.point("kwh_delivered").decode([0x0001, 0x0000]) == 6553.6


def test_bits_accept_a_dict_or_a_raw_word() -> None:
    relay = load_map("sel700g")
    status = relay.point("relay_status")
    assert status.encode({"52A": True, "86": True, "IN101": True}) == [0b100_1001]
    assert status.encode(0b100_1001) == [0b100_1001]
    assert status.decode([0b10])["52B"] is True
    assert status.decode([0b10])["52A"] is False


# --- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "point", "value"), [
    ("sel735", "ctr", 0),                      # below the declared minimum
    ("sel735", "ctr", 70_000),                 # beyond uint16
    ("sel735", "ptr", 65_535),                 # the uint16 sentinel is not a value
    ("sel735", "vnom_secondary", 6553.5),      # raw 65535 at scale 0.1
    ("sel735", "kwh_delivered", -0.1),         # uint32 cannot be negative
    ("sel735", "kwh_received", 429_496_729.5),  # raw 0xFFFFFFFF, the sentinel
    ("sel735", "pf", 1.5),
    ("sel735", "va_ang", 181.0),
    ("sel735", "s_total", -1.0),
    ("sel735", "p_total", 1e39),               # beyond float32
    ("sel735", "p_total", math.inf),
    ("sel735", "sequence", None),              # counters have no "not available"
    ("sel735", "model_id", "735"),
    ("sel735", "model_id", True),
    ("sel735", "status", {"BOGUS": True}),
    ("sel700g", "relay_status", 0x8000),       # an undefined bit
    ("sel700g", "ov2_pickup", -0.001),
    ("sel700g", "ov2_pickup", 65.535),
    ("sel700g", "uv2_clear_time", 4_294_967.296),
    ("sel700g", "ieee1547_category", 1),
    ("sel700g", "last_trip_cause", 11),
    ("sel700g", "last_trip_cause", "TRIPPED"),
])
def test_invalid_values_raise_naming_the_point(name: str, point: str, value: Any) -> None:
    device = load_map(name)
    with pytest.raises(ValueError, match=point):
        device.encode({point: value})


def test_encode_into_is_all_or_nothing() -> None:
    meter = load_map("sel735")
    image = image_with(meter, meter.defaults)
    before = image.snapshot()
    with pytest.raises(ValueError, match="pf"):
        meter.encode_into(image, {"p_total": 1000.0, "pf": 2.0})
    assert image.snapshot() == before


@pytest.mark.parametrize("name", MAPS)
def test_unknown_names_raise(name: str) -> None:
    device = load_map(name)
    with pytest.raises(ValueError, match="no_such_point"):
        device.encode({"no_such_point": 1})
    with pytest.raises(ValueError, match="no_such_point"):
        device.encode_write("no_such_point", 1)


def test_unknown_or_unsafe_map_names_raise() -> None:
    for name in ("sel999", "../sel735", "SEL735", ""):
        with pytest.raises(ValueError, match="unknown register map"):
            load_map(name)


def test_writes_only_to_writable_points() -> None:
    relay = load_map("sel700g")
    assert relay.encode_write("remote_bits", {"RB01": True}) == (2016, [0b001])
    assert relay.encode_write("remote_bits", {"RB02": True}) == (2016, [0b010])
    assert relay.encode_write("remote_bits", {"RB03": True}) == (2016, [0b100])
    with pytest.raises(ValueError, match="ov2_pickup"):
        relay.encode_write("ov2_pickup", 1.3)  # settings are not writable over Modbus
    with pytest.raises(ValueError, match="remote_bits"):
        relay.encode_write("remote_bits", {"RB04": True})


@pytest.mark.parametrize("spec", [
    {"a": {"address": 0, "type": "uint32"}, "b": {"address": 1, "type": "uint16"}},  # overlap
    {"a": {"address": 10, "type": "uint16"}},                                         # outside
    {"a": {"address": 0, "type": "uint16", "scale": 0.5}},                            # not 10^k
    {"a": {"address": 0, "type": "uint64"}},
    {"a": {"address": 0, "type": "uint16", "access": "rx"}},
    {"a": {"address": 0, "type": "bits"}},                                            # no bit names
])
def test_malformed_maps_are_rejected(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="'a'"):
        DeviceMap.from_dict({"device": "bad", "base": 0, "size": 2, "points": spec})


def test_decode_rejects_non_register_words() -> None:
    with pytest.raises(ValueError):
        load_map("sel735").decode([0x1_0000], 1000)


# --- sentinels ------------------------------------------------------------------------------------

def test_not_available_sentinels_decode_as_none() -> None:
    meter, synth = load_map("sel735"), synthetic()
    assert meter.point("firmware_version").encode(None) == [0xFFFF]
    assert meter.point("kwh_delivered").encode(None) == [0xFFFF, 0xFFFF]
    assert math.isnan(struct.unpack(">f", struct.pack(">HH", *meter.point("p_total").encode(None)))[0])
    assert synth.point("i16").encode(None) == [0x8000]
    assert synth.point("i32").encode(None) == [0x8000, 0x0000]
    assert meter.point("firmware_version").decode([0xFFFF]) is None
    assert meter.point("p_total").decode([0x7FC0, 0x0000]) is None
    assert meter.point("p_total").decode([0xFFC0, 0x0001]) is None  # any NaN
    assert synth.point("i16").decode([0x8000]) is None
    assert synth.point("i32").decode([0x8000, 0x0000]) is None
    assert synth.point("u32").decode([0xFFFF, 0xFFFF]) is None


@pytest.mark.parametrize("name", MAPS)
def test_every_nullable_point_round_trips_none(name: str) -> None:
    device = load_map(name)
    nullable = {p.name: None for p in device.points.values() if p.has_sentinel and p.readable}
    assert nullable
    decoded = read_all(device, image_with(device, nullable))
    assert {k: decoded[k] for k in nullable} == nullable


def test_non_nullable_counter_uses_the_full_range() -> None:
    meter = load_map("sel735")
    assert meter.point("sequence").decode([0xFFFF]) == 0xFFFF  # a counter value, not "missing"
    assert meter.point("model_id").decode([0xFFFF]) == 0xFFFF


# --- read blocks ----------------------------------------------------------------------------------

def check_blocks(device: DeviceMap, blocks: list[tuple[int, int]], limit: int) -> None:
    covered: dict[str, int] = {}
    for address, count in blocks:
        assert 1 <= count <= limit
        assert device.base <= address and address + count <= device.base + device.size
        for point in device.points.values():
            inside = address <= point.address and point.end <= address + count
            touches = point.address < address + count and address < point.end
            assert inside or not touches, f"block {address}+{count} splits {point.name}"
            if inside:
                assert point.readable, f"block {address}+{count} reads write-only {point.name}"
                covered[point.name] = covered.get(point.name, 0) + 1
    assert covered == {p.name: 1 for p in device.points.values() if p.readable}


@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("limit", [MAX_READ, 7, 2])
def test_read_blocks_cover_every_readable_point_once(name: str, limit: int) -> None:
    device = load_map(name)
    check_blocks(device, device.read_blocks(limit) if limit != MAX_READ else device.read_blocks(), limit)


def test_read_blocks_split_a_long_map_at_125() -> None:
    points = {f"p{i}": {"address": 2 * i, "type": "float32"} for i in range(200)}
    device = DeviceMap.from_dict({"device": "long", "base": 0, "size": 400, "points": points})
    blocks = device.read_blocks()
    assert len(blocks) == 4
    check_blocks(device, blocks, MAX_READ)


def test_decode_skips_points_cut_by_the_block() -> None:
    meter = load_map("sel735")
    image = image_with(meter, {"va_mag": 69.5, "va_ang": -1.5})
    decoded = meter.decode(image.read(1008, 3), 1008)  # va_mag whole, va_ang cut in half
    assert decoded == {"va_mag": 69.5}


# --- settings checksum ----------------------------------------------------------------------------

def test_crc16_modbus_matches_the_standard_and_pymodbus() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37  # CRC-16/MODBUS check value
    data = bytes(range(40))
    swapped = FramerRTU.compute_CRC(data)  # pymodbus returns it byte-swapped (wire order)
    assert crc16_modbus(data) == ((swapped & 0xFF) << 8) | (swapped >> 8)


def test_reported_checksum_matches_the_settings_block() -> None:
    relay = load_map("sel700g")
    image = image_with(relay, relay.defaults)
    start, count = relay.checksum_span
    assert (start, count) == (2032, 26)
    assert relay.checksum_words(image.read(start, count)) == read_all(relay, image)["settings_crc"]
    assert relay.defaults["settings_crc"] == relay.checksum(relay.defaults)


def test_checksum_changes_when_any_setting_changes() -> None:
    relay = load_map("sel700g")
    settings = relay.defaults
    reference = relay.checksum(settings)
    for point in relay.group_points("settings"):
        changed = dict(settings)
        if point.enum:
            changed[point.name] = 3
        else:
            changed[point.name] = settings[point.name] + point.scale  # one least significant step
        assert relay.checksum(changed) != reference, point.name
    assert relay.checksum(relay.presets["category_III"] | {"vnom_primary": 480}) != reference


def test_checksum_needs_every_setting() -> None:
    relay = load_map("sel700g")
    settings = relay.defaults
    del settings["uf2_clear_time"]
    with pytest.raises(ValueError, match="uf2_clear_time"):
        relay.checksum(settings)


# --- IEEE 1547-2018 defaults ----------------------------------------------------------------------

def test_category_ii_defaults_equal_the_design_table() -> None:
    relay = load_map("sel700g")
    defaults = relay.defaults
    assert defaults["ieee1547_category"] == 2
    for element, (pickup, clearing) in CATEGORY_II.items():
        assert (defaults[f"{element}_pickup"], defaults[f"{element}_clear_time"]) == (pickup, clearing), element
    # ... and as a client reads them back from the registers (exact: pu x 1000 and ms are integers).
    decoded = read_all(relay, image_with(relay, defaults))
    for element, (pickup, clearing) in CATEGORY_II.items():
        assert (decoded[f"{element}_pickup"], decoded[f"{element}_clear_time"]) == (pickup, clearing), element
    assert relay.point("ov2_pickup").encode(1.20) == [1200]
    assert relay.point("ov2_clear_time").encode(0.16) == [0, 160]


def test_presets_equal_the_design_table() -> None:
    relay = load_map("sel700g")
    for preset, category, table in (("category_II", 2, CATEGORY_II), ("category_III", 3, CATEGORY_III)):
        values = relay.presets[preset]
        assert values["ieee1547_category"] == category
        assert {e: (values[f"{e}_pickup"], values[f"{e}_clear_time"]) for e in table} == table


# --- secondary -> primary ---------------------------------------------------------------------------

def test_to_primary_uses_ctr_and_ptr() -> None:
    meter = load_map("sel735")
    readings = {"va_mag": 69.25, "ia_mag": 2.5, "p_total": -500.0, "pf": -0.5, "kwh_delivered": 10.0}
    decoded = read_all(meter, image_with(meter, meter.defaults | readings))
    primary = meter.to_primary(decoded)  # the meter's own ratios: CTR 400, PTR 4
    assert primary["va_mag"] == 69.25 * 4
    assert primary["ia_mag"] == 2.5 * 400
    assert primary["p_total"] == -500.0 * 1600  # an export of 800 kW
    assert "pf" not in primary and "kwh_delivered" not in primary  # already unitless / primary
    commissioned = meter.to_primary(decoded, ctr=200, ptr=4)  # a wrong CT ratio shows as 2x power
    assert primary["p_total"] == 2 * commissioned["p_total"]
