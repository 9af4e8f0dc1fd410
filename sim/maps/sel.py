"""Codec for the SEL-class register maps in this folder (``sel735.yaml``, ``sel700g.yaml``).

The YAML files are the maps (data); this module only turns engineering values into register words
and back, the same way on the plant side (``encode_into`` a RegisterImage) and on the client side
(``read_blocks`` → ``decode``, ``encode_write``). Conventions, also stated in each YAML and README.md:

- holding registers at absolute addresses; 32-bit values take two registers, high word first;
- engineering value = raw * scale (scale is a power of ten);
- "not available" sentinels: uint16 0xFFFF, int16 0x8000, uint32 0xFFFFFFFF, int32 0x80000000,
  float32 NaN — decoded as None (points declared ``nullable: false`` have no sentinel).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from itertools import repeat
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # the codec works on any object with set_words; no import-time tie to the plant
    from ..registers import RegisterImage

# A decoded value: number, None (not available), or bit name -> state for a bit register.
Value = int | float | dict[str, bool] | None

MAX_READ = 125  # Modbus limit for one read of holding registers (function code 3)
TYPES = ("uint16", "int16", "uint32", "int32", "float32", "bits")
ACCESS = ("ro", "rw", "wo")
WORDS = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2, "bits": 1}
RAW_RANGE = {
    "uint16": (0, 0xFFFF),
    "int16": (-0x8000, 0x7FFF),
    "uint32": (0, 0xFFFF_FFFF),
    "int32": (-0x8000_0000, 0x7FFF_FFFF),
    "bits": (0, 0xFFFF),
}
# Raw sentinel values; excluded from the valid range of a nullable point so that a real value can
# never be read back as "not available".
SENTINEL = {"uint16": 0xFFFF, "int16": -0x8000, "uint32": 0xFFFF_FFFF, "int32": -0x8000_0000}
FLOAT32_MAX = 3.4028234663852886e38
PRIMARY_FACTORS = ("CTR", "PTR", "CTR*PTR")
_NAME = re.compile(r"^[a-z0-9_]+$")


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF); check value of b"123456789" is 0x4B37."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _scale_exponent(name: str, scale: float) -> int:
    # Powers of ten only: decoding then divides by an exact integer, so 1200 * 0.001 reads back as
    # exactly 1.2 (the float nearest 1.2), which makes settings comparisons exact.
    if scale > 0:
        exp = round(math.log10(scale))
        if -9 <= exp <= 9 and math.isclose(scale, 10.0**exp, rel_tol=1e-12):
            return exp
    raise ValueError(f"point {name!r}: scale {scale!r} is not a power of ten")


@dataclass(frozen=True, eq=False)
class Point:
    """One register point. ``unit`` is the unit of the engineering (scaled) value."""

    name: str
    address: int
    type: str
    access: str = "ro"
    scale: float = 1
    unit: str = ""
    description: str = ""
    bits: Mapping[str, int] = field(default_factory=dict)  # bit name -> bit number (bit registers)
    bit_descriptions: Mapping[str, str] = field(default_factory=dict)
    enum: Mapping[int, str] = field(default_factory=dict)  # code -> label (enumerated uint16)
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = True
    group: str | None = None  # e.g. "settings": the points a checksum covers
    primary: str | None = None  # "CTR", "PTR" or "CTR*PTR": secondary -> primary factor
    _exp: int = field(default=0, repr=False)
    # For the fast paths of encode()/decode() (every plant refresh and every poll): the integer
    # range a value may take (the sentinel excluded), and 10**|exp| as an int, as encode computes it.
    _low: int = field(default=0, init=False, repr=False)
    _high: int = field(default=0, init=False, repr=False)
    _pow: int = field(default=1, init=False, repr=False)

    def __post_init__(self) -> None:
        low, high = RAW_RANGE.get(self.type, (0, 0))
        if self.has_sentinel and self.type in SENTINEL:
            low, high = (low + 1, high) if low < 0 else (low, high - 1)
        object.__setattr__(self, "_low", low)
        object.__setattr__(self, "_high", high)
        object.__setattr__(self, "_pow", 10 ** abs(self._exp))

    @property
    def count(self) -> int:
        """Number of registers."""
        return WORDS[self.type]

    @property
    def end(self) -> int:
        """One past the last register."""
        return self.address + self.count

    @property
    def readable(self) -> bool:
        return self.access in ("ro", "rw")

    @property
    def writable(self) -> bool:
        return self.access in ("rw", "wo")

    @property
    def has_sentinel(self) -> bool:
        return self.nullable and self.type != "bits"

    def label(self, code: int) -> str | None:
        """The enum label of a code, None if the code is not listed."""
        return self.enum.get(code)

    # --- encode -----------------------------------------------------------------------------
    def encode(self, value: Any) -> list[int]:
        """Engineering value -> register words. ValueError (naming the point) if it cannot be."""
        # Fast path for the common case, a finite number in range for a point without enum (the
        # same arithmetic as below); anything else, every error included, takes the full path.
        cls = type(value)
        if (cls is float or cls is int) and not self.enum and self.type != "bits" and math.isfinite(value) and (
                self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum):
            if self.type == "float32":
                if abs(value) <= FLOAT32_MAX:
                    return _float_words(float(value))
            else:
                raw = round(value * self._pow) if self._exp < 0 else round(value / self._pow)
                if self._low <= raw <= self._high:
                    return _int_words(self.type, raw)
        if self.type == "bits":
            return [self._encode_bits(value)]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if not self.has_sentinel:
                raise ValueError(f"point {self.name!r}: has no 'not available' value (not nullable)")
            if self.type == "float32":
                return _float_words(math.nan)
            return _int_words(self.type, SENTINEL[self.type])
        if self.enum and isinstance(value, str):
            codes = {label: code for code, label in self.enum.items()}
            if value not in codes:
                raise ValueError(f"point {self.name!r}: unknown label {value!r}; known: {sorted(codes)}")
            value = codes[value]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"point {self.name!r}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"point {self.name!r}: {value!r} is not a finite number")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"point {self.name!r}: {value!r} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"point {self.name!r}: {value!r} is above the maximum {self.maximum}")
        if self.enum and value not in self.enum:
            raise ValueError(f"point {self.name!r}: code {value!r} is not one of {dict(self.enum)}")
        if self.type == "float32":
            if abs(value) > FLOAT32_MAX:
                raise ValueError(f"point {self.name!r}: {value!r} is out of range for float32")
            return _float_words(float(value))
        raw = round(value * 10**-self._exp) if self._exp < 0 else round(value / 10**self._exp)
        low, high = RAW_RANGE[self.type]
        if self.has_sentinel:  # the sentinel is the range's top (unsigned) or bottom (signed) end
            low, high = (low + 1, high) if low < 0 else (low, high - 1)
        if not low <= raw <= high:
            unit = f" {self.unit}" if self.unit else ""
            raise ValueError(f"point {self.name!r}: {value!r}{unit} is out of range for {self.type} "
                             f"(raw {raw}, allowed {low}..{high} at scale {self.scale})")
        return _int_words(self.type, raw)

    def _encode_bits(self, value: Any) -> int:
        if isinstance(value, Mapping):
            raw = 0
            for bit_name, state in value.items():
                if bit_name not in self.bits:
                    raise ValueError(f"point {self.name!r}: unknown bit {bit_name!r}; known: {list(self.bits)}")
                if state:
                    raw |= 1 << self.bits[bit_name]
            return raw
        if isinstance(value, int) and not isinstance(value, bool):
            defined = sum(1 << bit for bit in self.bits.values())
            if not 0 <= value <= 0xFFFF or value & ~defined:
                raise ValueError(f"point {self.name!r}: raw bits {value!r} set undefined bits "
                                 f"(defined mask 0x{defined:04X})")
            return value
        raise ValueError(f"point {self.name!r}: expected a dict of bit name -> bool, got {value!r}")

    # --- decode -----------------------------------------------------------------------------
    def decode(self, words: Sequence[int]) -> Value:
        """Register words -> engineering value (None for the 'not available' sentinel)."""
        if len(words) != self.count:
            raise ValueError(f"point {self.name!r}: needs {self.count} words, got {len(words)}")
        if self.type == "bits":
            return {name: bool(words[0] >> bit & 1) for name, bit in self.bits.items()}
        if self.type == "float32":
            number = struct.unpack(">f", struct.pack(">HH", *words))[0]
            return None if math.isnan(number) and self.nullable else number
        return self._from_raw(_int_from_words(self.type, words))

    def _from_raw(self, raw: int) -> Value:
        """An integer point's value from its raw (signed) register value."""
        if self.has_sentinel and raw == SENTINEL[self.type]:
            return None
        # Dividing by an exact integer returns the float nearest the decimal value (1200 -> 1.2).
        return raw / 10**-self._exp if self._exp < 0 else raw * 10**self._exp


def _int_words(kind: str, raw: int) -> list[int]:
    if WORDS[kind] == 1:
        return [raw & 0xFFFF]
    raw &= 0xFFFF_FFFF  # two's complement for int32
    return [raw >> 16, raw & 0xFFFF]  # high word first


def _int_from_words(kind: str, words: Sequence[int]) -> int:
    raw = words[0] if len(words) == 1 else (words[0] << 16) | words[1]
    bits = 16 * len(words)
    if kind.startswith("int") and raw >> (bits - 1):
        raw -= 1 << bits
    return raw


def _float_words(number: float) -> list[int]:
    return list(_WORDS2.unpack(_F32.pack(number)))  # high word first


_F32, _WORDS2 = struct.Struct(">f"), struct.Struct(">HH")  # float32 <-> its two words, high word first


@dataclass(frozen=True, eq=False)
class DeviceMap:
    """A device's register map: ``base``, ``size`` and its ``points`` by name."""

    name: str
    title: str
    base: int
    size: int
    points: Mapping[str, Point]
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    checksum_point: str | None = None
    checksum_group: str | None = None
    _defaults: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # (base, word count) -> the readable points wholly inside, in address order (decode, every poll)
    _block_points: dict[tuple[int, int], tuple[tuple[str, Point, int], ...]] = field(
        default_factory=dict, init=False, repr=False)

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceMap:
        """Build and validate a map from its parsed YAML."""
        name = str(data.get("device", "device"))
        base, size = int(data["base"]), int(data["size"])
        if data.get("word_order", "big") != "big":
            raise ValueError(f"{name}: only big-endian word order (high word first) is supported")
        points: dict[str, Point] = {}
        for point_name, spec in (data.get("points") or {}).items():
            points[str(point_name)] = _point(str(point_name), spec)
        # Layout checks: every point inside the map and no two points sharing a register.
        owner: dict[int, str] = {}
        for point in points.values():
            if point.address < base or point.end > base + size:
                raise ValueError(f"{name}: point {point.name!r} at {point.address} is outside "
                                 f"{base}..{base + size - 1}")
            for address in range(point.address, point.end):
                if address in owner:
                    raise ValueError(f"{name}: points {owner[address]!r} and {point.name!r} overlap at {address}")
                owner[address] = point.name
        checksum = data.get("checksum") or {}
        presets = {str(k): MappingProxyType(dict(v)) for k, v in (data.get("presets") or {}).items()}
        device = cls(name=name, title=str(data.get("title", name)), base=base, size=size,
                     points=MappingProxyType(points), presets=MappingProxyType(presets),
                     checksum_point=checksum.get("point"), checksum_group=checksum.get("group"))
        if checksum:
            if checksum.get("algorithm", "CRC-16/MODBUS") != "CRC-16/MODBUS":
                raise ValueError(f"{name}: unsupported checksum algorithm {checksum['algorithm']!r}")
            crc = device.point(str(checksum["point"]))
            start, count = device.checksum_span
            if start <= crc.address < start + count:
                raise ValueError(f"{name}: checksum point {crc.name!r} lies inside the span it covers")
        for values in [data.get("defaults") or {}, *presets.values()]:
            device.encode(values)  # validates names and ranges at load time, not at first use
        defaults = dict(data.get("defaults") or {})
        # The checksum is derived, never written in the YAML, so it cannot go stale.
        if device.checksum_point and device.checksum_point not in defaults and all(
                p.name in defaults for p in device.group_points(device.checksum_group)):
            defaults[device.checksum_point] = device.checksum(defaults)
        return replace(device, _defaults=MappingProxyType(defaults))

    @property
    def defaults(self) -> dict[str, Any]:
        """Default engineering values from the YAML (plus the computed settings checksum); a copy."""
        return dict(self._defaults)

    def point(self, name: str) -> Point:
        try:
            return self.points[name]
        except KeyError:
            raise ValueError(f"{self.name}: unknown point {name!r}") from None

    def group_points(self, group: str | None) -> list[Point]:
        return sorted((p for p in self.points.values() if group and p.group == group), key=lambda p: p.address)

    # --- plant side -------------------------------------------------------------------------
    def encode(self, values: Mapping[str, Any]) -> list[tuple[int, list[int]]]:
        """Values by point name -> ``[(address, words), ...]`` in address order."""
        points = self.points
        writes = []
        for name, value in values.items():
            point = points.get(name) or self.point(name)  # self.point: the error for an unknown name
            writes.append((point.address, point.encode(value)))
        return sorted(writes)

    def encode_into(self, image: RegisterImage, values: Mapping[str, Any]) -> None:
        """Encode every value, then store them with ``image.set_words`` (the device's own update)."""
        writes = self.encode(values)  # all-or-nothing: a bad value must not leave a half-updated image
        set_runs = getattr(image, "set_runs", None)
        if set_runs is not None:  # a RegisterImage: the same set_words, under one lock
            set_runs(writes)
            return
        for address, words in writes:
            image.set_words(address, words)

    # --- client side ------------------------------------------------------------------------
    def read_blocks(self, max_count: int = MAX_READ) -> list[tuple[int, int]]:
        """``(address, count)`` reads covering every readable point exactly once.

        A block may span reserved gaps (they read as 0) but never a write-only point, never splits
        a point, and never exceeds ``max_count`` registers.
        """
        blocks: list[tuple[int, int]] = []
        start = end = -1
        for point in sorted(self.points.values(), key=lambda p: p.address):
            if not point.readable:
                if start >= 0:
                    blocks.append((start, end - start))
                start = -1
                continue
            if start >= 0 and point.end - start <= max_count:
                end = point.end
                continue
            if start >= 0:
                blocks.append((start, end - start))
            start, end = point.address, point.end
        if start >= 0:
            blocks.append((start, end - start))
        return blocks

    def decode(self, words: Sequence[int], base: int) -> dict[str, Value]:
        """Decode a contiguous block read at ``base``: every readable point wholly inside it."""
        # = any(not isinstance(w, int) or not 0 <= w <= 0xFFFF for w in words), in C
        if not all(map(isinstance, words, repeat(int))) or (words and not 0 <= min(words) <= max(words) <= 0xFFFF):
            raise ValueError(f"{self.name}: register words must be integers 0..65535")
        key = (base, len(words))
        inside = self._block_points.get(key)
        if inside is None:  # every poll reads the same blocks: find their points once
            inside = self._block_points[key] = tuple(
                (point.name, point, point.address - base)
                for point in sorted(self.points.values(), key=lambda p: p.address)
                if point.readable and base <= point.address and point.end <= base + len(words))
        out: dict[str, Value] = {}
        for name, point, offset in inside:
            # Point.decode without its call, slice and checks for the common types (the same arithmetic)
            kind = point.type
            if kind == "float32":
                number = _F32.unpack(_WORDS2.pack(words[offset], words[offset + 1]))[0]
                out[name] = None if math.isnan(number) and point.nullable else number
            elif kind == "uint16":
                out[name] = point._from_raw(words[offset])
            elif kind == "uint32":
                out[name] = point._from_raw((words[offset] << 16) | words[offset + 1])
            else:
                out[name] = point.decode(words[offset:offset + point.count])
        return out

    def encode_write(self, name: str, value: Any) -> tuple[int, list[int]]:
        """A client write to a writable point (e.g. ``remote_bits``): ``(address, words)``."""
        point = self.point(name)
        if not point.writable:
            raise ValueError(f"{self.name}: point {name!r} is read-only")
        return point.address, point.encode(value)

    # --- settings checksum ------------------------------------------------------------------
    @property
    def checksum_span(self) -> tuple[int, int]:
        """``(address, count)`` of the registers the checksum covers (first..last group point)."""
        covered = self.group_points(self.checksum_group)
        if not covered:
            raise ValueError(f"{self.name}: no checksum defined")
        return covered[0].address, max(p.end for p in covered) - covered[0].address

    def checksum_words(self, words: Sequence[int]) -> int:
        """CRC-16/MODBUS of the covered registers as read (``len(words)`` must be the span count)."""
        start, count = self.checksum_span
        if len(words) != count:
            raise ValueError(f"{self.name}: checksum covers {count} registers {start}.., got {len(words)}")
        return crc16_modbus(b"".join(w.to_bytes(2, "big") for w in words))

    def checksum(self, values: Mapping[str, Any]) -> int:
        """The checksum the device reports for these settings (every covered point required)."""
        start, count = self.checksum_span
        words = [0] * count  # reserved gaps inside the span read as 0
        for point in self.group_points(self.checksum_group):
            if point.name not in values:
                raise ValueError(f"{self.name}: setting {point.name!r} missing for the checksum")
            offset = point.address - start
            words[offset:offset + point.count] = point.encode(values[point.name])
        return self.checksum_words(words)

    # --- CT/PT scaling ----------------------------------------------------------------------
    def to_primary(self, decoded: Mapping[str, Value], ctr: float | None = None,
                   ptr: float | None = None) -> dict[str, float | None]:
        """Secondary points (those with ``primary``) scaled to primary units.

        The ratios default to the device's own ``ctr``/``ptr`` in ``decoded``; CT/PT validation
        passes the COMMISSIONED ratios instead and compares with the meter's primary registers.
        """
        ctr = ctr if ctr is not None else _number(decoded.get("ctr"), "ctr")
        ptr = ptr if ptr is not None else _number(decoded.get("ptr"), "ptr")
        factor = {"CTR": ctr, "PTR": ptr, "CTR*PTR": ctr * ptr}
        out: dict[str, float | None] = {}
        for name, value in decoded.items():
            point = self.points.get(name)
            if point is not None and point.primary is not None:
                out[name] = None if value is None else _number(value, name) * factor[point.primary]
        return out


def _number(value: Value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"point {name!r}: needs a number, got {value!r}")
    return float(value)


def _point(name: str, spec: Mapping[str, Any]) -> Point:
    kind = spec.get("type")
    if kind not in TYPES:
        raise ValueError(f"point {name!r}: type {kind!r} is not one of {TYPES}")
    access = spec.get("access", "ro")
    if access not in ACCESS:
        raise ValueError(f"point {name!r}: access {access!r} is not one of {ACCESS}")
    scale = spec.get("scale", 1)
    exp = _scale_exponent(name, float(scale))
    if kind in ("float32", "bits") and exp != 0:
        raise ValueError(f"point {name!r}: {kind} points take no scale")
    bits: dict[str, int] = {}
    bit_descriptions: dict[str, str] = {}
    for entry in spec.get("bits") or []:
        bit_name, bit = str(entry["name"]), int(entry["bit"])
        if not 0 <= bit <= 15 or bit in bits.values() or bit_name in bits:
            raise ValueError(f"point {name!r}: bit {bit_name!r} ({bit}) is out of 0..15 or duplicated")
        bits[bit_name] = bit
        bit_descriptions[bit_name] = str(entry.get("description", ""))
    if (kind == "bits") != bool(bits):
        raise ValueError(f"point {name!r}: bit names go with (and only with) type bits")
    enum = {int(e["code"]): str(e["name"]) for e in spec.get("enum") or []}
    primary = spec.get("primary")
    if primary is not None and primary not in PRIMARY_FACTORS:
        raise ValueError(f"point {name!r}: primary {primary!r} is not one of {PRIMARY_FACTORS}")
    return Point(
        name=name, address=int(spec["address"]), type=kind, access=access,
        scale=int(scale) if exp >= 0 else float(scale), unit=str(spec.get("unit", "")),
        description=str(spec.get("description", "")).strip(),
        bits=MappingProxyType(bits), bit_descriptions=MappingProxyType(bit_descriptions),
        enum=MappingProxyType(enum), minimum=spec.get("minimum"), maximum=spec.get("maximum"),
        nullable=bool(spec.get("nullable", kind != "bits")), group=spec.get("group"),
        primary=primary, _exp=exp,
    )


def available_maps() -> list[str]:
    """Names of the maps shipped next to this module."""
    return sorted(p.stem for p in Path(__file__).parent.glob("*.yaml"))


@cache
def load_map(name: str) -> DeviceMap:
    """Load ``<name>.yaml`` from this package folder (``"sel735"`` or ``"sel700g"``); cached."""
    path = Path(__file__).parent / f"{name}.yaml"
    if not _NAME.match(name) or not path.is_file():  # the pattern keeps a name from escaping the folder
        raise ValueError(f"unknown register map {name!r}; available: {available_maps()}")
    with path.open(encoding="utf-8") as handle:
        return DeviceMap.from_dict(yaml.safe_load(handle))
